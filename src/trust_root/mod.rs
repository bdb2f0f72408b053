//! The stack's `trusted_root.json` and `signing_config.json`, as Sigstore's
//! protobuf messages (typed, serialized with the protobuf JSON mapping).
//!
//! A trust root keeps history: when a key or CA changes, the entry that
//! described the old one gets an end date and a new entry follows, so
//! signatures made before the change still verify. Computing it again
//! from its own output and unchanged material gives the same bytes.

use k8s_openapi::jiff::Timestamp;
use sigstore_protobuf_specs::dev::sigstore::{
    common::v1::{DistinguishedName, TimeRange, X509Certificate, X509CertificateChain},
    trustroot::v1::{
        CertificateAuthority, ClientTrustConfig, Service, ServiceConfiguration, ServiceSelector,
        SigningConfig, TransparencyLogInstance, TrustedRoot,
    },
};
use x509_parser::{certificate::X509Certificate as Parsed, pem::Pem, prelude::FromDer};

/// `trusted_root.json`'s media type.
pub const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// `signing_config.json`'s media type.
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";
/// `trust_config.json`'s media type (a `ClientTrustConfig`).
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";
/// The trust root ConfigMap's key of `trusted_root.json`.
pub const TRUSTED_ROOT_KEY: &str = "trusted_root.json";
/// The trust root ConfigMap's key of `signing_config.json`.
pub const SIGNING_CONFIG_KEY: &str = "signing_config.json";
/// The trust root ConfigMap's key of `trust_config.json`: both of the
/// above in one file, as sigstore-python (`--trust-config`), kwctl and
/// sigstore-rs read them.
pub const TRUST_CONFIG_KEY: &str = "trust_config.json";
/// The `operator` named in each entry.
const OPERATOR: &str = "sigstore-operator";
/// New entries start this long before they are first seen, for skewed
/// clocks.
const BACKDATE_SECONDS: i64 = 300;

/// Why material cannot go into the trust root.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustRootError {
    /// A PEM input holds no usable certificate or key.
    #[error("{what} is not a PEM {expected}")]
    BadPem {
        /// Which input.
        what: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A log key of a kind the trust root cannot describe.
    #[error(
        "{what} uses a key type the trust root cannot describe (P-256, P-384 and Ed25519 are supported)"
    )]
    UnsupportedKey {
        /// Which input.
        what: &'static str,
    },
}

/// What goes into the trust root ConfigMap, as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `trusted_root.json`.
    pub trusted_root: String,
    /// `signing_config.json`.
    pub signing_config: String,
    /// `trust_config.json`.
    pub trust_config: String,
}

impl Published {
    /// The three files for `root` and `config`.
    pub fn of(root: &TrustedRoot, config: &SigningConfig) -> serde_json::Result<Self> {
        let trust = ClientTrustConfig {
            media_type: CLIENT_TRUST_CONFIG_MEDIA_TYPE.into(),
            trusted_root: Some(root.clone()),
            signing_config: Some(config.clone()),
        };
        Ok(Self {
            trusted_root: serde_json::to_string_pretty(root)?,
            signing_config: serde_json::to_string_pretty(config)?,
            trust_config: serde_json::to_string_pretty(&trust)?,
        })
    }

    /// The ConfigMap's data.
    pub fn data(&self) -> std::collections::BTreeMap<String, String> {
        [
            (TRUSTED_ROOT_KEY, &self.trusted_root),
            (SIGNING_CONFIG_KEY, &self.signing_config),
            (TRUST_CONFIG_KEY, &self.trust_config),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// Whether any enabled component of `spec` belongs in a trust root.
pub fn wanted(spec: &crate::api::SigstoreStackSpec) -> bool {
    spec.fulcio.enabled || spec.rekor.enabled || spec.ctlog.enabled || spec.tsa.enabled
}

/// The stack's current public material and where its services are.
#[derive(Clone, Debug, Default)]
pub struct Material {
    /// Fulcio's chain (PEM, root last) and URL.
    pub fulcio: Option<(String, String)>,
    /// Rekor v1's public key (PEM) and URL.
    pub rekor: Option<(String, String)>,
    /// Rekor v2's public key (PEM) and URL (its host is its origin).
    pub rekor_v2: Option<(String, String)>,
    /// The CT log's public key (PEM) and URL (prefix included).
    pub ctlog: Option<(String, String)>,
    /// The TSA's chain (PEM, leaf first) and URL.
    pub tsa: Option<(String, String)>,
}

/// Which of [`Material`]'s entries a stage's public output fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Fulcio's chain.
    Fulcio,
    /// Rekor v1's key.
    Rekor,
    /// Rekor v2's key.
    RekorV2,
    /// The CT log's key.
    Ctlog,
    /// The TSA's chain.
    Tsa,
}

impl Material {
    /// Puts `value` (PEM and URL) where `slot` says.
    pub fn set(&mut self, slot: Slot, value: (String, String)) {
        let entry = match slot {
            Slot::Fulcio => &mut self.fulcio,
            Slot::Rekor => &mut self.rekor,
            Slot::RekorV2 => &mut self.rekor_v2,
            Slot::Ctlog => &mut self.ctlog,
            Slot::Tsa => &mut self.tsa,
        };
        *entry = Some(value);
    }
}

fn ders(what: &'static str, pem: &str, label: &str) -> Result<Vec<Vec<u8>>, TrustRootError> {
    let out: Vec<Vec<u8>> = Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect();
    if out.is_empty() {
        return Err(TrustRootError::BadPem {
            what,
            expected: if label == "CERTIFICATE" {
                "certificate chain"
            } else {
                "public key"
            },
        });
    }
    Ok(out)
}

fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    }
}

