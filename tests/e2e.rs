//! The end-to-end proof: on the real control plane, with the Deployment,
//! ReplicaSet and Job controllers and the test node agent running every
//! Pod as local processes, the operator (its built binary, with
//! `config/rbac`'s role) brings `config/samples`'s stack to Ready, and
//! cosign signs and verifies a blob against it with a service-account
//! token as the identity.

mod support;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::{Api, Client};
use serde_json::Value;
use sigstore_operator::api::SigstoreStack;
use support::{
    CLUSTER_ISSUER,
    cosign::{Cosign, Services},
    servers::built,
};

/// `http://<ClusterIP>` of Service `name`: the agent's proxy serves
/// ClusterIPs on this host too, as a node's kube-proxy does.
async fn service_url(client: &Client, ns: &str, name: &str) -> String {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    let port = spec.ports.unwrap()[0].port;
    format!("http://{}:{port}", spec.cluster_ip.unwrap())
}

/// The figure recorded when Rekor's Pod is seen held back.
const HELD: &str = "(Rekor's Pod held back, waiting for its tree)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_stack_becomes_ready_and_cosign_signs_against_it() {
    let (cp, client, ns, agent) = support::node::cluster("e2e", &[]).await;
    let user = format!("operator-{}", ns.name);
    support::bind_operator_role(&client, &user).await;
    let _operator = support::Operator::start(
        &cp.kubeconfig_for(&user, &[]),
        support::logs_dir(),
        &format!("{}-operator", ns.name),
        &[
            "--watch-namespace",
            &ns.name,
            "--image",
            "sigstore-operator:e2e",
        ],
    );
    // No binding for unauthenticated OIDC discovery, unlike KinD setups
    // for scaffolding: the stack's Fulcio reads it with its own token.
    let start = Instant::now();
    let sample = support::manifests::read_dir(&support::repo_root().join("config/samples"));
    support::manifests::apply(&client, &sample, &ns.name).await;
    let name = sample[0].metadata.name.clone().unwrap();

    // Figures: when each condition first turned True.
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let watcher = {
        let stacks = stacks.clone();
        let name = name.clone();
        let stacks_ns = ns.name.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, Duration> = BTreeMap::new();
            let pods: Api<Pod> = Api::namespaced(client, &stacks_ns);
            let rekor = format!("{name}-rekor-");
            loop {
                // The gating: Rekor's Pod waits for the tree ID it reads.
                if !seen.contains_key(HELD) {
                    let list = pods.list(&Default::default()).await;
                    let held = list.iter().flat_map(|l| l.items.iter()).any(|p| {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let waiting = p
                            .status
                            .as_ref()
                            .and_then(|s| s.container_statuses.as_ref())
                            .and_then(|c| c.first())
                            .and_then(|c| c.state.as_ref())
                            .and_then(|s| s.waiting.as_ref())
                            .and_then(|w| w.reason.clone());
                        name.starts_with(&rekor)
                            && p.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get("app.kubernetes.io/component"))
                                == Some(&"rekor".to_owned())
                            && p.metadata
                                .labels
                                .as_ref()
                                .is_some_and(|l| l.contains_key("pod-template-hash"))
                            && !name.contains("redis")
                            && waiting.as_deref() == Some("ContainerCreating")
                    });
                    if held {
                        seen.insert(HELD.into(), start.elapsed());
                    }
                }
                if let Ok(s) = stacks.get(&name).await {
                    for c in s.status.map(|s| s.conditions).unwrap_or_default() {
                        if c.status == "True" && !seen.contains_key(&c.type_) {
                            seen.insert(c.type_.clone(), start.elapsed());
                        }
                    }
                }
                if seen.contains_key("Ready") {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let kubectl = built("kubectl");
    let kubeconfig = cp.kubeconfig.display().to_string();
    let wait = tokio::task::spawn_blocking({
        let ns = ns.name.clone();
        let name = name.clone();
        move || {
            Command::new(kubectl)
                .args([
                    "--kubeconfig",
                    &kubeconfig,
                    "-n",
                    &ns,
                    "wait",
                    "--for=condition=Ready",
                    &format!("sst/{name}"),
                    "--timeout=600s",
                ])
                .output()
                .expect("run kubectl")
        }
    })
    .await
    .unwrap();
    if !wait.status.success() {
        support::mark_failed();
        let status = stacks.get(&name).await.ok().and_then(|s| s.status);
        panic!(
            "kubectl wait failed: {}{}\nstatus: {status:#?}",
            String::from_utf8_lossy(&wait.stdout),
            String::from_utf8_lossy(&wait.stderr)
        );
    }
    let ready_after = start.elapsed();
    let seen = watcher.await.unwrap();
    let mut figures = format!("end to end: apply → Ready (kubectl wait) in {ready_after:.1?}\n");
    let mut order: Vec<_> = seen.iter().collect();
    order.sort_by_key(|(_, at)| **at);
    for (what, at) in order {
        figures.push_str(&format!("  {at:>8.1?}  {what}\n"));
    }
    let held = seen
        .get(HELD)
        .expect("Rekor's Pod was seen waiting for its inputs");
    assert!(
        held < &seen["RekorTreeCreated"],
        "Rekor's Pod waited ({held:?}) before its tree existed ({:?})",
        seen["RekorTreeCreated"]
    );
    figures.push_str(&format!(
        "  {} processes started by the node agent\n",
        agent.started.load(std::sync::atomic::Ordering::SeqCst)
    ));
    // Shown after `make test` (the harness hides a passing test's output).
    eprint!("{figures}");
    let _ = std::fs::write(
        support::repo_root().join("target/e2e-figures.txt"),
        &figures,
    );

    // A token for ServiceAccount `signer`, audience sigstore.
    let work: PathBuf = support::logs_dir().join(format!("{}-cosign", ns.name));
    let cosign = Cosign::signer(&client, &ns.name, work.clone(), CLUSTER_ISSUER).await;

    // The stack's trust root, as a user reads it from status.
    let status = stacks.get(&name).await.unwrap().status.unwrap();
    let reference = status.trusted_root.clone().expect("trust root in status");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let trust = cms.get(&reference.name).await.unwrap().data.unwrap();
    let root_file = work.join("trusted_root.json");
    std::fs::write(&root_file, &trust[&reference.key]).unwrap();
    let root: Value = serde_json::from_str(&trust[&reference.key]).unwrap();
    assert_eq!(
        root["ctlogs"].as_array().map(Vec::len),
        Some(1),
        "the CT log key is trusted"
    );

    let fulcio = service_url(&client, &ns.name, &format!("{name}-fulcio")).await;
    let rekor = service_url(&client, &ns.name, &format!("{name}-rekor")).await;
    let tsa = service_url(&client, &ns.name, &format!("{name}-tsa")).await;
    let blob = work.join("blob.txt");
    std::fs::write(&blob, "signed end to end\n").unwrap();
    let services = Services {
        fulcio,
        rekor: rekor.clone(),
        timestamp: format!("{tsa}/api/v1/timestamp"),
    };
    let bundle = cosign.sign(&root_file, &services, &blob).await;
    let (ok, log) = cosign.verify(Some(&root_file), &blob, &bundle).await;
    assert!(ok, "cosign verify-blob failed:\n{log}");
    let changed = work.join("changed.txt");
    std::fs::write(&changed, "something else\n").unwrap();
    let (ok, _) = cosign.verify(Some(&root_file), &changed, &bundle).await;
    assert!(!ok, "a changed blob must not verify");

    // The Rekor entry comes back from Rekor.
    let signed: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let entry = &signed["verificationMaterial"]["tlogEntries"][0];
    // Proto3 JSON leaves out zero values: the first entry has no logIndex.
    let index = entry["logIndex"].as_str().unwrap_or("0").to_owned();
    let fetched: Value = reqwest::get(format!("{rekor}/api/v1/log/entries?logIndex={index}"))
        .await
        .unwrap()
        .json()
        .await
        .expect("the Rekor entry");
    let body = fetched
        .as_object()
        .and_then(|o| o.values().next())
        .expect("one entry");
    assert_eq!(
        body["logIndex"].as_i64().map(|i| i.to_string()),
        Some(index)
    );
    assert_eq!(
        signed["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "the stack's TSA timestamped it"
    );

    // The stack's TUF repository, served by its own workload: cosign
    // bootstraps from it and verifies with nothing else.
    let tuf = status.tuf.clone().expect("tuf in status");
    let tuf_root = tuf.root.expect("root.json in status");
    let repository = cms.get(&tuf_root.name).await.unwrap().data.unwrap();
    let root_json = work.join("root.json");
    std::fs::write(&root_json, &repository[&tuf_root.key]).unwrap();
    let mirror = service_url(&client, &ns.name, &format!("{name}-tuf")).await;
    cosign.initialize(&mirror, &root_json).await;
    let (ok, log) = cosign.verify(None, &blob, &bundle).await;
    assert!(
        ok,
        "cosign verify-blob through the stack's TUF failed:\n{log}"
    );
}
