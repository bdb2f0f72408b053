//! Test support: a real Kubernetes control plane (etcd, kube-apiserver and
//! kube-controller-manager) run as local processes, one per test binary.
//!
//! Each test gets its own namespace. The processes are stopped when the test
//! binary exits, also when a test failed; their logs are then kept under
//! `.test-logs/` and the path is printed.

#![allow(dead_code)] // Each test binary uses a different part of it.

mod certs;
pub mod clients;
pub mod cosign;
pub mod helm;
pub mod hygiene;
pub mod jobs;
pub mod kubelet;
pub mod manifests;
pub mod node;
pub mod note;
mod operator;
mod plane;
use plane::start;
pub mod placement;
pub mod procs;
pub mod registry;
pub mod servers;
pub mod stacks;
pub mod trillian;
pub mod tuf;

use std::{
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Client, Config, config::Kubeconfig};

#[allow(unused_imports)]
pub use operator::{
    Operator, Output, bind_operator_role, run_cli, start_for_namespace, start_for_namespace_with,
};
#[allow(unused_imports)] // Each test binary uses a different part of it.
pub use plane::{
    AUDITED, AuditWrite, ControlPlane, Kind, apply_crd, kind_config_flags, kind_config_patches,
};
pub use procs::Keeper;

/// The in-cluster issuer of a [`Kind::Cluster`] control plane.
pub const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static KEEPER: OnceLock<Keeper> = OnceLock::new();
static LOGS: OnceLock<PathBuf> = OnceLock::new();
static FAILED: AtomicBool = AtomicBool::new(false);
/// Set by [`use_dir`]: the logs stay whatever happens.
static KEEP: AtomicBool = AtomicBool::new(false);
static NS_SEQ: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_at_exit() {
    if let Some(k) = KEEPER.get() {
        k.stop_all();
    }
    let Some(dir) = LOGS.get() else { return };
    if KEEP.load(Ordering::SeqCst) {
        return;
    }
    if FAILED.load(Ordering::SeqCst) || std::env::var_os("KEEP_TEST_LOGS").is_some() {
        eprintln!("test logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// This test binary's log directory: `.test-logs/<binary>-<pid>/`. Removed
/// at exit unless a test failed (or `KEEP_TEST_LOGS` is set).
pub fn logs_dir() -> &'static Path {
    LOGS.get_or_init(|| {
        let bin = std::env::args()
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "test".into());
        let bin = bin.split('-').next().unwrap_or("test").to_owned();
        let dir = repo_root()
            .join(".test-logs")
            .join(format!("{bin}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the test log directory");
        dir
    })
}

/// Makes `dir` this process's log directory, kept at exit (`make
/// local-up`'s, instead of a test binary's own). Before anything started.
pub fn use_dir(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the log directory");
    assert!(
        LOGS.set(dir.to_owned()).is_ok(),
        "use_dir before anything used logs_dir"
    );
    KEEP.store(true, Ordering::SeqCst);
}

/// The operator's binary: `SIGSTORE_OPERATOR_BIN` when set (`make
/// local-up` runs the release build), else the one cargo built for this
/// test binary (an example has none: then target/debug's).
pub fn operator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIGSTORE_OPERATOR_BIN") {
        return PathBuf::from(p);
    }
    option_env!("CARGO_BIN_EXE_sigstore-operator")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/sigstore-operator"))
}

/// Starts and stops this binary's helper processes.
pub fn keeper() -> &'static Keeper {
    KEEPER.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(stop_at_exit) };
        Keeper::start(logs_dir())
    })
}

/// Marks the run failed so the logs are kept.
pub fn mark_failed() {
    FAILED.store(true, Ordering::SeqCst);
}

/// The control plane of this test binary, started on first use, with the
/// SigstoreStack CRD installed before kube-controller-manager starts (its
/// garbage collector only learns of new kinds every 30 s).
pub fn control_plane() -> &'static ControlPlane {
    shared(Kind::WithCrd)
}

/// A control plane for the node agent: see [`Kind::Cluster`].
pub fn cluster_control_plane() -> &'static ControlPlane {
    shared(Kind::Cluster)
}

/// A control plane for the node agent with kubeadm's issuer defaults: see
/// [`Kind::KubeadmDefaults`].
pub fn kubeadm_defaults_control_plane() -> &'static ControlPlane {
    shared(Kind::KubeadmDefaults)
}

/// A control plane without the CRD. One test binary uses one kind.
pub fn bare_control_plane() -> &'static ControlPlane {
    shared(Kind::Bare)
}

fn shared(kind: Kind) -> &'static ControlPlane {
    sigstore_operator::install_crypto_provider();
    let started = PLANE.get_or_init(|| {
        // Started on a plain thread: the readiness checks block, which is not
        // allowed on the tests' async runtimes. Tried once per binary.
        match std::thread::spawn(move || start(kind)).join() {
            Ok(Ok(cp)) => Ok(cp),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err("start-up panicked".into()),
        }
    });
    match started {
        Ok(cp) => {
            assert_eq!(cp.kind, kind, "one test binary, one kind of control plane");
            cp
        }
        Err(e) => {
            FAILED.store(true, Ordering::SeqCst);
            panic!("cannot start the control plane: {e}")
        }
    }
}

/// Where the test tools live: `$TOOLS_DIR/bin`, default `<repo>/.tools/bin`.
pub fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let env = name.to_uppercase().replace('-', "_");
    if let Ok(p) = std::env::var(&env) {
        return Ok(PathBuf::from(p));
    }
    let dir = std::env::var("TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".tools"));
    let path = dir.join("bin").join(name);
    anyhow::ensure!(
        path.exists(),
        "{name} is missing at {}: run `make tools` (or set {env}) to build it",
        path.display()
    );
    Ok(path)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A namespace of one test. Marks the run failed when dropped by a panic, so
/// the logs are kept.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Namespace `name` exactly, created unless it exists.
    pub async fn named(client: &Client, name: &str) -> Self {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("namespace");
        match Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create namespace {name}: {e}"),
        }
        Self { name: name.into() }
    }

    /// Creates a fresh namespace named after the test.
    pub async fn new(client: &Client, test: &str) -> Self {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        let seq = NS_SEQ.fetch_add(1, Ordering::SeqCst);
        let mut name: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        name = format!("{}-{}-{seq}", name.trim_matches('-'), std::process::id());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"sigstore-operator-test": "true"}}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            FAILED.store(true, Ordering::SeqCst);
            if let Some(dir) = LOGS.get() {
                eprintln!(
                    "test in namespace {} failed; logs: {}",
                    self.name,
                    dir.display()
                );
            }
        }
    }
}

/// The usual start of a test: the control plane, an admin client and a
/// namespace of its own.
pub async fn setup(test: &str) -> (&'static ControlPlane, Client, TestNamespace) {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = TestNamespace::new(&client, test).await;
    (cp, client, ns)
}

/// A file name for a blob of `text`, one per text: its words, then
/// `.txt` (two blobs of one length must not share a file).
pub fn blob_name(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    format!("{}.txt", words.join("-"))
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after
/// `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
