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

use super::{b64, note};
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
    /// Every check.
    pub const ALL: [Self; 9] = [
        Self::TrustRootInvalid,
        Self::BundleInvalid,
        Self::CertificateInvalid,
        Self::SctInvalid,
        Self::CheckpointInvalid,
        Self::TlogInvalid,
        Self::TimestampInvalid,
        Self::SignatureInvalid,
        Self::IdentityMismatch,
    ];

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

#[cfg(test)]
mod tests {
    //! On bundles this operator's stacks made (`fixtures/`, public material
    //! only): cosign 3.1.3 on Rekor v2 + TesseraCT + TSA, and on Rekor v1
    //! (with its SET) checked against the trust root after the stack moved
    //! on to v2, where v1's entry is closed.

    use base64::Engine;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
    const V2_ROOT: &str = include_str!("fixtures/v2-root.json");
    const V2_BUNDLE: &str = include_str!("fixtures/v2.sigstore.json");
    const V2_ARTIFACT: &[u8] = include_bytes!("fixtures/v2.txt");
    const V2_IDENTITY: &str =
        "https://kubernetes.io/namespaces/tiles-19897-0/serviceaccounts/tiles-signer";
    const V1_ROOT: &str = include_str!("fixtures/v1-root.json");
    const V1_BUNDLE: &str = include_str!("fixtures/v1.sigstore.json");
    const V1_ARTIFACT: &[u8] = include_bytes!("fixtures/v1.txt");
    const V1_IDENTITY: &str =
        "https://kubernetes.io/namespaces/tiles-19897-0/serviceaccounts/mig-signer";

    fn v2(root: &Value, bundle: &Value) -> Result<(), Refused> {
        verify_bundle(
            &root.to_string(),
            &bundle.to_string(),
            V2_ARTIFACT,
            V2_IDENTITY,
            ISSUER,
        )
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    fn refusal(r: Result<(), Refused>) -> Refusal {
        r.expect_err("refused").reason
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn the_stacks_own_bundles_verify_with_nothing_but_their_trust_root() {
        verify_bundle(V2_ROOT, V2_BUNDLE, V2_ARTIFACT, V2_IDENTITY, ISSUER).unwrap();
        verify_bundle(V1_ROOT, V1_BUNDLE, V1_ARTIFACT, V1_IDENTITY, ISSUER).unwrap();
    }

    #[test]
    fn each_check_refuses_a_broken_input_and_says_which() {
        let (root, bundle) = (parse(V2_ROOT), parse(V2_BUNDLE));
        assert_eq!(
            refusal(verify_bundle(
                V2_ROOT,
                V2_BUNDLE,
                b"changed",
                V2_IDENTITY,
                ISSUER
            )),
            Refusal::SignatureInvalid
        );
        assert_eq!(
            refusal(verify_bundle(
                V2_ROOT,
                V2_BUNDLE,
                V2_ARTIFACT,
                V1_IDENTITY,
                ISSUER
            )),
            Refusal::IdentityMismatch
        );
        assert_eq!(
            refusal(verify_bundle(
                V2_ROOT,
                V2_BUNDLE,
                V2_ARTIFACT,
                V2_IDENTITY,
                "https://other"
            )),
            Refusal::IdentityMismatch
        );

        // The chain: another Fulcio root.
        let mut r = root.clone();
        r["certificateAuthorities"] = parse(V1_ROOT)["certificateAuthorities"].clone();
        assert_eq!(refusal(v2(&r, &bundle)), Refusal::CertificateInvalid);

        // The SCT: another CT log's key under the same ID.
        let other = crate::keys::PrivateKey::generate(crate::keys::Algorithm::EcdsaP256).unwrap();
        let mut r = root.clone();
        r["ctlogs"][0]["publicKey"]["rawBytes"] = json!(b64(&other.public_der));
        assert_eq!(refusal(v2(&r, &bundle)), Refusal::SctInvalid);

        // The time: Rekor v2 gives none, so without the TSA nothing dates
        // the certificate.
        let mut r = root.clone();
        r["timestampAuthorities"] = json!([]);
        assert_eq!(refusal(v2(&r, &bundle)), Refusal::TimestampInvalid);
        let mut b = bundle.clone();
        let ts = &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            [0]["signedTimestamp"];
        let mut der = base64::engine::general_purpose::STANDARD
            .decode(ts.as_str().unwrap())
            .unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        *ts = json!(b64(&der));
        assert_eq!(refusal(v2(&root, &b)), Refusal::TimestampInvalid);

        // The inclusion proof: a flipped proof hash.
        let mut b = bundle.clone();
        let h = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][0];
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(h.as_str().unwrap())
            .unwrap();
        bytes[0] ^= 1;
        *h = json!(b64(&bytes));
        assert!(matches!(
            refusal(v2(&root, &b)),
            Refusal::TlogInvalid | Refusal::CheckpointInvalid
        ));

        // The checkpoint: its origin under another name.
        let mut b = bundle.clone();
        let e = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
        let origin = e.as_str().unwrap().lines().next().unwrap().to_owned();
        *e = json!(
            e.as_str()
                .unwrap()
                .replacen(&origin, "elsewhere.example", 1)
        );
        assert_eq!(refusal(v2(&root, &b)), Refusal::CheckpointInvalid);

        // The log: the trust root's entry moved to another host, so the
        // checkpoint is not signed under its origin.
        let mut r = root.clone();
        let url = r["tlogs"][0]["baseUrl"]
            .as_str()
            .unwrap()
            .replacen("rekor-v2", "rekor-v3", 1);
        r["tlogs"][0]["baseUrl"] = json!(url);
        assert_eq!(refusal(v2(&r, &bundle)), Refusal::CheckpointInvalid);

        // Rekor v1's SET: a flipped signature.
        let (v1_root, mut b) = (parse(V1_ROOT), parse(V1_BUNDLE));
        let set = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"];
        let mut sig = base64::engine::general_purpose::STANDARD
            .decode(set.as_str().unwrap())
            .unwrap();
        sig[10] ^= 1;
        *set = json!(b64(&sig));
        assert_eq!(
            refusal(verify_bundle(
                &v1_root.to_string(),
                &b.to_string(),
                V1_ARTIFACT,
                V1_IDENTITY,
                ISSUER
            )),
            Refusal::TlogInvalid
        );

        assert_eq!(
            refusal(verify_bundle(
                "{",
                V2_BUNDLE,
                V2_ARTIFACT,
                V2_IDENTITY,
                ISSUER
            )),
            Refusal::TrustRootInvalid
        );
        assert_eq!(
            refusal(verify_bundle(
                V2_ROOT,
                "{}",
                V2_ARTIFACT,
                V2_IDENTITY,
                ISSUER
            )),
            Refusal::BundleInvalid
        );
    }
}
