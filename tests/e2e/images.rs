//! Container images: cosign 3 signs one in a real registry and attaches an
//! attestation, keyless with the exported signing config as the README
//! shows it; verification needs only the stack's trust material.

use super::*;

/// Signs and attests an image as `identity`; verify and
/// verify-attestation pass, and refuse another image and another identity.
pub async fn sign_and_verify(
    env: &Exported,
    trusted_root: &Path,
    cosign3: &Cosign,
    identity: &str,
    ns: &str,
) {
    let registry = Registry::start(ns);
    let image = registry.push_image("app", "v1", "the image\n").await;
    let other = registry.push_image("app", "v2", "another image\n").await;
    // Keyless with the exported signing config, as the README shows it.
    let keyless = |command: &str, more: &[String]| {
        let mut args = vec![
            command.to_owned(),
            "--yes".into(),
            format!("--signing-config={}", env.get("SIGNING_CONFIG")),
            format!("--trusted-root={}", trusted_root.display()),
            format!("--identity-token={}", cosign3.token.display()),
        ];
        args.extend_from_slice(more);
        args.push(image.clone());
        args
    };
    let (ok, log) = cosign3.run(&keyless("sign", &[])).await;
    assert!(ok, "cosign 3 sign of {image}:\n{log}");
    let predicate = cosign3.work.join("predicate.json");
    std::fs::write(
        &predicate,
        r#"{"buildDefinition": {"buildType": "https://example.com/e2e"}, "runDetails": {}}"#,
    )
    .unwrap();
    let (ok, log) = cosign3
        .run(&keyless(
            "attest",
            &[
                "--type=slsaprovenance1".into(),
                format!("--predicate={}", predicate.display()),
            ],
        ))
        .await;
    assert!(ok, "cosign 3 attest of {image}:\n{log}");
    let verify = |command: &str, image: &str, identity: &str| {
        let mut args = vec![
            command.to_owned(),
            format!("--trusted-root={}", trusted_root.display()),
            format!("--certificate-identity={identity}"),
            format!("--certificate-oidc-issuer={CLUSTER_ISSUER}"),
        ];
        if command == "verify-attestation" {
            args.push("--type=slsaprovenance1".into());
        }
        args.push(image.to_owned());
        args
    };
    for command in ["verify", "verify-attestation"] {
        let (ok, log) = cosign3.run(&verify(command, &image, identity)).await;
        assert!(ok, "cosign 3 {command} {image}:\n{log}");
        let (ok, _) = cosign3.run(&verify(command, &other, identity)).await;
        assert!(!ok, "cosign 3 {command} must refuse an image nobody signed");
        let stranger = format!("https://kubernetes.io/namespaces/{ns}/serviceaccounts/other");
        let (ok, _) = cosign3.run(&verify(command, &image, &stranger)).await;
        assert!(!ok, "cosign 3 {command} must refuse another identity");
    }
}
