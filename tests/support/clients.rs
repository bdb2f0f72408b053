//! The client matrix: each Sigstore client we claim signs against a stack,
//! and every client verifies every bundle, each with nothing but what the
//! stack publishes and `hack/stack-up.sh` exports.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde_json::json;

use super::{CLUSTER_ISSUER, eventually, logs_dir, servers::built};

/// A client in the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// cosign 2, from this machine, with service URL flags.
    Cosign2,
    /// cosign 3, from this machine, with `--signing-config`.
    Cosign3,
    /// cosign 3 in a Pod, bootstrapped only from the stack's TUF.
    Cosign3InPod,
    /// sigstore-python 4, from this machine, with `--trust-config`.
    SigstorePython,
    /// The operator's self-check Job (signs only): its published proof.
    SelfCheck,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Cosign2,
        Kind::Cosign3,
        Kind::Cosign3InPod,
        Kind::SigstorePython,
    ];

    /// Every signer: the clients and the self-check.
    pub const SIGNERS: [Kind; 5] = [
        Kind::Cosign2,
        Kind::Cosign3,
        Kind::Cosign3InPod,
        Kind::SigstorePython,
        Kind::SelfCheck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SelfCheck => "operator self-check",
            Kind::Cosign2 => "cosign 2.6.5",
            Kind::Cosign3 => "cosign 3.1.3",
            Kind::Cosign3InPod => "cosign 3.1.3 in a Pod",
            Kind::SigstorePython => "sigstore-python 4.5.1",
        }
    }
}

/// A signature one client made: the blob, its bundle and who signed.
#[derive(Clone, Debug)]
pub struct Signed {
    pub by: Kind,
    pub blob: PathBuf,
    pub bundle: PathBuf,
    pub identity: String,
}

/// What `hack/stack-up.sh` exported (its `env` file).
pub struct Exported(pub BTreeMap<String, String>);

impl Exported {
    pub fn read(out_dir: &Path) -> Self {
        let text = std::fs::read_to_string(out_dir.join("env")).expect("stack-up's env file");
        Self(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// Variable `key`; panics naming it when it is missing or empty.
    pub fn get(&self, key: &str) -> &str {
        match self.0.get(key) {
            Some(v) if !v.is_empty() => v,
            _ => panic!("stack-up exported no {key}: {:?}", self.0.keys()),
        }
    }

    pub fn path(&self, key: &str) -> &Path {
        Path::new(self.get(key))
    }
}

/// sigstore-python (`sigstore`), with a HOME of its own for its TUF cache.
pub struct SigstorePython {
    pub work: PathBuf,
}

impl SigstorePython {
    pub fn new(work: PathBuf) -> Self {
        std::fs::create_dir_all(&work).expect("sigstore-python work dir");
        Self { work }
    }

    pub async fn run(&self, args: &[String]) -> (bool, String) {
        let env = [("HOME", self.work.display().to_string())];
        super::node::run(&built("sigstore"), args, &env).await
    }

    /// `sign` with `--trust-config`: the bundle's path.
    pub async fn sign(
        &self,
        trust_config: &Path,
        token: &str,
        blob: &Path,
    ) -> (bool, String, PathBuf) {
        let bundle = blob.with_extension("sigstore.json");
        let (ok, log) = self
            .run(&[
                format!("--trust-config={}", trust_config.display()),
                "sign".into(),
                format!("--identity-token={token}"),
                format!("--bundle={}", bundle.display()),
                "--overwrite".into(),
                blob.display().to_string(),
            ])
            .await;
        (ok, log, bundle)
    }

    /// `verify identity` with the instance arguments `instance`
    /// (`--trust-config FILE` or `--instance URL`).
    pub async fn verify(
        &self,
        instance: &[String],
        offline: bool,
        identity: &str,
        blob: &Path,
        bundle: &Path,
    ) -> (bool, String) {
        let mut args: Vec<String> = instance.to_vec();
        args.extend([
            "verify".into(),
            "identity".into(),
            format!("--bundle={}", bundle.display()),
            format!("--cert-identity={identity}"),
            format!("--cert-oidc-issuer={CLUSTER_ISSUER}"),
        ]);
        if offline {
            args.push("--offline".into());
        }
        args.push(blob.display().to_string());
        self.run(&args).await
    }
}

/// What each verifier said of each signature, and of a changed blob.
#[derive(Default)]
pub struct Matrix {
    /// (signer, verifier) → passed, and the verifier's output.
    pub cells: BTreeMap<(Kind, Kind), (bool, String)>,
    /// verifier → refused a changed blob, and its output.
    pub refused_changed: BTreeMap<Kind, (bool, String)>,
}

impl Matrix {
    /// The table printed with the end-to-end figures.
    pub fn table(&self) -> String {
        let mut out = String::from("client matrix (row signs, column verifies):\n");
        let _ = write!(out, "  {:<24}", "");
        for v in Kind::ALL {
            let _ = write!(out, "{:<24}", v.name());
        }
        out.push('\n');
        for s in Kind::SIGNERS {
            let _ = write!(out, "  {:<24}", s.name());
            for v in Kind::ALL {
                let cell = match self.cells.get(&(s, v)) {
                    Some((true, _)) => "pass",
                    Some((false, _)) => "FAIL",
                    None => "-",
                };
                let _ = write!(out, "{cell:<24}");
            }
            out.push('\n');
        }
        let _ = write!(out, "  {:<24}", "changed blob refused");
        for v in Kind::ALL {
            let cell = match self.refused_changed.get(&v) {
                Some((true, _)) => "yes",
                Some((false, _)) => "NO",
                None => "-",
            };
            let _ = write!(out, "{cell:<24}");
        }
        out.push('\n');
        out
    }

    /// Every failure, with the verifier's output.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in Kind::SIGNERS {
            for v in Kind::ALL {
                match self.cells.get(&(s, v)) {
                    Some((true, _)) => {}
                    Some((false, log)) => out.push(format!(
                        "{} refused {}'s bundle:\n{log}",
                        v.name(),
                        s.name()
                    )),
                    None => out.push(format!("{} did not verify {}'s bundle", v.name(), s.name())),
                }
            }
        }
        for v in Kind::ALL {
            match self.refused_changed.get(&v) {
                Some((true, _)) => {}
                Some((false, log)) => {
                    out.push(format!("{} accepted a changed blob:\n{log}", v.name()))
                }
                None => out.push(format!("{} was not shown a changed blob", v.name())),
            }
        }
        out
    }
}

