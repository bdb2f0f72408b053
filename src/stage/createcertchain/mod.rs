//! createcertchain: the timestamp authority's signing key and certificate
//! chain, made once.
//!
//! Writes Secret `<stack>-tsa` (`private`: P-256 PKCS#8 encrypted with
//! PBES2, `password`, `public`, `cert-chain`: leaf, intermediate, root) and
//! its public copy `<stack>-tsa-pub` (`cert-chain`). timestamp-server
//! checks the chain at start: the leaf carries exactly one extended key
//! usage, timeStamping, in a critical extension; every certificate after
//! it is a CA, and the intermediate carries timeStamping too. The root's
//! and intermediate's keys sign once and are dropped, so nothing can issue
//! another timestamping certificate under this root.

pub mod rules;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    SerialNumber,
};
use time::OffsetDateTime;

use super::{
    StageContext, StageError,
    secrets::{self, Created, Data},
};
use crate::{api::KeyAlgorithm, keys::PrivateKey, names};

/// Keys of the TSA Secret.
pub const REQUIRED: &[&str] = &["private", "password", "public", "cert-chain"];

/// Certificates are valid from a little in the past, for skewed clocks.
const BACKDATE: Duration = Duration::from_secs(300);
/// The root's and intermediate's lifetime.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The leaf's lifetime: inside its issuers'.
const LEAF_VALIDITY: Duration = Duration::from_secs(9 * 365 * 24 * 3600);

/// DER of `ExtKeyUsageSyntax ::= SEQUENCE { id-kp-timeStamping }`.
const TIMESTAMPING_EKU: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
];

fn params(cn: &str, now: OffsetDateTime, validity: Duration) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "sigstore-operator");
    p.distinguished_name = dn;
    p.not_before = now - BACKDATE;
    p.not_after = now + validity;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.use_authority_key_identifier_extension = true;
    p
}

fn cert_error(e: rcgen::Error) -> StageError {
    StageError::Certificate(e.to_string())
}

/// A new signing key and its chain, as Secret data.
pub fn generate(now: OffsetDateTime) -> Result<Data, StageError> {
    let ephemeral = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error);
    let root_key = ephemeral()?;
    let mut root = params("sigstore-operator TSA root", now, CA_VALIDITY);
    root.use_authority_key_identifier_extension = false;
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).map_err(cert_error)?;
    let root_issuer = Issuer::new(root, root_key);

    let intermediate_key = ephemeral()?;
    let mut intermediate = params("sigstore-operator TSA intermediate", now, CA_VALIDITY);
    intermediate.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    intermediate.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    intermediate.extended_key_usages = vec![ExtendedKeyUsagePurpose::TimeStamping];
    let intermediate_cert = intermediate
        .signed_by(&intermediate_key, &root_issuer)
        .map_err(cert_error)?;
    let intermediate_issuer = Issuer::new(intermediate, intermediate_key);

    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
    let mut leaf = params("sigstore-operator TSA timestamping", now, LEAF_VALIDITY);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // rcgen writes extended key usage non-critical; RFC 3161 wants it
    // critical, and timestamp-server refuses a leaf without that.
    let mut eku = CustomExtension::from_oid_content(&[2, 5, 29, 37], TIMESTAMPING_EKU.to_vec());
    eku.set_criticality(true);
    leaf.custom_extensions = vec![eku];
    let leaf_cert = leaf
        .signed_by(&key.rcgen_key()?, &intermediate_issuer)
        .map_err(cert_error)?;

    let chain = format!(
        "{}{}{}",
        leaf_cert.pem(),
        intermediate_cert.pem(),
        root_cert.pem()
    );
    let mut data = super::rekorkey::key_data(&key)?;
    data.extend(secrets::data([("cert-chain", chain.as_str())]));
    Ok(data)
}

/// Runs createcertchain; `true` when a key and chain were made.
pub async fn run(ctx: &StageContext) -> Result<bool, StageError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = names::tsa_secret(&ctx.stack);
    let labels = secrets::labels(&ctx.stack, "tsa");
    let created = secrets::create_once(&api, &ctx.namespace, &name, REQUIRED, &labels, || {
        generate(OffsetDateTime::now_utc())
    })
    .await?;
    secrets::apply_public(
        &api,
        &names::tsa_public(&ctx.stack),
        "sigstore-operator-createcertchain",
        &labels,
        created.data(),
        &["cert-chain"],
    )
    .await?;
    let made = matches!(created, Created::New(_));
    tracing::info!(secret = %name, generated = made, "TSA key and chain ready");
    Ok(made)
}

#[cfg(test)]
mod tests {
    use x509_parser::{
        certificate::X509Certificate, extensions::ParsedExtension, pem::Pem, prelude::FromDer,
    };

    use super::*;

    #[test]
    fn chain_meets_timestamp_server_rules() {
        let data = generate(OffsetDateTime::now_utc()).unwrap();
        let text = |k| secrets::text(&data, k).unwrap();
        let ders: Vec<Vec<u8>> = Pem::iter_from_buffer(text("cert-chain").as_bytes())
            .map(|p| p.unwrap().contents)
            .collect();
        assert_eq!(ders.len(), 3, "leaf, intermediate, root");
        let certs: Vec<X509Certificate<'_>> = ders
            .iter()
            .map(|d| X509Certificate::from_der(d).unwrap().1)
            .collect();
        let (leaf, intermediate, root) = (&certs[0], &certs[1], &certs[2]);

        let eku = leaf
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.37")
            .expect("leaf EKU");
        assert!(eku.critical, "the leaf's EKU is critical");
        let ParsedExtension::ExtendedKeyUsage(usage) = eku.parsed_extension() else {
            panic!("EKU parses")
        };
        assert!(usage.time_stamping && !usage.any && !usage.code_signing && usage.other.is_empty());
        assert!(!leaf.is_ca());
        assert!(intermediate.is_ca() && root.is_ca());
        let ParsedExtension::ExtendedKeyUsage(usage) = intermediate
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.37")
            .expect("intermediate EKU")
            .parsed_extension()
        else {
            panic!("EKU parses")
        };
        assert!(usage.time_stamping);
        // Each is signed by the next; the root by itself.
        leaf.verify_signature(Some(intermediate.public_key()))
            .unwrap();
        intermediate
            .verify_signature(Some(root.public_key()))
            .unwrap();
        root.verify_signature(None).unwrap();
        assert!(leaf.validity().not_after < root.validity().not_after);

        // The leaf certifies the signing key, which opens with its password.
        let key = PrivateKey::from_pem(text("private"), Some(text("password"))).unwrap();
        assert_eq!(leaf.public_key().raw, key.public_der.as_slice());
        assert_eq!(key.public_pem(), text("public"));
    }
}
