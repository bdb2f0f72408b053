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

/// cosign's image (ghcr.io/sigstore/cosign/cosign, published by cosign's
/// release), at the version `hack/versions.env` builds as `cosign3`.
pub const COSIGN_IMAGE: &str = "ghcr.io/sigstore/cosign/cosign:v3.1.3@sha256:9e5c2f2edc34351160407ca3416c61855bdf9403c3c5936e0f0be7fc261611b8";

/// Where an image's programs are on this machine.
#[derive(Clone, Debug, Default)]
pub struct Images {
    /// Image repository (no tag or digest) → its entrypoint, as local
    /// programs and fixed leading arguments.
    pub entrypoints: BTreeMap<String, Vec<String>>,
    /// Absolute program paths inside images → local programs.
    pub paths: BTreeMap<String, String>,
    /// The only registry the node reaches, when it is mirror-only.
    pub mirror: Option<Mirror>,
}

impl Images {
    /// The command line for `c`, as the kubelet builds it: `command` (or
    /// the image's entrypoint) then `args`, `$(VAR)` expanded.
    fn argv(&self, c: &Container, env: &[(String, String)]) -> Result<Vec<String>, String> {
        let image = c.image.clone().unwrap_or_default();
        let repo = repository(&image);
        let mut argv: Vec<String> = match &c.command {
            Some(cmd) if !cmd.is_empty() => cmd.iter().map(|a| expand(a, env)).collect(),
            _ => self
                .entrypoints
                .get(&repo)
                .cloned()
                .ok_or_else(|| format!("no local program for image {image}"))?,
        };
        argv.extend(c.args.iter().flatten().map(|a| expand(a, env)));
        if let Some(local) = self.paths.get(&argv[0]) {
            argv[0] = local.clone();
        }
        Ok(argv)
    }
}

impl Images {
    /// This table behind `mirror`, holding what a user copied into it:
    /// each `(upstream, mirrored)` pair of `copies` (as `sigstore-operator
    /// images --image-registry` prints them) and the operator's own image,
    /// pushed as `<mirror>/sigstore-operator`. Nothing else can be pulled.
    pub fn behind(self, mirror: Mirror, copies: &[(String, String)]) -> Self {
        let mut entrypoints = BTreeMap::new();
        for (upstream, mirrored) in copies {
            if let Some(argv) = self.entrypoints.get(&repository(upstream)) {
                entrypoints.insert(repository(mirrored), argv.clone());
            }
        }
        if let Some(argv) = self.entrypoints.get("sigstore-operator") {
            entrypoints.insert(format!("{}/sigstore-operator", mirror.prefix), argv.clone());
        }
        Self {
            entrypoints,
            paths: self.paths,
            mirror: Some(mirror),
        }
    }

    /// The table for the operator's images: each pinned image of
    /// `src/build/images.rs` → the program built from the Go module proxy
    /// or installed from apt; the operator's own image → this binary.
    pub fn local() -> Self {
        use sigstore_operator::build::images as pinned;
        let tool = |name: &str| super::servers::built(name).display().to_string();
        let script = |name: &str| {
            super::repo_root()
                .join("tests/support/images")
                .join(name)
                .display()
                .to_string()
        };
        let entrypoints = [
            (pinned::MARIADB, vec!["sh".to_owned(), script("mariadb.sh")]),
            (
                pinned::TRILLIAN_LOG_SERVER,
                vec![tool("trillian_log_server")],
            ),
            (
                pinned::TRILLIAN_LOG_SIGNER,
                vec![tool("trillian_log_signer")],
            ),
            // The image's entrypoint runs redis-server for `--` args.
            (pinned::REDIS, vec!["redis-server".to_owned()]),
            (pinned::REKOR, vec![tool("rekor-server")]),
            (pinned::CTLOG, vec![tool("ct_server")]),
            (pinned::FULCIO, vec![tool("fulcio")]),
            (pinned::TSA, vec![tool("timestamp-server")]),
            // cosign 3's image, for clients in Pods (the tests' own Jobs
            // and config/samples/clients).
            (COSIGN_IMAGE, vec![tool("cosign3")]),
            // The operator's own image, as config/manager names it.
            (
                "sigstore-operator:dev",
                vec![env!("CARGO_BIN_EXE_sigstore-operator").to_owned()],
            ),
        ]
        .into_iter()
        .map(|(image, argv)| (repository(image), argv))
        .collect();
        Self {
            mirror: None,
            entrypoints,
            paths: BTreeMap::from([(
                sigstore_operator::build::stages::BINARY.to_owned(),
                env!("CARGO_BIN_EXE_sigstore-operator").to_owned(),
            )]),
        }
    }
}

