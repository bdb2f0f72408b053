//! Starting the control plane: etcd, kube-apiserver with KinD's flags (from hack/kind-config.yaml) and an audit log, kube-controller-manager, and the CRD.

use super::*;

/// Controllers of kube-controller-manager the tests rely on.
pub(super) const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,\
                           serviceaccount-controller,serviceaccount-token-controller,\
                           root-ca-certificate-publisher-controller";

/// What kind of control plane a test binary runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No CRD.
    Bare,
    /// The CRD installed.
    WithCrd,
    /// The CRD, plus the Deployment, ReplicaSet and Job controllers for
    /// the node agent's Pods, and the service-account issuer a KinD
    /// cluster set up for Sigstore has (`kubernetes.default.svc…`), which
    /// Pods reach through the agent's Service proxy. Its issuer flags are
    /// the ones `hack/kind-config.yaml` gives KinD's API server.
    Cluster,
    /// [`Kind::Cluster`] with kubeadm's defaults instead: the issuer set,
    /// `--service-account-jwks-uri` not, so the keys are published on the
    /// API server's own address.
    KubeadmDefaults,
}

impl Kind {
    /// Whether the node agent's controllers run.
    fn runs_pods(self) -> bool {
        matches!(self, Kind::Cluster | Kind::KubeadmDefaults)
    }
}

