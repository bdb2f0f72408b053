//! A brought CA (`spec.fulcio.ca.existingSecret`) that cannot be imported
//! is refused before anything is applied: the stack is Invalid naming the
//! field and what is wrong, the user's Secret is byte-identical, and the
//! stack owns nothing. Mended, the stack goes on by itself.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sigstore_operator::api::Phase;

use super::*;

/// A CA certificate's parameters, then changed by `configure`.
fn ca_params(configure: impl FnOnce(&mut CertificateParams)) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Brought CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    configure(&mut p);
    p
}

/// A self-signed CA certificate and its key, as PEM.
fn ca(configure: impl FnOnce(&mut CertificateParams)) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    (ca_params(configure).self_signed(&key).unwrap().pem(), key)
}

/// A brought Secret's data: `(key, value)`; `None` for no Secret at all.
type Brought<'a> = Option<Vec<(&'a str, String)>>;

fn user_secret(name: &str, data: &[(&str, String)]) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": data.iter().cloned().collect::<BTreeMap<_, _>>(),
    }))
    .unwrap()
}

#[tokio::test]
async fn a_brought_ca_that_cannot_be_imported_is_refused_before_anything_is_applied() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let now = time::OffsetDateTime::now_utc();
    let (good, good_key) = ca(|_| {});
    let other = KeyPair::generate().unwrap();
    let (leaf, leaf_key) = ca(|p| p.is_ca = IsCa::NoCa);
    let (no_sign, no_sign_key) = ca(|p| p.key_usages = vec![KeyUsagePurpose::DigitalSignature]);
    let (expired, expired_key) = ca(|p| {
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    });
    let (future, future_key) = ca(|p| p.not_before = now + time::Duration::days(1));
    let rsa_1024 = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string();
    // An intermediate and its root, the root first.
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params(|_| {});
    let root_pem = root_params.self_signed(&root_key).unwrap().pem();
    let root = Issuer::new(root_params, root_key);
    let int_key = KeyPair::generate().unwrap();
    let mut ip = CertificateParams::new(Vec::<String>::new()).unwrap();
    ip.distinguished_name
        .push(DnType::CommonName, "Intermediate");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ip.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let int_pem = ip.signed_by(&int_key, &root).unwrap().pem();
    // An encrypted key, as createcerts writes one.
    let encrypted = sigstore_operator::keys::PrivateKey::from_pem(&good_key.serialize_pem(), None)
        .unwrap()
        .encrypted_pem("the-right-one")
        .unwrap();

    // (stack, its Secret's data or None for no Secret, what the message says)
    let cases: Vec<(&str, Brought, &str)> = vec![
        (
            "wrong-key",
            Some(vec![
                ("cert", good.clone()),
                ("private", other.serialize_pem()),
            ]),
            "key private does not match the first certificate",
        ),
        (
            "wrong-password",
            Some(vec![
                ("cert", good.clone()),
                ("private", encrypted.clone()),
                ("password", "not-it".into()),
            ]),
            "wrong password",
        ),
        (
            "not-a-ca",
            Some(vec![("cert", leaf), ("private", leaf_key.serialize_pem())]),
            "is not a CA",
        ),
        (
            "no-cert-sign",
            Some(vec![
                ("cert", no_sign),
                ("private", no_sign_key.serialize_pem()),
            ]),
            "lacks keyUsage keyCertSign",
        ),
        (
            "expired",
            Some(vec![
                ("cert", expired),
                ("private", expired_key.serialize_pem()),
            ]),
            "is not valid now",
        ),
        (
            "not-yet-valid",
            Some(vec![
                ("cert", future),
                ("private", future_key.serialize_pem()),
            ]),
            "is not valid now",
        ),
        (
            "rsa-1024",
            Some(vec![("cert", good.clone()), ("private", rsa_1024)]),
            "RSA keys must have 2048 to 4096 bits, this one has 1024",
        ),
        (
            "garbage",
            Some(vec![
                ("cert", "not a certificate".into()),
                ("private", good_key.serialize_pem()),
            ]),
            "holds no PEM CERTIFICATE",
        ),
        (
            "wrong-order",
            Some(vec![
                ("cert", format!("{root_pem}{int_pem}")),
                ("private", int_key.serialize_pem()),
            ]),
            "key private does not match the first certificate",
        ),
        (
            "huge",
            Some(vec![
                ("cert", format!("{good}{}", "A".repeat(900 * 1024))),
                ("private", good_key.serialize_pem()),
            ]),
            "a CA's chain or key is a few KiB",
        ),
        (
            "no-private",
            Some(vec![("cert", good.clone())]),
            "has no text key private",
        ),
        (
            "missing",
            None,
            "not found; it must exist in the stack's namespace",
        ),
    ];
    let stacks: Vec<&str> = cases.iter().map(|(s, ..)| *s).collect();
    let env = Env::start("brought-ca", &stacks, &trillian().address).await;
    env.kubelet.allow_all();
    let secrets: Api<Secret> = env.api();
    let mut brought = BTreeMap::new();
    for (stack, data, _) in &cases {
        let name = format!("{stack}-user-ca");
        if let Some(data) = data {
            let made = secrets
                .create(&PostParams::default(), &user_secret(&name, data))
                .await
                .unwrap();
            brought.insert(name.clone(), made);
        }
        env.create_stack(stack, json!({"fulcio": {"ca": {"existingSecret": name}}}))
            .await;
    }
    let mut refused = 0;
    for (stack, _, says) in &cases {
        let status = env
            .status_until(stack, "Invalid", |s| s.phase == Some(Phase::Invalid))
            .await;
        let ready = find(&status.conditions, READY).unwrap();
        assert_eq!(ready.reason, "InvalidSpec", "{stack}");
        assert!(
            ready.message.contains("spec.fulcio.ca.existingSecret") && ready.message.contains(says),
            "{stack}: {}",
            ready.message
        );
        assert!(
            env.owned::<Secret>(stack).await.is_empty(),
            "{stack}: a Secret"
        );
        assert!(
            env.owned::<ConfigMap>(stack).await.is_empty(),
            "{stack}: a ConfigMap"
        );
        assert!(
            env.owned::<Deployment>(stack).await.is_empty(),
            "{stack}: a Deployment"
        );
        assert!(env.owned::<Job>(stack).await.is_empty(), "{stack}: a Job");
        refused += 1;
    }
    for (name, made) in &brought {
        let now = secrets.get(name).await.unwrap();
        assert_eq!(now.data, made.data, "{name} is byte-identical");
        assert_eq!(
            now.metadata.resource_version, made.metadata.resource_version,
            "{name} was not written"
        );
    }
    println!(
        "brought CA: {refused} defects refused before anything was applied, every user Secret unchanged"
    );

    // Mended (the right key), the stack goes on by itself and imports it.
    secrets
        .replace(
            "wrong-key-user-ca",
            &PostParams::default(),
            &user_secret(
                "wrong-key-user-ca",
                &[
                    ("cert", good.clone()),
                    ("private", good_key.serialize_pem()),
                ],
            ),
        )
        .await
        .unwrap();
    let status = env
        .condition_until("wrong-key", "CertsCreated", "True")
        .await;
    assert!(
        status.fulcio.unwrap().root_certificate.unwrap().trim() == good.trim(),
        "the brought CA is the stack's root"
    );
}