/// `registry/repo` of an image reference, without tag or digest.
pub fn repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => no_digest.to_owned(),
    }
}

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

fn sh(cmd: &str) -> Result<(), String> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The bridge Pods join; ClusterIPs are addresses on it too (this kernel
/// has no dummy interfaces). Its MAC is fixed: a bridge otherwise takes
/// its lowest port's, so a Pod coming or going would change the gateway's
/// MAC under every other Pod, whose traffic then stalls until its ARP entry
/// expires (seen as 30-50 s pauses of the in-cluster operator).
fn network_up() -> Result<(), String> {
    network_down();
    sh(&format!(
        "ip link add {BRIDGE} address 02:73:6f:00:00:01 type bridge && \
         ip addr add {GATEWAY}/24 dev {BRIDGE} && ip link set {BRIDGE} up"
    ))
}

fn network_down() {
    let _ = sh(&format!(
        "ip link del {BRIDGE} 2>/dev/null; \
         for n in $(ip netns list | awk '/^sopod-/{{print $1}}'); do ip netns del $n; done; \
         rm -rf /etc/netns/sopod-*; true"
    ));
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

    /// Checks the Pod's processes and probes; refreshes its ConfigMap and
    /// Secret volumes as the kubelet does; reports status when it changed;
    /// restarts exited containers of `restartPolicy: Always` Pods. `true`
    /// once the Pod has finished.
    async fn watch_pod(&self, pod: &Pod) -> anyhow::Result<bool> {
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        let restart_always = spec.restart_policy.as_deref().unwrap_or("Always") == "Always";
        let user = spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .unwrap_or(0);
        let (ip, netns, dir, started_at, passes) = {
            let mut s = self.state.lock().unwrap();
            let Some(run) = s.pods.get_mut(&name) else {
                return Ok(false);
            };
            run.passes += 1;
            (
                run.ip,
                run.netns.clone(),
                run.dir.clone(),
                run.started_at.clone(),
                run.passes,
            )
        };
        self.write_hosts(
            &PathBuf::from(format!("/etc/netns/{netns}")),
            &pod_hostname(pod),
            ip,
        );
        // The kubelet syncs volumes periodically, not at once.
        let volumes = if passes % 6 == 0 {
            let v = self.volumes(pod, &dir).await?;
            let _ = sh(&format!(
                "chown -R {user}:{user} {}",
                quote(&dir.join("volumes").display().to_string())
            ));
            v
        } else {
            spec.volumes
                .iter()
                .flatten()
                .map(|v| (v.name.clone(), self.volume_dir(v, &dir)))
                .collect()
        };
        let mut exits: Vec<(String, i32)> = Vec::new();
        {
            let mut s = self.state.lock().unwrap();
            if let Some(run) = s.pods.get_mut(&name) {
                for (c, child) in &mut run.children {
                    if let Ok(Some(status)) = child.try_wait() {
                        exits.push((c.clone(), status.code().unwrap_or(137)));
                    }
                }
            }
        }
        let mut statuses = Vec::new();
        let mut all_ready = true;
        for c in &spec.containers {
            let restarts = self
                .state
                .lock()
                .unwrap()
                .pods
                .get(&name)
                .and_then(|r| r.restarts.get(&c.name).copied())
                .unwrap_or(0);
            let exited = exits
                .iter()
                .find(|(n, _)| n == &c.name)
                .map(|(_, code)| *code);
            if let Some(code) = exited {
                all_ready = false;
                if restart_always {
                    // The kubelet's back-off, shortened.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let child = self.spawn(pod, c, &netns, &dir, &volumes, user).await?;
                    if let Some(run) = self.state.lock().unwrap().pods.get_mut(&name) {
                        run.children.retain(|(n, _)| n != &c.name);
                        run.children.push((c.name.clone(), child));
                        *run.restarts.entry(c.name.clone()).or_default() += 1;
                    }
                    statuses.push(json!({"name": c.name, "ready": false, "started": false,
                        "restartCount": restarts + 1, "image": c.image, "imageID": "",
                        "lastState": {"terminated": {"exitCode": code, "reason": "Error"}},
                        "state": {"running": {"startedAt": Timestamp::now().to_string()}}}));
                    continue;
                }
                statuses.push(
                    json!({"name": c.name, "ready": false, "restartCount": restarts,
                    "image": c.image, "imageID": "",
                    "state": {"terminated": {"exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" },
                        "finishedAt": Timestamp::now().to_string()}}}),
                );
                continue;
            }
            let ready = probe(c, ip).await;
            all_ready &= ready;
            statuses.push(json!({"name": c.name, "ready": ready, "started": true,
                "restartCount": restarts, "image": c.image, "imageID": "",
                "state": {"running": {"startedAt": started_at}}}));
        }
        if !restart_always && exits.len() == spec.containers.len() {
            let failed = exits.iter().any(|(_, code)| *code != 0);
            let run = self.state.lock().unwrap().pods.remove(&name);
            if let Some(run) = run {
                stop_pod(run);
            }
            self.status(
                &name,
                json!({"phase": if failed { "Failed" } else { "Succeeded" },
                       "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": statuses}),
            )
            .await?;
            return Ok(true);
        }
        let ready = if all_ready { "True" } else { "False" };
        let status = json!({"phase": "Running", "hostIP": GATEWAY, "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}], "startTime": started_at,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started_at},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready}],
            "containerStatuses": statuses});
        let text = status.to_string();
        let changed = self
            .state
            .lock()
            .unwrap()
            .pods
            .get_mut(&name)
            .is_some_and(|r| {
                let changed = r.last_status != text;
                r.last_status = text;
                changed
            });
        if changed {
            self.status(&name, status).await?;
        }
        Ok(false)
    }

    /// Materializes every volume: name → host directory.
    async fn volumes(&self, pod: &Pod, dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut out = BTreeMap::new();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        for v in spec.volumes.iter().flatten() {
            let path = dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&path)?;
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let data = secrets
                    .get_opt(&name)
                    .await?
                    .and_then(|s| s.data)
                    .unwrap_or_default();
                files.extend(pick(
                    data.into_iter().map(|(k, v)| (k, v.0)).collect(),
                    &s.items,
                ));
            } else if let Some(c) = &v.config_map {
                files.extend(config_map_files(&cms, &c.name, &c.items).await?);
            } else if let Some(p) = &v.projected {
                for source in p.sources.iter().flatten() {
                    if let Some(t) = &source.service_account_token {
                        // Written once per Pod: tokens outlive these tests.
                        if !path.join(&t.path).exists() {
                            files.push((
                                t.path.clone(),
                                self.token(pod, t.audience.clone(), t.expiration_seconds)
                                    .await?
                                    .into_bytes(),
                            ));
                        }
                    }
                    if let Some(c) = &source.config_map {
                        files.extend(config_map_files(&cms, &c.name, &c.items).await?);
                    }
                    if let Some(d) = &source.downward_api {
                        for item in d.items.iter().flatten() {
                            let value = match item.field_ref.as_ref().map(|f| f.field_path.as_str())
                            {
                                Some("metadata.namespace") => self.ns.clone(),
                                Some("metadata.name") => pod.name_any(),
                                _ => String::new(),
                            };
                            files.push((item.path.clone(), value.into_bytes()));
                        }
                    }
                }
            } else if v.persistent_volume_claim.is_some() {
                let claim = self.volume_dir(v, dir);
                std::fs::create_dir_all(&claim)?;
                // As KinD's local-path provisioner makes its volumes:
                // world-writable, for whichever user the Pod runs as.
                std::fs::set_permissions(&claim, std::fs::Permissions::from_mode(0o777))?;
                out.insert(v.name.clone(), claim);
                continue;
            }
            let whole = v.secret.as_ref().is_some_and(|s| s.items.is_none())
                || v.config_map.as_ref().is_some_and(|c| c.items.is_none());
            if whole {
                // Keys removed from the object disappear from the volume.
                let keep: BTreeSet<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
                for entry in std::fs::read_dir(&path)?.flatten() {
                    let n = entry.file_name().to_string_lossy().into_owned();
                    if !keep.contains(n.as_str()) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            // emptyDir and the rest: an empty directory.
            for (rel, bytes) in files {
                let f = path.join(rel);
                if let Some(parent) = f.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&f, bytes)?;
            }
            out.insert(v.name.clone(), path);
        }
        Ok(out)
    }

    /// Where volume `v` of the Pod in `dir` lives on this host: a claim
    /// is local storage that outlives its Pods, the rest are the Pod's.
    fn volume_dir(&self, v: &k8s_openapi::api::core::v1::Volume, dir: &Path) -> PathBuf {
        match &v.persistent_volume_claim {
            Some(c) => logs_dir()
                .join("claims")
                .join(format!("{}-{}", self.ns, c.claim_name)),
            None => dir.join("volumes").join(&v.name),
        }
    }

    async fn token(
        &self,
        pod: &Pod,
        audience: Option<String>,
        seconds: Option<i64>,
    ) -> anyhow::Result<String> {
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), &self.ns);
        let mut spec = json!({
            "expirationSeconds": seconds.unwrap_or(3607).max(600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid()},
        });
        if let Some(a) = audience {
            spec["audiences"] = json!([a]);
        }
        let request: TokenRequest = serde_json::from_value(json!({ "spec": spec }))?;
        let token: TokenRequest = accounts
            .create_subresource("token", &sa, &PostParams::default(), &request)
            .await?;
        Ok(token.status.map(|s| s.token).unwrap_or_default())
    }

    /// Starts container `c` in the Pod's network namespace with its volumes
    /// bind-mounted in a mount namespace of its own.
    async fn spawn(
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
    async fn env(&self, pod: &Pod, c: &Container) -> anyhow::Result<Vec<(String, String)>> {
        let base = vec![
            ("KUBERNETES_SERVICE_HOST".into(), "10.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
        ];
        super::kubelet::resolve_env(&self.client, &self.ns, &pod.name_any(), c, base, |v| {
            v.to_owned()
        })
        .await
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

/// The files of a volume's keys: `items` maps keys to paths; without it,
/// every key is a file of its name.
fn pick(
    data: BTreeMap<String, Vec<u8>>,
    items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
) -> Vec<(String, Vec<u8>)> {
    match items {
        Some(items) => items
            .iter()
            .filter_map(|i| data.get(&i.key).map(|d| (i.path.clone(), d.clone())))
            .collect(),
        None => data.into_iter().collect(),
    }
}

async fn config_map_files(
    cms: &Api<ConfigMap>,
    name: &str,
    items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let data = cms
        .get_opt(name)
        .await?
        .and_then(|c| c.data)
        .unwrap_or_default();
    Ok(pick(
        data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect(),
        items,
    ))
}

/// The readiness probe's verdict (no probe: ready once started).
async fn probe(c: &Container, ip: Ipv4Addr) -> bool {
    let Some(p) = &c.readiness_probe else {
        return true;
    };
    let port_of = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(i) => u16::try_from(*i).ok(),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    let timeout = Duration::from_secs(1);
    if let Some(t) = &p.tcp_socket {
        let Some(port) = port_of(&t.port) else {
            return false;
        };
        return tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port)))
            .await
            .is_ok_and(|r| r.is_ok());
    }
    if let Some(h) = &p.http_get {
        let Some(port) = port_of(&h.port) else {
            return false;
        };
        let url = format!(
            "http://{ip}:{port}{}",
            h.path.clone().unwrap_or_else(|| "/".into())
        );
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
        return client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success() || r.status().is_redirection());
    }
    true
}

