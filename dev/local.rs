//! `make local-up` and `make local-down`: a stack on this machine without
//! Docker or KinD, for trying the operator. It is the tests' own stand-in
//! cluster (`tests/support`, shared, not copied): a real etcd,
//! kube-apiserver and kube-controller-manager, and the node agent that runs
//! every Pod as local processes and routes ClusterIPs on this host. It is
//! not a Kubernetes distribution: one node, one namespace, gone when it
//! stops.
//!
//! `local up` runs the operator (`SIGSTORE_OPERATOR_BIN`, the release
//! build under `make local-up`) with `config/rbac`'s role, brings
//! `config/samples`' stack (or `STACK_SPEC`) to Ready through
//! `hack/stack-up.sh` (the Action's logic), prints the URLs, the trust
//! material and commands to sign and verify, and runs until SIGINT or
//! SIGTERM. `local down` stops a running `local up` and waits for it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: local [up|down] \
    (env: LOCAL_DIR, default <repo>/.local; STACK_NAME, STACK_NAMESPACE, STACK_SPEC)";

/// How long `down` waits for `up` to stop everything.
const STOP_WAIT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let dir = std::env::var_os("LOCAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join(".local"));
    let result = match std::env::args().nth(1).as_deref() {
        None | Some("up") => up(&dir),
        Some("down") => down(&dir),
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}; {USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[local] {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(what: impl std::fmt::Display) {
    eprintln!("[local] {what}");
}

/// What to bring up: `config/samples`' stack unless the environment says.
struct Stack {
    name: String,
    namespace: String,
    spec: String,
}

impl Stack {
    fn from_env() -> anyhow::Result<Self> {
        let path = support::repo_root().join("config/samples/sigstorestack.yaml");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let sample: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let name = match var("STACK_NAME") {
            Some(n) => n,
            None => sample["metadata"]["name"]
                .as_str()
                .context("config/samples' stack has no metadata.name")?
                .to_owned(),
        };
        let spec = match var("STACK_SPEC") {
            Some(s) => s,
            None => serde_yaml::to_string(&sample["spec"]).context("config/samples' spec")?,
        };
        Ok(Self {
            name,
            namespace: var("STACK_NAMESPACE").unwrap_or_else(|| "sigstore".into()),
            spec,
        })
    }
}

/// The pid of a `local up` still running for `dir`.
fn running(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // A pid reused by another program is not ours.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = cmdline
        .split(|b| *b == 0)
        .next()
        .is_some_and(|argv0| argv0.ends_with(b"local"));
    ours.then_some(pid)
}

fn up(dir: &Path) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "make local-up needs root: its node agent gives every Pod a network \
         namespace and routes the cluster's Service IPs on this host"
    );
    if let Some(pid) = running(dir) {
        bail!(
            "already running (pid {pid}, in {}); stop it with make local-down",
            dir.display()
        );
    }
    let stack = Stack::from_env()?;
    for tool in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kubectl",
    ] {
        support::tool(tool)?;
    }
    let operator = support::operator_bin();
    ensure!(
        operator.exists(),
        "the operator's binary is missing at {}: make local-up builds it",
        operator.display()
    );
    // Each run starts a new cluster: nothing of the last one is reused.
    let run = dir.join("run");
    for old in [&run, &dir.join("stack")] {
        if old.exists() {
            std::fs::remove_dir_all(old).with_context(|| format!("remove {}", old.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("pid"), std::process::id().to_string())?;
    support::use_dir(&run);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        // Before anything starts: a signal during start-up stops it too.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            r = serve(dir, &stack) => r,
            _ = interrupt.recv() => { say("interrupted: stopping"); Ok(()) }
            _ = terminate.recv() => { say("asked to stop: stopping"); Ok(()) }
        }
    });
    // The Pods and the operator stopped when `serve` was dropped; the
    // control plane stops at exit.
    runtime.shutdown_timeout(Duration::from_secs(2));
    support::node::sweep_network();
    let _ = std::fs::remove_file(dir.join("pid"));
    say(format!("stopped; logs kept in {}", run.display()));
    result
}

