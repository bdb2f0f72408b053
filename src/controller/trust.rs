//! The stack's published trust root: `trusted_root.json` and
//! `signing_config.json` in ConfigMap `<stack>-trust-root`, computed from
//! the public stage outputs and the previous version (so history is kept).

use k8s_openapi::jiff::Timestamp;
use sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot;

use crate::{
    api::SigstoreStackSpec,
    build::Owner,
    names,
    observed::Observed,
    stage::{Stage, table::Contribution},
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
    // The enabled stages that give the trust root something.
    let contributions: Vec<(Stage, Contribution)> = Stage::enabled_in(spec)
        .into_iter()
        .filter_map(|s| Some((s, s.contribution(owner, spec)?)))
        .collect();
    let pending: Vec<&str> = contributions
        .iter()
        .filter(|(s, _)| !done(*s))
        .map(|(s, _)| s.condition())
        .collect();
    if !pending.is_empty() {
        return Err(NotPublished::Waiting(pending.join(", ")));
    }
    // A finished stage whose public value is missing (deleted since) waits
    // for the stage to run again rather than publishing without it.
    let mut missing = Vec::new();
    let mut material = Material::default();
    for (_, c) in contributions {
        match public(observed, &c.secret, c.key) {
            Some(value) => material.set(c.slot, (value, c.url)),
            None => missing.push(format!("Secret {} key {}", c.secret, c.key)),
        }
    }
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
    // The logs that speak Rekor's v2 API.
    let v2_logs: Vec<String> =
        crate::build::component::Component::Rekor(crate::build::component::RekorBackend::Tiles)
            .wanted(spec)
            .then(|| crate::build::rekor_v2::url(owner))
            .into_iter()
            .collect();
    let config = trust_root::signing_config(&root, issuer, &v2_logs);
    Published::of(&root, &config).map_err(|e| NotPublished::Invalid(e.to_string()))
}
