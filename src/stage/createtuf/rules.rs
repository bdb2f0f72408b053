//! When and how the operator runs createtuf: after the trust root is
//! published, again whenever it changes, and before a role expires.

use k8s_openapi::jiff::Timestamp;

use crate::{
    api::SigstoreStackSpec,
    build::{Owner, Placeholder, component::Component},
    names,
    observed::Observed,
    stage::table::{Rules, View},
    trust_root::{SIGNING_CONFIG_KEY, TRUSTED_ROOT_KEY},
    tuf,
};

/// The TUF repository.
pub struct Tuf;

impl Rules for Tuf {
    fn id(&self) -> &'static str {
        "tuf"
    }

    fn condition(&self) -> &'static str {
        "TUFRepositoryCreated"
    }

    fn component(&self) -> Component {
        Component::Tuf
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![
            Placeholder::Secret(names::tuf_keys(stack)),
            Placeholder::ConfigMap(names::tuf_repository(stack)),
        ]
    }

    fn args(&self, _owner: &Owner, spec: &SigstoreStackSpec) -> Vec<String> {
        let e = &spec.tuf.expiry;
        vec![
            "createtuf".into(),
            format!("--root-expiry={}", e.root),
            format!("--targets-expiry={}", e.targets),
            format!("--snapshot-expiry={}", e.snapshot),
            format!("--timestamp-expiry={}", e.timestamp),
        ]
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let name = names::tuf_repository(&view.owner.name);
        let Some(repo) = view.observed.tuf.as_ref().filter(|r| r.has_root) else {
            return (false, format!("ConfigMap {name} holds no repository yet"));
        };
        match inputs(view) {
            Some(digest) if repo.inputs.as_deref() == Some(digest.as_str()) => (
                true,
                format!("ConfigMap {name} holds the signed TUF repository"),
            ),
            _ => (
                false,
                format!("ConfigMap {name} does not list the current trust root yet"),
            ),
        }
    }

    fn waiting_for(&self, view: View<'_>) -> Option<String> {
        let trust = view.owner.name_of(names::TRUST_ROOT);
        let published = view
            .observed
            .config_maps
            .get(&trust)
            .is_some_and(|d| d.contains_key(TRUSTED_ROOT_KEY));
        (!published).then(|| format!("the trust root (ConfigMap {trust})"))
    }

    fn refresh_at(&self, observed: &Observed) -> Option<Timestamp> {
        observed.tuf.as_ref().and_then(|r| r.resign_at)
    }
}

/// The digest of the TUF repository's inputs as published now: the trust
/// root ConfigMap and the spec's expiries.
pub fn inputs(view: View<'_>) -> Option<String> {
    let trust = view
        .observed
        .config_maps
        .get(&view.owner.name_of(names::TRUST_ROOT))?;
    let root = trust.get(TRUSTED_ROOT_KEY)?;
    Some(tuf::inputs_digest(
        root,
        trust.get(SIGNING_CONFIG_KEY).map(String::as_str),
        &tuf::Expiry::from(&view.spec.tuf.expiry),
    ))
}
