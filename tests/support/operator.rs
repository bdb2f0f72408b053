//! The operator's own binary, run against the test control plane.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// A running `sigstore-operator run`. Killed on drop if still running.
pub struct Operator {
    child: Child,
    pub http: String,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `sigstore-operator run` with `kubeconfig`, logging JSON lines
    /// to `<dir>/<name>.log`.
    pub fn start(kubeconfig: &Path, dir: &Path, name: &str, extra: &[&str]) -> Self {
        Self::start_with_env(kubeconfig, dir, name, extra, &[])
    }

    /// [`Operator::start`] with extra environment (e.g. a moved clock).
    pub fn start_with_env(
        kubeconfig: &Path,
        dir: &Path,
        name: &str,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Self {
        let [port] = super::procs::free_ports::<1>().expect("free port");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(super::operator_bin())
            .args(["--log-format", "json", "run", "--http-addr"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,sigstore_operator=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start sigstore-operator");
        Self {
            child,
            http: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET a path of the operator's HTTP server: `(status, body)`.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("{}{path}", self.http)).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    /// The value of a metric without labels, once the server answers.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(timeout)
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished command printed.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sigstore-operator <args>` with `kubeconfig` to completion.
pub fn run_cli(kubeconfig: &Path, args: &[&str]) -> Output {
    let out = Command::new(super::operator_bin())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run sigstore-operator");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Applies config/rbac's ClusterRole and binds it to `user`, so an operator
/// run as `user` has exactly the permissions the manifests give it.
pub async fn bind_operator_role(client: &kube::Client, user: &str) {
    use kube::{ResourceExt, api::DynamicObject};
    let rbac = super::manifests::read_dir(&super::repo_root().join("config/rbac"));
    let role: Vec<_> = rbac
        .into_iter()
        .filter(|o| o.types.as_ref().is_some_and(|t| t.kind == "ClusterRole"))
        .collect();
    assert_eq!(role.len(), 1, "config/rbac has one ClusterRole");
    super::manifests::apply(client, &role, "default").await;
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("sigstore-operator-{user}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role[0].name_any()},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .unwrap();
    super::manifests::apply(client, &[binding], "default").await;
}

/// The operator binary run here with `config/rbac`'s role, watching only
/// `ns`, its stage Jobs on the image the node agent maps to this binary.
pub async fn start_for_namespace(
    cp: &super::ControlPlane,
    client: &kube::Client,
    ns: &str,
) -> Operator {
    start_for_namespace_with(cp, client, ns, &["--image", "sigstore-operator:e2e"]).await
}

/// [`start_for_namespace`] with the operator's flags `args` (which name
/// its image).
pub async fn start_for_namespace_with(
    cp: &super::ControlPlane,
    client: &kube::Client,
    ns: &str,
    args: &[&str],
) -> Operator {
    let user = format!("operator-{ns}");
    bind_operator_role(client, &user).await;
    let mut all = vec!["--watch-namespace", ns];
    all.extend(args);
    Operator::start(
        &cp.kubeconfig_for(&user, &[super::AUDITED]),
        super::logs_dir(),
        &format!("{ns}-operator"),
        &all,
    )
}
