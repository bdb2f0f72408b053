//! When and how the operator runs createtesseract, and what it gives the
//! trust root.

use super::{REQUIRED, ROOTS_KEY};
use crate::{
    api::SigstoreStackSpec,
    build::{
        self, Owner, Placeholder,
        component::{Component, CtBackend},
    },
    names,
    stage::{
        Stage,
        createcerts::rules::trusts_current_root,
        table::{Contribution, Rules, View},
    },
    trust_root::Slot,
};

/// TesseraCT's key and roots.
pub struct TesseractConfig;

impl Rules for TesseractConfig {
    fn id(&self) -> &'static str {
        "tesseract"
    }

    fn condition(&self) -> &'static str {
        "TesseraCTConfigCreated"
    }

    fn component(&self) -> Component {
        Component::Ctlog(CtBackend::Tesseract)
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![
            Placeholder::Secret(names::tesseract_secret(stack)),
            Placeholder::Secret(names::tesseract_public(stack)),
        ]
    }

    fn args(&self, _owner: &Owner, _spec: &SigstoreStackSpec) -> Vec<String> {
        vec!["createtesseract".into()]
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let stack = &view.owner.name;
        let name = names::tesseract_secret(stack);
        let public = names::tesseract_public(stack);
        let secrets = &view.observed.secrets;
        let Some(secret) = secrets.get(&name).filter(|s| s.has_all(REQUIRED)) else {
            return (false, format!("Secret {name} is not complete yet"));
        };
        if !secrets.get(&public).is_some_and(|s| s.has_all(&["public"])) {
            return (false, format!("Secret {public} is not complete yet"));
        }
        if !secret.has_all(&[ROOTS_KEY]) {
            return (false, format!("Secret {name} has no {ROOTS_KEY} yet"));
        }
        if !trusts_current_root(view.owner, view.observed, secret) {
            return (
                false,
                format!("Secret {name} does not trust Fulcio's current root yet"),
            );
        }
        (
            true,
            format!("Secret {name} holds TesseraCT's key and roots"),
        )
    }

    fn waiting_for(&self, view: View<'_>) -> Option<String> {
        (!Stage::Certs.done(view).0).then(|| "Fulcio's CA".to_owned())
    }

    fn contribution(&self, owner: &Owner, _spec: &SigstoreStackSpec) -> Option<Contribution> {
        Some(Contribution {
            slot: Slot::Ctlog,
            secret: names::tesseract_public(&owner.name),
            key: "public",
            url: build::tesseract::url(owner),
        })
    }
}
