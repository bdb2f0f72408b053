//! The operator binary against the control plane: status, manifests, stacks side by side, garbage collection.

use super::*;

/// The built binary, against the real API server: status, probes, metrics,
/// no writes once settled, and a clean stop on SIGTERM. The stack enables
/// no component, so it is Ready as soon as its stage RBAC exists.
#[tokio::test]
async fn operator_binary_reports_status_and_settles() {
    let cp = control_plane();
    let client = cp.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "operator-binary").await;
    // The operator runs with exactly the ClusterRole of config/rbac.
    let user = "operator-binary-test";
    support::bind_operator_role(&client, user).await;
    let kubeconfig = cp.kubeconfig_for(user, &[]);
    let mut op = Operator::start(&kubeconfig, &cp.dir, user, &["--watch-namespace", &ns.name]);
    eventually("/readyz to answer 200", WAIT, || async {
        matches!(op.get("/readyz").await, Some((200, _))).then_some(())
    })
    .await;
    assert_eq!(op.get("/healthz").await.map(|r| r.0), Some(200));

    let api: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let nothing = json!({
        "rekor": {"enabled": false}, "ctlog": {"enabled": false}, "fulcio": {"enabled": false},
        "tsa": {"enabled": false}, "tuf": {"enabled": false},
    });
    create(&api, stack("demo", nothing)).await.expect("create");
    let settled = eventually("status with observedGeneration 1", WAIT, || async {
        let s = api.get("demo").await.ok()?;
        (s.status.as_ref()?.observed_generation == Some(1)).then_some(s)
    })
    .await;
    let status = settled.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::Ready));
    let ready = find(&status.conditions, READY).expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Ready")
    );
    assert_eq!(ready.observed_generation, Some(1));
    // Status is written by server-side apply under the operator's manager.
    let managers: Vec<_> = settled
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect();
    assert_eq!(
        managers,
        [(Some("sigstore-operator".into()), Some("Apply".into()))]
    );

    // The status write itself triggers another pass, which must write nothing.
    let reconciles = eventually("two reconciles", WAIT, || async {
        op.metric("sigstore_operator_reconciles_total")
            .await
            .filter(|n| *n >= 2.0)
    })
    .await;
    // The stage identity (applied, so `patch`) and the status. A pass that
    // ran on a cache not yet showing a write may repeat the same patch. The
    // API server logs a request after answering it, so wait for the audit
    // log to show every status write the operator counted.
    let settled = eventually("the audit log to show the status writes", WAIT, || async {
        let writes = cp.writes_by(user);
        let counted = op.metric("sigstore_operator_status_writes_total").await?;
        (count(&writes, "sigstorestacks") as f64 == counted && count(&writes, "events") > 0)
            .then_some(writes)
    })
    .await;
    let resources: std::collections::BTreeSet<&str> =
        settled.iter().map(|w| w.resource.as_str()).collect();
    assert_eq!(
        resources,
        [
            "events",
            "rolebindings",
            "roles",
            "serviceaccounts",
            "sigstorestacks"
        ]
        .into(),
        "{settled:?}"
    );
    assert!(
        settled
            .iter()
            .all(|w| w.verb == "patch" || w.resource == "events"),
        "{settled:?}"
    );

    // A change that is not a spec change: reconciled, nothing written.
    api.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"touched": "yes"}}})),
    )
    .await
    .expect("annotate");
    eventually("a reconcile of the annotated stack", WAIT, || async {
        op.metric("sigstore_operator_reconciles_total")
            .await
            .filter(|n| *n > reconciles)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cp.writes_by(user), settled, "no write without a change");
    assert_eq!(
        op.metric("sigstore_operator_status_writes_total").await,
        Some(count(&settled, "sigstorestacks") as f64)
    );

    // A spec the API server accepts but the operator cannot act on.
    api.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"fulcio": {"ca": {"validity": "1000000h"}}}})),
    )
    .await
    .expect("CEL has no upper bound on validity");
    let invalid = eventually("InvalidSpec at generation 2", WAIT, || async {
        let s = api.get("demo").await.ok()?.status?;
        (s.observed_generation == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(invalid.phase, Some(Phase::Invalid));
    let ready = find(&invalid.conditions, READY).expect("Ready");
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready.message.contains("spec.fulcio.ca.validity"),
        "{}",
        ready.message
    );
    // Ready went from True to False, so its transition time moved.
    assert!(
        ready.last_transition_time
            >= find(&status.conditions, READY)
                .unwrap()
                .last_transition_time
    );
    // One more status write, and one Warning event saying the same (the
    // audit log may trail the answers a moment).
    eventually(
        "a status write and an event in the audit log",
        WAIT,
        || async {
            let writes = cp.writes_by(user);
            (count(&writes, "sigstorestacks") > count(&settled, "sigstorestacks")
                && count(&writes, "events") > count(&settled, "events"))
            .then_some(())
        },
    )
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    // The event follows the status write, so it may land a moment later.
    let warning = eventually("an InvalidSpec event", WAIT, || async {
        let listed = events.list(&Default::default()).await.ok()?;
        listed
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("InvalidSpec"))
    })
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert_eq!(
        warning.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("demo")
    );
    assert!(
        warning
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("spec.fulcio.ca.validity")
    );

    let metrics = op.get("/metrics").await.expect("metrics").1;
    assert!(
        metrics.contains("sigstore_operator_reconcile_duration_seconds_bucket"),
        "{metrics}"
    );

    let exit = op
        .terminate(Duration::from_secs(10))
        .expect("exits within 10 s of SIGTERM");
    assert!(
        exit.success(),
        "clean exit, got {exit}; logs:\n{}",
        op.logs()
    );
    let logs = op.logs();
    let last: Value =
        serde_json::from_str(logs.lines().last().unwrap_or("{}")).expect("JSON log lines");
    assert_eq!(last["message"], "stopped cleanly", "{logs}");
    assert!(!logs.contains("BEGIN"), "no key material in logs");
}

