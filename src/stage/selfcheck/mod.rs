//! selfcheck: a sign-and-verify round trip against the stack, as a client
//! in a Pod would make it.
//!
//! Reads the published trust root (`<stack>-trust-root`), signs a blob once
//! per Rekor log the signing config lists (an ephemeral key, a Fulcio
//! certificate for the Pod's projected service-account token, an RFC 3161
//! timestamp when a TSA runs, a hashedrekord entry), verifies each bundle
//! with nothing but `trusted_root.json` ([`crate::verify::bundle`]), and
//! records the result in ConfigMap `<stack>-selfcheck`: on success the
//! artifact and a bundle per log, on failure the step that failed and what
//! the server said. A failed check exits non-zero, so the operator retries
//! it with the stage backoff.

pub mod record;
pub mod rules;

use std::{path::PathBuf, time::Duration};

use k8s_openapi::{api::core::v1::ConfigMap, jiff::Timestamp};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Map, Value, json};
use sigstore_sign::{
    SigningContext, SigningServices, fulcio, oidc::IdentityToken, rekor, rekor::RekorApiVersion,
    reqwest,
};
use tokio::time::Instant;

use super::{StageContext, StageError, wait_for};
use crate::{
    names,
    trust_root::{SIGNING_CONFIG_KEY, TRUSTED_ROOT_KEY},
    verify::bundle::verify_bundle,
};
use record::{CheckError, Failure};

/// The flags of `stage selfcheck`.
#[derive(Clone, Debug)]
pub struct Args {
    /// The projected token to sign with.
    pub token: PathBuf,
    /// What the operator runs the check for.
    pub inputs: Option<String>,
}

/// What a passing check shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The blob signed.
    pub artifact: String,
    /// Each log's bundle: its ConfigMap key and JSON.
    pub bundles: Vec<(String, String)>,
    /// The SAN signed as.
    pub identity: String,
    /// Its issuer.
    pub issuer: String,
}

/// How long one request to a server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the self-check and records its result.
pub async fn run(ctx: &StageContext, args: &Args) -> Result<Proof, StageError> {
    let started = Instant::now();
    let deadline = started + ctx.timeout;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let trust = names::part(&ctx.stack, names::TRUST_ROOT);
    let what = format!("ConfigMap {}/{trust} key {TRUSTED_ROOT_KEY}", ctx.namespace);
    let (root, config) = wait_for(ctx, deadline, &what, || async {
        let data = cms.get_opt(&trust).await?.and_then(|c| c.data);
        Ok(data.and_then(|d| {
            Some((
                d.get(TRUSTED_ROOT_KEY)?.clone(),
                d.get(SIGNING_CONFIG_KEY)?.clone(),
            ))
        }))
    })
    .await?;
    let fingerprint = record::fingerprint(&root, &config);
    let inputs = args.inputs.clone().unwrap_or_else(|| fingerprint.clone());
    let result = if record::fingerprint_of(&inputs) == fingerprint {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let check = check(ctx, &args.token, &root, &config);
        tokio::select! {
            r = tokio::time::timeout(remaining, check) => r.unwrap_or_else(|_| {
                Err(CheckError::new(
                    Failure::SigningFailed,
                    format!("the round trip took longer than {:?}", ctx.timeout),
                ))
            }),
            () = ctx.cancel.cancelled() => return Err(StageError::Cancelled),
        }
    } else {
        Err(CheckError::new(
            Failure::TrustRootChanged,
            format!("ConfigMap {trust} changed since the operator started this check"),
        ))
    };
    let took = started.elapsed();
    let name = names::selfcheck(&ctx.stack);
    let old = cms
        .get_opt(&name)
        .await?
        .and_then(|c| c.data)
        .unwrap_or_default();
    let body = record_patch(&old, &inputs, &result, Timestamp::now(), took);
    cms.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    match result {
        Ok(proof) => {
            tracing::info!(
                configmap = %name,
                bundles = proof.bundles.len(),
                identity = %proof.identity,
                seconds = took.as_secs_f64(),
                "signed and verified against the published trust root"
            );
            Ok(proof)
        }
        Err(e) => Err(StageError::SelfCheck(e)),
    }
}

