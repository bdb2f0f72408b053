//! createcerts: Fulcio's CA, generated once or brought by the user.
//!
//! Writes Secret `<stack>-fulcio-ca` (`cert`, `private`, `public`,
//! `password`) and its public copy `<stack>-fulcio-pub` (`cert`, `public`).
//! The private key is PKCS#8 encrypted with PBES2/PBKDF2-SHA256/AES-256-CBC
//! under a random password: what every Fulcio version's file CA reads. A CA
//! that exists is never regenerated.

pub mod rules;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
    SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::{
    certificate::X509Certificate, extensions::ParsedExtension, pem::Pem, prelude::FromDer,
};
use zeroize::Zeroizing;

use super::{
    StageContext, StageError,
    secrets::{self, Created, Data},
};
use crate::{
    api::KeyAlgorithm,
    keys::{PrivateKey, random_password},
    names,
};

/// Keys of the CA Secret.
pub const REQUIRED: &[&str] = &["cert", "private", "public", "password"];

/// Allowance for clocks that run behind ours.
const BACKDATE: Duration = Duration::from_secs(300);

/// What a generated CA looks like.
#[derive(Clone, Debug)]
pub struct CaSpec {
    /// Subject CN.
    pub common_name: String,
    /// Subject O.
    pub organization: String,
    /// How long it is valid.
    pub validity: Duration,
    /// Its key algorithm.
    pub algorithm: KeyAlgorithm,
}

/// A CA ready to be written. `private` is encrypted under `password`.
pub struct CaMaterial {
    /// The chain, issuing certificate first, root last, PEM.
    pub cert: String,
    /// The encrypted private key, PEM.
    pub private: String,
    /// The public key, PEM.
    pub public: String,
    /// The key's password.
    pub password: Zeroizing<String>,
}

impl CaMaterial {
    fn into_data(self) -> Data {
        secrets::data([
            ("cert", self.cert.as_str()),
            ("private", self.private.as_str()),
            ("public", self.public.as_str()),
            ("password", self.password.as_str()),
        ])
    }
}

/// A new self-signed CA.
pub fn generate(spec: &CaSpec, now: OffsetDateTime) -> Result<CaMaterial, StageError> {
    let key = PrivateKey::generate(spec.algorithm)?;
    let signer = key.rcgen_key()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, spec.common_name.as_str());
    if !spec.organization.is_empty() {
        dn.push(DnType::OrganizationName, spec.organization.as_str());
    }
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = now + spec.validity;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&signer)
        .map_err(|e| StageError::Certificate(e.to_string()))?;
    let password = random_password();
    Ok(CaMaterial {
        cert: cert.pem(),
        private: key.encrypted_pem(&password)?,
        public: key.public_pem(),
        password,
    })
}

/// Checks a user's CA and prepares it for Fulcio: the chain must start with
/// a CA certificate whose key is `key_pem`, each certificate must be signed
/// by the next, and it must be valid now. The key is re-encrypted under a
/// fresh password; the user's Secret is never changed.
pub fn import(
    object: &str,
    chain_pem: &str,
    key_pem: &str,
    password: Option<&str>,
    now: OffsetDateTime,
) -> Result<CaMaterial, StageError> {
    let (pems, key) = inspect(object, chain_pem, key_pem, password, now)?;
    let password = random_password();
    let cert: String = pems
        .iter()
        .map(|p| crate::keys::pem_encode("CERTIFICATE", &p.contents))
        .collect();
    Ok(CaMaterial {
        cert,
        private: key.encrypted_pem(&password)?,
        public: key.public_pem(),
        password,
    })
}

/// The most a brought chain or key may hold: a CA chain is a few KiB.
pub const MAX_BROUGHT_BYTES: usize = 64 * 1024;

/// The user's CA in Secret data (`cert`, `private`, optional `password`),
/// checked as [`import`] checks it, importing nothing: what the operator
/// asks before it applies anything for a stack that brings its CA.
pub fn check_brought(
    object: &str,
    data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>,
    now: OffsetDateTime,
) -> Result<(), StageError> {
    let (cert, private, password) = brought_fields(object, data)?;
    inspect(object, cert, private, password, now).map(|_| ())
}

/// The keys of a brought CA's Secret.
fn brought_fields<'a>(
    object: &str,
    data: &'a std::collections::BTreeMap<String, k8s_openapi::ByteString>,
) -> Result<(&'a str, &'a str, Option<&'a str>), StageError> {
    let field = |k: &str| {
        secrets::text(data, k).ok_or_else(|| StageError::BadInput {
            object: object.to_owned(),
            reason: format!(
                "has no text key {k}; a brought CA needs cert (its PEM chain), private (its PEM \
                 key) and, for an encrypted key, password"
            ),
        })
    };
    Ok((
        field("cert")?,
        field("private")?,
        secrets::text(data, "password"),
    ))
}

