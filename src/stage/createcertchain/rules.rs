//! When and how the operator runs createcertchain, and what it gives the
//! trust root.

use super::REQUIRED;
use crate::{
    api::SigstoreStackSpec,
    build::{self, Owner, Placeholder, component::Component},
    names,
    stage::table::{Contribution, Rules, View, key_pair_done},
    trust_root::Slot,
};

/// The timestamp authority's key and chain.
pub struct TsaChain;

impl Rules for TsaChain {
    fn id(&self) -> &'static str {
        "tsa-chain"
    }

    fn condition(&self) -> &'static str {
        "TSAChainCreated"
    }

    fn component(&self) -> Component {
        Component::Tsa
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![
            Placeholder::Secret(names::tsa_secret(stack)),
            Placeholder::Secret(names::tsa_public(stack)),
        ]
    }

    fn args(&self, _owner: &Owner, _spec: &SigstoreStackSpec) -> Vec<String> {
        vec!["createcertchain".into()]
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let stack = &view.owner.name;
        key_pair_done(
            view.observed,
            (&names::tsa_secret(stack), REQUIRED),
            (&names::tsa_public(stack), "cert-chain"),
            "the TSA's key and chain",
        )
    }

    fn contribution(&self, owner: &Owner, _spec: &SigstoreStackSpec) -> Option<Contribution> {
        Some(Contribution {
            slot: Slot::Tsa,
            secret: names::tsa_public(&owner.name),
            key: "cert-chain",
            url: build::tsa::url(owner),
        })
    }
}