fn opened(now: Timestamp) -> Option<TimeRange> {
    Some(TimeRange {
        start: Some(prost_types::Timestamp {
            seconds: now.as_second() - BACKDATE_SECONDS,
            nanos: 0,
        }),
        end: None,
    })
}

fn chain(what: &'static str, pem: &str) -> Result<X509CertificateChain, TrustRootError> {
    Ok(X509CertificateChain {
        certificates: ders(what, pem, "CERTIFICATE")?
            .into_iter()
            .map(|raw_bytes| X509Certificate { raw_bytes })
            .collect(),
    })
}

/// The subject of the chain's root (Fulcio) or leaf (TSA).
fn subject(what: &'static str, der: &[u8]) -> Result<DistinguishedName, TrustRootError> {
    let (_, cert) = Parsed::from_der(der).map_err(|_| TrustRootError::BadPem {
        what,
        expected: "certificate chain",
    })?;
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(DistinguishedName {
        organization: first(&mut cert.subject().iter_organization()),
        common_name: first(&mut cert.subject().iter_common_name()),
    })
}

fn authority(
    what: &'static str,
    pem: &str,
    url: &str,
    subject_of: usize,
    now: Timestamp,
) -> Result<CertificateAuthority, TrustRootError> {
    let cert_chain = chain(what, pem)?;
    let certs = &cert_chain.certificates;
    let pick = subject_of.min(certs.len().saturating_sub(1));
    Ok(CertificateAuthority {
        subject: Some(subject(what, &certs[pick].raw_bytes)?),
        uri: url.to_owned(),
        cert_chain: Some(cert_chain),
        valid_for: opened(now),
        operator: OPERATOR.into(),
    })
}

/// Keeps open the entries that hold `current` material and appends what no
/// open entry holds; closes every other open entry (its key changed, or its
/// component or backend was turned off), so signatures made while it
/// served still verify. With `one_per_key` (logs), material that comes back
/// (a log turned off and on again, a key put back) reopens its last entry
/// instead: clients refuse a trust root that lists a log ID twice.
fn merge<T>(
    previous: &[T],
    current: Vec<T>,
    same: impl Fn(&T, &T) -> bool,
    range: fn(&mut T) -> Option<&mut TimeRange>,
    now: Timestamp,
    one_per_key: bool,
) -> Vec<T>
where
    T: Clone,
{
    let mut out: Vec<T> = previous.to_vec();
    let mut kept = vec![false; out.len()];
    let mut fresh = Vec::new();
    for c in current {
        let mut open = false;
        for (i, e) in out.iter_mut().enumerate() {
            if same(e, &c) && range(e).is_some_and(|r| r.end.is_none()) {
                kept[i] = true;
                open = true;
            }
        }
        if !open {
            let back = out
                .iter_mut()
                .enumerate()
                .rev()
                .find(|(i, e)| one_per_key && !kept[*i] && same(e, &c));
            match back {
                Some((i, e)) => {
                    if let Some(r) = range(e) {
                        r.end = None;
                    }
                    kept[i] = true;
                }
                None => fresh.push(c),
            }
        }
    }
    for (e, kept) in out.iter_mut().zip(kept) {
        if !kept
            && let Some(r) = range(e)
            && r.end.is_none()
        {
            r.end = Some(timestamp(now));
        }
    }
    out.extend(fresh);
    out
}

fn log_range(l: &mut TransparencyLogInstance) -> Option<&mut TimeRange> {
    l.public_key.as_mut().and_then(|k| k.valid_for.as_mut())
}

fn ca_range(c: &mut CertificateAuthority) -> Option<&mut TimeRange> {
    c.valid_for.as_mut()
}

fn same_log(a: &TransparencyLogInstance, b: &TransparencyLogInstance) -> bool {
    a.log_id == b.log_id && a.base_url == b.base_url
}