/// Every check of a brought CA: the parsed chain and the key.
fn inspect(
    object: &str,
    chain_pem: &str,
    key_pem: &str,
    password: Option<&str>,
    now: OffsetDateTime,
) -> Result<(Vec<Pem>, PrivateKey), StageError> {
    let bad = |reason: String| StageError::BadInput {
        object: object.to_owned(),
        reason,
    };
    for (key, value) in [("cert", chain_pem), ("private", key_pem)] {
        if value.len() > MAX_BROUGHT_BYTES {
            return Err(bad(format!(
                "key {key} holds {} bytes; a CA's chain or key is a few KiB, at most {} bytes",
                value.len(),
                MAX_BROUGHT_BYTES
            )));
        }
    }
    let pems: Vec<Pem> = Pem::iter_from_buffer(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("key cert is not PEM: {e}")))?;
    let pems: Vec<Pem> = pems
        .into_iter()
        .filter(|p| p.label == "CERTIFICATE")
        .collect();
    if pems.is_empty() {
        return Err(bad("key cert holds no PEM CERTIFICATE".into()));
    }
    let mut certs = Vec::new();
    for (i, p) in pems.iter().enumerate() {
        let (_, c) = X509Certificate::from_der(&p.contents)
            .map_err(|e| bad(format!("certificate {i} of key cert does not parse: {e}")))?;
        certs.push(c);
    }
    let key =
        PrivateKey::from_pem(key_pem, password).map_err(|e| bad(format!("key private: {e}")))?;

    let first = &certs[0];
    let subject = first.subject().to_string();
    if !first.is_ca() {
        return Err(bad(format!(
            "the first certificate ({subject}) is not a CA (basicConstraints CA:FALSE or absent); \
             Fulcio issues from it, so it must be one"
        )));
    }
    if let Ok(Some(ku)) = first.key_usage()
        && !ku.value.key_cert_sign()
    {
        return Err(bad(format!(
            "the first certificate ({subject}) lacks keyUsage keyCertSign"
        )));
    }
    if first.public_key().raw != key.public_der.as_slice() {
        return Err(bad(format!(
            "key private does not match the first certificate ({subject}); the chain must start \
             with the certificate of this key"
        )));
    }
    for (i, pair) in certs.windows(2).enumerate() {
        if pair[0].issuer() != pair[1].subject()
            || pair[0]
                .verify_signature(Some(pair[1].public_key()))
                .is_err()
        {
            return Err(bad(format!(
                "certificate {i} ({}) is not signed by certificate {} ({}): order the chain from \
                 the issuing CA to the root",
                pair[0].subject(),
                i + 1,
                pair[1].subject()
            )));
        }
    }
    if certs.len() > 1 {
        let code_signing = first.extensions().iter().any(|e| {
            matches!(e.parsed_extension(), ParsedExtension::ExtendedKeyUsage(eku) if eku.code_signing || eku.any)
        });
        if !code_signing {
            return Err(bad(format!(
                "the first certificate ({subject}) is an intermediate without extendedKeyUsage \
                 codeSigning, which Fulcio requires of intermediates"
            )));
        }
    }
    let now_ts = now.unix_timestamp();
    for (i, c) in certs.iter().enumerate() {
        let v = c.validity();
        if now_ts < v.not_before.timestamp() || now_ts > v.not_after.timestamp() {
            return Err(bad(format!(
                "certificate {i} ({}) is not valid now: valid from {} to {}",
                c.subject(),
                v.not_before,
                v.not_after
            )));
        }
    }
    drop(certs);
    Ok((pems, key))
}

/// Inputs of one run.
#[derive(Clone, Debug)]
pub struct Args {
    /// How to generate a CA.
    pub spec: CaSpec,
    /// A user Secret to import instead (`cert`, `private`, `password`).
    pub existing_secret: Option<String>,
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The CA Secret existed and was kept.
    Kept,
    /// A CA was generated.
    Generated,
    /// The user's CA was imported.
    Imported,
}

/// Runs createcerts.
pub async fn run(ctx: &StageContext, args: &Args) -> Result<Outcome, StageError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = names::fulcio_ca(&ctx.stack);
    let labels = secrets::labels(&ctx.stack, "fulcio");
    // Read the user's Secret first: it is needed only when ours is missing,
    // but an unusable one should fail the same way every run.
    let byo = match &args.existing_secret {
        Some(user) => {
            let object = format!("Secret {}/{user}", ctx.namespace);
            let s = api
                .get_opt(user)
                .await?
                .ok_or_else(|| StageError::BadInput {
                    object: object.clone(),
                    reason: "not found; spec.fulcio.ca.existingSecret must name a Secret in the \
                         stack's namespace"
                        .into(),
                })?;
            Some((object, s.data.unwrap_or_default()))
        }
        None => None,
    };
    let mut outcome = Outcome::Kept;
    let created = secrets::create_once(&api, &ctx.namespace, &name, REQUIRED, &labels, || {
        let now = OffsetDateTime::now_utc();
        let material = match &byo {
            Some((object, data)) => {
                let (cert, private, password) = brought_fields(object, data)?;
                outcome = Outcome::Imported;
                import(object, cert, private, password, now)?
            }
            None => {
                outcome = Outcome::Generated;
                generate(&args.spec, now)?
            }
        };
        Ok(material.into_data())
    })
    .await?;
    if let Created::Existing(_) = created {
        outcome = Outcome::Kept;
    }
    let data = created.data();
    secrets::apply_public(
        &api,
        &names::fulcio_public(&ctx.stack),
        "sigstore-operator-createcerts",
        &labels,
        data,
        &["cert", "public"],
    )
    .await?;
    tracing::info!(secret = %name, ?outcome, "Fulcio CA ready");
    Ok(outcome)
}

#[cfg(test)]
mod tests;
