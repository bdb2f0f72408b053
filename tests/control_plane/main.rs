//! The API and the controller on a real control plane (etcd, kube-apiserver,
//! kube-controller-manager built by `make tools`).

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use sigstore_operator::{
    api::{Phase, SigstoreStack},
    conditions::{READY, find},
    crd::crd,
};
use support::{Operator, TestNamespace, control_plane, eventually};

mod operator;
mod validation;

const WAIT: Duration = Duration::from_secs(30);

/// Installs the CRD (idempotent) and waits until it is Established.
async fn install_crd(client: &Client) -> CustomResourceDefinition {
    support::apply_crd(client, &crd()).await.expect("apply CRD")
}

fn stack(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1",
        "kind": "SigstoreStack",
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn create(api: &Api<SigstoreStack>, body: Value) -> Result<SigstoreStack, kube::Error> {
    let obj: SigstoreStack = serde_json::from_value(body).expect("stack");
    api.create(&PostParams::default(), &obj).await
}

/// Creates from raw JSON, for bodies the Rust types would refuse to build.
async fn create_raw(client: &Client, ns: &str, body: Value) -> Result<DynamicObject, kube::Error> {
    let ar = ApiResource::erase::<SigstoreStack>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj: DynamicObject = serde_json::from_value(body).expect("object");
    api.create(&PostParams::default(), &obj).await
}

#[tokio::test]
async fn crd_installs_and_becomes_established() {
    let client = control_plane().client().await;
    let crd = install_crd(&client).await;
    assert_eq!(crd.spec.names.short_names, Some(vec!["sst".to_string()]));
    // The API server serves the kind under its short name and category.
    let discovery = kube::discovery::Discovery::new(client.clone())
        .filter(&["scaffolding.sigstore.dev"])
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = discovery
        .get("scaffolding.sigstore.dev")
        .and_then(|g| g.recommended_kind("SigstoreStack"))
        .expect("SigstoreStack is served");
    assert_eq!(ar.version, "v1alpha1");
    let subresources: Vec<&str> = caps
        .subresources
        .iter()
        .map(|(s, _)| s.plural.as_str())
        .collect();
    assert!(
        subresources.iter().any(|s| s.ends_with("status")),
        "{subresources:?}"
    );
}

#[tokio::test]
async fn empty_spec_is_accepted_with_defaults() {
    let client = control_plane().client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "empty-spec").await;
    let api: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let created = create(&api, stack("demo", json!({})))
        .await
        .expect("spec: {} is valid");
    // The API server filled in the documented defaults.
    assert!(created.spec.rekor.enabled && created.spec.fulcio.enabled);
    assert_eq!(created.spec.ctlog.prefix, "sigstorescaffolding");
    assert_eq!(created.spec.fulcio.ca.validity.to_string(), "87600h");
    assert_eq!(created.spec.tuf.expiry.timestamp.to_string(), "8760h");
    assert_eq!(
        created.spec,
        Default::default(),
        "server defaults equal the Rust defaults"
    );
    // A spec with every section spelled out is accepted too.
    let full = json!({
        "trillian": {"database": {"mode": "External",
            "image": "mirror.example/library/mariadb:11.4", "external": {
            "host": "mysql.db.svc", "credentialsSecret": "db-creds"}},
            "logServer": {"pod": {"resources": {"requests": {"cpu": "100m"}}}}},
        "pod": {"nodeSelector": {"pool": "sigstore"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "sigstore",
                                 "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
                "priorityClassName": "sigstore"},
        "stages": {"pod": {"resources": {"limits": {"memory": "128Mi"}}}},
        "rekor": {"enabled": false},
        "ctlog": {"prefix": "my-log"},
        "fulcio": {"ca": {"validity": "8760h", "keyAlgorithm": "ECDSA-P384",
                          "subject": {"commonName": "Test CA"}},
                   "oidcIssuers": [{"issuerURL": "https://token.actions.githubusercontent.com",
                                    "type": "github-workflow"}]},
        "tsa": {"enabled": false},
        "tuf": {"expiry": {"timestamp": "24h", "snapshot": "48h"},
                "pod": {"resources": {"limits": {"memory": "64Mi"}}}},
    });
    create(&api, stack("full", full))
        .await
        .expect("full spec is valid");
}