/// Brings the stack up, prints how to use it, then runs until dropped.
async fn serve(dir: &Path, stack: &Stack) -> anyhow::Result<()> {
    let start = Instant::now();
    let (cp, client, ns, agent) = support::node::cluster_named(&stack.namespace).await;
    say(format!(
        "control plane at {} and node agent up in {:.1?}",
        cp.server,
        start.elapsed()
    ));
    let operator = support::start_for_namespace(cp, &client, &ns.name).await;
    say(format!(
        "operator {} running with config/rbac's role, watching namespace {}",
        support::operator_bin().display(),
        ns.name
    ));
    let out = dir.join("stack");
    let applied = Instant::now();
    say(format!(
        "applying stack {} and waiting for Ready (hack/stack-up.sh)",
        stack.name
    ));
    let (ok, log) = support::clients::stack_up(
        &cp.kubeconfig,
        &out,
        &[
            ("STACK_NAME", stack.name.clone()),
            ("STACK_NAMESPACE", ns.name.clone()),
            ("STACK_SPEC", stack.spec.clone()),
            ("INSTALL", "none".into()),
            ("WAIT_TIMEOUT", "10m".into()),
        ],
    )
    .await;
    if !ok {
        bail!(
            "hack/stack-up.sh failed:\n{log}\nthe operator's log: {}",
            support::logs_dir()
                .join(format!("{}-operator.log", ns.name))
                .display()
        );
    }
    let env = read_env(&out.join("env"))?;
    let blob = dir.join("blob.txt");
    std::fs::write(&blob, "hello from make local-up\n")?;
    println!(
        "{}",
        Summary {
            stack,
            env: &env,
            out: &out,
            blob: &blob,
            kubeconfig: &cp.kubeconfig,
            logs: support::logs_dir(),
        }
        .render(applied.elapsed(), start.elapsed())
    );
    // Runs until the signal drops this future, and `operator` and `agent`
    // with it.
    let _running = (operator, agent, client);
    std::future::pending::<()>().await;
    Ok(())
}

/// `KEY=value` lines, as hack/stack-up.sh writes them.
fn read_env(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// What a user needs once the stack is Ready.
struct Summary<'a> {
    stack: &'a Stack,
    env: &'a BTreeMap<String, String>,
    out: &'a Path,
    blob: &'a Path,
    kubeconfig: &'a Path,
    logs: &'a Path,
}

