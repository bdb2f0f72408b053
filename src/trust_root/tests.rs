//! Unit tests of `trust_root`.

use sha2::{Digest, Sha256};
use sigstore_protobuf_specs::dev::sigstore::common::v1::PublicKeyDetails;

use super::*;
use crate::{
    api::KeyAlgorithm,
    keys::PrivateKey,
    stage::{createcertchain, createcerts, secrets},
};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

pub(crate) fn material() -> Material {
    let ca = createcerts::generate(
        &createcerts::CaSpec {
            common_name: "CA".into(),
            organization: "Org".into(),
            validity: std::time::Duration::from_secs(3600 * 24),
            algorithm: KeyAlgorithm::EcdsaP256,
        },
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let tsa = createcertchain::generate(time::OffsetDateTime::now_utc()).unwrap();
    let key = || {
        PrivateKey::generate(KeyAlgorithm::EcdsaP256)
            .unwrap()
            .public_pem()
    };
    Material {
        fulcio: Some((ca.cert, "http://f".into())),
        rekor: Some((key(), "http://r".into())),
        rekor_v2: None,
        ctlog: Some((key(), "http://c/p".into())),
        tsa: Some((
            secrets::text(&tsa, "cert-chain").unwrap().to_owned(),
            "http://t".into(),
        )),
    }
}

#[test]
fn log_ids_are_the_sha256_of_the_der_key_and_json_is_proto_json() {
    let m = material();
    let root = trusted_root(None, &m, at(1_000_000)).unwrap();
    let rekor = &root.tlogs[0];
    let der = rekor
        .public_key
        .as_ref()
        .unwrap()
        .raw_bytes
        .clone()
        .unwrap();
    assert_eq!(
        rekor.log_id.as_ref().unwrap().key_id,
        Sha256::digest(&der).to_vec()
    );
    let json: serde_json::Value = serde_json::to_value(&root).unwrap();
    assert_eq!(json["mediaType"], TRUSTED_ROOT_MEDIA_TYPE);
    assert_eq!(json["tlogs"][0]["hashAlgorithm"], "SHA2_256");
    assert_eq!(
        json["tlogs"][0]["publicKey"]["keyDetails"],
        "PKIX_ECDSA_P256_SHA_256"
    );
    assert_eq!(json["ctlogs"][0]["baseUrl"], "http://c/p");
    assert_eq!(
        json["certificateAuthorities"][0]["subject"]["commonName"],
        "CA"
    );
    assert_eq!(
        json["timestampAuthorities"][0]["certChain"]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        json["tlogs"][0]["publicKey"]["validFor"]["start"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // And it reads back as the same message.
    let back: TrustedRoot = serde_json::from_value(json).unwrap();
    assert_eq!(back, root);
}

#[test]
fn the_trust_config_holds_the_trusted_root_and_signing_config() {
    let root = trusted_root(None, &material(), at(1_000_000)).unwrap();
    let config = signing_config(&root, Some("https://issuer"), &[]);
    let published = Published::of(&root, &config).unwrap();
    let trust: serde_json::Value = serde_json::from_str(&published.trust_config).unwrap();
    assert_eq!(trust["mediaType"], CLIENT_TRUST_CONFIG_MEDIA_TYPE);
    let inner: serde_json::Value = serde_json::from_str(&published.trusted_root).unwrap();
    assert_eq!(trust["trustedRoot"], inner);
    let inner: serde_json::Value = serde_json::from_str(&published.signing_config).unwrap();
    assert_eq!(trust["signingConfig"], inner);
    assert_eq!(
        trust["signingConfig"]["rekorTlogUrls"][0]["url"], "http://r",
        "the signing config's own media type is kept inside"
    );
    assert_eq!(
        published.data().keys().collect::<Vec<_>>(),
        [SIGNING_CONFIG_KEY, TRUST_CONFIG_KEY, TRUSTED_ROOT_KEY]
    );
}

#[test]
fn unchanged_material_changes_nothing() {
    let m = material();
    let first = trusted_root(None, &m, at(1_000_000)).unwrap();
    let again = trusted_root(Some(&first), &m, at(2_000_000)).unwrap();
    assert_eq!(first, again);
}

#[test]
fn a_new_key_closes_the_old_entry_and_adds_one() {
    let m = material();
    let first = trusted_root(None, &m, at(1_000_000)).unwrap();
    let mut rotated = m.clone();
    rotated.fulcio = material().fulcio;
    let second = trusted_root(Some(&first), &rotated, at(2_000_000)).unwrap();
    assert_eq!(second.certificate_authorities.len(), 2);
    let old = second.certificate_authorities[0]
        .valid_for
        .as_ref()
        .unwrap();
    assert_eq!(old.end.as_ref().unwrap().seconds, 2_000_000);
    assert!(
        second.certificate_authorities[1]
            .valid_for
            .as_ref()
            .unwrap()
            .end
            .is_none()
    );
    assert_eq!(second.tlogs, first.tlogs, "other entries untouched");
    // Rotating back to the old CA adds a third entry, not a reopened one.
    let third = trusted_root(Some(&second), &m, at(3_000_000)).unwrap();
    assert_eq!(third.certificate_authorities.len(), 3);
    let config = signing_config(&third, Some("https://issuer"), &[]);
    assert_eq!(config.ca_urls.len(), 1, "only the open CA signs");
    assert_eq!(config.tsa_urls[0].url, "http://t/api/v1/timestamp");
    assert_eq!(config.oidc_urls[0].url, "https://issuer");
}

#[test]
fn a_log_key_that_comes_back_reopens_its_entry_so_no_log_id_is_listed_twice() {
    let m = material();
    let first = trusted_root(None, &m, at(1_000_000)).unwrap();
    // The CT log's public key replaced by another, then put back.
    let mut other = m.clone();
    other.ctlog = material().ctlog;
    let second = trusted_root(Some(&first), &other, at(2_000_000)).unwrap();
    assert_eq!(second.ctlogs.len(), 2);
    let third = trusted_root(Some(&second), &m, at(3_000_000)).unwrap();
    assert_eq!(third.ctlogs.len(), 2, "reopened, not listed twice");
    assert_eq!(third.ctlogs[0].log_id, first.ctlogs[0].log_id);
    assert!(log_open(&third.ctlogs[0]));
    assert!(!log_open(&third.ctlogs[1]), "the stranger is closed");
    // Rekor off and on again: one entry, open.
    let mut off = m.clone();
    off.rekor = None;
    let closed = trusted_root(Some(&first), &off, at(2_000_000)).unwrap();
    assert!(!log_open(&closed.tlogs[0]));
    let on = trusted_root(Some(&closed), &m, at(3_000_000)).unwrap();
    assert_eq!(on.tlogs.len(), 1);
    assert!(log_open(&on.tlogs[0]));
    let json = serde_json::to_string(&on).unwrap();
    sigstore_verify::trust_root::TrustedRoot::from_json(&json)
        .unwrap()
        .rekor_keys()
        .expect("sigstore-rs reads it");
}

fn log_open(l: &TransparencyLogInstance) -> bool {
    l.public_key
        .as_ref()
        .and_then(|k| k.valid_for.as_ref())
        .is_some_and(|r| r.end.is_none())
}

#[test]
fn a_component_turned_off_is_closed_and_no_longer_signs() {
    let m = material();
    let first = trusted_root(None, &m, at(1_000_000)).unwrap();
    let mut off = m.clone();
    off.tsa = None;
    let second = trusted_root(Some(&first), &off, at(2_000_000)).unwrap();
    let tsa = &second.timestamp_authorities;
    assert_eq!(tsa.len(), 1, "kept, so earlier timestamps verify");
    let range = tsa[0].valid_for.as_ref().unwrap();
    assert_eq!(range.end.as_ref().unwrap().seconds, 2_000_000);
    assert_eq!(second.tlogs, first.tlogs, "other entries untouched");
    let config = signing_config(&second, None, &[]);
    assert!(config.tsa_urls.is_empty() && config.tsa_config.is_none());
    assert_eq!(config.rekor_tlog_urls.len(), 1);
    // Off again changes nothing; back on with the same chain opens a
    // new entry beside the closed one.
    assert_eq!(
        trusted_root(Some(&second), &off, at(2_500_000)).unwrap(),
        second
    );
    let third = trusted_root(Some(&second), &m, at(3_000_000)).unwrap();
    assert_eq!(third.timestamp_authorities.len(), 2);
    assert_eq!(signing_config(&third, None, &[]).tsa_urls.len(), 1);
}

#[test]
fn bad_material_is_named() {
    let mut m = material();
    m.rekor = Some(("not a key".into(), "http://r".into()));
    assert_eq!(
        trusted_root(None, &m, at(0)).unwrap_err().to_string(),
        "Rekor's public key is not a PEM public key"
    );
}

#[test]
fn an_ed25519_log_is_named_by_its_note_key_hash_and_others_by_their_der() {
    use crate::keys::{Algorithm, PrivateKey};
    let ed = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    let raw = ed.ed25519_public().unwrap();
    let mut input = b"demo-rekor-v2.ns1.svc\n\x01".to_vec();
    input.extend_from_slice(raw);
    assert_eq!(
        log_key_id("demo-rekor-v2.ns1.svc", &ed.public_der).unwrap(),
        Sha256::digest(&input).to_vec()
    );
    assert_ne!(
        log_key_id("other.ns1.svc", &ed.public_der),
        log_key_id("demo-rekor-v2.ns1.svc", &ed.public_der),
        "the origin is part of an Ed25519 log's ID"
    );
    let ec = PrivateKey::generate(Algorithm::EcdsaP256).unwrap();
    assert_eq!(
        log_key_id("any.origin", &ec.public_der).unwrap(),
        Sha256::digest(&ec.public_der).to_vec()
    );
    assert_eq!(log_key_id("x", b"not a key"), None);
}

#[test]
fn both_rekors_are_open_side_by_side_v2_first_and_each_closes_when_switched_off() {
    use crate::keys::Algorithm;
    let mut m = material();
    let v2 = PrivateKey::generate(Algorithm::Ed25519).unwrap();
    m.rekor_v2 = Some((v2.public_pem(), "http://demo-rekor-v2.ns1.svc".into()));
    let both = trusted_root(None, &m, at(1_000_000)).unwrap();
    assert_eq!(both.tlogs.len(), 2);
    let entry = &both.tlogs[0];
    assert_eq!(entry.base_url, "http://demo-rekor-v2.ns1.svc");
    let key = entry.public_key.as_ref().unwrap();
    assert_eq!(key.key_details, PublicKeyDetails::PkixEd25519 as i32);
    assert_eq!(
        entry.log_id.as_ref().unwrap().key_id,
        log_key_id("demo-rekor-v2.ns1.svc", &v2.public_der).unwrap(),
        "an Ed25519 log is named by its note key hash under its origin"
    );
    let v2_logs = ["http://demo-rekor-v2.ns1.svc".to_owned()];
    let config = signing_config(&both, None, &v2_logs);
    let versions: Vec<(String, u32)> = config
        .rekor_tlog_urls
        .iter()
        .map(|s| (s.url.clone(), s.major_api_version))
        .collect();
    assert_eq!(
        versions,
        [
            ("http://demo-rekor-v2.ns1.svc".to_owned(), 2),
            ("http://r".to_owned(), 1)
        ]
    );
    // Unchanged material changes nothing; v1 switched off closes only v1.
    assert_eq!(trusted_root(Some(&both), &m, at(2_000_000)).unwrap(), both);
    m.rekor = None;
    let v2_only = trusted_root(Some(&both), &m, at(3_000_000)).unwrap();
    let open: Vec<&str> = v2_only
        .tlogs
        .iter()
        .filter(|l| {
            l.public_key
                .as_ref()
                .unwrap()
                .valid_for
                .as_ref()
                .unwrap()
                .end
                .is_none()
        })
        .map(|l| l.base_url.as_str())
        .collect();
    assert_eq!(open, ["http://demo-rekor-v2.ns1.svc"]);
    assert_eq!(v2_only.tlogs.len(), 2, "v1 stays, closed");
    let config = signing_config(&v2_only, None, &v2_logs);
    assert_eq!(config.rekor_tlog_urls.len(), 1);
}
