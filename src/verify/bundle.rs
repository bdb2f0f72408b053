//! A Sigstore bundle checked with nothing but a stack's published
//! `trusted_root.json`: sigstore-verify does the chain to Fulcio's root,
//! the SCT, the inclusion proof, the SET and the RFC 3161 timestamp;
//! on top, each checkpoint must be signed under its log's origin (the host
//! of its `baseUrl`), which sigstore-verify does not check.

use serde_json::Value;
use sigstore_verify::{
    CertificateError, Error as VerifyError, TransparencyLogError, VerificationPolicy,
    trust_root::TrustedRoot, types::Bundle,
};

use super::note;
use crate::trust_root::origin_of;

/// Which check refused a bundle: the self-check's condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The trust root cannot be read.
    TrustRootInvalid,
    /// The bundle cannot be read.
    BundleInvalid,
    /// The certificate does not chain to Fulcio's root in the trust root.
    CertificateInvalid,
    /// The certificate's SCT is missing or not by a trusted CT log.
    SctInvalid,
    /// A checkpoint is not signed by its log's key under its origin.
    CheckpointInvalid,
    /// An inclusion proof, SET or entry does not hold.
    TlogInvalid,
    /// No timestamp verifies against the TSA chain.
    TimestampInvalid,
    /// The signature or the artifact does not match.
    SignatureInvalid,
    /// The certificate's identity or issuer is not the one expected.
    IdentityMismatch,
}

impl Refusal {
    /// The condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TrustRootInvalid => "TrustRootInvalid",
            Self::BundleInvalid => "BundleInvalid",
            Self::CertificateInvalid => "CertificateInvalid",
            Self::SctInvalid => "SCTInvalid",
            Self::CheckpointInvalid => "CheckpointInvalid",
            Self::TlogInvalid => "TlogInvalid",
            Self::TimestampInvalid => "TimestampInvalid",
            Self::SignatureInvalid => "SignatureInvalid",
            Self::IdentityMismatch => "IdentityMismatch",
        }
    }
}

/// A refused bundle: which check, and what it said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.reason())]
pub struct Refused {
    /// Which check.
    pub reason: Refusal,
    /// What it said.
    pub message: String,
}

fn refused(reason: Refusal, message: impl std::fmt::Display) -> Refused {
    Refused {
        reason,
        message: message.to_string(),
    }
}

fn classify(e: &VerifyError) -> Refusal {
    match e {
        VerifyError::Certificate(CertificateError::Sct(_)) => Refusal::SctInvalid,
        VerifyError::Certificate(_) | VerifyError::TrustedCertificate(_) => {
            Refusal::CertificateInvalid
        }
        VerifyError::TransparencyLog(TransparencyLogError::Checkpoint(_)) => {
            Refusal::CheckpointInvalid
        }
        VerifyError::TransparencyLog(_) => Refusal::TlogInvalid,
        VerifyError::Timestamp(_) => Refusal::TimestampInvalid,
        VerifyError::IdentityMismatch { .. } | VerifyError::IssuerMismatch { .. } => {
            Refusal::IdentityMismatch
        }
        VerifyError::SignatureInvalid(_) | VerifyError::ArtifactMismatch(_) => {
            Refusal::SignatureInvalid
        }
        VerifyError::InvalidTrustRoot(_) | VerifyError::TrustRoot(_) => Refusal::TrustRootInvalid,
        _ => Refusal::BundleInvalid,
    }
}

fn b64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Checks every checkpoint in `bundle` against its log in `root`: signed by
/// the log's key under the host of its `baseUrl`, committing to that
/// origin (Rekor v2) or to `<host> - <tree>` (Rekor v1).
fn check_checkpoints(root: &Value, bundle: &Value) -> Result<(), Refused> {
    let entries = bundle["verificationMaterial"]["tlogEntries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for entry in entries {
        let Some(envelope) = entry["inclusionProof"]["checkpoint"]["envelope"].as_str() else {
            continue;
        };
        let key_id = entry["logId"]["keyId"].as_str().unwrap_or_default();
        let log = root["tlogs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["logId"]["keyId"].as_str() == Some(key_id))
            .ok_or_else(|| {
                refused(
                    Refusal::TlogInvalid,
                    format!("no log {key_id} in the trust root"),
                )
            })?;
        let host = origin_of(log["baseUrl"].as_str().unwrap_or_default());
        let spki = log["publicKey"]["rawBytes"]
            .as_str()
            .and_then(b64)
            .ok_or_else(|| refused(Refusal::TrustRootInvalid, "a log without a key"))?;
        let first = envelope.lines().next().unwrap_or_default();
        let origin = if entry["kindVersion"]["version"] == "0.0.2" {
            host.to_owned()
        } else {
            // Rekor v1 names its tree after its host.
            match first.strip_prefix(&format!("{host} - ")) {
                Some(_) => first.to_owned(),
                None => {
                    return Err(refused(
                        Refusal::CheckpointInvalid,
                        format!("the checkpoint's origin {first:?} is not {host} - <tree>"),
                    ));
                }
            }
        };
        note::verify(envelope, &origin, host, &spki)
            .map_err(|e| refused(Refusal::CheckpointInvalid, e))?;
    }
    Ok(())
}

/// Verifies `bundle_json` for `artifact`, signed by `identity` (a SAN)
/// with a token of `issuer`, with nothing but `trusted_root_json`.
pub fn verify_bundle(
    trusted_root_json: &str,
    bundle_json: &str,
    artifact: &[u8],
    identity: &str,
    issuer: &str,
) -> Result<(), Refused> {
    let root = TrustedRoot::from_json(trusted_root_json)
        .map_err(|e| refused(Refusal::TrustRootInvalid, e))?;
    let bundle = Bundle::from_json(bundle_json).map_err(|e| refused(Refusal::BundleInvalid, e))?;
    let policy = VerificationPolicy::new(identity, issuer);
    sigstore_verify::verify(artifact, &bundle, &policy, &root)
        .map_err(|e| refused(classify(&e), e))?;
    let root: Value = serde_json::from_str(trusted_root_json)
        .map_err(|e| refused(Refusal::TrustRootInvalid, e))?;
    let bundle: Value =
        serde_json::from_str(bundle_json).map_err(|e| refused(Refusal::BundleInvalid, e))?;
    check_checkpoints(&root, &bundle)
}
