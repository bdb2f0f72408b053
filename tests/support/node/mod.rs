//! A test node agent: the kubelet and kube-proxy of one Node, for a machine
//! without a container runtime. The real Deployment, ReplicaSet and Job
//! controllers make the Pods; the agent binds them to its Node and runs
//! each container as a local process:
//!
//! - the image is mapped to a local program through one table
//!   ([`Images`]); command, args and env are the Pod's, with `$(VAR)`
//!   expansion as the kubelet does;
//! - each Pod gets its own network namespace, joined by a veth pair to a
//!   bridge (`10.244.0.0/24`); Service names resolve through the Pod's
//!   `/etc/hosts` (bound by `ip netns exec` from `/etc/netns/<pod>/`) to
//!   the ClusterIP, where a userspace proxy (kube-proxy's old mode) on the
//!   host forwards to a ready Pod, or, for `kubernetes`, to the API server;
//! - configMap, secret, projected (service-account token, CA, namespace),
//!   downwardAPI and emptyDir volumes are written under the Pod's directory
//!   and bind-mounted at their `mountPath` in the process's own mount
//!   namespace;
//! - like the kubelet, a container is held back while a ConfigMap, Secret
//!   or key it references is missing, and that wait is visible in the
//!   Pod's status (`ContainerCreating`);
//! - readiness probes (TCP and HTTP) decide `Ready`; exits are reported
//!   with their code, restarted under `restartPolicy: Always`.
//!
//! Nothing in the operator knows of it. It needs root (namespaces, veth).

use std::os::unix::fs::PermissionsExt;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::{
        authentication::v1::TokenRequest,
        core::v1::{ConfigMap, Container, Node, Pod, Secret, Service},
    },
    apimachinery::pkg::util::intstr::IntOrString,
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::{process::Child, task::JoinHandle};

mod agent;
use agent::{Agent, quote};
mod images;
mod network;
mod process;
mod volumes;
mod watch;

pub use images::{COSIGN_IMAGE, Images};
use network::{network_down, network_up, probe, services, services_pass, sh};

use super::{
    jobs::expand,
    logs_dir,
    placement::{Mirror, NodeShape, unschedulable},
};

/// The Node's name.
pub const NODE: &str = "test-node";
const BRIDGE: &str = "sonode0";
const GATEWAY: &str = "10.244.0.1";
/// Where a container's host paths are staged, in its own mount namespace.
const STAGE: &str = "/.node-agent";

/// The running agent; stops every process and namespace when dropped.
pub struct NodeAgent {
    agents: Vec<JoinHandle<()>>,
    proxy: JoinHandle<()>,
    states: Vec<Arc<Mutex<State>>>,
    /// How many container processes it started.
    pub started: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, PodRun>,
    /// Pods being stopped gracefully (SIGTERM, then the grace period).
    terminating: std::collections::HashSet<String>,
    /// The agent was dropped: its Pods' tasks start nothing more.
    stopped: bool,
}

struct PodRun {
    netns: String,
    ip: Ipv4Addr,
    dir: PathBuf,
    children: Vec<(String, Child)>,
    started_at: String,
    /// The status last written, so only changes are written.
    last_status: String,
    /// Container name → restarts.
    restarts: BTreeMap<String, u32>,
    /// Watch passes so far (volumes are refreshed every few).
    passes: u32,
}

impl NodeAgent {
    /// Registers the Node and starts serving Pods of `namespace` (and the
    /// Services of every namespace).
    pub async fn start(
        client: Client,
        namespaces: &[&str],
        images: Images,
        api_server: String,
        shape: NodeShape,
    ) -> Self {
        network_up().unwrap_or_else(|e| panic!("node network: {e} (the node agent needs root)"));
        let nodes: Api<Node> = Api::all(client.clone());
        // The labels every KinD node has, and the test's.
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            _ => "amd64",
        };
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_owned(), NODE.to_owned()),
            ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ("kubernetes.io/arch".to_owned(), arch.to_owned()),
        ]);
        labels.extend(shape.labels.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": NODE, "labels": labels},
            "spec": {"taints": shape.taints},
        }))
        .unwrap();
        let _ = nodes.delete(NODE, &DeleteParams::default()).await;
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("register the Node");
        nodes
            .patch_status(
                NODE,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "test node agent",
                                    "lastHeartbeatTime": Timestamp::now().to_string(),
                                    "lastTransitionTime": Timestamp::now().to_string()}],
                    "addresses": [{"type": "InternalIP", "address": GATEWAY}],
                    "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                    "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                }})),
            )
            .await
            .expect("Node status");
        let ips = Arc::new(std::sync::atomic::AtomicU8::new(2));
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let backends: Backends = Arc::new(Mutex::new(HashMap::new()));
        let hosts = Arc::new(Mutex::new(String::new()));
        // The Service proxy is up before any Pod starts, as a node's
        // kube-proxy is: a stage Pod dials the API server at once.
        let api: SocketAddr = api_server
            .trim_start_matches("https://")
            .parse()
            .expect("the API server's address");
        let mut listening = BTreeSet::new();
        services_pass(&client, &backends, &hosts, &mut listening, api)
            .await
            .expect("the Service proxy's first pass");
        let proxy = tokio::spawn(services(
            client.clone(),
            backends,
            hosts.clone(),
            listening,
            api,
        ));
        // One kubelet loop per namespace served, sharing the node's
        // addresses, counters and Service names.
        let mut agents = Vec::new();
        let mut states = Vec::new();
        for ns in namespaces {
            let state = Arc::new(Mutex::new(State::default()));
            states.push(state.clone());
            let agent = Arc::new(Agent {
                client: client.clone(),
                ns: (*ns).to_owned(),
                images: images.clone(),
                state,
                started: started.clone(),
                hosts: hosts.clone(),
                ips: ips.clone(),
                labels: labels.clone(),
                taints: shape.taints.clone(),
            });
            agents.push(tokio::spawn(async move {
                let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
                loop {
                    if let Err(e) = agent.pass(&mut tasks).await {
                        eprintln!("node agent: {e:#}");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }));
        }
        Self {
            agents,
            proxy,
            states,
            started,
        }
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.agents.iter().for_each(JoinHandle::abort);
        self.proxy.abort();
        for state in &self.states {
            if let Ok(mut s) = state.lock() {
                s.stopped = true;
                for (_, run) in s.pods.drain() {
                    stop_pod(run);
                }
            }
        }
        network_down();
    }
}

