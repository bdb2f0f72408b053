//! An empty spec from nothing to Ready, stage by stage, and nothing written once settled.

use super::*;

/// `spec: {}` from nothing to Ready, in dependency order; then re-applying
/// changes nothing, the operator goes quiet, deleted outputs come back with
/// the same keys and tree, and deleting the stack removes what it owns.
#[tokio::test]
async fn empty_spec_comes_up_in_order_and_settles() {
    let env = Env::start("bring-up", &["demo"], &trillian().address).await;
    let ns = env.ns.name.clone();
    env.create_stack("demo", json!({})).await;

    // Stages without inputs start at once; the trees wait for Trillian.
    env.condition_until("demo", "CertsCreated", "True").await;
    let status = env.condition_until("demo", "RekorKeyCreated", "True").await;
    let tree = find(&status.conditions, "RekorTreeCreated").unwrap();
    assert_eq!(tree.reason, "WaitingForInputs", "{}", tree.message);
    assert!(
        tree.message.contains("demo-trillian-log-server"),
        "{}",
        tree.message
    );
    let ct = find(&status.conditions, "CTConfigCreated").unwrap();
    assert_eq!(ct.reason, "WaitingForInputs");
    assert!(
        env.jobs()
            .await
            .iter()
            .all(|j| ["certs", "rekor-key", "tsa-chain"].contains(&stage_of(j).as_str())),
        "only stages without inputs ran"
    );

    // Trillian comes up: the trees, then the CT config.
    env.kubelet.allow(&[
        "demo-trillian-db",
        "demo-trillian-log-server",
        "demo-trillian-log-signer",
    ]);
    env.condition_until("demo", "CTConfigCreated", "True").await;
    let jobs = env.jobs().await;
    let finished = |stage: &str| {
        jobs.iter()
            .find(|j| stage_of(j) == stage)
            .and_then(|j| j.status.as_ref()?.completion_time.clone())
            .unwrap_or_else(|| panic!("{stage} finished"))
    };
    let ctconfig = jobs.iter().find(|j| stage_of(j) == "ctconfig").unwrap();
    let started = ctconfig.metadata.creation_timestamp.clone().unwrap();
    assert!(started >= finished("ctlog-tree") && started >= finished("certs"));
    // One attempt per stage (createtuf may have started too: its input,
    // the trust root, is published in the pass that sees the CT config).
    let mut stages: Vec<String> = jobs.iter().map(stage_of).collect();
    stages.retain(|s| s != "tuf");
    stages.sort();
    assert_eq!(
        stages,
        [
            "certs",
            "ctconfig",
            "ctlog-tree",
            "rekor-key",
            "rekor-tree",
            "tsa-chain"
        ],
        "one attempt per stage: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    assert!(jobs.iter().all(|j| j.name_any().ends_with("-1")));

    // Every workload exists, owned and labelled, referencing the outputs.
    let deployments: Api<Deployment> = env.api();
    for name in deployment_names("demo") {
        let d = deployments.get(&name).await.expect(&name);
        let owner = &d.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("SigstoreStack", "demo")
        );
        assert_eq!(d.labels()["app.kubernetes.io/instance"], "demo");
        assert_eq!(
            d.labels()["app.kubernetes.io/managed-by"],
            "sigstore-operator"
        );
        let pod = d.spec.unwrap().template.spec.unwrap();
        let sc = pod.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        for c in &pod.containers {
            let csc = c.security_context.as_ref().unwrap();
            assert_eq!(csc.allow_privilege_escalation, Some(false), "{name}");
            assert_eq!(
                csc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
                &["ALL"]
            );
            assert!(
                c.image.as_ref().unwrap().contains("@sha256:"),
                "{name} pinned"
            );
        }
    }
    let fulcio_config = env
        .api::<ConfigMap>()
        .get("demo-fulcio-config")
        .await
        .unwrap();
    let config = &fulcio_config.data.unwrap()["config.yaml"];
    assert!(
        config.contains(&env.cp.server),
        "the cluster's issuer: {config}"
    );
    let fulcio = deployments.get("demo-fulcio").await.unwrap();
    let args = fulcio.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.contains(&format!(
        "--ct-log-url=http://demo-ctlog.{ns}.svc/sigstorescaffolding"
    )));

    // Components come up once their keys exist; then Ready.
    env.kubelet.allow_all();
    let ready = env.condition_until("demo", READY, "True").await;
    assert_eq!(ready.phase, Some(Phase::Ready));
    let rekor = ready.rekor.clone().unwrap();
    assert_eq!(
        rekor.tree_id.unwrap().to_string(),
        env.tree_id("demo", Log::Rekor).await
    );
    assert_eq!(
        rekor.url.as_deref(),
        Some(format!("http://demo-rekor.{ns}.svc").as_str())
    );
    assert_eq!(
        rekor.public_key.unwrap(),
        text(&env.secret("demo-rekor-pub").await, "public")
    );
    let ctlog = ready.ctlog.clone().unwrap();
    assert_eq!(
        ctlog.public_key.unwrap(),
        text(&env.secret("demo-ctlog-pub").await, "public")
    );
    let tsa = ready.tsa.clone().unwrap();
    assert_eq!(
        tsa.url.as_deref(),
        Some(format!("http://demo-tsa.{ns}.svc").as_str())
    );
    assert_eq!(
        tsa.certificate_chain.unwrap(),
        text(&env.secret("demo-tsa-pub").await, "cert-chain")
    );
    let root = ready.fulcio.clone().unwrap().root_certificate.unwrap();
    assert!(text(&env.secret("demo-fulcio-pub").await, "cert").contains(root.trim()));
    assert_eq!(
        ready.trillian.clone().unwrap().address.as_deref(),
        Some(format!("demo-trillian-log-server.{ns}.svc:8090").as_str())
    );
    // The published trust root describes exactly this stack's material.
    let reference = ready.trusted_root.clone().expect("trusted root in status");
    let trust = env.api::<ConfigMap>().get(&reference.name).await.unwrap();
    let trust_data = trust.data.unwrap();
    let root: sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot =
        serde_json::from_str(&trust_data[&reference.key]).expect("a TrustedRoot");
    let der_of = |pem: &str| {
        x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .contents
    };
    let rekor_der = der_of(&text(&env.secret("demo-rekor-pub").await, "public"));
    let tlog = &root.tlogs[0];
    assert_eq!(tlog.base_url, format!("http://demo-rekor.{ns}.svc"));
    assert_eq!(
        tlog.log_id.as_ref().unwrap().key_id,
        <sha2::Sha256 as sha2::Digest>::digest(&rekor_der).to_vec()
    );
    assert_eq!(root.ctlogs.len(), 1);
    assert_eq!(root.certificate_authorities.len(), 1);
    assert_eq!(
        root.timestamp_authorities[0]
            .cert_chain
            .as_ref()
            .unwrap()
            .certificates
            .len(),
        3
    );
    assert!(trust_data["signing_config.json"].contains(&format!("http://demo-fulcio.{ns}.svc")));
    let status_json = serde_json::to_string(&ready).unwrap();
    assert!(
        !status_json.contains("PRIVATE KEY"),
        "no private key in status"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for r in [
        "CertsRunning",
        "CertsCreated",
        "RekorTreeCreated",
        "CTConfigCreated",
        "Ready",
    ] {
        assert!(reasons.iter().any(|x| x == r), "event {r} in {reasons:?}");
    }

    // Settled: re-applying the same stack and 60 s of quiet write nothing.
    let before = settle(&env).await;
    let requests_before = env.cp.requests_by(&env.user).len();
    let same: Value = json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
        "metadata": {"name": "demo"}, "spec": {"selfCheck": {"enabled": false}},
    });
    env.stacks()
        .patch(
            "demo",
            &PatchParams::apply("test-user"),
            &Patch::Apply(&same),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = env.cp.writes_by(&env.user);
    assert_eq!(
        after.len(),
        before.len(),
        "writes after settling: {:?}",
        &after[before.len()..]
    );
    // ...and read it from the watch caches: no LIST (the pass the re-apply
    // caused included).
    let lists: Vec<_> = env.cp.requests_by(&env.user)[requests_before..]
        .iter()
        .filter(|r| r.verb == "list")
        .cloned()
        .collect();
    assert!(lists.is_empty(), "LIST calls after settling: {lists:?}");
    assert!(
        env.cp
            .requests_by(&env.user)
            .iter()
            .any(|r| r.verb == "watch"),
        "the operator's reads are in the audit log, so the count above means something"
    );

    // Deleted outputs come back; nothing that still exists changes.
    let rekor_tree = env.tree_id("demo", Log::Rekor).await;
    let ct_private = text(&env.secret("demo-ctlog").await, "private");
    let ca_cert = text(&env.secret("demo-fulcio-ca").await, "cert");
    let rekor_private = text(&env.secret("demo-rekor-signer").await, "private");
    let cms: Api<ConfigMap> = env.api();
    cms.delete("demo-rekor-config", &DeleteParams::default())
        .await
        .unwrap();
    let secrets: Api<Secret> = env.api();
    secrets
        .delete("demo-ctlog-pub", &DeleteParams::default())
        .await
        .unwrap();
    secrets
        .delete("demo-fulcio-pub", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the outputs restored", WAIT, || async {
        let tree = cms
            .get_opt("demo-rekor-config")
            .await
            .ok()??
            .data?
            .get("treeID")?
            .clone();
        let ct = secrets.get_opt("demo-ctlog-pub").await.ok()??.data?;
        let fulcio = secrets.get_opt("demo-fulcio-pub").await.ok()??.data?;
        (ct.contains_key("public") && fulcio.contains_key("cert")).then_some(tree)
    })
    .await;
    assert_eq!(
        env.tree_id("demo", Log::Rekor).await,
        rekor_tree,
        "same tree, adopted"
    );
    assert_eq!(
        trees(&ns, "demo", Log::Rekor).await.len(),
        1,
        "no second tree"
    );
    assert_eq!(text(&env.secret("demo-ctlog").await, "private"), ct_private);
    assert_eq!(text(&env.secret("demo-fulcio-ca").await, "cert"), ca_cert);
    assert_eq!(text(&env.secret("demo-fulcio-pub").await, "cert"), ca_cert);
    assert_eq!(
        text(&env.secret("demo-rekor-signer").await, "private"),
        rekor_private
    );
    let trust_after = env.api::<ConfigMap>().get("demo-trust-root").await.unwrap();
    assert_eq!(
        trust_after.data.unwrap()["trusted_root.json"],
        trust_data["trusted_root.json"],
        "the same material keeps the same trust root"
    );
    env.condition_until("demo", READY, "True").await;

    // Deleting the stack removes everything it owns.
    env.stacks()
        .delete("demo", &DeleteParams::background())
        .await
        .unwrap();
    eventually("owned objects collected", WAIT, || async {
        let left = deployments
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len()
            + secrets
                .list(&ListParams::default().labels("app.kubernetes.io/instance=demo"))
                .await
                .ok()?
                .items
                .len()
            + env
                .api::<Job>()
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len();
        (left == 0).then_some(())
    })
    .await;
}