/// The merge patch that records `result` in the self-check ConfigMap,
/// whose data is `old`: the proof replaces the last one, and a failure
/// removes it, so what is published always belongs to the latest check.
pub fn record_patch(
    old: &std::collections::BTreeMap<String, String>,
    inputs: &str,
    result: &Result<Proof, CheckError>,
    at: Timestamp,
    took: Duration,
) -> Value {
    let mut data = Map::new();
    for key in old.keys() {
        if key.ends_with(".sigstore.json") || key == record::ARTIFACT_KEY {
            data.insert(key.clone(), Value::Null);
        }
    }
    let mut set = |k: &str, v: &str| data.insert(k.to_owned(), Value::String(v.to_owned()));
    set(record::INPUTS_KEY, inputs);
    set(
        record::CHECKED_AT_KEY,
        &at.round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or(at)
            .to_string(),
    );
    set(record::DURATION_KEY, &format!("{:.1}s", took.as_secs_f64()));
    match result {
        Ok(proof) => {
            set(record::RESULT_KEY, record::PASSED);
            set(record::IDENTITY_KEY, &proof.identity);
            set(record::ISSUER_KEY, &proof.issuer);
            set(record::ARTIFACT_KEY, &proof.artifact);
            for (key, bundle) in &proof.bundles {
                set(key, bundle);
            }
            data.insert(record::REASON_KEY.into(), Value::Null);
            data.insert(record::MESSAGE_KEY.into(), Value::Null);
        }
        Err(e) => {
            set(record::RESULT_KEY, record::FAILED);
            set(record::REASON_KEY, e.failure.reason());
            set(record::MESSAGE_KEY, &e.message);
        }
    }
    json!({ "data": data })
}

