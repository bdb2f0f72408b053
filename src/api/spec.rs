//! The desired state of a stack. Defaults make `spec: {}` a complete stack;
//! rules the API server can check are CEL rules on the fields they guard.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    CtLogSpec, FulcioSpec, RekorSpec, TrillianSpec, duration::Duration, pod::PodSettings,
    status::SigstoreStackStatus,
};

/// A private Sigstore stack: Trillian, Rekor, a certificate transparency log,
/// Fulcio, a timestamp authority and a TUF trust root, brought up in this
/// namespace with every object named `<stack>-<part>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "scaffolding.sigstore.dev",
    version = "v1alpha1",
    kind = "SigstoreStack",
    plural = "sigstorestacks",
    shortname = "sst",
    category = "sigstore",
    namespaced,
    status = "SigstoreStackStatus",
    doc = "A private Sigstore stack, brought up by sigstore-operator from this one resource.",
    printcolumn = r#"{"name":"Phase","type":"string","description":"Where the stack is in its bring-up","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether every enabled component is available","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.pod) || !has(self.pod.resources)").message("resources are set per component (e.g. spec.fulcio.pod.resources): one size fits no two of them").reason(Reason::FieldValueForbidden).field_path(".pod.resources"))]
#[x_kube(validation = Rule::new("!(self.rekor.enabled && self.rekor.generation != 'v1' && self.fulcio.enabled) || self.tsa.enabled").message("rekor.generation v2 and both need tsa.enabled while Fulcio is on: Rekor v2 returns no signed time, so a keyless signature is verified against the TSA's timestamp").reason(Reason::FieldValueInvalid).field_path(".rekor.generation"))]
#[x_kube(validation = Rule::new("!self.ctlog.enabled || self.fulcio.enabled").message("ctlog.enabled requires fulcio.enabled: the CT log trusts only Fulcio's root").reason(Reason::FieldValueInvalid).field_path(".ctlog.enabled"))]
#[serde(rename_all = "camelCase")]
pub struct SigstoreStackSpec {
    /// Trillian, the Merkle-tree log service behind Rekor and the CT log.
    #[serde(default)]
    pub trillian: TrillianSpec,
    /// Rekor, the transparency log for signatures.
    #[serde(default)]
    pub rekor: RekorSpec,
    /// The certificate transparency log (ct_server) that Fulcio submits its
    /// certificates to.
    #[serde(default)]
    pub ctlog: CtLogSpec,
    /// Fulcio, the certificate authority that issues short-lived signing
    /// certificates for OIDC identities.
    #[serde(default)]
    pub fulcio: FulcioSpec,
    /// The RFC 3161 timestamp authority.
    #[serde(default)]
    pub tsa: TsaSpec,
    /// The TUF repository that publishes the stack's trust root to clients.
    #[serde(default)]
    pub tuf: TufSpec,
    /// Scheduling of every Pod of the stack (stage Jobs too): node
    /// selector, tolerations, affinity and priority class. A component's own
    /// `pod` settings win field by field; resources are set per component.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
    /// The stage Jobs that create keys, trees and the trust root.
    #[serde(default, skip_serializing_if = "StagesSpec::is_unset")]
    pub stages: StagesSpec,
    /// The sign-and-verify round trip that `Ready` waits for.
    #[serde(default)]
    pub self_check: SelfCheckSpec,
}

/// The self-check: once every component is available, and again whenever
/// the trust root changes, a Job signs a blob as a client would (a Fulcio
/// certificate for its projected service-account token, an RFC 3161
/// timestamp, an entry in each Rekor log) and verifies the bundle with
/// nothing but the published `trusted_root.json`. Its result is condition
/// `SigningVerified`, part of `Ready`; its bundles and artifact are
/// published in ConfigMap `<stack>-selfcheck`. It runs when Fulcio trusts
/// the cluster's issuer and a Rekor log runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfCheckSpec {
    /// Whether `Ready` waits for the self-check. Off, `Ready` means every
    /// stage is done and every workload available, as before.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

impl Default for SelfCheckSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// The stage Jobs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StagesSpec {
    /// Scheduling and resources of the stage Jobs' Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

impl StagesSpec {
    fn is_unset(&self) -> bool {
        self.pod.is_unset()
    }
}

/// The image and Pod settings of one workload.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Image to run instead of the operator's pinned default, e.g.
    /// `registry.example/trillian_log_server@sha256:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// Scheduling and resources of its Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

/// The RFC 3161 timestamp authority.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TsaSpec {
    /// Whether to run the timestamp authority.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Image of timestamp-server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// Scheduling and resources of its Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

impl Default for TsaSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            pod: PodSettings::default(),
        }
    }
}

/// The TUF repository that publishes the trust root.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TufSpec {
    /// Whether to serve a TUF repository.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Image of the TUF server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// How long each role's metadata stays valid once signed. Long defaults
    /// keep CI from breaking on expired metadata; the operator re-signs
    /// `timestamp` and `snapshot` well before they expire.
    #[serde(default)]
    pub expiry: TufExpiry,
    /// Scheduling and resources of its Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

impl Default for TufSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            expiry: TufExpiry::default(),
            pod: PodSettings::default(),
        }
    }
}

/// Validity of each TUF role's metadata, as Go durations.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("duration(self.timestamp) <= duration(self.snapshot) && duration(self.snapshot) <= duration(self.targets) && duration(self.targets) <= duration(self.root)").message("expiries must not increase from root to targets to snapshot to timestamp: timestamp <= snapshot <= targets <= root"))]
#[serde(rename_all = "camelCase")]
pub struct TufExpiry {
    /// Validity of `root.json`.
    #[serde(default = "default_tuf_root_expiry")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h')").message("must be a Go duration of at least 1h, e.g. 87600h"))]
    #[schemars(length(max = 32))]
    pub root: Duration,
    /// Validity of `targets.json`.
    #[serde(default = "default_tuf_root_expiry")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h')").message("must be a Go duration of at least 1h, e.g. 87600h"))]
    #[schemars(length(max = 32))]
    pub targets: Duration,
    /// Validity of `snapshot.json`.
    #[serde(default = "default_tuf_short_expiry")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h')").message("must be a Go duration of at least 1h, e.g. 8760h"))]
    #[schemars(length(max = 32))]
    pub snapshot: Duration,
    /// Validity of `timestamp.json`.
    #[serde(default = "default_tuf_short_expiry")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h')").message("must be a Go duration of at least 1h, e.g. 8760h"))]
    #[schemars(length(max = 32))]
    pub timestamp: Duration,
}

fn default_tuf_root_expiry() -> Duration {
    Duration::from_hours(87600)
}

fn default_tuf_short_expiry() -> Duration {
    Duration::from_hours(8760)
}

impl Default for TufExpiry {
    fn default() -> Self {
        Self {
            root: default_tuf_root_expiry(),
            targets: default_tuf_root_expiry(),
            snapshot: default_tuf_short_expiry(),
            timestamp: default_tuf_short_expiry(),
        }
    }
}

pub(super) fn enabled() -> bool {
    true
}