/// Runs `hack/stack-up.sh` against the cluster of `kubeconfig` with the
/// built kubectl, writing into `out_dir`, with ClusterIPs reached directly
/// (the node agent routes them here) and `vars` besides: whether it
/// succeeded, and its output.
pub async fn stack_up(
    kubeconfig: &Path,
    out_dir: &Path,
    vars: &[(&str, String)],
) -> (bool, String) {
    let script = super::repo_root().join("hack/stack-up.sh");
    let mut env = vec![
        ("KUBECTL", built("kubectl").display().to_string()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("EXPOSE", "cluster-ip".into()),
        ("WAIT_TIMEOUT", "5m".into()),
        ("OUT_DIR", out_dir.display().to_string()),
        ("HOME", out_dir.display().to_string()),
    ];
    env.extend(vars.iter().cloned());
    super::node::run(Path::new("bash"), &[script.display().to_string()], &env).await
}

/// Where the in-cluster sample (`config/samples/clients`) lives.
pub fn in_cluster_sample() -> PathBuf {
    super::repo_root().join("config/samples/clients/cosign-in-cluster.yaml")
}

/// The built kubectl against `kubeconfig`'s cluster in namespace `ns`.
pub async fn kubectl(kubeconfig: &Path, ns: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "-n".to_owned(),
        ns.to_owned(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    // kubectl keeps its cache under HOME.
    let home = logs_dir().join(format!("{ns}-kubectl"));
    super::node::run(
        &built("kubectl"),
        &all,
        &[("HOME", home.display().to_string())],
    )
    .await
}

/// The Pod a Job made, once it finished: the Pod's name and phase.
async fn finished_pod(client: &Client, ns: &str, job: &str) -> (String, String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("Job {job}'s Pod finished"),
        Duration::from_secs(180),
        || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("job-name={job}")))
                .await
                .ok()?;
            list.items.into_iter().find_map(|p| {
                let phase = p.status.as_ref()?.phase.clone()?;
                (phase == "Succeeded" || phase == "Failed")
                    .then(|| (p.metadata.name.clone().unwrap_or_default(), phase))
            })
        },
    )
    .await
}

/// A container's log, as `kubectl logs` shows it.
pub fn container_log(ns: &str, pod: &str, container: &str) -> String {
    std::fs::read_to_string(
        logs_dir()
            .join("pods")
            .join(format!("{ns}-{pod}-{container}.log")),
    )
    .unwrap_or_default()
}

