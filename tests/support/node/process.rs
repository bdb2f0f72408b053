//! A container as a local process: its command line, env and user, in the
//! Pod's network namespace with its volumes bind-mounted in a mount
//! namespace of its own.

use super::*;

impl Agent {
    /// Starts container `c` in the Pod's network namespace with its volumes
    /// bind-mounted in a mount namespace of its own.
    pub(super) async fn spawn(
        &self,
        pod: &Pod,
        c: &Container,
        netns: &str,
        dir: &Path,
        volumes: &BTreeMap<String, PathBuf>,
        pod_user: i64,
    ) -> anyhow::Result<Child> {
        let env = self.env(pod, c).await?;
        let argv = self.images.argv(c, &env).map_err(anyhow::Error::msg)?;
        let user = c
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .unwrap_or(pod_user);
        // Everything the process needs from this host (its program, a
        // script it runs, each volume's directory) is first bound into a
        // private tmpfs, and only then over the container's paths: a volume
        // mounted at, say, /tmp must not hide a source or program that
        // lives under /tmp on this host.
        // The Pod's hostname, in a UTS namespace of its own, as a kubelet
        // gives it: `spec.hostname`, or the Pod's name.
        let hostname = pod_hostname(pod);
        let mut script = format!(
            "set -e\necho {} > /proc/sys/kernel/hostname\nmkdir -p {STAGE}\nmount -t tmpfs none {STAGE}\n",
            quote(&hostname)
        );
        let mut stage = |src: &Path, name: String| {
            let staged = format!("{STAGE}/{name}");
            let make = if src.is_dir() { "mkdir -p" } else { "touch" };
            script.push_str(&format!(
                "{make} {staged}\nmount --bind {} {staged}\n",
                quote(&src.display().to_string())
            ));
            staged
        };
        let mut argv = argv;
        for (i, arg) in argv.iter_mut().enumerate() {
            let path = Path::new(arg.as_str());
            let system = ["/usr/", "/bin/", "/sbin/", "/lib", "/etc/"]
                .iter()
                .any(|p| arg.starts_with(p));
            if path.is_absolute() && path.is_file() && !system {
                *arg = stage(path, format!("program-{i}"));
            }
        }
        let mut mounts = Vec::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            let Some(src) = volumes.get(&m.name) else {
                continue;
            };
            let src = match &m.sub_path {
                Some(sub) if !sub.is_empty() => src.join(sub),
                _ => src.clone(),
            };
            let staged = stage(&src, format!("volume-{i}"));
            mounts.push((staged, src.is_dir(), m.mount_path.clone()));
        }
        for (staged, is_dir, target) in mounts {
            let target = quote(&target);
            if is_dir {
                script.push_str(&format!("mkdir -p {target}\n"));
            } else {
                script.push_str(&format!(
                    "mkdir -p \"$(dirname {target})\"; touch {target}\n"
                ));
            }
            script.push_str(&format!("mount --bind {staged} {target}\n"));
        }
        let workdir = c.working_dir.clone().unwrap_or_else(|| "/".into());
        script.push_str(&format!("cd {}\n", quote(&workdir)));
        script.push_str(&format!(
            "exec setpriv --reuid={user} --regid={user} --clear-groups -- {}\n",
            argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
        ));
        let launcher = dir.join(format!("{}.sh", c.name));
        std::fs::write(&launcher, &script)?;
        let log =
            logs_dir()
                .join("pods")
                .join(format!("{}-{}-{}.log", self.ns, pod.name_any(), c.name));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            netns,
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "sh",
        ])
        .arg(&launcher)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", dir)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .kill_on_drop(true);
        let child = cmd.spawn()?;
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(child)
    }

    /// The container's env as the kubelet resolves it, after the
    /// `KUBERNETES_SERVICE_*` variables.
    pub(super) async fn env(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let base = vec![
            ("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
        ];
        super::super::kubelet::resolve_env(&self.client, &self.ns, &pod.name_any(), c, base, |v| {
            v.to_owned()
        })
        .await
    }
}
