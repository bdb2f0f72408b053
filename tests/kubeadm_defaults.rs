//! A cluster with kubeadm's service-account defaults (what `kind create
//! cluster` makes without the project's config): the issuer is set, but
//! `--service-account-jwks-uri` is not, so the keys are published on the API
//! server's own address and Fulcio would refuse every cluster token. The
//! stack says so (FulcioAvailable `JWKSHostMismatch`, a Warning Event, not
//! Ready) instead of failing at the user's first signature. The project's
//! KinD config, whose flags the other node-agent tests run with, sets both
//! on the issuer's host for either kubeadm API version.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use sigstore_operator::api::SigstoreStack;
use support::{CLUSTER_ISSUER, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_on_the_api_servers_address_are_named_before_anyone_signs() {
    let cp = support::kubeadm_defaults_control_plane();
    let (cp, client, ns, _agent) = support::node::cluster_on(cp, "kubeadm", &[]).await;
    let _operator = support::start_for_namespace(cp, &client, &ns.name).await;
    // Fulcio alone is enough to show it.
    let stack: SigstoreStack = serde_json::from_value(json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1",
        "kind": "SigstoreStack",
        "metadata": {"name": "kubeadm"},
        "spec": {"rekor": {"enabled": false}, "ctlog": {"enabled": false},
                 "tsa": {"enabled": false}, "tuf": {"enabled": false}},
    }))
    .unwrap();
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    stacks
        .patch(
            "kubeadm",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&stack),
        )
        .await
        .unwrap();
    let message = eventually(
        "FulcioAvailable JWKSHostMismatch",
        Duration::from_secs(120),
        || async {
            let status = stacks.get("kubeadm").await.ok()?.status?;
            status
                .conditions
                .into_iter()
                .find(|c| c.type_ == "FulcioAvailable" && c.reason == "JWKSHostMismatch")
                .map(|c| c.message)
        },
    )
    .await;
    assert!(
        message.contains(&format!(
            "--service-account-jwks-uri={CLUSTER_ISSUER}/openid/v1/jwks"
        )) && message.contains("https://127.0.0.1:"),
        "the message names where the keys are and what to set: {message}"
    );
    let ready = stacks
        .get("kubeadm")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False", "{ready:?}");
    let events = eventually(
        "a JWKSHostMismatch Event",
        Duration::from_secs(30),
        || async {
            let list = Api::<Event>::namespaced(client.clone(), &ns.name)
                .list(&ListParams::default().fields("involvedObject.name=kubeadm"))
                .await
                .ok()?;
            let found: Vec<_> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("JWKSHostMismatch"))
                .collect();
            (!found.is_empty()).then_some(found)
        },
    )
    .await;
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
}

/// Both kubeadm versions KinD uses get the same flags, and they put the
/// keys on the issuer's host.
#[test]
fn the_kind_config_puts_issuer_and_keys_on_one_host() {
    let patches = support::kind_config_patches();
    let v1beta3 = patches
        .iter()
        .find(|p| p["apiVersion"] == "kubeadm.k8s.io/v1beta3")
        .expect("a v1beta3 patch");
    let flags = support::kind_config_flags();
    assert_eq!(flags.len(), 2, "{flags:?}");
    for (name, value) in &flags {
        assert_eq!(
            v1beta3["apiServer"]["extraArgs"][name.as_str()].as_str(),
            Some(value.as_str()),
            "v1beta3 sets {name} as v1beta4 does"
        );
    }
    let get = |n: &str| flags.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        get("service-account-issuer").as_deref(),
        Some(CLUSTER_ISSUER)
    );
    assert_eq!(
        get("service-account-jwks-uri"),
        Some(format!("{CLUSTER_ISSUER}/openid/v1/jwks"))
    );
    for (path, needle) in [
        ("hack/kind-up.sh", "hack/kind-config.yaml"),
        ("action.yml", "hack/kind-config.yaml"),
    ] {
        let text = std::fs::read_to_string(support::repo_root().join(path)).unwrap();
        assert!(
            text.contains(needle),
            "{path} creates the cluster with {needle}"
        );
    }
}
