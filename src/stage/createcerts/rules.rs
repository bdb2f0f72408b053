//! When and how the operator runs createcerts, and what it gives the
//! trust root.

use super::REQUIRED;
use crate::{
    api::{KeyAlgorithm, SigstoreStackSpec},
    build::{self, Owner, Placeholder, component::Component},
    names,
    observed::Observed,
    stage::table::{Contribution, Rules, View, key_pair_done},
    trust_root::Slot,
};

/// Fulcio's CA.
pub struct Certs;

impl Rules for Certs {
    fn id(&self) -> &'static str {
        "certs"
    }

    fn condition(&self) -> &'static str {
        "CertsCreated"
    }

    fn component(&self) -> Component {
        Component::Fulcio
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![
            Placeholder::Secret(names::fulcio_ca(stack)),
            Placeholder::Secret(names::fulcio_public(stack)),
        ]
    }

    fn args(&self, _owner: &Owner, spec: &SigstoreStackSpec) -> Vec<String> {
        let ca = &spec.fulcio.ca;
        let mut args = vec![
            "createcerts".into(),
            format!("--common-name={}", ca.subject.common_name),
            format!("--organization={}", ca.subject.organization),
            format!("--validity={}", ca.validity),
            format!("--key-algorithm={}", key_algorithm(ca.key_algorithm)),
        ];
        if let Some(user) = &ca.existing_secret {
            args.push(format!("--existing-secret={user}"));
        }
        args
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let stack = &view.owner.name;
        key_pair_done(
            view.observed,
            (&names::fulcio_ca(stack), REQUIRED),
            (&names::fulcio_public(stack), "cert"),
            "Fulcio's CA",
        )
    }

    fn contribution(&self, owner: &Owner, _spec: &SigstoreStackSpec) -> Option<Contribution> {
        Some(Contribution {
            slot: Slot::Fulcio,
            secret: names::fulcio_public(&owner.name),
            key: "cert",
            url: build::fulcio::url(owner),
        })
    }
}

fn key_algorithm(a: KeyAlgorithm) -> &'static str {
    match a {
        KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        KeyAlgorithm::Rsa3072 => "rsa3072",
    }
}

/// Whether a CT log's Secret (`secret`, its `fulcio-N` keys) trusts
/// Fulcio's current root; `true` while Fulcio has none.
pub fn trusts_current_root(
    owner: &Owner,
    observed: &Observed,
    secret: &crate::observed::SecretView,
) -> bool {
    let Some(root) = fulcio_root(owner, observed) else {
        return true;
    };
    let roots: crate::stage::secrets::Data = secret
        .public
        .iter()
        .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.clone().into_bytes())))
        .collect();
    crate::stage::createctconfig::merge_roots(&roots, &root)
        .1
        .is_none()
}

/// Fulcio's root certificate (the last of the public chain).
pub fn fulcio_root(owner: &Owner, observed: &Observed) -> Option<String> {
    let chain = observed
        .secrets
        .get(&names::fulcio_public(&owner.name))?
        .public
        .get("cert")?;
    crate::stage::createctconfig::root_of_chain(chain)
}
