//! Fresh certificates for one control plane: a serving CA, a client CA that
//! mints a certificate per user, and the service-account signing key.

use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub struct Pki {
    pub serving_ca: PathBuf,
    pub serving_ca_pem: String,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub client_ca: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    client_issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

impl Pki {
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir)?;
        let write = |name: &str, data: &str| -> anyhow::Result<PathBuf> {
            let p = dir.join(name);
            std::fs::write(&p, data)?;
            Ok(p)
        };

        let serving_ca_key = KeyPair::generate()?;
        let serving_ca_params = ca_params("sigstore-operator-test-serving-ca")?;
        let serving_ca_cert = serving_ca_params.self_signed(&serving_ca_key)?;
        let serving_issuer = Issuer::new(serving_ca_params, serving_ca_key);
        let mut sp = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ])?;
        sp.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse()?));
        sp.subject_alt_names
            .push(SanType::IpAddress("10.96.0.1".parse()?));
        sp.distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate()?;
        let serving_cert = sp.signed_by(&serving_key, &serving_issuer)?;

        let client_ca_key = KeyPair::generate()?;
        let client_ca_params = ca_params("sigstore-operator-test-client-ca")?;
        let client_ca_cert = client_ca_params.self_signed(&client_ca_key)?;

        let sa_key = KeyPair::generate()?;

        let serving_ca_pem = serving_ca_cert.pem();
        Ok(Self {
            serving_ca: write("serving-ca.crt", &serving_ca_pem)?,
            serving_cert: write("apiserver.crt", &serving_cert.pem())?,
            serving_key: write("apiserver.key", &serving_key.serialize_pem())?,
            client_ca: write("client-ca.crt", &client_ca_cert.pem())?,
            sa_key: write("sa.key", &sa_key.serialize_pem())?,
            sa_pub: write("sa.pub", &sa_key.public_key_pem())?,
            serving_ca_pem,
            client_issuer: Issuer::new(client_ca_params, client_ca_key),
        })
    }

    /// Writes a kubeconfig whose client certificate names `user` in `groups`.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        server: &str,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<()> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.client_issuer)?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {
                "server": server,
                "certificate-authority-data": b64(&self.serving_ca_pem),
            }}],
            "users": [{"name": user, "user": {
                "client-certificate-data": b64(&cert.pem()),
                "client-key-data": b64(&key.serialize_pem()),
            }}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        });
        std::fs::write(path, serde_yaml::to_string(&kubeconfig)?)?;
        Ok(())
    }
}
