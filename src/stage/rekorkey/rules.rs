//! When and how the operator runs rekorkey, and what it gives the trust
//! root.

use super::REQUIRED;
use crate::{
    api::SigstoreStackSpec,
    build::{
        self, Owner, Placeholder,
        component::{Component, RekorBackend},
    },
    names,
    stage::table::{Contribution, Rules, View, key_pair_done},
    trust_root::Slot,
};

/// Rekor's signing key.
pub struct RekorKey;

impl Rules for RekorKey {
    fn id(&self) -> &'static str {
        "rekor-key"
    }

    fn condition(&self) -> &'static str {
        "RekorKeyCreated"
    }

    fn component(&self) -> Component {
        Component::Rekor(RekorBackend::Trillian)
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![
            Placeholder::Secret(names::rekor_signer(stack)),
            Placeholder::Secret(names::rekor_public(stack)),
        ]
    }

    fn args(&self, _owner: &Owner, _spec: &SigstoreStackSpec) -> Vec<String> {
        vec!["rekorkey".into()]
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let stack = &view.owner.name;
        key_pair_done(
            view.observed,
            (&names::rekor_signer(stack), REQUIRED),
            (&names::rekor_public(stack), "public"),
            "Rekor's signing key",
        )
    }

    fn contribution(&self, owner: &Owner, _spec: &SigstoreStackSpec) -> Option<Contribution> {
        Some(Contribution {
            slot: Slot::Rekor,
            secret: names::rekor_public(&owner.name),
            key: "public",
            url: build::rekor::url(owner),
        })
    }
}