/// Every manifest in config/ is accepted by the real API server.
#[tokio::test]
async fn manifests_are_accepted() {
    let client = control_plane().client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "manifests").await;
    let root = support::repo_root().join("config");
    let mut applied = Vec::new();
    for dir in ["crd", "manager", "rbac", "samples", "samples/generations"] {
        let objects = support::manifests::read_dir(&root.join(dir));
        assert!(!objects.is_empty(), "config/{dir} has manifests");
        applied.extend(support::manifests::apply(&client, &objects, &ns.name).await);
    }
    let kinds: Vec<String> = applied
        .iter()
        .filter_map(|o| o.types.as_ref().map(|t| t.kind.clone()))
        .collect();
    for kind in [
        "CustomResourceDefinition",
        "Namespace",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "SigstoreStack",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} applied: {kinds:?}");
    }
    // The sample is the documented empty spec.
    let sample = Api::<SigstoreStack>::namespaced(client.clone(), &ns.name)
        .get("sample")
        .await
        .expect("sample stack");
    assert_eq!(sample.spec, Default::default());
}

/// Several stacks in one namespace each get their own status.
#[tokio::test]
async fn stacks_side_by_side() {
    let cp = control_plane();
    let client = cp.client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "side-by-side").await;
    let kubeconfig = cp.kubeconfig_for("side-by-side-operator", &["system:masters"]);
    let _op = Operator::start(
        &kubeconfig,
        &cp.dir,
        "side-by-side-operator",
        &["--watch-namespace", &ns.name],
    );
    let api: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    for name in ["a", "b", "c"] {
        create(&api, stack(name, json!({}))).await.expect("create");
    }
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"ctlog": {"prefix": "b-log"}}})),
    )
    .await
    .expect("patch b");
    for (name, generation) in [("a", 1), ("b", 2), ("c", 1)] {
        eventually(
            &format!("{name} at generation {generation}"),
            WAIT,
            || async {
                let s = api.get(name).await.ok()?.status?;
                (s.observed_generation == Some(generation) && s.phase == Some(Phase::Progressing))
                    .then_some(())
            },
        )
        .await;
    }
}

/// The harness runs kube-controller-manager: owned objects are collected and
/// namespaces finish terminating, as later tests of owned objects rely on.
#[tokio::test]
async fn controller_manager_collects_garbage() {
    let client = control_plane().client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "garbage").await;
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let owner = create(&stacks, stack("owner", json!({})))
        .await
        .expect("create");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "owner-child", "ownerReferences": [{
            "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
            "name": "owner", "uid": owner.uid().expect("uid"), "controller": true,
        }]},
        "data": {"k": "v"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("child");
    stacks
        .delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete");
    eventually(
        "the owned ConfigMap to be collected",
        Duration::from_secs(60),
        || async {
            cms.get_opt("owner-child")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let scratch = TestNamespace::new(&client, "scratch").await;
    namespaces
        .delete(&scratch.name, &DeleteParams::default())
        .await
        .expect("delete ns");
    eventually(
        "the namespace to be finalized",
        Duration::from_secs(60),
        || async {
            namespaces
                .get_opt(&scratch.name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// How many of `writes` went to `resource`.
fn count(writes: &[support::AuditWrite], resource: &str) -> usize {
    writes.iter().filter(|w| w.resource == resource).count()
}
