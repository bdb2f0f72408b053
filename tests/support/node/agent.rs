//! The agent of one node: runs each Pod bound to it as processes, reports its status, and stops it when it is deleted.

use super::*;

pub(super) struct Agent {
    pub(super) client: Client,
    pub(super) ns: String,
    pub(super) images: Images,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) started: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) hosts: Arc<Mutex<String>>,
    pub(super) ips: Arc<std::sync::atomic::AtomicU8>,
    /// The Node's labels and taints, for the scheduler's checks.
    pub(super) labels: BTreeMap<String, String>,
    pub(super) taints: Vec<k8s_openapi::api::core::v1::Taint>,
}

pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Agent {
    pub(super) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Binds new Pods, gives each bound Pod a task of its own (one Pod's
    /// init container may wait for another Pod), and stops what ran for
    /// Pods that are deleted.
    pub(super) async fn pass(
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
                // Deleted: stopped gracefully, then removed for good, as
                // the kubelet does once its containers are gone.
                if let Some(t) = tasks.remove(&name) {
                    t.abort();
                }
                let run = {
                    let mut state = self.state.lock().unwrap();
                    if !state.terminating.insert(name.clone()) {
                        continue;
                    }
                    state.pods.remove(&name)
                };
                let agent = self.clone();
                let grace = grace_period(&pod);
                tokio::spawn(async move {
                    if let Some(run) = run {
                        terminate_pod(run, grace).await;
                    }
                    let _ = agent
                        .pods()
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                    agent.state.lock().unwrap().terminating.remove(&name);
                });
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

    pub(super) fn stop(&self, name: &str, tasks: &mut HashMap<String, JoinHandle<()>>) {
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
    pub(super) async fn run_pod(self: Arc<Self>, name: String) {
        loop {
            let pod = match self.pods().get_opt(&name).await {
                Ok(Some(p)) if p.metadata.deletion_timestamp.is_none() => p,
                Ok(_) => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let (running, stopped) = {
                let s = self.state.lock().unwrap();
                (s.pods.contains_key(&name), s.stopped)
            };
            if stopped {
                return;
            }
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
    pub(super) async fn schedule(&self, pod: &Pod) -> anyhow::Result<()> {
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

    pub(super) async fn bind(&self, pod: &str) -> anyhow::Result<()> {
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

    pub(super) async fn status(&self, pod: &str, status: serde_json::Value) -> anyhow::Result<()> {
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
    pub(super) async fn start_pod(&self, pod: &Pod) -> anyhow::Result<()> {
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        let problem = match &self.images.mirror {
            Some(mirror) => mirror.pull_problem(&self.client, &self.ns, &spec).await,
            None => self.images.missing(&spec),
        };
        if let Some((container, message)) = problem {
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
        if !super::super::kubelet::references_resolve(&self.client, &self.ns, &spec).await? {
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
        if self.state.lock().unwrap().stopped {
            return Ok(());
        }
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

    pub(super) fn write_hosts(&self, etc: &Path, pod: &str, ip: Ipv4Addr) {
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