/// Runs the in-cluster sample in `ns` (its stack is `config/samples`'s):
/// cosign 3 in a Pod signs and verifies; the bundle is read back from the
/// finished Pod's volume on the node, as `kubectl cp` would from a running
/// one.
pub async fn sign_in_pod(client: &Client, kubeconfig: &Path, ns: &str) -> Signed {
    // As the README says to run it.
    let (ok, log) = kubectl(
        kubeconfig,
        ns,
        &["apply", "-f", &in_cluster_sample().display().to_string()],
    )
    .await;
    assert!(ok, "kubectl apply of the in-cluster sample:\n{log}");
    // Waited for as the README says; a failed Job shows its logs below.
    let (waited, wait_log) = kubectl(
        kubeconfig,
        ns,
        &[
            "wait",
            "--for=condition=Complete",
            "job/cosign-sign",
            "--timeout=180s",
        ],
    )
    .await;
    let (pod, phase) = finished_pod(client, ns, "cosign-sign").await;
    let logs: String = ["initialize", "sign", "verify"]
        .iter()
        .map(|c| format!("--- {c}\n{}", container_log(ns, &pod, c)))
        .collect();
    assert!(
        waited && phase == "Succeeded",
        "cosign 3 in a Pod signs and verifies with only the stack's TUF ({phase}; kubectl wait: {wait_log}):\n{logs}"
    );
    let volumes = super::node::pod_dir(ns, &pod).join("volumes");
    let work = logs_dir().join(format!("{ns}-in-pod"));
    std::fs::create_dir_all(&work).unwrap();
    let blob = work.join("blob.txt");
    let bundle = work.join("blob.sigstore.json");
    std::fs::copy(volumes.join("blob/blob.txt"), &blob).expect("the Pod's blob");
    std::fs::copy(volumes.join("out/blob.sigstore.json"), &bundle).expect("the Pod's bundle");
    Signed {
        by: Kind::Cosign3InPod,
        blob,
        bundle,
        identity: format!("https://kubernetes.io/namespaces/{ns}/serviceaccounts/cosign"),
    }
}

/// cosign 3 in a Pod verifies each of `signed` (and refuses `changed`,
/// the first blob altered), trusting only the stack's TUF, as the sample
/// does: one container per check, their exit codes the answers.
pub async fn verify_in_pod(
    client: &Client,
    ns: &str,
    stack: &str,
    signed: &[Signed],
    changed: &Path,
) -> (Vec<(bool, String)>, (bool, String)) {
    let mut data = BTreeMap::new();
    for (i, s) in signed.iter().enumerate() {
        data.insert(
            format!("blob-{i}"),
            std::fs::read_to_string(&s.blob).unwrap(),
        );
        data.insert(
            format!("bundle-{i}"),
            std::fs::read_to_string(&s.bundle).unwrap(),
        );
    }
    data.insert("changed".into(), std::fs::read_to_string(changed).unwrap());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "matrix-bundles"}, "data": data}))
            .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let image = super::node::COSIGN_IMAGE;
    // The `restricted` Pod Security Standard, as the sample client meets it.
    let restricted = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    let env = json!([{"name": "TUF_ROOT", "value": "/cache/tuf"}]);
    let mounts = json!([{"name": "cache", "mountPath": "/cache"},
                        {"name": "in", "mountPath": "/in", "readOnly": true}]);
    let verify = |name: String, blob: String, bundle: String, identity: &str| {
        json!({"name": name, "image": image, "env": env, "volumeMounts": mounts,
               "securityContext": restricted,
               "args": ["verify-blob", format!("--bundle=/in/{bundle}"),
                        format!("--certificate-identity={identity}"),
                        format!("--certificate-oidc-issuer={CLUSTER_ISSUER}"),
                        format!("/in/{blob}")]})
    };
    let mut containers: Vec<_> = signed
        .iter()
        .enumerate()
        .map(|(i, s)| {
            verify(
                format!("verify-{i}"),
                format!("blob-{i}"),
                format!("bundle-{i}"),
                &s.identity,
            )
        })
        .collect();
    containers.push(verify(
        "changed".into(),
        "changed".into(),
        "bundle-0".into(),
        &signed[0].identity,
    ));
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "cosign-verify"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 65532, "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "initialize", "image": image, "env": env,
                "securityContext": restricted,
                "args": ["initialize", format!("--mirror=http://{stack}-tuf"), "--root=/tuf-root/root.json"],
                "volumeMounts": [{"name": "cache", "mountPath": "/cache"},
                                 {"name": "tuf-root", "mountPath": "/tuf-root", "readOnly": true}]}],
            "containers": containers,
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "in", "configMap": {"name": "matrix-bundles"}},
                {"name": "tuf-root", "configMap": {"name": format!("{stack}-tuf-repository"),
                    "items": [{"key": "root.json", "path": "root.json"}]}}]}}}
    }))
    .unwrap();
    Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let (pod, _) = finished_pod(client, ns, "cosign-verify").await;
    let status = Api::<Pod>::namespaced(client.clone(), ns)
        .get(&pod)
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    let code = |name: &str| -> Option<i32> {
        status
            .container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == name)?
            .state
            .as_ref()?
            .terminated
            .as_ref()
            .map(|t| t.exit_code)
    };
    let answer = |name: &str, want_ok: bool| {
        let log = container_log(ns, &pod, name);
        let init = container_log(ns, &pod, "initialize");
        match code(name) {
            Some(c) => ((c == 0) == want_ok, log),
            None => (
                false,
                format!("no exit code for {name}; initialize:\n{init}"),
            ),
        }
    };
    let results = (0..signed.len())
        .map(|i| answer(&format!("verify-{i}"), true))
        .collect();
    (results, answer("changed", false))
}
