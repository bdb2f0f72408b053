//! The two logs of a stack, each with its choice of server: Rekor (v1 on
//! Trillian, v2 on tiles, or both side by side) and the certificate
//! transparency log (ct_server on Trillian, or TesseraCT on tiles).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DatabaseStorage, pod::PodSettings, spec::enabled};

/// Which Rekor a stack runs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RekorGeneration {
    /// Rekor v1 (rekor-server on Trillian): the default, because every
    /// client signs and verifies against it, sigstore-rs and Kubewarden
    /// included, and it needs no TSA.
    #[default]
    #[serde(rename = "v1")]
    V1,
    /// Rekor v2 (rekor-tiles, its tiles on a volume): no Trillian and no
    /// database. cosign 3, sigstore-go, sigstore-python 4 and sigstore-js
    /// use it; cosign 2 and sigstore-rs cannot. Keyless signing needs the
    /// TSA, since Rekor v2 returns no signed time.
    #[serde(rename = "v2")]
    V2,
    /// Both logs side by side, both in the trust root; the signing config
    /// lists v2 first, so clients that can use it do.
    #[serde(rename = "both")]
    Both,
}

impl RekorGeneration {
    /// Whether Rekor v1 runs.
    pub fn v1(self) -> bool {
        matches!(self, Self::V1 | Self::Both)
    }

    /// Whether Rekor v2 runs.
    pub fn v2(self) -> bool {
        matches!(self, Self::V2 | Self::Both)
    }
}

/// The key a tile-based log signs its checkpoints with.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogKeyAlgorithm {
    /// Ed25519: the only key witnesses can cosign for.
    #[default]
    #[serde(rename = "Ed25519")]
    Ed25519,
    /// ECDSA on NIST P-256.
    #[serde(rename = "ECDSA-P256")]
    EcdsaP256,
}

/// Rekor, the signature transparency log.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RekorSpec {
    /// Whether to run Rekor.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Which Rekor runs: `v1` (the default), `v2` or `both`. Changing it
    /// keeps the old log's entry in the trust root, closed, so what was
    /// signed before still verifies.
    #[serde(default)]
    pub generation: RekorGeneration,
    /// Image of the Rekor v1 server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// Image of the Redis that holds Rekor v1's search index, overriding
    /// the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub redis_image: Option<String>,
    /// Scheduling and resources of Rekor v1's Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
    /// Scheduling and resources of the Redis Pod.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub redis_pod: PodSettings,
    /// Rekor v2's settings.
    #[serde(default, skip_serializing_if = "TileLogSpec::is_unset")]
    pub v2: TileLogSpec,
}

impl Default for RekorSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            generation: RekorGeneration::default(),
            image: None,
            redis_image: None,
            pod: PodSettings::default(),
            redis_pod: PodSettings::default(),
            v2: TileLogSpec::default(),
        }
    }
}

/// A log that keeps its tiles on a volume (Rekor v2, TesseraCT).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TileLogSpec {
    /// Image of the server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The key its checkpoints are signed with (Rekor v2 only; TesseraCT
    /// takes ECDSA P-256). Made once, never changed.
    #[serde(default)]
    pub key_algorithm: LogKeyAlgorithm,
    /// A PersistentVolumeClaim the stack owns for the log's tiles. Without
    /// it the log lives on an emptyDir and starts again empty when its Pod
    /// is replaced (its key and origin stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<DatabaseStorage>,
    /// Scheduling and resources of its Pod.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

impl TileLogSpec {
    fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

/// Which server runs the certificate transparency log.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CtLogBackend {
    /// ct_server (certificate-transparency-go) on Trillian: the default,
    /// whose SCTs every client reads.
    #[default]
    #[serde(rename = "ctfe")]
    Ctfe,
    /// TesseraCT, its tiles on a volume: no Trillian and no database.
    /// sigstore-python reads its SCTs from 4.2 on.
    #[serde(rename = "tesseract")]
    Tesseract,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CtLogSpec {
    /// Whether to run the CT log. It needs Fulcio, whose root it trusts.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Which server runs it: `ctfe` (the default) or `tesseract`.
    /// Changing it keeps the old log's entry in the trust root, closed.
    #[serde(default)]
    pub backend: CtLogBackend,
    /// Image of ct_server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The URL path segment ct_server serves the log under: it answers at
    /// `http://<stack>-ctlog.<namespace>.svc/<prefix>/ct/v1/...`
    /// (TesseraCT answers at its origin, with no prefix).
    #[serde(default = "default_ct_prefix")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$')").message("must be a single URL path segment: letters, digits, '.', '_' or '-', starting with a letter or digit"))]
    #[schemars(length(min = 1, max = 63))]
    pub prefix: String,
    /// Scheduling and resources of ct_server's Pod.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
    /// TesseraCT's settings.
    #[serde(default, skip_serializing_if = "TileLogSpec::is_unset")]
    pub tesseract: TileLogSpec,
}

fn default_ct_prefix() -> String {
    "sigstorescaffolding".into()
}

impl Default for CtLogSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: CtLogBackend::default(),
            image: None,
            prefix: default_ct_prefix(),
            pod: PodSettings::default(),
            tesseract: TileLogSpec::default(),
        }
    }
}
