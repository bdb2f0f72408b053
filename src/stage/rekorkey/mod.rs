//! rekorkey: a Rekor log's signing key, made once.
//!
//! For Rekor v1, writes Secret `<stack>-rekor-signer` (`private`: P-256
//! PKCS#8 encrypted with PBES2, `password`, `public`) and `<stack>-rekor-pub`
//! (`public`); for Rekor v2, `<stack>-rekor-v2-signer` and
//! `<stack>-rekor-v2-pub` alike, with an Ed25519 (or P-256) key.

pub mod rules;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{
    StageContext, StageError,
    secrets::{self, Created, Data},
};
use crate::{
    build::component::{Component, RekorBackend},
    keys::{Algorithm, PrivateKey, random_password},
    names,
};

/// Keys of the signer Secret.
pub const REQUIRED: &[&str] = &["private", "password", "public"];

/// A new Rekor v1 signing key (ECDSA P-256), as Secret data.
pub fn generate() -> Result<Data, StageError> {
    generate_with(Algorithm::EcdsaP256)
}

/// A new signing key of `algorithm` (Rekor v2 takes Ed25519 or ECDSA), as
/// Secret data.
pub fn generate_with(algorithm: Algorithm) -> Result<Data, StageError> {
    key_data(&PrivateKey::generate(algorithm)?)
}

/// `key` as Secret data: `private` (PKCS#8 encrypted under a fresh random
/// password), `password` and `public`.
pub fn key_data(key: &PrivateKey) -> Result<Data, StageError> {
    let password = random_password();
    let private = key.encrypted_pem(&password)?;
    let public = key.public_pem();
    Ok(secrets::data([
        ("private", private.as_str()),
        ("password", password.as_str()),
        ("public", public.as_str()),
    ]))
}

/// Which log's key a run makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Rekor v1's (ECDSA P-256).
    V1,
    /// Rekor v2's, of this algorithm.
    V2(Algorithm),
}

/// The private and the public Secret of `backend`'s key.
pub fn secrets(backend: RekorBackend, stack: &str) -> (String, String) {
    match backend {
        RekorBackend::Trillian => (names::rekor_signer(stack), names::rekor_public(stack)),
        RekorBackend::Tiles => (names::rekor_v2_signer(stack), names::rekor_v2_public(stack)),
    }
}

impl Log {
    /// The Rekor whose key it is.
    pub fn backend(self) -> RekorBackend {
        match self {
            Self::V1 => RekorBackend::Trillian,
            Self::V2(_) => RekorBackend::Tiles,
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Self::V1 => Algorithm::EcdsaP256,
            Self::V2(a) => a,
        }
    }
}

/// Runs rekorkey for `log`; `true` when a key was made.
pub async fn run(ctx: &StageContext, log: Log) -> Result<bool, StageError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let (name, public) = self::secrets(log.backend(), &ctx.stack);
    let labels = secrets::labels(&ctx.stack, Component::Rekor(log.backend()).label());
    let created = secrets::create_once(&api, &ctx.namespace, &name, REQUIRED, &labels, || {
        generate_with(log.algorithm())
    })
    .await?;
    secrets::apply_public(
        &api,
        &public,
        "sigstore-operator-rekorkey",
        &labels,
        created.data(),
        &["public"],
    )
    .await?;
    let made = matches!(created, Created::New(_));
    tracing::info!(secret = %name, generated = made, "Rekor signing key ready");
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_opens_with_its_password_and_matches_public() {
        let d = generate().unwrap();
        let text = |k| secrets::text(&d, k).unwrap();
        assert!(text("private").starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let key = PrivateKey::from_pem(text("private"), Some(text("password"))).unwrap();
        assert_eq!(key.algorithm, Algorithm::EcdsaP256);
        assert_eq!(key.public_pem(), text("public"));
        assert!(!text("private").contains(text("password")));
        let d = generate_with(Algorithm::Ed25519).unwrap();
        let text = |k| secrets::text(&d, k).unwrap();
        let key = PrivateKey::from_pem(text("private"), Some(text("password"))).unwrap();
        assert_eq!(key.algorithm, Algorithm::Ed25519);
        assert_eq!(key.public_pem(), text("public"));
    }
}
