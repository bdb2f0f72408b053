//! What users do to a running stack: restart the operator, break a stage, share a namespace, wait past a TUF expiry.

use super::*;

/// The operator killed mid-bring-up and started again: the stack finishes
/// with one tree per log and the keys made before the restart.
#[tokio::test]
async fn operator_restart_mid_bring_up_keeps_trees_and_keys() {
    let mut env = Env::start("restart", &["demo"], &trillian().address).await;
    env.create_stack("demo", json!({})).await;
    env.condition_until("demo", "CertsCreated", "True").await;
    env.condition_until("demo", "RekorKeyCreated", "True").await;
    let ca = text(&env.secret("demo-fulcio-ca").await, "cert");
    let rekor_key = text(&env.secret("demo-rekor-signer").await, "public");
    // Kill it hard while the trees are about to start.
    env.kubelet.allow(&[
        "demo-trillian-db",
        "demo-trillian-log-server",
        "demo-trillian-log-signer",
    ]);
    eventually("a tree Job", WAIT, || async {
        env.jobs()
            .await
            .iter()
            .any(|j| stage_of(j).ends_with("-tree"))
            .then_some(())
    })
    .await;
    drop(env.op.take());
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.start_operator("operator-2");
    env.kubelet.allow_all();
    env.condition_until("demo", READY, "True").await;
    let ns = env.ns.name.clone();
    assert_eq!(trees(&ns, "demo", Log::Rekor).await.len(), 1);
    assert_eq!(trees(&ns, "demo", Log::Ctlog).await.len(), 1);
    assert_eq!(text(&env.secret("demo-fulcio-ca").await, "cert"), ca);
    assert_eq!(
        text(&env.secret("demo-rekor-signer").await, "public"),
        rekor_key
    );
    let per_stage: BTreeMap<String, usize> =
        env.jobs().await.iter().fold(BTreeMap::new(), |mut m, j| {
            *m.entry(stage_of(j)).or_default() += 1;
            m
        });
    assert!(
        per_stage.values().all(|n| *n == 1),
        "one Job per stage: {per_stage:?}"
    );
}

/// A stage that cannot reach Trillian fails, says why, and is retried until
/// Trillian answers; then the stack comes up.
#[tokio::test]
async fn failing_stage_shows_its_reason_then_recovers() {
    let [port] = support::procs::free_ports::<1>().unwrap();
    let env = Env::start("failing", &["demo"], &format!("127.0.0.1:{port}")).await;
    env.kubelet.allow_all();
    env.create_stack("demo", json!({"ctlog": {"enabled": false}}))
        .await;
    let failed = env
        .status_until("demo", "RekorTreeCreated failed", |s| {
            find(&s.conditions, "RekorTreeCreated").is_some_and(|c| c.reason == "Failed")
        })
        .await;
    let c = find(&failed.conditions, "RekorTreeCreated").unwrap();
    assert!(c.message.contains("attempt 1"), "{}", c.message);
    assert!(
        c.message.to_lowercase().contains("trillian") || c.message.contains("Unavailable"),
        "the reason names the cause: {}",
        c.message
    );
    assert_eq!(failed.phase, Some(Phase::Degraded));
    let ready = find(&failed.conditions, READY).unwrap();
    assert_eq!(ready.reason, "StageFailed");
    // A spec change starts the count again, at once: a new attempt 1.
    let first = env.job_names("rekor-tree").await;
    env.stacks()
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"fulcio": {"ca": {"subject": {"organization": "o2"}}}}})),
        )
        .await
        .unwrap();
    eventually("a fresh attempt 1 after the spec change", WAIT, || async {
        env.jobs()
            .await
            .iter()
            .find(|j| {
                stage_of(j) == "rekor-tree"
                    && !first.contains(&j.name_any())
                    && j.annotations()
                        .get("scaffolding.sigstore.dev/attempt")
                        .map(String::as_str)
                        == Some("1")
            })
            .map(|_| ())
    })
    .await;
    // Trillian "returns": its address now answers.
    let _proxy = support::procs::tcp_proxy(port, &trillian().address);
    let up = env.condition_until("demo", READY, "True").await;
    let c = find(&up.conditions, "RekorTreeCreated").unwrap();
    assert_eq!(c.reason, "Created");
    let attempts = env.job_names("rekor-tree").await;
    assert!(
        attempts.iter().all(|n| !first.contains(n)),
        "the attempts before the spec change were replaced: {attempts:?}"
    );
    assert!(
        attempts.len() <= 2,
        "superseded attempts are cleaned up: {attempts:?}"
    );
}