/// kube-proxy's part: every Service's ClusterIP and ports become local
/// addresses with a TCP proxy to a ready backend; every Service's names go
/// into the hosts file the Pods get.
async fn services(
    client: Client,
    backends: Backends,
    hosts: Arc<Mutex<String>>,
    mut listening: BTreeSet<(Ipv4Addr, u16)>,
    api: SocketAddr,
) {
    loop {
        if let Err(e) = services_pass(&client, &backends, &hosts, &mut listening, api).await {
            eprintln!("node agent proxy: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn services_pass(
    client: &Client,
    backends: &Backends,
    hosts: &Arc<Mutex<String>>,
    listening: &mut BTreeSet<(Ipv4Addr, u16)>,
    api: SocketAddr,
) -> anyhow::Result<()> {
    let services = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={NODE}")))
        .await?
        .items;
    let mut names = String::new();
    let mut table: HashMap<(Ipv4Addr, u16), Vec<SocketAddr>> = HashMap::new();
    for svc in &services {
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let spec = svc.spec.clone().unwrap_or_default();
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|i| i.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        names.push_str(&format!(
            "{ip} {name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns}\n"
        ));
        for port in spec.ports.iter().flatten() {
            let Ok(p) = u16::try_from(port.port) else {
                continue;
            };
            let mut targets = Vec::new();
            if ns == "default" && name == "kubernetes" {
                targets.push(api);
            } else if let Some(selector) = &spec.selector {
                for pod in pods
                    .iter()
                    .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
                {
                    let labels = pod.labels();
                    // Terminating Pods are no endpoints, as EndpointSlices
                    // leave them out.
                    if !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                        || pod.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    let status = pod.status.clone().unwrap_or_default();
                    let ready = status
                        .conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    let Some(pod_ip) = status.pod_ip.and_then(|i| i.parse::<Ipv4Addr>().ok())
                    else {
                        continue;
                    };
                    let target = match &port.target_port {
                        Some(IntOrString::Int(i)) => u16::try_from(*i).ok(),
                        Some(IntOrString::String(n)) => pod
                            .spec
                            .iter()
                            .flat_map(|s| s.containers.iter())
                            .flat_map(|c| c.ports.iter().flatten())
                            .find(|cp| cp.name.as_deref() == Some(n))
                            .and_then(|cp| u16::try_from(cp.container_port).ok()),
                        None => Some(p),
                    };
                    if let (true, Some(t)) = (ready, target) {
                        targets.push(SocketAddr::from((pod_ip, t)));
                    }
                }
            }
            table.insert((ip, p), targets);
            if listening.insert((ip, p)) {
                let _ = sh(&format!(
                    "ip addr add {ip}/32 dev {BRIDGE} 2>/dev/null; true"
                ));
                let listener = tokio::net::TcpListener::bind((ip, p)).await?;
                let backends = backends.clone();
                tokio::spawn(async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let target = backends
                            .lock()
                            .unwrap()
                            .get(&(ip, p))
                            .and_then(|t| t.first().copied());
                        tokio::spawn(async move {
                            let Some(target) = target else { return };
                            if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        });
                    }
                });
            }
        }
    }
    *backends.lock().unwrap() = table;
    *hosts.lock().unwrap() = names;
    Ok(())
}