fn same_authority(a: &CertificateAuthority, b: &CertificateAuthority) -> bool {
    a.cert_chain == b.cert_chain && a.uri == b.uri
}

/// The trust root for `material` at `now`, continuing `previous`.
pub fn trusted_root(
    previous: Option<&TrustedRoot>,
    material: &Material,
    now: Timestamp,
) -> Result<TrustedRoot, TrustRootError> {
    let empty = TrustedRoot::default();
    let prev = previous.unwrap_or(&empty);
    // Rekor v2 first: the signing config lists the tlogs in this order.
    let mut tlogs = Vec::new();
    if let Some((pem, url)) = &material.rekor_v2 {
        tlogs.push(log("Rekor v2's public key", pem, url, now)?);
    }
    if let Some((pem, url)) = &material.rekor {
        tlogs.push(log("Rekor's public key", pem, url, now)?);
    }
    let ctlog = material
        .ctlog
        .as_ref()
        .map(|(pem, url)| log("the CT log's public key", pem, url, now))
        .transpose()?;
    // Fulcio is named by its root's subject, the TSA by its leaf's.
    let fulcio = material
        .fulcio
        .as_ref()
        .map(|(pem, url)| authority("Fulcio's chain", pem, url, usize::MAX, now))
        .transpose()?;
    let tsa = material
        .tsa
        .as_ref()
        .map(|(pem, url)| authority("the TSA's chain", pem, url, 0, now))
        .transpose()?;
    Ok(TrustedRoot {
        media_type: TRUSTED_ROOT_MEDIA_TYPE.into(),
        tlogs: merge(&prev.tlogs, tlogs, same_log, log_range, now, true),
        certificate_authorities: merge(
            &prev.certificate_authorities,
            fulcio.into_iter().collect(),
            same_authority,
            ca_range,
            now,
            false,
        ),
        ctlogs: merge(
            &prev.ctlogs,
            ctlog.into_iter().collect(),
            same_log,
            log_range,
            now,
            true,
        ),
        timestamp_authorities: merge(
            &prev.timestamp_authorities,
            tsa.into_iter().collect(),
            same_authority,
            ca_range,
            now,
            false,
        ),
    })
}

/// Where clients of this stack sign: its Fulcio, Rekor logs and TSA, and
/// the cluster's OIDC issuer when known. Each service's `validFor` starts
/// where its trust root entry does, so the output is stable. The logs at
/// `v2_logs` speak Rekor's v2 API and are listed first, so clients that
/// can use them do.
pub fn signing_config(
    root: &TrustedRoot,
    oidc_issuer: Option<&str>,
    v2_logs: &[String],
) -> SigningConfig {
    let service = |url: &str, valid_for: Option<TimeRange>| Service {
        url: url.to_owned(),
        major_api_version: 1,
        valid_for: valid_for.map(|r| TimeRange {
            start: r.start,
            end: None,
        }),
        operator: OPERATOR.into(),
    };
    let open_ca = |list: &[CertificateAuthority]| {
        list.iter()
            .filter(|c| c.valid_for.as_ref().is_some_and(|r| r.end.is_none()))
            .map(|c| service(&c.uri, c.valid_for))
            .collect::<Vec<_>>()
    };
    let mut tlogs: Vec<Service> = root
        .tlogs
        .iter()
        .filter_map(|l| {
            let range = l.public_key.as_ref()?.valid_for;
            let mut s = range
                .as_ref()
                .is_some_and(|r| r.end.is_none())
                .then(|| service(&l.base_url, range))?;
            if v2_logs.contains(&l.base_url) {
                s.major_api_version = 2;
            }
            Some(s)
        })
        .collect();
    tlogs.sort_by_key(|s| std::cmp::Reverse(s.major_api_version));
    let any = || {
        Some(ServiceConfiguration {
            selector: ServiceSelector::Any as i32,
            count: 0,
        })
    };
    let tsa_urls: Vec<Service> = open_ca(&root.timestamp_authorities)
        .into_iter()
        .map(|mut s| {
            s.url = format!("{}/api/v1/timestamp", s.url.trim_end_matches('/'));
            s
        })
        .collect();
    SigningConfig {
        media_type: SIGNING_CONFIG_MEDIA_TYPE.into(),
        ca_urls: open_ca(&root.certificate_authorities),
        oidc_urls: oidc_issuer
            .map(|u| vec![service(u, None)])
            .unwrap_or_default(),
        rekor_tlog_config: (!tlogs.is_empty()).then(any).flatten(),
        rekor_tlog_urls: tlogs,
        tsa_config: (!tsa_urls.is_empty()).then(any).flatten(),
        tsa_urls,
    }
}

mod logs;
use logs::log;
pub use logs::{log_id_hex, log_key_id, origin_of};

#[cfg(test)]
pub(crate) mod tests;
