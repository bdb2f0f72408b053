//! Both TUF clients bootstrap from the stack's own TUF workload and verify
//! with nothing else: cosign 2 (`initialize`) and sigstore-python
//! (`trust-instance`).

use super::*;

/// `published` is the `root.json` the stack publishes; stack-up wrote the
/// same to `out_dir/tuf/root.json`.
pub async fn clients_verify(
    env: &Exported,
    out_dir: &Path,
    published: &str,
    cosign2: &Cosign,
    python: &SigstorePython,
    signed: &[Signed],
) {
    let root_json = out_dir.join("tuf/root.json");
    assert_eq!(&std::fs::read_to_string(&root_json).unwrap(), published);
    let mirror = env.get("TUF_MIRROR").to_owned();
    cosign2.initialize(&mirror, &root_json).await;
    let (ok, log) = cosign2
        .verify_as(
            &signed[2].identity,
            None,
            &signed[2].blob,
            &signed[2].bundle,
        )
        .await;
    assert!(
        ok,
        "cosign verify-blob through the stack's TUF failed:\n{log}"
    );
    let instance = [format!("--instance={mirror}")];
    let mut trust_instance = instance.to_vec();
    trust_instance.extend(["trust-instance".to_owned(), root_json.display().to_string()]);
    let (ok, log) = python.run(&trust_instance).await;
    assert!(
        ok,
        "sigstore-python trust-instance with the stack's TUF:\n{log}"
    );
    let (ok, log) = python
        .verify(
            &instance,
            false,
            &signed[1].identity,
            &signed[1].blob,
            &signed[1].bundle,
        )
        .await;
    assert!(ok, "sigstore-python verify through the stack's TUF:\n{log}");
}
