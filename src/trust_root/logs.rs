//! A log's entry in the trust root, and its identity as clients compute
//! it: the origin (the host of its `baseUrl`) and the log ID.

use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};
use sigstore_protobuf_specs::dev::sigstore::{
    common::v1::{HashAlgorithm, LogId, PublicKey, PublicKeyDetails},
    trustroot::v1::TransparencyLogInstance,
};
use x509_parser::{prelude::FromDer, x509::SubjectPublicKeyInfo};

use super::{OPERATOR, TrustRootError, ders, opened};

/// The host of a log's URL: its checkpoint origin.
pub fn origin_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', ':']).next().unwrap_or(rest)
}

/// [`log_key_id`] of a PEM public key, in hex.
pub fn log_id_hex(origin: &str, public_pem: &str) -> Option<String> {
    let der = ders("a log key", public_pem, "PUBLIC KEY")
        .ok()?
        .into_iter()
        .next()?;
    let id = log_key_id(origin, &der)?;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// The OID of Ed25519 keys (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// A log's ID as clients compute it from its public key (SPKI DER) and
/// its origin: for an Ed25519 key, the C2SP signed-note key hash,
/// SHA-256(origin ‖ `\n` ‖ 0x01 ‖ the 32-byte key), which is what Rekor v2
/// names itself by; for every other key, SHA-256 of the DER key (Rekor v1,
/// ct_server, TesseraCT, and Rekor v2 on ECDSA). `None` when `spki` is
/// not a public key.
pub fn log_key_id(origin: &str, spki: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = SubjectPublicKeyInfo::from_der(spki).ok()?;
    if parsed.algorithm.algorithm.to_id_string() == ED25519_OID {
        let raw: &[u8] = &parsed.subject_public_key.data;
        let mut hash = Sha256::new();
        hash.update(origin.as_bytes());
        hash.update(b"\n");
        hash.update([0x01]);
        hash.update(raw);
        return Some(hash.finalize().to_vec());
    }
    Some(Sha256::digest(spki).to_vec())
}

pub(super) fn log(
    what: &'static str,
    pem: &str,
    url: &str,
    now: Timestamp,
) -> Result<TransparencyLogInstance, TrustRootError> {
    let der = ders(what, pem, "PUBLIC KEY")?.remove(0);
    let (_, spki) = SubjectPublicKeyInfo::from_der(&der).map_err(|_| TrustRootError::BadPem {
        what,
        expected: "public key",
    })?;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let key_details = match (
        spki.algorithm.algorithm.to_id_string().as_str(),
        curve.as_deref(),
    ) {
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => PublicKeyDetails::PkixEcdsaP256Sha256,
        ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => PublicKeyDetails::PkixEcdsaP384Sha384,
        (ED25519_OID, None) => PublicKeyDetails::PkixEd25519,
        _ => return Err(TrustRootError::UnsupportedKey { what }),
    };
    // Clients verify a log's checkpoints under the host of its `baseUrl`,
    // which is also what an Ed25519 log's ID hashes.
    let origin = origin_of(url);
    let key_id = log_key_id(origin, &der).ok_or(TrustRootError::BadPem {
        what,
        expected: "public key",
    })?;
    Ok(TransparencyLogInstance {
        base_url: url.to_owned(),
        hash_algorithm: HashAlgorithm::Sha2256 as i32,
        public_key: Some(PublicKey {
            raw_bytes: Some(der),
            key_details: key_details as i32,
            valid_for: opened(now),
        }),
        log_id: Some(LogId { key_id }),
        checkpoint_key_id: None,
        operator: OPERATOR.into(),
    })
}
