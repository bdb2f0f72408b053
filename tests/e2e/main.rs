//! The end-to-end proof: on the real control plane, with the Deployment,
//! ReplicaSet and Job controllers and the test node agent running every
//! Pod as local processes, the operator (its built binary, with
//! `config/rbac`'s role) brings `config/samples`'s stack to Ready; then
//! every client we claim (cosign 2 and 3 from this machine, cosign 3 in a
//! Pod, sigstore-python) signs against it with what `hack/stack-up.sh`
//! exports, and every client verifies every bundle; cosign 3 signs and
//! attests a container image in a real registry.

mod images;
mod rekor;
#[path = "../support/mod.rs"]
mod support;
mod tuf;

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{Api, api::ListParams};
use serde_json::Value;
use sigstore_operator::api::SigstoreStack;
use support::{
    CLUSTER_ISSUER,
    clients::{self, Exported, Kind, Matrix, Signed, SigstorePython},
    cosign::{Cosign, Services},
    registry::Registry,
    servers::built,
};

/// The figure recorded when Rekor's Pod is seen held back.
const HELD: &str = "(Rekor's Pod held back, waiting for its tree)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_stack_becomes_ready_and_every_client_signs_and_verifies() {
    let (cp, client, ns, agent) = support::node::cluster("e2e", &[]).await;
    // The strictest Pod Security Standard, enforced by the API server's
    // admission: every Pod the stack runs (and the clients' Job) meets it.
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(
            &ns.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&serde_json::json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}})),
        )
        .await
        .unwrap();
    let operator = support::start_for_namespace(cp, &client, &ns.name).await;
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
    write_figures(&figures);

    // What a user's next step gets: hack/stack-up.sh (the Action's logic)
    // exports the trust material and reachable URLs. The operator already
    // runs here, so nothing is installed; ClusterIPs are routed on this
    // host, so no port-forward is needed.
    let out_dir = support::logs_dir().join(format!("{}-stack", ns.name));
    let (ok, log) = clients::stack_up(
        &cp.kubeconfig,
        &out_dir,
        &[
            ("STACK_NAME", name.clone()),
            ("STACK_NAMESPACE", ns.name.clone()),
            ("INSTALL", "none".into()),
        ],
    )
    .await;
    assert!(ok, "hack/stack-up.sh failed:\n{log}");
    let env = Exported::read(&out_dir);

    // The trust material every client family reads, published and named
    // in status.
    let status = stacks.get(&name).await.unwrap().status.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let reference = status.trusted_root.clone().expect("trust root in status");
    let trust = cms.get(&reference.name).await.unwrap().data.unwrap();
    for (what, r) in [
        ("signingConfig", status.signing_config.clone()),
        ("trustConfig", status.trust_config.clone()),
    ] {
        let r = r.unwrap_or_else(|| panic!("status.{what}"));
        assert_eq!(
            r.name, reference.name,
            "{what} is in the trust root ConfigMap"
        );
        assert!(
            trust.contains_key(&r.key),
            "{what}: key {} published",
            r.key
        );
    }
    let root: Value = serde_json::from_str(&trust[&reference.key]).unwrap();
    let trust_config: Value = serde_json::from_str(&trust["trust_config.json"]).unwrap();
    assert_eq!(trust_config["trustedRoot"], root);
    assert_eq!(
        root["ctlogs"].as_array().map(Vec::len),
        Some(1),
        "the CT log key is trusted"
    );
    // In the cluster the signing config names Services; the exported one
    // names what this machine reaches.
    let in_cluster: Value = serde_json::from_str(&trust["signing_config.json"]).unwrap();
    let fulcio_host = format!("http://{name}-fulcio.{}.svc", ns.name);
    assert_eq!(in_cluster["caUrls"][0]["url"], fulcio_host.as_str());
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("SIGNING_CONFIG")).unwrap())
            .unwrap();
    assert_eq!(exported["caUrls"][0]["url"], env.get("FULCIO_URL"));
    assert_eq!(exported["rekorTlogUrls"][0]["url"], env.get("REKOR_URL"));
    assert_eq!(exported["tsaUrls"][0]["url"], env.get("TSA_URL"));

    // Rekor signs its checkpoints under the host of its baseUrl, also
    // after its Pod is replaced (a new Pod, a new hostname).
    let base_url = root["tlogs"][0]["baseUrl"].as_str().unwrap().to_owned();
    let origin = url::Url::parse(&base_url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    // The checkpoint verifies with the trust root's key under that host,
    // with the operator's own verifier (the self-check's).
    let spki = support::note::unb64(root["tlogs"][0]["publicKey"]["rawBytes"].as_str().unwrap());
    let sth = rekor::signed_tree_head(env.get("REKOR_URL")).await;
    let first_line = sth.lines().next().unwrap_or_default().to_owned();
    support::note::check(&sth, &first_line, &origin, &spki);
    figures
        .push_str(&rekor::origin_survives_a_new_pod(&client, &ns.name, &name, &origin, &env).await);

    let token = env.get("OIDC_TOKEN").to_owned();
    let identity = env.get("SIGNER_IDENTITY").to_owned();
    let trusted_root = env.path("TRUSTED_ROOT").to_owned();
    let trust_file = env.path("TRUST_CONFIG").to_owned();
    let cosign2 = Cosign::with_token_file(
        support::logs_dir().join(format!("{}-cosign2", ns.name)),
        env.path("OIDC_TOKEN_FILE"),
        identity.clone(),
        env.get("ISSUER_URL").to_owned(),
    );
    let cosign3 = Cosign::with_token_file(
        support::logs_dir().join(format!("{}-cosign3", ns.name)),
        env.path("OIDC_TOKEN_FILE"),
        identity.clone(),
        env.get("ISSUER_URL").to_owned(),
    )
    .v3();
    let python = SigstorePython::new(support::logs_dir().join(format!("{}-python", ns.name)));
    let services = Services {
        fulcio: env.get("FULCIO_URL").to_owned(),
        rekor: env.get("REKOR_URL").to_owned(),
        timestamp: env.get("TSA_URL").to_owned(),
    };
    let blob_in = |dir: &Path, text: &str| {
        let blob = dir.join("blob.txt");
        std::fs::write(&blob, text).unwrap();
        blob
    };

    // A fresh log's first entry has an inclusion proof with no hashes:
    // cosign writes it without the field, and sigstore-python refuses the
    // bundle (the README's troubleshooting says so). Every later entry's
    // bundle verifies.
    let first_blob = blob_in(&cosign2.work, "the stack's first entry\n");
    let first_bundle = cosign2.sign(&trusted_root, &services, &first_blob).await;
    let (ok, log) = cosign2
        .verify(Some(&trusted_root), &first_blob, &first_bundle)
        .await;
    assert!(ok, "cosign 2 verifies the first entry:\n{log}");
    let tlog = |bundle: &Path| -> Value {
        let b: Value = serde_json::from_str(&std::fs::read_to_string(bundle).unwrap()).unwrap();
        b["verificationMaterial"]["tlogEntries"][0].clone()
    };
    if tlog(&first_bundle)["inclusionProof"]["hashes"].is_null() {
        let trust_args = [format!("--trust-config={}", trust_file.display())];
        let (ok, log) = python
            .verify(&trust_args, true, &identity, &first_blob, &first_bundle)
            .await;
        assert!(
            !ok && log.contains("hashes"),
            "the README says sigstore-python refuses a first entry's bundle; it said:\n{log}"
        );
        figures.push_str("  the first entry's bundle (no proof hashes): cosign verifies it, sigstore-python refuses it, as the README says\n");
    }

    // The matrix: each client signs, every client verifies every bundle.
    let mut signed: Vec<Signed> = Vec::new();
    let b = blob_in(&cosign2.work, "signed by cosign 2\n");
    let bundle = cosign2.sign(&trusted_root, &services, &b).await;
    signed.push(Signed {
        by: Kind::Cosign2,
        blob: b,
        bundle,
        identity: identity.clone(),
    });
    let b = blob_in(&cosign3.work, "signed by cosign 3\n");
    let (ok, log, bundle) = cosign3
        .sign_with_config(env.path("SIGNING_CONFIG"), &trusted_root, &b)
        .await;
    assert!(
        ok,
        "cosign 3 sign-blob with the exported signing config:\n{log}"
    );
    signed.push(Signed {
        by: Kind::Cosign3,
        blob: b,
        bundle,
        identity: identity.clone(),
    });
    signed.push(clients::sign_in_pod(&client, &cp.kubeconfig, &ns.name).await);
    let b = blob_in(&python.work, "signed by sigstore-python\n");
    let (ok, log, bundle) = python.sign(&trust_file, &token, &b).await;
    assert!(
        ok,
        "sigstore-python sign with the exported trust config:\n{log}"
    );
    signed.push(Signed {
        by: Kind::SigstorePython,
        blob: b,
        bundle,
        identity: identity.clone(),
    });
    // The self-check's proof: what Ready waited for, verified below by
    // every client like any other signature.
    let (proof, took) = support::stacks::self_check_proof(
        &client,
        &ns.name,
        &name,
        &support::logs_dir().join(format!("{}-selfcheck", ns.name)),
    )
    .await;
    assert_eq!(proof.len(), 1, "one bundle: the sample runs Rekor v1 only");
    assert_eq!(
        proof[0].identity,
        format!(
            "https://kubernetes.io/namespaces/{}/serviceaccounts/{name}-stages",
            ns.name
        )
    );
    figures.push_str(&format!(
        "  self-check round trip (sign with Fulcio, TSA and Rekor; verify): {took}\n"
    ));
    let (ok, log) = support::stacks::verify_self_check_as_readme(
        &cp.kubeconfig,
        &ns.name,
        &name,
        &trusted_root,
        &support::logs_dir().join(format!("{}-selfcheck-readme", ns.name)),
    )
    .await;
    assert!(ok, "the README's self-check verification:\n{log}");
    signed.extend(proof);
    for s in &signed {
        let entry = tlog(&s.bundle);
        assert!(
            entry["inclusionProof"]["checkpoint"]["envelope"]
                .as_str()
                .is_some_and(|c| c.starts_with(&format!("{origin} - "))),
            "{}'s bundle carries a checkpoint under {origin}: {entry}",
            s.by.name()
        );
    }

    let changed = support::logs_dir().join(format!("{}-changed.txt", ns.name));
    std::fs::write(&changed, "something else\n").unwrap();
    let mut matrix = Matrix::default();
    let trust_args = [format!("--trust-config={}", trust_file.display())];
    for (verifier, cosign) in [(Kind::Cosign2, &cosign2), (Kind::Cosign3, &cosign3)] {
        for s in &signed {
            let cell = cosign
                .verify_as(&s.identity, Some(&trusted_root), &s.blob, &s.bundle)
                .await;
            matrix.cells.insert((s.by, verifier), cell);
        }
        let (ok, log) = cosign
            .verify_as(
                &signed[0].identity,
                Some(&trusted_root),
                &changed,
                &signed[0].bundle,
            )
            .await;
        matrix.refused_changed.insert(verifier, (!ok, log));
    }
    for s in &signed {
        let cell = python
            .verify(&trust_args, true, &s.identity, &s.blob, &s.bundle)
            .await;
        matrix.cells.insert((s.by, Kind::SigstorePython), cell);
    }
    let (ok, log) = python
        .verify(
            &trust_args,
            true,
            &signed[0].identity,
            &changed,
            &signed[0].bundle,
        )
        .await;
    matrix
        .refused_changed
        .insert(Kind::SigstorePython, (!ok, log));
    let (in_pod, refused) =
        clients::verify_in_pod(&client, &ns.name, &name, &signed, &changed).await;
    for (s, cell) in signed.iter().zip(in_pod) {
        matrix.cells.insert((s.by, Kind::Cosign3InPod), cell);
    }
    matrix.refused_changed.insert(Kind::Cosign3InPod, refused);
    // The self-check's bundle does not vouch for another artifact.
    let own = signed
        .iter()
        .find(|s| s.by == Kind::SelfCheck)
        .expect("the self-check's bundle");
    let (ok, log) = cosign3
        .verify_as(&own.identity, Some(&trusted_root), &changed, &own.bundle)
        .await;
    assert!(
        !ok,
        "cosign 3 accepted the self-check's bundle for another blob:\n{log}"
    );
    let (ok, log) = python
        .verify(&trust_args, true, &own.identity, &changed, &own.bundle)
        .await;
    assert!(
        !ok,
        "sigstore-python accepted the self-check's bundle for another blob:\n{log}"
    );
    figures.push_str(&matrix.table());
    write_figures(&figures);
    let failures = matrix.failures();
    assert!(
        failures.is_empty(),
        "{}\n{}",
        matrix.table(),
        failures.join("\n\n")
    );

    // Both TUF clients bootstrap from the stack's own TUF workload and
    // verify with nothing else.
    let tuf_root = status
        .tuf
        .clone()
        .expect("tuf in status")
        .root
        .expect("root.json in status");
    let published = &cms.get(&tuf_root.name).await.unwrap().data.unwrap()[&tuf_root.key];
    tuf::clients_verify(&env, &out_dir, published, &cosign2, &python, &signed).await;

    // The Rekor entry comes back from Rekor.
    let entry = tlog(&signed[0].bundle);
    let index = entry["logIndex"].as_str().unwrap_or("0").to_owned();
    let fetched: Value = reqwest::get(format!(
        "{}/api/v1/log/entries?logIndex={index}",
        env.get("REKOR_URL")
    ))
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

    // Container images: cosign 3 signs one in a real registry and attaches
    // an attestation; verification needs only the stack's trust material.
    images::sign_and_verify(&env, &trusted_root, &cosign3, &identity, &ns.name).await;
    figures.push_str("  OCI image: cosign 3.1.3 sign + attest; verify and verify-attestation pass, and refuse another image and another identity\n");

    // Secret hygiene, over everything this run left readable: no private
    // key or password of the stack's Secrets is in the operator's log, a
    // Pod's log, an Event, the status or a ConfigMap.
    let probe = sigstore_operator::keys::PrivateKey::generate(
        sigstore_operator::keys::Algorithm::EcdsaP256,
    )
    .unwrap()
    .encrypted_pem("a password of 32 characters.....")
    .unwrap();
    let (sought, is_key, _) = support::hygiene::needles("private", probe.as_bytes());
    assert!(
        is_key && sought.iter().any(|n| probe.contains(n.as_str())),
        "the search finds a key"
    );
    let report = support::hygiene::check(
        &client,
        &ns.name,
        &operator.log,
        &support::logs_dir().join("pods"),
    )
    .await;
    figures.push_str(&format!(
        "  secret hygiene: {} private keys and {} passwords sought in {} sources ({:.1} MiB: the operator's log, the Pods' logs, Events, the status, ConfigMaps): {} found\n",
        report.keys,
        report.passwords,
        report.sources,
        report.bytes as f64 / (1024.0 * 1024.0),
        report.found.len()
    ));
    assert!(
        report.keys >= 5 && report.passwords >= 3,
        "the stack's Secrets were read"
    );
    assert!(
        report.found.is_empty(),
        "private values where anyone may read them:\n{}",
        report.found.join("\n")
    );
    write_figures(&figures);
}

/// The figures, shown after `make test` (the harness hides a passing
/// test's output).
fn write_figures(figures: &str) {
    eprint!("{figures}");
    let _ = std::fs::write(support::repo_root().join("target/e2e-figures.txt"), figures);
}