/// The JWT's claims, unverified: Fulcio verifies the token; this only
/// learns whom it names.
fn claims(token: &str) -> Result<Value, CheckError> {
    use base64::Engine;
    let unreadable = |why: &str| CheckError::new(Failure::TokenUnavailable, why);
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| unreadable("the token is not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| unreadable("the token's claims are not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| unreadable("the token's claims are not JSON"))
}

/// Which step a signing error belongs to, naming the server and with its
/// own message.
fn classify(e: sigstore_sign::Error, services: &record::Services, rekor: &str) -> CheckError {
    use sigstore_sign::Error as E;
    let failure = match &e {
        E::Fulcio(fulcio::Error::Http(_)) => Failure::FulcioUnreachable,
        E::Fulcio(_) => Failure::FulcioRefused,
        E::Rekor(rekor::Error::Http(_)) => Failure::RekorUnreachable,
        E::Rekor(_) => Failure::RekorRefused,
        E::Tsa(_) => Failure::TimestampRefused,
        E::Config(_) | E::TrustRoot(_) => Failure::TrustRootUnusable,
        _ => Failure::SigningFailed,
    };
    CheckError::new(
        failure,
        refusal_message(failure, services, rekor, &e.to_string()),
    )
}

/// What the condition says about a failed signing step: the server, what
/// it said, and for a refused token where to look.
fn refusal_message(
    failure: Failure,
    services: &record::Services,
    rekor: &str,
    said: &str,
) -> String {
    let tsa = services.tsa.as_deref().unwrap_or("(none)");
    match failure {
        Failure::FulcioUnreachable | Failure::FulcioRefused => {
            let mut m = format!("Fulcio at {}: {said}", services.fulcio);
            if failure == Failure::FulcioRefused && said.contains("identity token") {
                // Fulcio's answer names no cause; its log does.
                m.push_str(
                    ". Fulcio could not verify this Pod's service-account token: its Pod must \
                     read the cluster's OIDC discovery and keys with its own token (the \
                     ClusterRoleBinding system:service-account-issuer-discovery grants it) \
                     from the issuer's host; its log names the cause",
                );
            }
            m
        }
        Failure::TimestampRefused => format!("the TSA at {tsa}: {said}"),
        _ => format!("signing with Rekor at {rekor}: {said}"),
    }
}

/// `json` with every inclusion proof's `hashes` written out, `[]` for a
/// log's first entry (a tree of one): proto JSON leaves an empty list out,
/// and sigstore-python refuses a proof without the field.
fn with_proof_hashes(json: &str) -> String {
    let Ok(mut bundle) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    let entries = bundle
        .pointer_mut("/verificationMaterial/tlogEntries")
        .and_then(Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        if let Some(proof) = entry
            .get_mut("inclusionProof")
            .and_then(Value::as_object_mut)
        {
            proof.entry("hashes").or_insert_with(|| json!([]));
        }
    }
    serde_json::to_string_pretty(&bundle).unwrap_or_else(|_| json.to_owned())
}

/// The round trip: sign once per Rekor log, verify each bundle.
async fn check(
    ctx: &StageContext,
    token_path: &std::path::Path,
    root: &str,
    config: &str,
) -> Result<Proof, CheckError> {
    let services = record::services(config)?;
    let jwt = tokio::fs::read_to_string(token_path).await.map_err(|e| {
        CheckError::new(
            Failure::TokenUnavailable,
            format!("cannot read {}: {e}", token_path.display()),
        )
    })?;
    let jwt = jwt.trim();
    let (identity, issuer) = record::identity(&claims(jwt)?)?;
    let token =
        IdentityToken::from_jwt(jwt).map_err(|e| CheckError::new(Failure::TokenUnavailable, e))?;
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| CheckError::new(Failure::SigningFailed, e))?;
    let artifact = format!(
        "sigstore-operator self-check of SigstoreStack {}/{}\nsigned at {}\n",
        ctx.namespace,
        ctx.stack,
        Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or(Timestamp::now())
    );
    let mut bundles = Vec::new();
    for (url, major) in &services.rekor {
        let version = RekorApiVersion::from_major(*major).ok_or_else(|| {
            CheckError::new(
                Failure::TrustRootUnusable,
                format!("Rekor at {url} speaks API version {major}, which no client signs with"),
            )
        })?;
        let mut with = SigningServices::new(&services.fulcio, url).with_rekor(url, version);
        if let Some(tsa) = &services.tsa {
            with = with.with_tsa_url(tsa);
        }
        let signer = SigningContext::new(with)
            .with_http_client(http.clone())
            .signer(token.clone());
        let bundle = signer
            .sign(artifact.as_bytes())
            .await
            .map_err(|e| classify(e, &services, url))?;
        let json = bundle
            .to_json_pretty()
            .map_err(|e| CheckError::new(Failure::SigningFailed, e))?;
        let json = with_proof_hashes(&json);
        verify_bundle(root, &json, artifact.as_bytes(), &identity, &issuer).map_err(|r| {
            CheckError::new(
                Failure::Verify(r.reason),
                format!("the bundle from Rekor at {url}: {}", r.message),
            )
        })?;
        bundles.push((record::bundle_key(*major), json));
    }
    Ok(Proof {
        artifact,
        bundles,
        identity,
        issuer,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::verify::bundle::Refusal;

    fn proof() -> Proof {
        Proof {
            artifact: "blob".into(),
            bundles: vec![("rekor-v2.sigstore.json".into(), "{}".into())],
            identity: "https://kubernetes.io/namespaces/ns1/serviceaccounts/demo-stages".into(),
            issuer: "https://kubernetes.default.svc".into(),
        }
    }

    #[test]
    fn a_pass_replaces_the_proof_and_a_failure_removes_it() {
        let at: Timestamp = "2026-12-01T10:00:00.4Z".parse().unwrap();
        let old: BTreeMap<String, String> = [
            ("rekor.sigstore.json", "{old}"),
            ("artifact.txt", "old"),
            ("result", "failed"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let passed = record_patch(&old, "ab.1", &Ok(proof()), at, Duration::from_millis(1840));
        let d = &passed["data"];
        assert_eq!(d["result"], "passed");
        assert_eq!(d["rekor.sigstore.json"], Value::Null, "a log no longer run");
        assert_eq!(d["rekor-v2.sigstore.json"], "{}");
        assert_eq!(d["artifact.txt"], "blob");
        assert_eq!(d["checkedAt"], "2026-12-01T10:00:00Z");
        assert_eq!(d["duration"], "1.8s");
        assert_eq!(d["reason"], Value::Null);
        let failure = CheckError::new(Failure::Verify(Refusal::SctInvalid), "no trusted SCT");
        let failed = record_patch(&old, "ab.1", &Err(failure), at, Duration::from_secs(2));
        let d = &failed["data"];
        assert_eq!(d["result"], "failed");
        assert_eq!(d["reason"], "SCTInvalid");
        assert_eq!(d["message"], "no trusted SCT");
        assert_eq!(d["artifact.txt"], Value::Null);
        assert_eq!(d["rekor.sigstore.json"], Value::Null);
        assert_eq!(d["inputs"], "ab.1");
    }

    #[test]
    fn a_refusal_names_the_server_that_refused() {
        let services = record::Services {
            fulcio: "http://demo-fulcio".into(),
            rekor: vec![("http://demo-rekor".into(), 1)],
            tsa: Some("http://demo-tsa/api/v1/timestamp".into()),
        };
        let token = refusal_message(
            Failure::FulcioRefused,
            &services,
            "http://demo-rekor",
            "HTTP 400: There was an error processing the identity token",
        );
        assert!(
            token.starts_with("Fulcio at http://demo-fulcio: HTTP 400"),
            "{token}"
        );
        assert!(
            token.contains("system:service-account-issuer-discovery"),
            "{token}"
        );
        let down = refusal_message(Failure::FulcioUnreachable, &services, "", "refused");
        assert_eq!(down, "Fulcio at http://demo-fulcio: refused");
        let tsa = refusal_message(Failure::TimestampRefused, &services, "", "HTTP 500");
        assert_eq!(tsa, "the TSA at http://demo-tsa/api/v1/timestamp: HTTP 500");
        let rekor = refusal_message(Failure::RekorRefused, &services, "http://demo-rekor", "409");
        assert_eq!(rekor, "signing with Rekor at http://demo-rekor: 409");
    }

    #[test]
    fn a_first_entry_s_empty_proof_is_written_out() {
        let first = json!({"verificationMaterial": {"tlogEntries": [
            {"inclusionProof": {"logIndex": "0", "treeSize": "1"}},
            {"inclusionProof": {"hashes": ["aGFzaA=="]}},
            {"kindVersion": {}},
        ]}})
        .to_string();
        let out: Value = serde_json::from_str(&with_proof_hashes(&first)).unwrap();
        let entries = &out["verificationMaterial"]["tlogEntries"];
        assert_eq!(entries[0]["inclusionProof"]["hashes"], json!([]));
        assert_eq!(entries[1]["inclusionProof"]["hashes"], json!(["aGFzaA=="]));
        assert!(entries[2].get("inclusionProof").is_none());
        assert_eq!(with_proof_hashes("not json"), "not json");
    }

    #[test]
    fn a_token_names_its_account_and_garbage_is_refused() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://k","sub":"system:serviceaccount:a:b"}"#);
        let c = claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c["sub"], "system:serviceaccount:a:b");
        for bad in ["", "nodots", "h.!!!.s", "h.bm90IGpzb24.s"] {
            assert_eq!(claims(bad).unwrap_err().failure, Failure::TokenUnavailable);
        }
    }
}
