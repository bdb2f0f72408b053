//! The stages in one table. Each stage's rules (its outputs, its command,
//! when it is done, what it waits for, what it gives the trust root) live
//! in its own module as an implementation of [`Rules`]; [`Stage`] names
//! them and delegates, so adding a stage is one module, one variant and one
//! arm of [`Stage::rules`].

use k8s_openapi::jiff::Timestamp;

use super::{
    createcertchain, createcerts, createctconfig, createtesseract, createtree, createtuf, rekorkey,
    selfcheck,
};
use crate::{
    api::SigstoreStackSpec,
    build::{Owner, Placeholder, component::Component},
    observed::Observed,
    trust_root::Slot,
};

/// A bootstrap stage of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Fulcio's CA.
    Certs,
    /// Rekor v1's signing key.
    RekorKey,
    /// Rekor v2's signing key.
    RekorV2Key,
    /// Rekor's Trillian tree.
    RekorTree,
    /// The CT log's Trillian tree.
    CtlogTree,
    /// ct_server's key and config.
    CtConfig,
    /// TesseraCT's key and roots.
    TesseractConfig,
    /// The timestamp authority's key and chain.
    TsaChain,
    /// The TUF repository (role keys once; metadata signed and re-signed).
    Tuf,
    /// The sign-and-verify round trip (again whenever its inputs change).
    SelfCheck,
}

/// What a stage's rules read: the stack, its spec and what exists.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The stack.
    pub owner: &'a Owner,
    /// Its (valid) spec.
    pub spec: &'a SigstoreStackSpec,
    /// What it owns now.
    pub observed: &'a Observed,
}

/// Where a stage's public output goes in the trust root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    /// Which entry it describes.
    pub slot: Slot,
    /// The Secret that holds the public value.
    pub secret: String,
    /// Its key there.
    pub key: &'static str,
    /// The URL clients reach the service at.
    pub url: String,
}

/// One stage's rules. The operator side only: what the stage's Job does is
/// the stage module's `run`.
pub trait Rules: Sync {
    /// The short name in Job names and the stage label.
    fn id(&self) -> &'static str;
    /// The stage's condition type.
    fn condition(&self) -> &'static str;
    /// The component whose key material and records it makes.
    fn component(&self) -> Component;
    /// The objects it writes; the operator creates them empty.
    fn outputs(&self, stack: &str) -> Vec<Placeholder>;
    /// The `stage` subcommand and its flags, without `--timeout`,
    /// `--stack` and `--namespace`.
    fn args(&self, owner: &Owner, spec: &SigstoreStackSpec) -> Vec<String>;
    /// Whether its output is complete, with a sentence on what is there or
    /// missing.
    fn done(&self, view: View<'_>) -> (bool, String);
    /// What it still waits for before it can start, if anything.
    fn waiting_for(&self, _view: View<'_>) -> Option<String> {
        None
    }
    /// The condition reason once done, when not the generic `Created`.
    fn done_reason(&self) -> Option<&'static str> {
        None
    }
    /// The condition reason while it waits, when not the generic one.
    fn waiting_reason(&self, _view: View<'_>) -> Option<&'static str> {
        None
    }
    /// What its Jobs run for beyond the spec: a change starts a fresh Job
    /// (`--inputs=<key>`) at once.
    fn inputs(&self, _view: View<'_>) -> Option<String> {
        None
    }
    /// Why its last run for the current inputs failed, as a condition
    /// reason and message, when the stage says more than its Job's log.
    fn failure(&self, _view: View<'_>) -> Option<(&'static str, String)> {
        None
    }
    /// When a complete output must be made again all the same.
    fn refresh_at(&self, _observed: &Observed) -> Option<Timestamp> {
        None
    }
    /// The audience of the service-account token its Pod signs with, if
    /// it signs.
    fn token_audience(&self) -> Option<&'static str> {
        None
    }
    /// What it gives the trust root, if anything.
    fn contribution(&self, _owner: &Owner, _spec: &SigstoreStackSpec) -> Option<Contribution> {
        None
    }
}

impl Stage {
    /// Every stage, in the order they are reported.
    pub const ALL: [Self; 10] = [
        Self::Certs,
        Self::RekorKey,
        Self::RekorV2Key,
        Self::RekorTree,
        Self::CtlogTree,
        Self::CtConfig,
        Self::TesseractConfig,
        Self::TsaChain,
        Self::Tuf,
        Self::SelfCheck,
    ];

