//! A stack stored under another schema, which this version cannot read,
//! neither stalls the operator nor stops other stacks from being reconciled.
//! (A control plane of its own: the test swaps the CRD's schema.)

mod support;

use std::time::Duration;

use kube::{
    Api,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::json;
use sigstore_operator::api::{Phase, SigstoreStack};
use support::{Operator, TestNamespace, bare_control_plane, eventually};

#[tokio::test]
async fn an_unreadable_stack_does_not_stall_the_others() {
    let cp = bare_control_plane();
    let client = cp.client().await;
    // An older, looser schema that accepted anything in spec.
    let mut loose = sigstore_operator::crd::crd();
    let schema = loose.spec.versions[0].schema.as_mut().unwrap();
    schema.open_api_v3_schema = Some(
        serde_json::from_value(json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        }))
        .unwrap(),
    );
    support::apply_crd(&client, &loose)
        .await
        .expect("loose CRD");
    let ns = TestNamespace::new(&client, "unreadable").await;
    let ar = ApiResource::erase::<SigstoreStack>(&());
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1",
        "kind": "SigstoreStack",
        "metadata": {"name": "old"},
        "spec": {"ctlog": {"prefix": 42}},
    }))
    .unwrap();
    dynamic
        .create(&PostParams::default(), &bad)
        .await
        .expect("stored under the loose schema");
    support::apply_crd(&client, &sigstore_operator::crd::crd())
        .await
        .expect("CRD");

    let kubeconfig = cp.kubeconfig_for("unreadable-operator", &["system:masters"]);
    let op = Operator::start(
        &kubeconfig,
        &cp.dir,
        "unreadable-operator",
        &["--watch-namespace", &ns.name],
    );
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let good: SigstoreStack = serde_json::from_value(json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1",
        "kind": "SigstoreStack",
        "metadata": {"name": "new"},
        "spec": {},
    }))
    .unwrap();
    stacks
        .create(&PostParams::default(), &good)
        .await
        .expect("create");
    eventually(
        "the readable stack to be reconciled",
        Duration::from_secs(30),
        || async {
            let s = stacks.get("new").await.ok()?.status?;
            (s.phase == Some(Phase::Progressing)).then_some(())
        },
    )
    .await;
    eventually(
        "the unreadable stack to be reported",
        Duration::from_secs(30),
        || async {
            let logs = op.logs();
            (logs.contains("cannot read this SigstoreStack") && logs.contains("\"stack\":\"old\""))
                .then_some(())
        },
    )
    .await;
    // Counted as an error (once per pass: the watch may deliver it more than once).
    let metrics = op.get("/metrics").await.expect("metrics").1;
    let counted = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"sigstore_operator_reconcile_errors_total{error="invalid_object"} "#)
        })
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or_default();
    assert!(counted >= 1.0, "{metrics}");
}
