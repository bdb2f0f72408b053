//! C2SP signed notes (checkpoints), checked as a verifier does: with the
//! key and origin of a trust root's log, nothing else.

use base64::Engine;
use sigstore_operator::trust_root::log_key_id;

/// Base64, standard alphabet.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64, standard alphabet, decoded.
pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

/// A signed note's body (what is signed) and each signature line's name
/// and decoded `key hash ‖ signature`.
pub fn parse(envelope: &str) -> (String, Vec<(String, Vec<u8>)>) {
    let (body, signatures) = envelope
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("not a signed note: {envelope:?}"));
    let lines = signatures
        .lines()
        .filter_map(|l| l.strip_prefix("— "))
        .map(|l| {
            let (name, sig) = l.split_once(' ').expect("name and signature");
            (name.to_owned(), unb64(sig))
        })
        .collect();
    (format!("{body}\n"), lines)
}

/// Checks a checkpoint with the operator's verifier: its origin line is
/// `origin`, and it is signed by `spki` (DER) under `name`. Returns the
/// tree size.
pub fn check(envelope: &str, origin: &str, name: &str, spki: &[u8]) -> u64 {
    sigstore_operator::verify::note::verify(envelope, origin, name, spki)
        .unwrap_or_else(|e| panic!("{e}: {envelope}"))
        .size
}

/// Checks a Rekor v2 checkpoint (its origin is also its signer's name),
/// independently of the operator's verifier: its first signature is by
/// `spki` (Ed25519 DER) under `origin`, with the note key hash. Returns the
/// tree size.
pub fn check_ed25519(envelope: &str, origin: &str, spki: &[u8]) -> u64 {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    let (body, signatures) = parse(envelope);
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some(origin), "{envelope}");
    let size = lines.next().and_then(|s| s.parse().ok()).expect("a size");
    let id = log_key_id(origin, spki).expect("a public key");
    let (name, sig) = &signatures[0];
    assert_eq!(name, origin, "{envelope}");
    assert_eq!(&sig[..4], &id[..4], "the note key hash names the key");
    // An Ed25519 SPKI is a 12-byte prefix and the raw key.
    UnparsedPublicKey::new(&ED25519, &spki[12..])
        .verify(body.as_bytes(), &sig[4..])
        .unwrap_or_else(|_| panic!("the checkpoint is not signed by the key: {envelope}"));
    assert_eq!(
        check(envelope, origin, origin, spki),
        size,
        "the operator's verifier agrees"
    );
    size
}
