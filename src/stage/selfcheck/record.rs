//! What the self-check writes and reads, pure: its record's keys, why a
//! check failed (the condition reason), the key of the inputs a check ran
//! for, the identity a cluster token signs as, and which services the
//! published signing config names.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::verify::bundle::Refusal;

/// `passed` or `failed`.
pub const RESULT_KEY: &str = "result";
/// The result of a check that passed.
pub const PASSED: &str = "passed";
/// The result of a check that failed.
pub const FAILED: &str = "failed";
/// Why it failed: a [`Failure`] reason.
pub const REASON_KEY: &str = "reason";
/// What the failing step or server said.
pub const MESSAGE_KEY: &str = "message";
/// The inputs key ([`inputs_key`]) the check ran for.
pub const INPUTS_KEY: &str = "inputs";
/// When it finished (RFC 3339).
pub const CHECKED_AT_KEY: &str = "checkedAt";
/// How long the round trip took.
pub const DURATION_KEY: &str = "duration";
/// The certificate identity (SAN) it signed as.
pub const IDENTITY_KEY: &str = "identity";
/// The OIDC issuer of that identity.
pub const ISSUER_KEY: &str = "issuer";
/// The blob it signed.
pub const ARTIFACT_KEY: &str = "artifact.txt";

/// The key of the bundle for the Rekor log of API version `major`: named
/// after the log's component, `rekor` (v1) or `rekor-v2`.
pub fn bundle_key(major: u32) -> String {
    match major {
        1 => format!("{}.sigstore.json", crate::names::REKOR),
        n => format!("{}-v{n}.sigstore.json", crate::names::REKOR),
    }
}

/// Why a check failed: which step, and whose fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The projected service-account token cannot be read.
    TokenUnavailable,
    /// The published trust root or signing config cannot be used.
    TrustRootUnusable,
    /// The trust root changed while the check ran; the next check follows.
    TrustRootChanged,
    /// Fulcio could not be reached.
    FulcioUnreachable,
    /// Fulcio refused the certificate (or answered nonsense).
    FulcioRefused,
    /// A Rekor log could not be reached.
    RekorUnreachable,
    /// A Rekor log refused the entry (or answered nonsense).
    RekorRefused,
    /// The timestamp authority gave no timestamp.
    TimestampRefused,
    /// Making the key or the signature failed.
    SigningFailed,
    /// The bundle does not verify against the trust root.
    Verify(Refusal),
}

impl Failure {
    const SIGNING: [Self; 9] = [
        Self::TokenUnavailable,
        Self::TrustRootUnusable,
        Self::TrustRootChanged,
        Self::FulcioUnreachable,
        Self::FulcioRefused,
        Self::RekorUnreachable,
        Self::RekorRefused,
        Self::TimestampRefused,
        Self::SigningFailed,
    ];

    /// The condition reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TokenUnavailable => "TokenUnavailable",
            Self::TrustRootUnusable => "TrustRootUnusable",
            Self::TrustRootChanged => "TrustRootChanged",
            Self::FulcioUnreachable => "FulcioUnreachable",
            Self::FulcioRefused => "FulcioRefused",
            Self::RekorUnreachable => "RekorUnreachable",
            Self::RekorRefused => "RekorRefused",
            Self::TimestampRefused => "TimestampRefused",
            Self::SigningFailed => "SigningFailed",
            Self::Verify(r) => r.reason(),
        }
    }

    /// The failure a record's `reason` names.
    pub fn parse(reason: &str) -> Option<Self> {
        Self::SIGNING
            .into_iter()
            .chain(Refusal::ALL.into_iter().map(Self::Verify))
            .find(|f| f.reason() == reason)
    }
}

/// A failed check: which step, and what it (or the server) said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", failure.reason())]
pub struct CheckError {
    /// Which step.
    pub failure: Failure,
    /// What it said.
    pub message: String,
}

