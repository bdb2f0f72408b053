//! rekorkey: Rekor's signing key, made once.
//!
//! Writes Secret `<stack>-rekor-signer` (`private`: P-256 PKCS#8 encrypted
//! with PBES2, `password`, `public`) and `<stack>-rekor-pub` (`public`).

pub mod rules;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{
    StageContext, StageError,
    secrets::{self, Created, Data},
};
use crate::{
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

/// Runs rekorkey; `true` when a key was made.
pub async fn run(ctx: &StageContext) -> Result<bool, StageError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = names::rekor_signer(&ctx.stack);
    let labels = secrets::labels(&ctx.stack, "rekor");
    let created =
        secrets::create_once(&api, &ctx.namespace, &name, REQUIRED, &labels, generate).await?;
    secrets::apply_public(
        &api,
        &names::rekor_public(&ctx.stack),
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
