//! When and how the operator runs rekorkey for each Rekor, and what it
//! gives the trust root.

use super::REQUIRED;
use crate::{
    api::{LogKeyAlgorithm, SigstoreStackSpec},
    build::{
        self, Owner, Placeholder,
        component::{Component, RekorBackend},
    },
    stage::table::{Contribution, Rules, View, key_pair_done},
    trust_root::Slot,
};

/// A Rekor's signing key.
pub struct RekorKey(pub RekorBackend);

/// Rekor v1's key.
pub static V1: RekorKey = RekorKey(RekorBackend::Trillian);
/// Rekor v2's key.
pub static V2: RekorKey = RekorKey(RekorBackend::Tiles);

impl RekorKey {
    fn secrets(&self, stack: &str) -> (String, String) {
        super::secrets(self.0, stack)
    }
}

impl Rules for RekorKey {
    fn id(&self) -> &'static str {
        match self.0 {
            RekorBackend::Trillian => "rekor-key",
            RekorBackend::Tiles => "rekor2-key",
        }
    }

    fn condition(&self) -> &'static str {
        match self.0 {
            RekorBackend::Trillian => "RekorKeyCreated",
            RekorBackend::Tiles => "RekorV2KeyCreated",
        }
    }

    fn component(&self) -> Component {
        Component::Rekor(self.0)
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        let (private, public) = self.secrets(stack);
        vec![Placeholder::Secret(private), Placeholder::Secret(public)]
    }

    fn args(&self, _owner: &Owner, spec: &SigstoreStackSpec) -> Vec<String> {
        match self.0 {
            RekorBackend::Trillian => vec!["rekorkey".into()],
            RekorBackend::Tiles => {
                let algorithm = match spec.rekor.v2.key_algorithm {
                    LogKeyAlgorithm::Ed25519 => "ed25519",
                    LogKeyAlgorithm::EcdsaP256 => "ecdsa-p256",
                };
                vec![
                    "rekorkey".into(),
                    "--generation=v2".into(),
                    format!("--key-algorithm={algorithm}"),
                ]
            }
        }
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let (private, public) = self.secrets(&view.owner.name);
        let what = match self.0 {
            RekorBackend::Trillian => "Rekor's signing key",
            RekorBackend::Tiles => "Rekor v2's signing key",
        };
        key_pair_done(
            view.observed,
            (&private, REQUIRED),
            (&public, "public"),
            what,
        )
    }

    fn contribution(&self, owner: &Owner, _spec: &SigstoreStackSpec) -> Option<Contribution> {
        let (_, public) = self.secrets(&owner.name);
        Some(match self.0 {
            RekorBackend::Trillian => Contribution {
                slot: Slot::Rekor,
                secret: public,
                key: "public",
                url: build::rekor::url(owner),
            },
            RekorBackend::Tiles => Contribution {
                slot: Slot::RekorV2,
                secret: public,
                key: "public",
                url: build::rekor_v2::url(owner),
            },
        })
    }
}