/// Two stacks in one namespace come up side by side without touching each
/// other's objects; the user's CA Secret is read, never changed, and stays
/// when its stack goes.
#[tokio::test]
async fn two_stacks_share_a_namespace() {
    let env = Env::start("two-stacks", &["a", "b"], &trillian().address).await;
    env.kubelet.allow_all();
    // b brings its own CA, made by createcerts for a throwaway stack.
    let secrets: Api<Secret> = env.api();
    let out = support::run_cli(
        &env.cp.kubeconfig,
        &[
            "stage",
            "createcerts",
            "--stack",
            "mine",
            "--namespace",
            &env.ns.name,
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mine = secrets.get("mine-fulcio-ca").await.unwrap();
    let user_ca: Secret = serde_json::from_value(json!({
        "metadata": {"name": "user-ca"},
        "data": {
            "cert": mine.data.as_ref().unwrap()["cert"],
            "private": mine.data.as_ref().unwrap()["private"],
            "password": mine.data.as_ref().unwrap()["password"],
        },
    }))
    .unwrap();
    let user_ca = secrets
        .create(&PostParams::default(), &user_ca)
        .await
        .unwrap();
    env.create_stack("a", json!({})).await;
    env.create_stack(
        "b",
        json!({
            "ctlog": {"prefix": "b-log"},
            "fulcio": {"ca": {"existingSecret": "user-ca"}},
            "trillian": {"database": {"storage": {"size": "1Gi"}}},
        }),
    )
    .await;
    let a = env.condition_until("a", READY, "True").await;
    let b = env.condition_until("b", READY, "True").await;
    // b keeps its database on a claim it owns; a has none.
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = env.api();
    let claim = claims.get("b-trillian-db").await.expect("b's claim");
    assert_eq!(claim.owner_references()[0].name, "b");
    assert!(claims.get_opt("a-trillian-db").await.unwrap().is_none());
    assert_ne!(a.rekor.unwrap().tree_id, b.rekor.unwrap().tree_id);
    assert_ne!(
        a.fulcio.unwrap().root_certificate,
        b.fulcio.clone().unwrap().root_certificate
    );
    assert!(
        text(&env.secret("b-fulcio-pub").await, "cert")
            .contains(b.fulcio.unwrap().root_certificate.unwrap().trim())
    );
    // Every object carries its own stack's label and owner.
    for d in env
        .api::<Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let instance = d.labels()["app.kubernetes.io/instance"].clone();
        assert!(d.name_any().starts_with(&format!("{instance}-")));
        assert_eq!(d.owner_references()[0].name, instance);
    }
    let b_before: Vec<(String, String)> = env
        .owned::<Secret>("b")
        .await
        .iter()
        .map(|s| (s.name_any(), s.resource_version().unwrap()))
        .collect();
    env.stacks()
        .delete("a", &DeleteParams::background())
        .await
        .unwrap();
    eventually("a's objects collected", WAIT, || async {
        let left = env.owned::<Deployment>("a").await.len();
        (left == 0).then_some(())
    })
    .await;
    let b_after: Vec<(String, String)> = env
        .owned::<Secret>("b")
        .await
        .iter()
        .map(|s| (s.name_any(), s.resource_version().unwrap()))
        .collect();
    assert_eq!(b_before, b_after, "b untouched");
    let b_deployments = env.owned::<Deployment>("b").await;
    assert_eq!(
        b_deployments.len(),
        9,
        "Trillian (3), Rekor (2), CT log, Fulcio, TSA, TUF"
    );
    // The user's Secret: same version after use, and kept after b goes.
    env.stacks()
        .delete("b", &DeleteParams::background())
        .await
        .unwrap();
    eventually("b's Secrets collected", WAIT, || async {
        let left = env.owned::<Secret>("b").await.len();
        (left == 0).then_some(())
    })
    .await;
    let kept = secrets.get("user-ca").await.expect("the user's CA stays");
    assert_eq!(kept.resource_version(), user_ca.resource_version());
}

/// The runner expands `$(VAR)` and cuts log tails as Kubernetes does.
#[test]
fn runner_follows_kubernetes_rules() {
    use support::jobs::{expand, tail};
    let env = vec![("A".to_owned(), "x".to_owned())];
    assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    assert_eq!(tail(&"l\n".repeat(100)).lines().count(), 80);
    assert!(tail(&"x".repeat(5000)).len() <= 2048);
}

/// The TUF repository: built once the trust root is published, served by
/// the TUF workload, and re-signed by the operator before it expires. With
/// the operator's and the stages' clocks moved past the timestamp's re-sign
/// time, a new timestamp follows; python-tuf, with its clock past the first
/// timestamp's expiry, refuses the old repository and accepts the new one.
/// root.json and the role keys stay through the restart.
#[tokio::test]
async fn tuf_repository_is_re_signed_before_it_expires() {
    let mut env = Env::start("tuf", &["demo"], &trillian().address).await;
    env.kubelet.allow_all();
    // The shortest lifetimes the API accepts, so the clock moves by minutes.
    env.create_stack(
        "demo",
        json!({"tuf": {"expiry": {"timestamp": "1h", "snapshot": "2h"}}}),
    )
    .await;
    let ready = env.condition_until("demo", READY, "True").await;
    let tuf = ready.tuf.clone().expect("tuf in status");
    assert_eq!(
        tuf.url.as_deref(),
        Some(format!("http://demo-tuf.{}.svc", env.ns.name).as_str())
    );
    let reference = tuf.root.expect("root.json referenced from status");
    let repo = |env: &Env| {
        let api = env.api::<ConfigMap>();
        async move { api.get("demo-tuf-repository").await.unwrap() }
    };
    let first = repo(&env).await;
    let files_v1 = first.data.clone().unwrap();
    let root_json = support::logs_dir().join(format!("{}-root.json", env.ns.name));
    std::fs::write(&root_json, &files_v1[&reference.key]).unwrap();
    let version = |files: &BTreeMap<String, String>| {
        let ts: Value = serde_json::from_str(&files["timestamp.json"]).unwrap();
        ts["signed"]["version"].as_u64().unwrap()
    };
    assert_eq!(version(&files_v1), 1);
    let keys_version = env
        .api::<Secret>()
        .get("demo-tuf-keys")
        .await
        .unwrap()
        .metadata
        .resource_version;

    let served = support::tuf::Served::start(&env.ns.name, &files_v1);
    let trust = env.api::<ConfigMap>().get("demo-trust-root").await.unwrap();
    let published = &trust.data.unwrap()["trusted_root.json"];
    let fetched = support::tuf::fetch(&served.url, &root_json, "trusted_root.json", None)
        .expect("python-tuf reads the repository");
    assert_eq!(
        &fetched, published,
        "the TUF target is the published trust root"
    );
    let refused = support::tuf::fetch(&served.url, &root_json, "trusted_root.json", Some("+70m"))
        .expect_err("70 minutes on, the first timestamp has expired");
    assert!(refused.contains("xpired"), "{refused}");

    // 40 minutes on (past half the timestamp's hour), the operator runs
    // the stage again and a new timestamp is signed.
    env.restart_later("operator-later", "+40m").await;
    let files_v2 = eventually("a re-signed timestamp", WAIT, || async {
        let files = repo(&env).await.data.unwrap();
        (version(&files) > 1).then_some(files)
    })
    .await;
    assert_eq!(
        files_v2["root.json"], files_v1["root.json"],
        "root.json stays"
    );
    assert_eq!(
        files_v2
            .keys()
            .filter(|k| k.ends_with(".targets.json"))
            .count(),
        1,
        "nothing new to list: targets were not signed again"
    );
    served.update(&files_v2);
    let fetched = support::tuf::fetch(&served.url, &root_json, "trusted_root.json", Some("+70m"))
        .unwrap_or_else(|e| {
            panic!("python-tuf, 70 minutes on, refused the re-signed repository: {e}")
        });
    assert_eq!(&fetched, published);
    // A restarted TUF server (a new Pod on the same ConfigMap) serves the
    // same root.
    drop(served);
    let restarted = support::tuf::Served::start(&format!("{}-2", env.ns.name), &files_v2);
    let served_root = reqwest::get(format!("{}/1.root.json", restarted.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served_root, files_v1["root.json"]);
    let status = env
        .condition_until("demo", "TUFRepositoryCreated", "True")
        .await;
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(
        env.api::<Secret>()
            .get("demo-tuf-keys")
            .await
            .unwrap()
            .metadata
            .resource_version,
        keys_version,
        "the role keys were never rewritten"
    );
}
