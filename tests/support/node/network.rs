//! The Node's network: the bridge Pods join, readiness probes, and
//! kube-proxy's part: Service ClusterIPs proxied to ready Pods, Service
//! names in the Pods' hosts files.

use super::*;

pub(super) fn sh(cmd: &str) -> Result<(), String> {
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
pub(super) fn network_up() -> Result<(), String> {
    network_down();
    sh(&format!(
        "ip link add {BRIDGE} address 02:73:6f:00:00:01 type bridge && \
         ip addr add {GATEWAY}/24 dev {BRIDGE} && ip link set {BRIDGE} up"
    ))
}

pub(super) fn network_down() {
    let _ = sh(&format!(
        "ip link del {BRIDGE} 2>/dev/null; \
         for n in $(ip netns list | awk '/^sopod-/{{print $1}}'); do ip netns del $n; done; \
         rm -rf /etc/netns/sopod-*; true"
    ));
}

/// The readiness probe's verdict (no probe: ready once started).
pub(super) async fn probe(c: &Container, ip: Ipv4Addr) -> bool {
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
pub(super) async fn services(
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

pub(super) async fn services_pass(
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