impl CheckError {
    /// A failure of `failure` saying `message`.
    pub fn new(failure: Failure, message: impl std::fmt::Display) -> Self {
        Self {
            failure,
            message: message.to_string(),
        }
    }
}

/// A record, as far as the operator's decisions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Whether the check passed.
    pub passed: bool,
    /// The inputs key it ran for.
    pub inputs: String,
    /// Why it failed, when it did.
    pub failure: Option<(Failure, String)>,
}

/// The record in the self-check ConfigMap's `data`, if it holds one.
pub fn read(data: &BTreeMap<String, String>) -> Option<Record> {
    let inputs = data.get(INPUTS_KEY)?.clone();
    let passed = data.get(RESULT_KEY)? == PASSED;
    let failure = (!passed).then(|| {
        let reason = data.get(REASON_KEY).map(String::as_str).unwrap_or_default();
        (
            Failure::parse(reason).unwrap_or(Failure::SigningFailed),
            data.get(MESSAGE_KEY).cloned().unwrap_or_default(),
        )
    });
    Some(Record {
        passed,
        inputs,
        failure,
    })
}

/// The digest of the trust material a check verifies against.
pub fn fingerprint(trusted_root: &str, signing_config: &str) -> String {
    let mut h = Sha256::new();
    h.update(trusted_root.as_bytes());
    h.update([0]);
    h.update(signing_config.as_bytes());
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a check runs for: the trust material's fingerprint and when the
/// stack's components last became available. Either changing calls for a
/// new check: the trust root was rotated or extended, or a server came
/// back and must be shown to sign again.
pub fn inputs_key(fingerprint: &str, available_since: Timestamp) -> String {
    format!("{fingerprint}.{}", available_since.as_second())
}

/// The fingerprint part of an inputs key.
pub fn fingerprint_of(inputs: &str) -> &str {
    inputs.split('.').next().unwrap_or_default()
}

/// The identity Fulcio gives a Kubernetes service-account token: the SAN
/// `https://kubernetes.io/namespaces/<ns>/serviceaccounts/<name>` for
/// `sub` `system:serviceaccount:<ns>:<name>`, and its issuer.
pub fn identity(claims: &Value) -> Result<(String, String), CheckError> {
    let field = |name: &str| {
        claims[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CheckError::new(Failure::TokenUnavailable, format!("no {name} claim")))
    };
    let sub = field("sub")?;
    let issuer = field("iss")?;
    let (ns, name) = sub
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .ok_or_else(|| {
            CheckError::new(
                Failure::TokenUnavailable,
                format!("the token's subject {sub:?} is not a service account"),
            )
        })?;
    Ok((
        format!("https://kubernetes.io/namespaces/{ns}/serviceaccounts/{name}"),
        issuer,
    ))
}

/// The services a check signs with: Fulcio, each Rekor log (URL, API
/// version) and the TSA, as the published signing config lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    /// Fulcio's URL.
    pub fulcio: String,
    /// Each Rekor log: its URL and major API version.
    pub rekor: Vec<(String, u32)>,
    /// The TSA's timestamp URL, when one runs.
    pub tsa: Option<String>,
}