impl Summary<'_> {
    fn var(&self, key: &str) -> &str {
        self.env.get(key).map(String::as_str).unwrap_or_default()
    }

    fn render(&self, ready: Duration, total: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nStack {} is Ready in namespace {} (apply → Ready {:.1} s, {:.1} s from start).",
            self.stack.name,
            self.stack.namespace,
            ready.as_secs_f64(),
            total.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "\nServices (Service IPs, routed on this machine while it runs):"
        );
        for (what, key) in [
            ("Fulcio", "FULCIO_URL"),
            ("Rekor", "REKOR_URL"),
            ("Rekor v2", "REKOR_V2_URL"),
            ("CT log", "CTLOG_URL"),
            ("TSA", "TSA_URL"),
            ("TUF", "TUF_MIRROR"),
            ("OIDC issuer", "ISSUER_URL"),
        ] {
            if !self.var(key).is_empty() {
                let _ = writeln!(s, "  {what:<12} {}", self.var(key));
            }
        }
        let _ = writeln!(s, "\nTrust material, in {}:", self.out.display());
        for key in [
            "TRUSTED_ROOT",
            "SIGNING_CONFIG",
            "TRUST_CONFIG",
            "TUF_ROOT_JSON",
        ] {
            let _ = writeln!(s, "  {}", self.var(key));
        }
        let _ = writeln!(
            s,
            "  {}/env (every variable: set -a; . {}/env; set +a)",
            self.out.display(),
            self.out.display()
        );
        let kubectl = support::tool("kubectl")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "kubectl".into());
        let _ = writeln!(
            s,
            "\nThe cluster: {kubectl} --kubeconfig {} -n {} get sst,pods",
            self.kubeconfig.display(),
            self.stack.namespace
        );
        let _ = writeln!(s, "Logs: {}", self.logs.display());
        for (major, block) in [("3", self.cosign3()), ("2", self.cosign2())] {
            let _ = writeln!(
                s,
                "\nSign and verify with cosign {major} (a fresh token each time):"
            );
            let _ = writeln!(s, "{block}");
        }
        let _ = write!(s, "Stop it with make local-down (or Ctrl-C here).");
        s
    }

    /// A fresh token into the file cosign reads (`--identity-token` takes a
    /// file; the one stack-up.sh wrote lasts an hour).
    fn token(&self) -> String {
        format!(
            "  {} > {}",
            self.out.join("oidc-token").display(),
            self.var("OIDC_TOKEN_FILE")
        )
    }

    fn verify(&self, cosign: &Path, bundle: &Path) -> String {
        format!(
            "  {} verify-blob --trusted-root {} --bundle {} \\\n    \
             --certificate-identity {} --certificate-oidc-issuer {} {}",
            cosign.display(),
            self.var("TRUSTED_ROOT"),
            bundle.display(),
            self.var("SIGNER_IDENTITY"),
            self.var("ISSUER_URL"),
            self.blob.display()
        )
    }

    fn cosign3(&self) -> String {
        let cosign = tool_or_name("cosign3");
        let bundle = self.blob.with_extension("cosign3.sigstore.json");
        format!(
            "{}\n  {} sign-blob --yes --signing-config {} --trusted-root {} \\\n    \
             --identity-token {} --bundle {} {}\n{}\n",
            self.token(),
            cosign.display(),
            self.var("SIGNING_CONFIG"),
            self.var("TRUSTED_ROOT"),
            self.var("OIDC_TOKEN_FILE"),
            bundle.display(),
            self.blob.display(),
            self.verify(&cosign, &bundle)
        )
    }

    /// cosign 2 takes the services as flags; it cannot write to Rekor v2.
    fn cosign2(&self) -> String {
        if self.var("REKOR_URL").is_empty() {
            return "  (none: this stack runs no Rekor v1, and cosign 2 writes only to Rekor v1)\n"
                .into();
        }
        let cosign = tool_or_name("cosign");
        let bundle = self.blob.with_extension("cosign2.sigstore.json");
        let tsa = match self.var("TSA_URL") {
            "" => String::new(),
            url => format!(" --timestamp-server-url {url}"),
        };
        format!(
            "{}\n  {} sign-blob --yes --new-bundle-format --trusted-root {} \\\n    \
             --fulcio-url {} --rekor-url {}{tsa} \\\n    \
             --identity-token {} --bundle {} {}\n{}\n",
            self.token(),
            cosign.display(),
            self.var("TRUSTED_ROOT"),
            self.var("FULCIO_URL"),
            self.var("REKOR_URL"),
            self.var("OIDC_TOKEN_FILE"),
            bundle.display(),
            self.blob.display(),
            self.verify(&cosign, &bundle)
        )
    }
}

/// Whether `pid` runs (a zombie waiting for its parent does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// The cosign `make tools` built, or its name on PATH.
fn tool_or_name(name: &str) -> PathBuf {
    support::tool(name).unwrap_or_else(|_| PathBuf::from(name))
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(pid) = running(dir) else {
        let _ = std::fs::remove_file(dir.join("pid"));
        say(format!("nothing running for {}", dir.display()));
        return Ok(());
    };
    say(format!("stopping pid {pid}"));
    // SAFETY: a plain signal to a pid we just checked is ours.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_WAIT;
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("pid {pid} did not stop within {STOP_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    say("stopped");
    Ok(())
}