/// Stops a deleted Pod as the kubelet does: SIGTERM to every container's
/// processes, up to `grace` for them to exit, then SIGKILL.
async fn terminate_pod(mut run: PodRun, grace: Duration) {
    let groups: Vec<i32> = run
        .children
        .iter()
        .filter_map(|(_, c)| c.id())
        .map(|pid| -(pid as i32))
        .collect();
    for g in &groups {
        unsafe { libc::kill(*g, libc::SIGTERM) };
    }
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        for (_, child) in &mut run.children {
            // Reaped, so an exited container leaves no zombie in its group.
            let _ = child.try_wait();
        }
        let alive = groups.iter().any(|g| unsafe { libc::kill(*g, 0) } == 0);
        if !alive || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_pod(run);
}

/// How long a deleted Pod's containers get to exit: what the API server
/// set on deletion, else the Pod's own setting, else Kubernetes' 30 s.
fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

fn stop_pod(mut run: PodRun) {
    for (_, child) in &mut run.children {
        if let Some(pid) = child.id() {
            // The process group: ip netns exec, sh and the program.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        let _ = child.start_kill();
    }
    let _ = sh(&format!(
        "ip netns del {0} 2>/dev/null; rm -rf /etc/netns/{0}",
        run.netns
    ));
    let _ = run.dir;
}

type Backends = Arc<Mutex<HashMap<(Ipv4Addr, u16), Vec<SocketAddr>>>>;

/// Where the agent keeps Pod `name` of `ns` (its volumes under
/// `volumes/`), as a node keeps a Pod's directory until the Pod is deleted.
pub fn pod_dir(ns: &str, name: &str) -> PathBuf {
    logs_dir().join("pods").join(format!("{ns}-{name}"))
}

/// The hostname a kubelet gives `pod`'s containers: `spec.hostname`, or
/// the Pod's name cut to 63 characters.
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.name_any());
    name.chars().take(63).collect()
}

/// A control plane, a client, the test's namespace and the agent.
pub type Cluster = (
    &'static super::ControlPlane,
    Client,
    super::TestNamespace,
    NodeAgent,
);

/// A cluster for the node agent: the control plane of kind
/// [`super::Kind::Cluster`], a namespace for the test, and the agent serving
/// it and `more` namespaces.
pub async fn cluster(test: &str, more: &[&str]) -> Cluster {
    cluster_on(super::cluster_control_plane(), test, more).await
}

/// [`cluster`] on control plane `cp`.
pub async fn cluster_on(cp: &'static super::ControlPlane, test: &str, more: &[&str]) -> Cluster {
    cluster_with(cp, test, more, Images::local(), NodeShape::default()).await
}

/// Removes the node's network (its bridge and every Pod's namespace).
/// For after the runtime that ran an agent has shut down: a Pod start it
/// cancelled half-way may have made a namespace after the agent's drop.
pub fn sweep_network() {
    network_down();
}

/// The node agent on [`super::cluster_control_plane`] for namespace
/// `name` exactly (`make local-up`'s), created unless it exists.
pub async fn cluster_named(name: &str) -> Cluster {
    let cp = super::cluster_control_plane();
    let client = cp.client().await;
    let ns = super::TestNamespace::named(&client, name).await;
    let agent = NodeAgent::start(
        client.clone(),
        &[ns.name.as_str()],
        Images::local(),
        cp.server.clone(),
        NodeShape::default(),
    )
    .await;
    (cp, client, ns, agent)
}

/// [`cluster_on`] with the agent's image table and Node of the test's.
pub async fn cluster_with(
    cp: &'static super::ControlPlane,
    test: &str,
    more: &[&str],
    images: Images,
    shape: NodeShape,
) -> Cluster {
    let client = cp.client().await;
    let ns = super::TestNamespace::new(&client, test).await;
    let mut namespaces = vec![ns.name.as_str()];
    namespaces.extend(more);
    let agent = NodeAgent::start(
        client.clone(),
        &namespaces,
        images,
        cp.server.clone(),
        shape,
    )
    .await;
    (cp, client, ns, agent)
}

/// Runs `program` with only `env` (and a plain PATH), without blocking
/// the runtime the node agent and its Service proxy run on: whether it
/// succeeded, and its output.
pub async fn run(program: &Path, args: &[String], env: &[(&str, String)]) -> (bool, String) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