/// The API server flags `hack/kind-config.yaml` sets, from its kubeadm
/// v1beta4 patch: `(name, value)`.
pub fn kind_config_flags() -> Vec<(String, String)> {
    kind_config_patches()
        .into_iter()
        .find(|p| p["apiVersion"] == "kubeadm.k8s.io/v1beta4")
        .and_then(|p| p["apiServer"]["extraArgs"].as_sequence().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| {
            Some((
                a["name"].as_str()?.to_owned(),
                a["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Each kubeadm patch of `hack/kind-config.yaml`, parsed.
pub fn kind_config_patches() -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(repo_root().join("hack/kind-config.yaml"))
        .expect("hack/kind-config.yaml");
    let config: serde_yaml::Value = serde_yaml::from_str(&text).expect("KinD config YAML");
    config["kubeadmConfigPatches"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| serde_yaml::from_str(p.as_str()?).ok())
        .collect()
}

/// A running control plane.
pub struct ControlPlane {
    pub(super) kind: Kind,
    /// Logs, certificates and etcd data.
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// Admin kubeconfig (group `system:masters`).
    pub kubeconfig: PathBuf,
    /// The API server's audit log (JSON lines, write requests only).
    pub audit_log: PathBuf,
    certs: certs::Pki,
}

pub(super) fn start(kind: Kind) -> anyhow::Result<ControlPlane> {
    let dir = logs_dir().to_owned();
    start_in(dir.clone(), kind).map_err(|e| e.context(format!("logs in {}", dir.display())))
}

pub(super) fn start_in(dir: PathBuf, kind: Kind) -> anyhow::Result<ControlPlane> {
    let apiserver = tool("kube-apiserver")?;
    let etcd = tool("etcd")?;
    let kcm = tool("kube-controller-manager")?;
    let keeper = keeper();
    let [etcd_client, etcd_peer, api_port] = procs::free_ports::<3>()?;
    keeper.spawn(
        "etcd",
        &etcd,
        &[
            "--name=test".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
            format!("--initial-cluster=test=http://127.0.0.1:{etcd_peer}"),
            "--unsafe-no-fsync=true".into(),
            "--quota-backend-bytes=4294967296".into(),
        ],
    )?;
    procs::wait_http_ok(
        &format!("http://127.0.0.1:{etcd_client}/health"),
        None,
        Duration::from_secs(30),
        keeper,
    )?;

    let pki = certs::Pki::generate(&dir)?;
    let server = format!("https://127.0.0.1:{api_port}");
    let audit_policy = dir.join("audit-policy.yaml");
    std::fs::write(&audit_policy, AUDIT_POLICY)?;
    let audit_log = dir.join("audit.log");
    // The issuer, and where its keys are published: a cluster's as the
    // project's KinD config sets them, kubeadm's defaults (no jwks-uri), or
    // the API server itself.
    let issuer_flags: Vec<String> = match kind {
        Kind::Cluster => kind_config_flags()
            .into_iter()
            .filter(|(name, _)| name.starts_with("service-account-"))
            .map(|(name, value)| format!("--{name}={value}"))
            .collect(),
        Kind::KubeadmDefaults => vec![format!("--service-account-issuer={CLUSTER_ISSUER}")],
        _ => vec![
            format!("--service-account-issuer={server}"),
            format!("--service-account-jwks-uri={server}/openid/v1/jwks"),
        ],
    };
    anyhow::ensure!(
        !issuer_flags.is_empty(),
        "hack/kind-config.yaml sets no service-account flags"
    );
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
        format!("--secure-port={api_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--cert-dir={}", dir.join("apiserver-certs").display()),
        format!("--tls-cert-file={}", pki.serving_cert.display()),
        format!("--tls-private-key-file={}", pki.serving_key.display()),
        format!("--client-ca-file={}", pki.client_ca.display()),
        format!("--service-account-key-file={}", pki.sa_pub.display()),
        format!(
            "--service-account-signing-key-file={}",
            pki.sa_key.display()
        ),
        // KinD's default service subnet: room for 100 stacks' Services.
        "--service-cluster-ip-range=10.96.0.0/16".into(),
        "--authorization-mode=RBAC".into(),
        "--allow-privileged=true".into(),
        format!("--audit-policy-file={}", audit_policy.display()),
        format!("--audit-log-path={}", audit_log.display()),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
    ];
    args.extend(issuer_flags);
    keeper.spawn("kube-apiserver", &apiserver, &args)?;
    procs::wait_http_ok(
        &format!("{server}/readyz"),
        Some(&pki.serving_ca_pem),
        Duration::from_secs(90),
        keeper,
    )?;

    let kubeconfig = dir.join("admin.kubeconfig");
    pki.write_kubeconfig(&kubeconfig, &server, "admin", &["system:masters"])?;
    if kind != Kind::Bare {
        install_crd(&kubeconfig)?;
    }
    let kcm_kubeconfig = dir.join("kcm.kubeconfig");
    // Without per-controller service-account credentials the controllers act
    // as this one user, which needs the rights each of them would have.
    pki.write_kubeconfig(
        &kcm_kubeconfig,
        &server,
        "system:kube-controller-manager",
        &["system:masters"],
    )?;
    keeper.spawn(
        "kube-controller-manager",
        &kcm,
        &[
            format!("--kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authentication-kubeconfig={}", kcm_kubeconfig.display()),
            format!("--authorization-kubeconfig={}", kcm_kubeconfig.display()),
            if kind.runs_pods() {
                format!(
                    "--controllers={CONTROLLERS},deployment-controller,replicaset-controller,job-controller"
                )
            } else {
                format!("--controllers={CONTROLLERS}")
            },
            "--leader-elect=false".into(),
            "--use-service-account-credentials=false".into(),
            "--bind-address=127.0.0.1".into(),
            "--secure-port=0".into(),
            format!(
                "--service-account-private-key-file={}",
                pki.sa_key.display()
            ),
            format!("--root-ca-file={}", pki.serving_ca.display()),
            "--concurrent-gc-syncs=5".into(),
        ],
    )?;
    Ok(ControlPlane {
        kind,
        dir,
        server,
        kubeconfig,
        audit_log,
        certs: pki,
    })
}

/// Applies the CRD (during start-up, before the tests' runtimes exist).
pub(super) fn install_crd(kubeconfig: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig)?;
        let config = Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        apply_crd(&Client::try_from(config)?, &sigstore_operator::crd::crd()).await?;
        Ok(())
    })
}

/// Server-side applies `crd` and waits up to 30 s until it is Established.
pub async fn apply_crd(
    client: &Client,
    crd: &CustomResourceDefinition,
) -> anyhow::Result<CustomResourceDefinition> {
    use kube::api::{Api, Patch, PatchParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply("sigstore-operator-tests").force(),
        &Patch::Apply(crd),
    )
    .await?;
    for _ in 0..300 {
        let c = crds.get(&name).await?;
        let established = c
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if established {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("CRD {name} not Established after 30 s")
}

/// Writes are what the tests count; reads are logged only for users in
/// group [`AUDITED`] (the operators the tests and `make bench-scale` run),
/// whose LIST and GET calls they count too.
pub(super) const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["sigstore-operator-test:audited"]
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"#;

/// The group whose every request the audit log records.
pub const AUDITED: &str = "sigstore-operator-test:audited";

/// The write verbs the tests count.
const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

impl ControlPlane {
    /// The CA file that signs the API server's serving certificate.
    pub fn serving_ca(&self) -> PathBuf {
        self.certs.serving_ca.clone()
    }

    /// An admin client.
    pub async fn client(&self) -> Client {
        self.client_for(&self.kubeconfig).await
    }

    /// A client from a kubeconfig file.
    pub async fn client_for(&self, kubeconfig: &Path) -> Client {
        let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
        let mut config = Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig");
        config.read_timeout = Some(Duration::from_secs(60));
        Client::try_from(config).expect("client")
    }

    /// Writes a kubeconfig for user `name` in `groups` and returns its path.
    pub fn kubeconfig_for(&self, name: &str, groups: &[&str]) -> PathBuf {
        let path = self
            .dir
            .join(format!("{}.kubeconfig", name.replace(':', "_")));
        self.certs
            .write_kubeconfig(&path, &self.server, name, groups)
            .expect("write kubeconfig");
        path
    }

    /// Write requests (create/update/patch/delete) made by `user` so far,
    /// as `(verb, resource, subresource, namespace, name)`.
    pub fn writes_by(&self, user: &str) -> Vec<AuditWrite> {
        self.requests_by(user)
            .into_iter()
            .filter(|w| WRITE_VERBS.contains(&w.verb.as_str()))
            .collect()
    }

    /// Every request by `user` the audit log holds (reads only for a user
    /// in group [`AUDITED`]); a watch counts once, when it starts.
    pub fn requests_by(&self, user: &str) -> Vec<AuditWrite> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                let started = e["stage"] == "ResponseStarted" && e["verb"] == "watch";
                let done = e["stage"] == "ResponseComplete" && e["verb"] != "watch";
                (started || done) && e["user"]["username"] == user
            })
            .map(|e| AuditWrite {
                verb: e["verb"].as_str().unwrap_or_default().into(),
                resource: e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                subresource: e["objectRef"]["subresource"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                namespace: e["objectRef"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                name: e["objectRef"]["name"].as_str().unwrap_or_default().into(),
            })
            .collect()
    }
}

/// One write request seen in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditWrite {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}
