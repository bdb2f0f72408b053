//! Unit tests of createcerts.

use std::collections::BTreeMap;

use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair};
use x509_parser::extensions::BasicConstraints as Bc;

use super::*;

fn spec(alg: KeyAlgorithm) -> CaSpec {
    CaSpec {
        common_name: "Test CA".into(),
        organization: "Test Org".into(),
        validity: Duration::from_secs(10 * 365 * 24 * 3600),
        algorithm: alg,
    }
}

fn parse(pem: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect()
}

#[test]
fn generated_ca_passes_fulcio_checks() {
    let now = OffsetDateTime::now_utc();
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let ca = generate(&spec(alg), now).unwrap();
        let ders = parse(&ca.cert);
        assert_eq!(ders.len(), 1);
        let (_, cert) = X509Certificate::from_der(&ders[0]).unwrap();
        assert!(cert.is_ca());
        let bc: Option<Bc> = cert.basic_constraints().unwrap().map(|b| b.value.clone());
        assert_eq!(bc.and_then(|b| b.path_len_constraint), Some(1));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let subject = cert.subject().to_string();
        assert!(
            subject.contains("CN=Test CA") && subject.contains("O=Test Org"),
            "{subject}"
        );
        cert.verify_signature(None).expect("self-signed");
        let years =
            (cert.validity().not_after.timestamp() - now.unix_timestamp()) / (365 * 24 * 3600);
        assert_eq!(years, 10);
        assert!(cert.validity().not_before.timestamp() < now.unix_timestamp());
        // The encrypted key opens with the password and matches the certificate.
        assert!(
            ca.private
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        );
        let key = PrivateKey::from_pem(&ca.private, Some(&ca.password)).unwrap();
        assert_eq!(cert.public_key().raw, key.public_der.as_slice());
        assert_eq!(ca.public, key.public_pem());
        // What import accepts of our own output.
        import("t", &ca.cert, &ca.private, Some(&ca.password), now).unwrap();
    }
}

struct Chain {
    root: Issuer<'static, KeyPair>,
    root_pem: String,
}

fn root() -> Chain {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Root");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = p.self_signed(&key).unwrap();
    Chain {
        root_pem: cert.pem(),
        root: Issuer::new(p, key),
    }
}

fn intermediate(chain: &Chain, code_signing: bool) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "Intermediate");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    if code_signing {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    }
    (p.signed_by(&key, &chain.root).unwrap().pem(), key)
}

fn reason(r: Result<CaMaterial, StageError>) -> String {
    match r {
        Err(StageError::BadInput { reason, .. }) => reason,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn imports_a_valid_chain_and_reencrypts() {
    let chain = root();
    let (int_pem, int_key) = intermediate(&chain, true);
    let now = OffsetDateTime::now_utc();
    let full = format!("{int_pem}{}", chain.root_pem);
    let ca = import("Secret ns/byo", &full, &int_key.serialize_pem(), None, now).unwrap();
    assert_eq!(parse(&ca.cert).len(), 2, "whole chain kept, in order");
    let key = PrivateKey::from_pem(&ca.private, Some(&ca.password)).unwrap();
    assert_eq!(
        key.public_der,
        rcgen::PublicKeyData::subject_public_key_info(&int_key)
    );
}

#[test]
fn refuses_unusable_chains_saying_why() {
    let chain = root();
    let (int_pem, int_key) = intermediate(&chain, true);
    let (plain_int_pem, plain_int_key) = intermediate(&chain, false);
    let other = KeyPair::generate().unwrap();
    let now = OffsetDateTime::now_utc();
    let full = format!("{int_pem}{}", chain.root_pem);

    let r = reason(import("o", &full, &other.serialize_pem(), None, now));
    assert!(r.contains("does not match the first certificate"), "{r}");

    let reversed = format!("{}{int_pem}", chain.root_pem);
    let r = reason(import(
        "o",
        &reversed,
        &chain.root.key().serialize_pem(),
        None,
        now,
    ));
    assert!(r.contains("is not signed by certificate 1"), "{r}");

    let r = reason(import(
        "o",
        &format!("{plain_int_pem}{}", chain.root_pem),
        &plain_int_key.serialize_pem(),
        None,
        now,
    ));
    assert!(r.contains("without extendedKeyUsage codeSigning"), "{r}");

    let leaf_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
    p.is_ca = IsCa::NoCa;
    let leaf = p.self_signed(&leaf_key).unwrap().pem();
    let r = reason(import("o", &leaf, &leaf_key.serialize_pem(), None, now));
    assert!(r.contains("is not a CA"), "{r}");

    // rcgen certificates default to expiring in 4096.
    let later = now + Duration::from_secs(3000 * 365 * 24 * 3600);
    let r = reason(import("o", &full, &int_key.serialize_pem(), None, later));
    assert!(r.contains("is not valid now"), "{r}");

    let r = reason(import("o", "garbage", &int_key.serialize_pem(), None, now));
    assert!(r.contains("no PEM CERTIFICATE"), "{r}");

    let encrypted = PrivateKey::from_pem(&int_key.serialize_pem(), None)
        .unwrap()
        .encrypted_pem("pw")
        .unwrap();
    let r = reason(import("o", &full, &encrypted, None, now));
    assert!(r.contains("no password"), "{r}");
    import("o", &full, &encrypted, Some("pw"), now).unwrap();
    let r = reason(import("o", &full, &encrypted, Some("wrong"), now));
    assert!(r.contains("wrong password"), "{r}");
}

#[test]
fn refuses_more_defects_of_a_brought_ca() {
    let chain = root();
    let now = OffsetDateTime::now_utc();
    // A CA without keyCertSign.
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let pem = p.self_signed(&key).unwrap().pem();
    let r = reason(import("o", &pem, &key.serialize_pem(), None, now));
    assert!(r.contains("lacks keyUsage keyCertSign"), "{r}");
    // Not valid yet.
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.not_before = now + Duration::from_secs(3600);
    let pem = p.self_signed(&key).unwrap().pem();
    let r = reason(import("o", &pem, &key.serialize_pem(), None, now));
    assert!(r.contains("is not valid now"), "{r}");
    // Too large to be a CA.
    let huge = format!("{}{}", chain.root_pem, "A".repeat(MAX_BROUGHT_BYTES));
    let r = reason(import(
        "o",
        &huge,
        &chain.root.key().serialize_pem(),
        None,
        now,
    ));
    assert!(
        r.contains("key cert holds") && r.contains("at most 65536 bytes"),
        "{r}"
    );
    // A Secret without its key.
    let data = BTreeMap::from([(
        "cert".to_owned(),
        k8s_openapi::ByteString(chain.root_pem.clone().into_bytes()),
    )]);
    match check_brought("Secret ns/x", &data, now) {
        Err(StageError::BadInput { reason, .. }) => {
            assert!(reason.contains("has no text key private"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The root alone, with its key, passes.
    let data = BTreeMap::from([
        (
            "cert".to_owned(),
            k8s_openapi::ByteString(chain.root_pem.clone().into_bytes()),
        ),
        (
            "private".to_owned(),
            k8s_openapi::ByteString(chain.root.key().serialize_pem().into_bytes()),
        ),
    ]);
    check_brought("Secret ns/x", &data, now).unwrap();
}
