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
    let bad = |reason: String| StageError::BadInput {
        object: object.to_owned(),
        reason,
    };
    let pems: Vec<Pem> = Pem::iter_from_buffer(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("key cert is not PEM: {e}")))?;
    let pems: Vec<&Pem> = pems.iter().filter(|p| p.label == "CERTIFICATE").collect();
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
                let field = |k: &str| {
                    secrets::text(data, k).ok_or_else(|| StageError::BadInput {
                        object: object.clone(),
                        reason: format!("has no text key {k}"),
                    })
                };
                outcome = Outcome::Imported;
                import(
                    object,
                    field("cert")?,
                    field("private")?,
                    secrets::text(data, "password"),
                    now,
                )?
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
mod tests {
    use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair};
    use x509_parser::extensions::BasicConstraints as Bc;

    use super::*;

    fn spec(alg: KeyAlgorithm) -> CaSpec {
        CaSpec {
            common_name: "Test CA".into(),
            organization: "Test Org".into(),
            validity: Duration::from_secs(10 * 365 * 24 * 3600),
            algorithm: alg,
        }
    }

    fn parse(pem: &str) -> Vec<Vec<u8>> {
        Pem::iter_from_buffer(pem.as_bytes())
            .map(|p| p.unwrap().contents)
            .collect()
    }

    #[test]
    fn generated_ca_passes_fulcio_checks() {
        let now = OffsetDateTime::now_utc();
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
            let ca = generate(&spec(alg), now).unwrap();
            let ders = parse(&ca.cert);
            assert_eq!(ders.len(), 1);
            let (_, cert) = X509Certificate::from_der(&ders[0]).unwrap();
            assert!(cert.is_ca());
            let bc: Option<Bc> = cert.basic_constraints().unwrap().map(|b| b.value.clone());
            assert_eq!(bc.and_then(|b| b.path_len_constraint), Some(1));
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            let subject = cert.subject().to_string();
            assert!(
                subject.contains("CN=Test CA") && subject.contains("O=Test Org"),
                "{subject}"
            );
            cert.verify_signature(None).expect("self-signed");
            let years =
                (cert.validity().not_after.timestamp() - now.unix_timestamp()) / (365 * 24 * 3600);
            assert_eq!(years, 10);
            assert!(cert.validity().not_before.timestamp() < now.unix_timestamp());
            // The encrypted key opens with the password and matches the certificate.
            assert!(
                ca.private
                    .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            );
            let key = PrivateKey::from_pem(&ca.private, Some(&ca.password)).unwrap();
            assert_eq!(cert.public_key().raw, key.public_der.as_slice());
            assert_eq!(ca.public, key.public_pem());
            // What import accepts of our own output.
            import("t", &ca.cert, &ca.private, Some(&ca.password), now).unwrap();
        }
    }

    struct Chain {
        root: Issuer<'static, KeyPair>,
        root_pem: String,
    }

    fn root() -> Chain {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "Root");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = p.self_signed(&key).unwrap();
        Chain {
            root_pem: cert.pem(),
            root: Issuer::new(p, key),
        }
    }

    fn intermediate(chain: &Chain, code_signing: bool) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "Intermediate");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        if code_signing {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
        (p.signed_by(&key, &chain.root).unwrap().pem(), key)
    }

    fn reason(r: Result<CaMaterial, StageError>) -> String {
        match r {
            Err(StageError::BadInput { reason, .. }) => reason,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn imports_a_valid_chain_and_reencrypts() {
        let chain = root();
        let (int_pem, int_key) = intermediate(&chain, true);
        let now = OffsetDateTime::now_utc();
        let full = format!("{int_pem}{}", chain.root_pem);
        let ca = import("Secret ns/byo", &full, &int_key.serialize_pem(), None, now).unwrap();
        assert_eq!(parse(&ca.cert).len(), 2, "whole chain kept, in order");
        let key = PrivateKey::from_pem(&ca.private, Some(&ca.password)).unwrap();
        assert_eq!(
            key.public_der,
            rcgen::PublicKeyData::subject_public_key_info(&int_key)
        );
    }

    #[test]
    fn refuses_unusable_chains_saying_why() {
        let chain = root();
        let (int_pem, int_key) = intermediate(&chain, true);
        let (plain_int_pem, plain_int_key) = intermediate(&chain, false);
        let other = KeyPair::generate().unwrap();
        let now = OffsetDateTime::now_utc();
        let full = format!("{int_pem}{}", chain.root_pem);

        let r = reason(import("o", &full, &other.serialize_pem(), None, now));
        assert!(r.contains("does not match the first certificate"), "{r}");

        let reversed = format!("{}{int_pem}", chain.root_pem);
        let r = reason(import(
            "o",
            &reversed,
            &chain.root.key().serialize_pem(),
            None,
            now,
        ));
        assert!(r.contains("is not signed by certificate 1"), "{r}");

        let r = reason(import(
            "o",
            &format!("{plain_int_pem}{}", chain.root_pem),
            &plain_int_key.serialize_pem(),
            None,
            now,
        ));
        assert!(r.contains("without extendedKeyUsage codeSigning"), "{r}");

        let leaf_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
        p.is_ca = IsCa::NoCa;
        let leaf = p.self_signed(&leaf_key).unwrap().pem();
        let r = reason(import("o", &leaf, &leaf_key.serialize_pem(), None, now));
        assert!(r.contains("is not a CA"), "{r}");

        // rcgen certificates default to expiring in 4096.
        let later = now + Duration::from_secs(3000 * 365 * 24 * 3600);
        let r = reason(import("o", &full, &int_key.serialize_pem(), None, later));
        assert!(r.contains("is not valid now"), "{r}");

        let r = reason(import("o", "garbage", &int_key.serialize_pem(), None, now));
        assert!(r.contains("no PEM CERTIFICATE"), "{r}");

        let encrypted = PrivateKey::from_pem(&int_key.serialize_pem(), None)
            .unwrap()
            .encrypted_pem("pw")
            .unwrap();
        let r = reason(import("o", &full, &encrypted, None, now));
        assert!(r.contains("no password"), "{r}");
        import("o", &full, &encrypted, Some("pw"), now).unwrap();
        let r = reason(import("o", &full, &encrypted, Some("wrong"), now));
        assert!(r.contains("wrong password"), "{r}");
    }
}
