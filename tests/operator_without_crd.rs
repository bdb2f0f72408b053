//! On a cluster without the CRD the operator stops at once with a message
//! that says how to install it. (A control plane of its own: every other
//! test binary installs the CRD.)

mod support;

use std::time::Duration;

use support::{Operator, bare_control_plane};

#[tokio::test]
async fn operator_without_crd_fails_with_a_hint() {
    let cp = bare_control_plane();
    // The API server answers before the operator starts.
    let _ = cp
        .client()
        .await
        .apiserver_version()
        .await
        .expect("API server up");
    let kubeconfig = cp.kubeconfig_for("no-crd-operator", &["system:masters"]);
    let mut op = Operator::start(&kubeconfig, &cp.dir, "no-crd-operator", &[]);
    let exit = op
        .wait_exit(Duration::from_secs(30))
        .expect("exits by itself");
    let logs = op.logs();
    assert_eq!(exit.code(), Some(1), "{logs}");
    assert!(
        logs.contains("sigstorestacks.scaffolding.sigstore.dev"),
        "{logs}"
    );
    assert!(logs.contains("is not installed"), "{logs}");
    assert!(logs.contains("kubectl apply --server-side"), "{logs}");
}

#[tokio::test]
async fn operator_without_cluster_fails_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("missing.kubeconfig");
    let mut op = Operator::start(&kubeconfig, dir.path(), "no-cluster", &[]);
    let exit = op
        .wait_exit(Duration::from_secs(30))
        .expect("exits by itself");
    let logs = op.logs();
    assert_eq!(exit.code(), Some(1), "{logs}");
    assert!(
        logs.contains("cannot configure the Kubernetes client"),
        "{logs}"
    );
}
