//! Checkpoints: C2SP signed notes (`<origin>\n<size>\n<root>\n[extra]\n\n—
//! <name> <base64(key hash ‖ signature)>`), checked against a log's key and
//! origin from the trust root, as clients check them.

use super::{b64, merkle::Hash};
use crate::{keys::ED25519_SPKI_PREFIX, trust_root::log_key_id};
use p256::ecdsa::{Signature as P256Signature, VerifyingKey, signature::Verifier as _};
use pkcs8::DecodePublicKey;

/// What a checkpoint commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (for Rekor v1 `<host> - <tree ID>`).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

/// Why a checkpoint is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// It is not a signed note of a checkpoint.
    #[error("not a checkpoint: {0}")]
    Malformed(&'static str),
    /// It is another log's.
    #[error("the checkpoint's origin is {got:?}, not the log's {want:?}")]
    Origin {
        /// What it says.
        got: String,
        /// What the trust root says.
        want: String,
    },
    /// No signature is by the log's key under the log's name.
    #[error("no signature by the log's key under {0:?}")]
    NoSignature(String),
    /// The log's key is of a kind checkpoints are not signed with here.
    #[error("the log's key is neither Ed25519 nor ECDSA P-256")]
    UnsupportedKey,
    /// A signature by the log's key does not verify.
    #[error("the signature by the log's key does not verify")]
    BadSignature,
}

/// The key hash a note signature line starts with for `spki` under `name`:
/// the first four bytes of the note key hash for Ed25519, of SHA-256 of
/// the DER key for ECDSA (as Rekor v1 and the CT logs sign).
pub fn key_hint(name: &str, spki: &[u8]) -> Option<[u8; 4]> {
    let id = log_key_id(name, spki)?;
    id.get(..4)?.try_into().ok()
}

/// Parses `envelope` and checks it is signed by `spki` (DER) under `name`
/// and commits to `origin` (its first line).
pub fn verify(
    envelope: &str,
    origin: &str,
    name: &str,
    spki: &[u8],
) -> Result<Checkpoint, NoteError> {
    let (body, signatures) = envelope
        .split_once("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let first = lines.next().ok_or(NoteError::Malformed("empty"))?;
    if first != origin {
        return Err(NoteError::Origin {
            got: first.to_owned(),
            want: origin.to_owned(),
        });
    }
    let size = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or(NoteError::Malformed("no tree size"))?;
    let root: Hash = lines
        .next()
        .and_then(b64)
        .and_then(|r| r.try_into().ok())
        .ok_or(NoteError::Malformed("no 32-byte root hash"))?;
    let hint = key_hint(name, spki).ok_or(NoteError::UnsupportedKey)?;
    let ours = signatures
        .lines()
        .filter_map(|l| l.strip_prefix("— "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n == name)
        .filter_map(|(_, sig)| b64(sig))
        .find(|sig| sig.len() > 4 && sig[..4] == hint)
        .ok_or_else(|| NoteError::NoSignature(name.to_owned()))?;
    check_signature(spki, body.as_bytes(), &ours[4..])?;
    Ok(Checkpoint {
        origin: first.to_owned(),
        size,
        root,
    })
}

fn check_signature(spki: &[u8], message: &[u8], signature: &[u8]) -> Result<(), NoteError> {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    if let Some(raw) = spki.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        return UnparsedPublicKey::new(&ED25519, raw)
            .verify(message, signature)
            .map_err(|_| NoteError::BadSignature);
    }
    let key = VerifyingKey::from_public_key_der(spki).map_err(|_| NoteError::UnsupportedKey)?;
    let sig = P256Signature::from_der(signature).map_err(|_| NoteError::BadSignature)?;
    key.verify(message, &sig)
        .map_err(|_| NoteError::BadSignature)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use sha2::{Digest, Sha256};

    use super::*;
    use crate::keys::{Algorithm, PrivateKey};

    fn enc(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// A note over `body` signed by `key` under `name`, as the logs sign.
    fn sign(body: &str, name: &str, key: &PrivateKey) -> String {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = match key.algorithm {
            Algorithm::Ed25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.pkcs8_der())
                .unwrap()
                .sign(body.as_bytes())
                .as_ref()
                .to_vec(),
            _ => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key.pkcs8_der())
                .unwrap()
                .sign(&rng, body.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        let mut line = key_hint(name, &key.public_der).unwrap().to_vec();
        line.extend(sig);
        format!("{body}\n— {name} {}\n", enc(&line))
    }

    #[test]
    fn ed25519_and_ecdsa_checkpoints_verify_and_every_change_is_refused() {
        let root = enc(&Sha256::digest(b"root"));
        for (algorithm, origin, name) in [
            (
                Algorithm::Ed25519,
                "demo-rekor-v2.ns.svc",
                "demo-rekor-v2.ns.svc",
            ),
            (
                Algorithm::EcdsaP256,
                "demo-rekor.ns.svc - 42",
                "demo-rekor.ns.svc",
            ),
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let body = format!("{origin}\n7\n{root}\n");
            let note = sign(&body, name, &key);
            let cp = verify(&note, origin, name, &key.public_der).unwrap();
            assert_eq!((cp.size, cp.origin.as_str()), (7, origin));
            assert_eq!(enc(&cp.root), root);

            let other = PrivateKey::generate(algorithm).unwrap();
            assert_eq!(
                verify(&note, origin, name, &other.public_der),
                Err(NoteError::NoSignature(name.into())),
                "another key's hint"
            );
            assert!(matches!(
                verify(&note, "another.origin", name, &key.public_der),
                Err(NoteError::Origin { .. })
            ));
            let grown = note.replacen("\n7\n", "\n8\n", 1);
            assert_eq!(
                verify(&grown, origin, name, &key.public_der),
                Err(NoteError::BadSignature),
                "a changed size"
            );
            assert_eq!(
                verify(&note, origin, "someone-else", &key.public_der),
                Err(NoteError::NoSignature("someone-else".into()))
            );
            assert!(matches!(
                verify("garbage", origin, name, &key.public_der),
                Err(NoteError::Malformed(_))
            ));
        }
    }
}
