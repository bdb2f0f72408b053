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
                for (_, run) in s.pods.drain() {
                    stop_pod(run);
                }
            }
        }
        network_down();
    }
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

struct Agent {
    client: Client,
    ns: String,
    images: Images,
    state: Arc<Mutex<State>>,
    started: Arc<std::sync::atomic::AtomicUsize>,
    hosts: Arc<Mutex<String>>,
    ips: Arc<std::sync::atomic::AtomicU8>,
    /// The Node's labels and taints, for the scheduler's checks.
    labels: BTreeMap<String, String>,
    taints: Vec<k8s_openapi::api::core::v1::Taint>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Agent {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Binds new Pods, gives each bound Pod a task of its own (one Pod's
    /// init container may wait for another Pod), and stops what ran for
    /// Pods that are deleted.
    async fn pass(
        self: &Arc<Self>,
        tasks: &mut HashMap<String, JoinHandle<()>>,
    ) -> anyhow::Result<()> {
        let pods = self.pods().list(&ListParams::default()).await?.items;
        let names: BTreeSet<String> = pods.iter().map(|p| p.name_any()).collect();
        for name in tasks
            .keys()
            .filter(|k| !names.contains(*k))
            .cloned()
            .collect::<Vec<_>>()
        {
            self.stop(&name, tasks);
        }
        for pod in pods {
            let name = pod.name_any();
            if pod.metadata.deletion_timestamp.is_some() {
                self.stop(&name, tasks);
                let _ = self
                    .pods()
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none()
            {
                self.schedule(&pod).await?;
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) || tasks.contains_key(&name)
            {
                continue;
            }
            let agent = self.clone();
            let pod_name = name.clone();
            tasks.insert(
                name,
                tokio::spawn(async move { agent.run_pod(pod_name).await }),
            );
        }
        Ok(())
    }

    fn stop(&self, name: &str, tasks: &mut HashMap<String, JoinHandle<()>>) {
        if let Some(t) = tasks.remove(name) {
            t.abort();
        }
        let run = self.state.lock().unwrap().pods.remove(name);
        if let Some(run) = run {
            stop_pod(run);
        }
    }

    /// One Pod's life: wait for its references, start it, then watch it
    /// until it finishes (or its task is aborted on deletion).
    async fn run_pod(self: Arc<Self>, name: String) {
        loop {
            let pod = match self.pods().get_opt(&name).await {
                Ok(Some(p)) if p.metadata.deletion_timestamp.is_none() => p,
                Ok(_) => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let running = self.state.lock().unwrap().pods.contains_key(&name);
            let result = if running {
                self.watch_pod(&pod).await
            } else {
                self.start_pod(&pod).await.map(|()| false)
            };
            match result {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => eprintln!("node agent: Pod {name}: {e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Binds `pod` to the Node if the scheduler would; otherwise says why
    /// in its `PodScheduled` condition, as the scheduler does.
    async fn schedule(&self, pod: &Pod) -> anyhow::Result<()> {
        let spec = pod.spec.clone().unwrap_or_default();
        let Some(why) = unschedulable(&spec, &self.labels, &self.taints) else {
            return self.bind(&pod.name_any()).await;
        };
        let said = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "PodScheduled" && c.message.as_deref() == Some(why.as_str()));
        if !said {
            self.status(
                &pod.name_any(),
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
                    "status": "False", "reason": "Unschedulable", "message": why,
                    "lastTransitionTime": Timestamp::now().to_string()}]}),
            )
            .await?;
        }
        Ok(())
    }

    async fn bind(&self, pod: &str) -> anyhow::Result<()> {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        });
        let body = serde_json::to_vec(&binding)?;
        let req = http::Request::post(format!("/api/v1/namespaces/{}/pods/{pod}/binding", self.ns))
            .header("content-type", "application/json")
            .body(body)?;
        let _: serde_json::Value = self.client.request(req).await?;
        Ok(())
    }

    async fn status(&self, pod: &str, status: serde_json::Value) -> anyhow::Result<()> {
        self.pods()
            .patch_status(
                pod,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
        Ok(())
    }

    /// Writes the Pod's volumes, makes its network, and starts its
    /// containers (init containers first, each to completion) once every
    /// reference resolves.
    async fn start_pod(&self, pod: &Pod) -> anyhow::Result<()> {
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        if let Some(mirror) = &self.images.mirror
            && let Some((container, message)) =
                mirror.pull_problem(&self.client, &self.ns, &spec).await
        {
            let waiting = json!([{"name": container, "ready": false, "restartCount": 0,
                "image": "", "imageID": "",
                "state": {"waiting": {"reason": "ErrImagePull", "message": message}}}]);
            let key = if spec.containers.iter().any(|c| c.name == container) {
                "containerStatuses"
            } else {
                "initContainerStatuses"
            };
            self.status(
                &name,
                json!({"phase": "Pending", "hostIP": GATEWAY, key: waiting}),
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(());
        }
        if !super::kubelet::references_resolve(&self.client, &self.ns, &spec).await? {
            let waiting: Vec<_> = spec
                .containers
                .iter()
                .map(|c| {
                    json!({"name": c.name, "ready": false, "restartCount": 0,
                    "image": c.image, "imageID": "",
                    "state": {"waiting": {"reason": "ContainerCreating",
                        "message": "a referenced ConfigMap, Secret or key does not exist yet"}}})
                })
                .collect();
            self.status(
                &name,
                json!({"phase": "Pending", "hostIP": GATEWAY, "containerStatuses": waiting}),
            )
            .await?;
            return Ok(());
        }
        let uid = pod.uid().unwrap_or_default();
        let short: String = uid
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .take(8)
            .collect();
        let netns = format!("sopod-{short}");
        let dir = pod_dir(&self.ns, &name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let n = self.ips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ip = Ipv4Addr::new(10, 244, 0, n.max(2));
        let veth = format!("sov{short}");
        sh(&format!(
            "ip netns add {netns} && ip link add {veth} type veth peer name eth0 netns {netns} && \
             ip link set {veth} master {BRIDGE} up && \
             ip netns exec {netns} sh -c 'ip link set lo up && ip addr add {ip}/24 dev eth0 && \
             ip link set eth0 up && ip route add default via {GATEWAY}'"
        ))
        .map_err(anyhow::Error::msg)?;
        let etc = PathBuf::from(format!("/etc/netns/{netns}"));
        std::fs::create_dir_all(&etc)?;
        std::fs::write(
            etc.join("resolv.conf"),
            format!(
                "search {0}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
                self.ns
            ),
        )?;
        self.write_hosts(&etc, &pod_hostname(pod), ip);
        let volumes = self.volumes(pod, &dir).await?;
        let user = spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .unwrap_or(0);
        // Files the process reads must be its own.
        let _ = sh(&format!(
            "chown -R {user}:{user} {}",
            quote(&dir.display().to_string())
        ));
        self.state.lock().unwrap().pods.insert(
            name.clone(),
            PodRun {
                netns: netns.clone(),
                ip,
                dir: dir.clone(),
                children: Vec::new(),
                started_at: Timestamp::now().to_string(),
                last_status: String::new(),
                restarts: BTreeMap::new(),
                passes: 0,
            },
        );
        for init in spec.init_containers.iter().flatten() {
            let mut child = self.spawn(pod, init, &netns, &dir, &volumes, user).await?;
            let status = child.wait().await?;
            if !status.success() {
                self.status(&name, json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": init.name, "ready": false, "restartCount": 0, "image": init.image, "imageID": "",
                     "state": {"terminated": {"exitCode": status.code().unwrap_or(1), "reason": "Error"}}}]}))
                    .await?;
                // Retried from the start on a later pass.
                let run = self.state.lock().unwrap().pods.remove(&name);
                if let Some(run) = run {
                    stop_pod(run);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(());
            }
        }
        for c in &spec.containers {
            let child = self.spawn(pod, c, &netns, &dir, &volumes, user).await?;
            if let Some(run) = self.state.lock().unwrap().pods.get_mut(&name) {
                run.children.push((c.name.clone(), child));
            }
        }
        self.status(
            &name,
            json!({"phase": "Running", "hostIP": GATEWAY, "podIP": ip.to_string(),
                   "podIPs": [{"ip": ip.to_string()}], "startTime": Timestamp::now().to_string()}),
        )
        .await?;
        Ok(())
    }

    fn write_hosts(&self, etc: &Path, pod: &str, ip: Ipv4Addr) {
        // A Pod's resolver searches its own namespace first, so a bare
        // Service name of that namespace resolves too, as cluster DNS does.
        let services: String = self
            .hosts
            .lock()
            .unwrap()
            .lines()
            .map(
                |l| match l.rsplit(' ').next().and_then(|s| s.rsplit_once('.')) {
                    Some((name, ns)) if ns == self.ns => format!("{l} {name}\n"),
                    _ => format!("{l}\n"),
                },
            )
            .collect();
        let _ = std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n{ip} {pod}\n{services}"),
        );
    }
}

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