/// The services `signing_config` (a `SigningConfig` v0.2) names.
pub fn services(signing_config: &str) -> Result<Services, CheckError> {
    let unusable = |m: &str| CheckError::new(Failure::TrustRootUnusable, m);
    let config: Value = serde_json::from_str(signing_config)
        .map_err(|e| unusable(&format!("signing_config.json: {e}")))?;
    let urls = |field: &str| -> Vec<(String, u32)> {
        config[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["validFor"]["end"].is_null())
            .filter_map(|s| {
                let major = s["majorApiVersion"].as_u64().unwrap_or(1);
                Some((s["url"].as_str()?.to_owned(), u32::try_from(major).ok()?))
            })
            .collect()
    };
    let fulcio = urls("caUrls")
        .into_iter()
        .next()
        .map(|(u, _)| u)
        .ok_or_else(|| unusable("signing_config.json lists no Fulcio (caUrls)"))?;
    let rekor = urls("rekorTlogUrls");
    if rekor.is_empty() {
        return Err(unusable(
            "signing_config.json lists no Rekor log (rekorTlogUrls)",
        ));
    }
    Ok(Services {
        fulcio,
        rekor,
        tsa: urls("tsaUrls").into_iter().next().map(|(u, _)| u),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_record_reads_back_with_its_reason() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(read(&BTreeMap::new()), None);
        let passed = read(&data(&[(RESULT_KEY, PASSED), (INPUTS_KEY, "ab.1")])).unwrap();
        assert!(passed.passed && passed.failure.is_none());
        let failed = read(&data(&[
            (RESULT_KEY, FAILED),
            (INPUTS_KEY, "ab.1"),
            (REASON_KEY, "SCTInvalid"),
            (MESSAGE_KEY, "no SCT"),
        ]))
        .unwrap();
        assert_eq!(
            failed.failure,
            Some((Failure::Verify(Refusal::SctInvalid), "no SCT".into()))
        );
        for f in Failure::SIGNING {
            assert_eq!(Failure::parse(f.reason()), Some(f));
        }
        assert_eq!(Failure::parse("Nonsense"), None);
    }

    #[test]
    fn the_inputs_key_follows_the_trust_root_and_availability() {
        let a = fingerprint("{root}", "{config}");
        assert_eq!(a.len(), 16);
        assert_ne!(a, fingerprint("{root2}", "{config}"));
        assert_ne!(a, fingerprint("{root}", "{config2}"));
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let key = inputs_key(&a, t);
        assert_eq!(fingerprint_of(&key), a);
        assert_ne!(key, inputs_key(&a, "2026-12-01T10:00:01Z".parse().unwrap()));
    }

    #[test]
    fn a_service_account_token_signs_as_its_account() {
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:ns1:demo-stages",
        });
        assert_eq!(
            identity(&claims).unwrap(),
            (
                "https://kubernetes.io/namespaces/ns1/serviceaccounts/demo-stages".into(),
                "https://kubernetes.default.svc.cluster.local".into()
            )
        );
        let user = json!({"iss": "https://x", "sub": "alice"});
        assert_eq!(
            identity(&user).unwrap_err().failure,
            Failure::TokenUnavailable
        );
        assert!(identity(&json!({"sub": "x"})).is_err());
    }

    #[test]
    fn the_signing_config_names_each_log_and_closed_entries_are_skipped() {
        let config = json!({
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": "http://demo-fulcio.ns1.svc", "majorApiVersion": 1}],
            "rekorTlogUrls": [
                {"url": "http://demo-rekor-v2.ns1.svc", "majorApiVersion": 2},
                {"url": "http://demo-rekor.ns1.svc", "majorApiVersion": 1},
                {"url": "http://old", "majorApiVersion": 1,
                 "validFor": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}},
            ],
            "tsaUrls": [{"url": "http://demo-tsa.ns1.svc/api/v1/timestamp", "majorApiVersion": 1}],
        })
        .to_string();
        let s = services(&config).unwrap();
        assert_eq!(s.fulcio, "http://demo-fulcio.ns1.svc");
        assert_eq!(
            s.rekor,
            [
                ("http://demo-rekor-v2.ns1.svc".to_owned(), 2),
                ("http://demo-rekor.ns1.svc".to_owned(), 1)
            ]
        );
        assert_eq!(
            s.tsa.as_deref(),
            Some("http://demo-tsa.ns1.svc/api/v1/timestamp")
        );
        assert_eq!(bundle_key(1), "rekor.sigstore.json");
        assert_eq!(bundle_key(2), "rekor-v2.sigstore.json");
        let no_logs = json!({"caUrls": [{"url": "http://f"}]}).to_string();
        assert_eq!(
            services(&no_logs).unwrap_err().failure,
            Failure::TrustRootUnusable
        );
        assert!(services("not json").is_err());
    }
}
