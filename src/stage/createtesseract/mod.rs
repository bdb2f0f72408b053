//! createtesseract: TesseraCT's key and the Fulcio roots it accepts.
//!
//! Waits for Fulcio's CA (`<stack>-fulcio-pub` key `cert`), then writes
//! Secret `<stack>-tesseract`: `private` (an unencrypted SEC1 `EC PRIVATE
//! KEY` naming its curve, the only form TesseraCT reads, so the Secret is
//! its protection), `public`, one `fulcio-N` per Fulcio root ever trusted
//! and `roots.pem`, all of them in one file for `--roots_pem_file`; and
//! `<stack>-tesseract-pub` (`public`). A root seen once stays trusted; the
//! key is never regenerated.

pub mod rules;

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::time::Instant;

use super::{
    StageContext, StageError,
    createctconfig::{merge_roots, wait_for_fulcio_root},
    secrets::{self, Created, Data},
};
use crate::{
    keys::{Algorithm, PrivateKey},
    names,
};

/// Keys the Secret must hold once it exists.
pub const REQUIRED: &[&str] = &["private", "public"];
pub use crate::names::TESSERACT_ROOTS_KEY as ROOTS_KEY;

/// Every `fulcio-N` root of `data`, in order, as one PEM file.
pub fn roots_file(data: &Data, keys: &[String]) -> String {
    keys.iter()
        .filter_map(|k| secrets::text(data, k))
        .map(|pem| {
            let mut pem = pem.to_owned();
            if !pem.ends_with('\n') {
                pem.push('\n');
            }
            pem
        })
        .collect()
}

/// A new Secret's data: a fresh P-256 key and `root`.
pub fn generate(root: &str) -> Result<Data, StageError> {
    let key = PrivateKey::generate(Algorithm::EcdsaP256)?;
    let private = key
        .sec1_pem()
        .ok_or_else(|| StageError::Certificate("an ECDSA key has a SEC1 form".into()))?;
    let public = key.public_pem();
    let mut data = secrets::data([("private", private.as_str()), ("public", public.as_str())]);
    let (keys, added) = merge_roots(&Data::new(), root);
    if let Some((k, v)) = added {
        data.insert(k, ByteString(v.into_bytes()));
    }
    let roots = roots_file(&data, &keys);
    data.insert(ROOTS_KEY.into(), ByteString(roots.into_bytes()));
    Ok(data)
}

/// What an existing Secret needs so it trusts `root` too: the new
/// `fulcio-N` and the rewritten `roots.pem`, or nothing.
pub fn trust_root_too(existing: &Data, root: &str) -> BTreeMap<String, String> {
    let (keys, added) = merge_roots(existing, root);
    let mut merged = existing.clone();
    let mut changes = BTreeMap::new();
    if let Some((k, v)) = added {
        merged.insert(k.clone(), ByteString(v.clone().into_bytes()));
        changes.insert(k, v);
    }
    let roots = roots_file(&merged, &keys);
    if secrets::text(existing, ROOTS_KEY) != Some(roots.as_str()) {
        changes.insert(ROOTS_KEY.into(), roots);
    }
    changes
}

/// Runs createtesseract; `true` when anything was written.
pub async fn run(ctx: &StageContext) -> Result<bool, StageError> {
    let deadline = Instant::now() + ctx.timeout;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let root = wait_for_fulcio_root(ctx, &api, deadline).await?;
    let name = names::tesseract_secret(&ctx.stack);
    let labels = secrets::labels(&ctx.stack, names::TESSERACT);
    let created = secrets::create_once(&api, &ctx.namespace, &name, REQUIRED, &labels, || {
        generate(&root)
    })
    .await?;
    let mut wrote = matches!(created, Created::New(_));
    if let Created::Existing(existing) = &created {
        let changes = trust_root_too(existing, &root);
        if !changes.is_empty() {
            tracing::info!("trusting a new Fulcio root; earlier roots stay trusted");
            // Only these keys: the private key is never sent.
            let body = json!({"stringData": changes});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            wrote = true;
        }
    }
    secrets::apply_public(
        &api,
        &names::tesseract_public(&ctx.stack),
        "sigstore-operator-createtesseract",
        &labels,
        created.data(),
        &["public"],
    )
    .await?;
    tracing::info!(secret = %name, wrote, "TesseraCT key and roots ready");
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_new_secret_holds_an_sec1_key_and_the_root_then_trusts_each_new_root_once() {
        let first = root("one");
        let data = generate(&first).unwrap();
        let private = secrets::text(&data, "private").unwrap();
        assert!(private.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let key = PrivateKey::from_pem(private, None).unwrap();
        assert_eq!(key.public_pem(), secrets::text(&data, "public").unwrap());
        assert_eq!(secrets::text(&data, ROOTS_KEY), Some(first.as_str()));
        assert!(trust_root_too(&data, &first).is_empty(), "nothing to do");

        let second = root("two");
        let changes = trust_root_too(&data, &second);
        assert_eq!(changes.get("fulcio-1"), Some(&second));
        assert_eq!(changes[ROOTS_KEY], format!("{first}{second}"));
        assert!(
            !changes.contains_key("private"),
            "the key is never rewritten"
        );
    }
}
