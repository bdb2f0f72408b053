//! The stack's published trust root: `trusted_root.json` and
//! `signing_config.json` in ConfigMap `<stack>-trust-root`, computed from
//! the public stage outputs and the previous version (so history is kept).

use k8s_openapi::jiff::Timestamp;
use sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot;

use super::observe::Observed;
use crate::{
    api::SigstoreStackSpec,
    build::{self, Owner, stages::Stage},
    names,
    trust_root::{self, Material, TrustRootError},
};

pub use crate::trust_root::{Published, SIGNING_CONFIG_KEY, TRUST_CONFIG_KEY, TRUSTED_ROOT_KEY};

/// Why the trust root is not published (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotPublished {
    /// A stage that contributes to it has not finished.
    Waiting(String),
    /// A stage output cannot be described; the message says which.
    Invalid(String),
}

fn public(observed: &Observed, secret: &str, key: &str) -> Option<String> {
    observed.secrets.get(secret)?.public.get(key).cloned()
}

pub use crate::trust_root::wanted;

/// The trust root for the stack's current material, continuing the one it
/// published before; `Err` while a contributing stage is unfinished.
pub fn publish(
    owner: &Owner,
    spec: &SigstoreStackSpec,
    observed: &Observed,
    done: impl Fn(Stage) -> bool,
    cluster_issuer: Option<&str>,
    now: Timestamp,
) -> Result<Published, NotPublished> {
    if !wanted(spec) {
        return Err(NotPublished::Waiting("a component to describe".into()));
    }
    let contributors = [
        Stage::Certs,
        Stage::RekorKey,
        Stage::CtConfig,
        Stage::TsaChain,
    ];
    let pending: Vec<&str> = contributors
        .iter()
        .filter(|s| s.enabled(spec) && !done(**s))
        .map(|s| s.condition())
        .collect();
    if !pending.is_empty() {
        return Err(NotPublished::Waiting(pending.join(", ")));
    }
    let stack = &owner.name;
    // A finished stage whose public value is missing (deleted since) waits
    // for the stage to run again rather than publishing without it.
    let mut missing = Vec::new();
    let mut take = |enabled: bool, secret: String, key: &str, url: String| {
        if !enabled {
            return None;
        }
        let value = public(observed, &secret, key);
        if value.is_none() {
            missing.push(format!("Secret {secret} key {key}"));
        }
        value.map(|v| (v, url))
    };
    let material = Material {
        fulcio: take(
            spec.fulcio.enabled,
            names::fulcio_public(stack),
            "cert",
            build::fulcio::url(owner),
        ),
        rekor: take(
            spec.rekor.enabled,
            names::rekor_public(stack),
            "public",
            build::rekor::url(owner),
        ),
        ctlog: take(
            spec.ctlog.enabled,
            names::ctlog_public(stack),
            "public",
            build::ctlog::url(owner, &spec.ctlog.prefix),
        ),
        tsa: take(
            spec.tsa.enabled,
            names::tsa_public(stack),
            "cert-chain",
            build::tsa::url(owner),
        ),
    };
    if !missing.is_empty() {
        return Err(NotPublished::Waiting(missing.join(", ")));
    }
    // What this stack published before; an unreadable one starts afresh.
    let previous: Option<TrustedRoot> = observed
        .config_maps
        .get(&owner.name_of(names::TRUST_ROOT))
        .and_then(|d| d.get(TRUSTED_ROOT_KEY))
        .and_then(|json| serde_json::from_str(json).ok());
    let root = trust_root::trusted_root(previous.as_ref(), &material, now)
        .map_err(|e: TrustRootError| NotPublished::Invalid(e.to_string()))?;
    let issuer = spec
        .fulcio
        .trust_cluster_issuer
        .then_some(cluster_issuer)
        .flatten();
    let config = trust_root::signing_config(&root, issuer);
    Published::of(&root, &config).map_err(|e| NotPublished::Invalid(e.to_string()))
}
