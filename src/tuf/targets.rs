//! The repository's targets, all derived from the published trust root:
//! `trusted_root.json` and the signing config for current clients, and the
//! individual keys and certificates (with Sigstore's custom metadata) that
//! older clients look up by usage.

use serde_json::{Value, json};
use sigstore_protobuf_specs::dev::sigstore::{
    common::v1::{TimeRange, X509CertificateChain},
    trustroot::v1::TrustedRoot,
};

use super::TufError;
use crate::keys::pem_encode;

/// `trusted_root.json`'s target name.
pub const TRUSTED_ROOT: &str = "trusted_root.json";
/// The signing config's target name, as sigstore-go looks it up.
pub const SIGNING_CONFIG: &str = "signing_config.v0.2.json";

/// One target file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFile {
    /// Its name.
    pub name: String,
    /// Its content.
    pub content: String,
    /// Sigstore's custom metadata (`{"sigstore": {...}}`), if any.
    pub custom: Option<Value>,
}

fn chain_pem(chain: Option<&X509CertificateChain>) -> String {
    chain
        .map(|c| c.certificates.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| pem_encode("CERTIFICATE", &c.raw_bytes))
        .collect()
}

fn custom(usage: &str, range: Option<&TimeRange>, uri: &str) -> Option<Value> {
    let status = if range.is_some_and(|r| r.end.is_some()) {
        "Expired"
    } else {
        "Active"
    };
    Some(json!({"sigstore": {"usage": usage, "status": status, "uri": uri}}))
}

/// The name of the `i`-th generation of a file: the first keeps
/// scaffolding's name, later ones add `_v<n>`.
fn generation(base: &str, ext: &str, i: usize) -> String {
    if i == 0 {
        format!("{base}{ext}")
    } else {
        format!("{base}_v{}{ext}", i + 1)
    }
}

/// Every target for `trusted_root` (JSON, as published) and, when given,
/// the signing config.
pub fn from_trust_root(
    trusted_root: &str,
    signing_config: Option<&str>,
) -> Result<Vec<TargetFile>, TufError> {
    let root: TrustedRoot =
        serde_json::from_str(trusted_root).map_err(|e| TufError::TrustRoot(e.to_string()))?;
    let mut out = vec![TargetFile {
        name: TRUSTED_ROOT.into(),
        content: trusted_root.to_owned(),
        custom: None,
    }];
    if let Some(config) = signing_config {
        out.push(TargetFile {
            name: SIGNING_CONFIG.into(),
            content: config.to_owned(),
            custom: None,
        });
    }
    for (i, ca) in root.certificate_authorities.iter().enumerate() {
        out.push(TargetFile {
            // Scaffolding's first name is fulcio_v1; keep counting from it.
            name: format!("fulcio_v{}.crt.pem", i + 1),
            content: chain_pem(ca.cert_chain.as_ref()),
            custom: custom("Fulcio", ca.valid_for.as_ref(), &ca.uri),
        });
    }
    for (logs, base, usage) in [
        (&root.tlogs, "rekor", "Rekor"),
        (&root.ctlogs, "ctfe", "CTFE"),
    ] {
        for (i, log) in logs.iter().enumerate() {
            let Some(key) = &log.public_key else { continue };
            let Some(der) = &key.raw_bytes else { continue };
            out.push(TargetFile {
                name: generation(base, ".pub", i),
                content: pem_encode("PUBLIC KEY", der),
                custom: custom(usage, key.valid_for.as_ref(), &log.base_url),
            });
        }
    }
    for (i, tsa) in root.timestamp_authorities.iter().enumerate() {
        let certs = tsa
            .cert_chain
            .as_ref()
            .map(|c| c.certificates.as_slice())
            .unwrap_or_default();
        let last = certs.len().saturating_sub(1);
        for (j, cert) in certs.iter().enumerate() {
            let part = match j {
                0 => "leaf".to_owned(),
                j if j == last => "root".to_owned(),
                j => format!("intermediate_{}", j - 1),
            };
            out.push(TargetFile {
                name: if i == 0 {
                    format!("tsa_{part}.crt.pem")
                } else {
                    format!("tsa_v{}_{part}.crt.pem", i + 1)
                },
                content: pem_encode("CERTIFICATE", &cert.raw_bytes),
                custom: custom("TSA", tsa.valid_for.as_ref(), &tsa.uri),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::trust_root::{tests::material, trusted_root};

    fn names(targets: &[TargetFile]) -> Vec<&str> {
        targets.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn every_key_and_chain_becomes_a_target_with_its_usage() {
        let m = material();
        let root = trusted_root(None, &m, Timestamp::from_second(1_000_000).unwrap()).unwrap();
        let json = serde_json::to_string_pretty(&root).unwrap();
        let targets = from_trust_root(&json, Some("{}")).unwrap();
        assert_eq!(
            names(&targets),
            [
                "trusted_root.json",
                "signing_config.v0.2.json",
                "fulcio_v1.crt.pem",
                "rekor.pub",
                "ctfe.pub",
                "tsa_leaf.crt.pem",
                "tsa_intermediate_0.crt.pem",
                "tsa_root.crt.pem",
            ]
        );
        assert_eq!(targets[0].content, json, "the published bytes, unchanged");
        let rekor = &targets[3];
        assert_eq!(rekor.content.trim(), m.rekor.as_ref().unwrap().0.trim());
        assert_eq!(
            rekor.custom,
            Some(json!({"sigstore": {"usage": "Rekor", "status": "Active", "uri": "http://r"}}))
        );
        let chain = m.tsa.as_ref().unwrap().0.clone();
        assert!(chain.starts_with(targets[5].content.trim()), "leaf first");
        assert_eq!(
            targets[5].custom.as_ref().unwrap()["sigstore"]["usage"],
            "TSA"
        );
    }

    #[test]
    fn a_rotated_ca_adds_a_generation_and_expires_the_old_one() {
        let m1 = material();
        let mut m2 = m1.clone();
        m2.fulcio = material().fulcio;
        let v1 = trusted_root(None, &m1, Timestamp::from_second(1_000_000).unwrap()).unwrap();
        let v2 = trusted_root(Some(&v1), &m2, Timestamp::from_second(2_000_000).unwrap()).unwrap();
        let targets = from_trust_root(&serde_json::to_string(&v2).unwrap(), None).unwrap();
        let status = |name: &str| {
            let t = targets.iter().find(|t| t.name == name).unwrap();
            t.custom.as_ref().unwrap()["sigstore"]["status"].clone()
        };
        assert_eq!(status("fulcio_v1.crt.pem"), "Expired");
        assert_eq!(status("fulcio_v2.crt.pem"), "Active");
    }

    #[test]
    fn an_unreadable_trust_root_is_refused() {
        let e = from_trust_root("not json", None).unwrap_err().to_string();
        assert!(e.contains("trusted_root.json"), "{e}");
    }
}