    /// The stage's rules.
    pub fn rules(self) -> &'static dyn Rules {
        match self {
            Self::Certs => &createcerts::rules::Certs,
            Self::RekorKey => &rekorkey::rules::V1,
            Self::RekorV2Key => &rekorkey::rules::V2,
            Self::RekorTree => &createtree::rules::REKOR,
            Self::CtlogTree => &createtree::rules::CTLOG,
            Self::CtConfig => &createctconfig::rules::CtConfig,
            Self::TesseractConfig => &createtesseract::rules::TesseractConfig,
            Self::TsaChain => &createcertchain::rules::TsaChain,
            Self::Tuf => &createtuf::rules::Tuf,
            Self::SelfCheck => &selfcheck::rules::SelfCheck,
        }
    }

    /// The stage whose Jobs carry `id` in their stage label.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The short name in Job names and the stage label.
    pub fn id(self) -> &'static str {
        self.rules().id()
    }

    /// The stage's condition type.
    pub fn condition(self) -> &'static str {
        self.rules().condition()
    }

    /// The component whose key material and records it makes.
    pub fn component(self) -> Component {
        self.rules().component()
    }

    /// Its outputs' `component` label.
    pub fn label(self) -> &'static str {
        self.component().label()
    }

    /// The stages that make `component`'s key material and records.
    pub fn of(component: Component) -> impl Iterator<Item = Self> {
        Self::ALL
            .into_iter()
            .filter(move |s| s.component() == component)
    }

    /// Whether `spec` needs this stage: whether it wants its component.
    pub fn enabled(self, spec: &SigstoreStackSpec) -> bool {
        self.component().wanted(spec)
    }

    /// The stages `spec` enables.
    pub fn enabled_in(spec: &SigstoreStackSpec) -> Vec<Self> {
        Self::ALL.into_iter().filter(|s| s.enabled(spec)).collect()
    }

    /// The objects it writes.
    pub fn outputs(self, stack: &str) -> Vec<Placeholder> {
        self.rules().outputs(stack)
    }

    /// What every stage `spec` enables writes.
    pub fn all_outputs(spec: &SigstoreStackSpec, stack: &str) -> Vec<Placeholder> {
        Self::enabled_in(spec)
            .into_iter()
            .flat_map(|s| s.outputs(stack))
            .collect()
    }

    /// Whether its output is complete, and what is there or missing.
    pub fn done(self, view: View<'_>) -> (bool, String) {
        self.rules().done(view)
    }

    /// What it still waits for, if anything.
    pub fn waiting_for(self, view: View<'_>) -> Option<String> {
        self.rules().waiting_for(view)
    }

    /// When a complete output must be made again.
    pub fn refresh_at(self, observed: &Observed) -> Option<Timestamp> {
        self.rules().refresh_at(observed)
    }

    /// What it gives the trust root, if anything.
    pub fn contribution(self, owner: &Owner, spec: &SigstoreStackSpec) -> Option<Contribution> {
        self.rules().contribution(owner, spec)
    }
}

/// Whether a stage's private Secret holds `required` and its public copy
/// holds `public_key`: the rule of every stage that makes a key pair.
pub fn key_pair_done(
    observed: &Observed,
    (private, required): (&str, &[&str]),
    (public, public_key): (&str, &str),
    what: &str,
) -> (bool, String) {
    let has =
        |name: &str, keys: &[&str]| observed.secrets.get(name).is_some_and(|s| s.has_all(keys));
    if has(private, required) && has(public, &[public_key]) {
        (true, format!("Secret {private} holds {what}"))
    } else {
        (
            false,
            format!("Secret {private} or {public} is not complete yet"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_conditions_are_unique_and_name_their_stage() {
        let mut ids: Vec<_> = Stage::ALL.iter().map(|s| s.id()).collect();
        let mut conditions: Vec<_> = Stage::ALL.iter().map(|s| s.condition()).collect();
        ids.sort_unstable();
        ids.dedup();
        conditions.sort_unstable();
        conditions.dedup();
        assert_eq!(ids.len(), Stage::ALL.len());
        assert_eq!(conditions.len(), Stage::ALL.len());
        for stage in Stage::ALL {
            assert_eq!(Stage::from_id(stage.id()), Some(stage));
            assert!(
                stage.condition().ends_with("Created") || stage == Stage::SelfCheck,
                "{stage:?}"
            );
        }
        assert_eq!(Stage::from_id("gone"), None);
    }

    #[test]
    fn every_component_but_trillian_has_stages_and_off_means_none_run() {
        let mut spec = SigstoreStackSpec::default();
        for c in Component::ALL {
            let trillian = c == Component::Trillian;
            assert_eq!(Stage::of(c).next().is_none(), trillian, "{c:?}");
        }
        spec.rekor.enabled = false;
        spec.ctlog.enabled = false;
        spec.fulcio.enabled = false;
        spec.tsa.enabled = false;
        spec.tuf.enabled = false;
        assert!(Stage::enabled_in(&spec).is_empty());
    }
}
