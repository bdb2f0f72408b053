//! What the operator reports about a stack. Only public material appears
//! here: never a private key or a password.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a stack.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreStackStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// A one-word summary of the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The stack's conditions: one per enabled stage (`CertsCreated`,
    /// `RekorTreeCreated`, `CTConfigCreated`, ...), one per component's
    /// availability (`Disabled` for one the spec turned off), and `Ready`,
    /// True only when every enabled stage is done and every enabled
    /// component available. Wait on it with `kubectl wait --for=condition=Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Trillian's in-cluster gRPC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trillian: Option<TrillianStatus>,
    /// Rekor's URL, tree and public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<LogStatus>,
    /// Rekor v2, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_v2: Option<LogStatus>,
    /// The CT log's URL, tree and public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<LogStatus>,
    /// Fulcio's URL and root certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulcio: Option<FulcioStatus>,
    /// The timestamp authority's URL and certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa: Option<TsaStatus>,
    /// The TUF repository's URL and where its `root.json` is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<TufStatus>,
    /// Where this stack's `trusted_root.json` is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<ConfigMapKeyReference>,
    /// Where this stack's `signing_config.json` is published (in-cluster
    /// URLs, for clients in Pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_config: Option<ConfigMapKeyReference>,
    /// Where this stack's `trust_config.json` is published: a
    /// `ClientTrustConfig` holding both of the above, for sigstore-python's
    /// `--trust-config`, kwctl and sigstore-rs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_config: Option<ConfigMapKeyReference>,
    /// The last passing self-check: what it signed, as whom, and its
    /// bundles, so anyone can verify them with any client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_check: Option<SelfCheckStatus>,
}

/// The proof of the last passing self-check, in ConfigMap
/// `<stack>-selfcheck`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfCheckStatus {
    /// The blob that was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ConfigMapKeyReference>,
    /// One Sigstore bundle (v0.3) per Rekor log the stack runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<ConfigMapKeyReference>,
    /// The certificate identity (SAN) the bundles were signed as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The OIDC issuer of that identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// When the check passed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    /// How long the round trip took, e.g. `1.8s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// A one-word summary of a stack's state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Stages or workloads are still coming up.
    Progressing,
    /// Every enabled component is available.
    Ready,
    /// Not ready, and a stage's last attempt failed (another follows; its
    /// condition says why and when).
    Degraded,
    /// The spec cannot be acted on; the `Ready` condition says which field.
    Invalid,
}

/// Trillian's address inside the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrillianStatus {
    /// The log server's gRPC address, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A transparency log's public facts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogStatus {
    /// The log's in-cluster base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name its checkpoints are signed under: the host of `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The log's ID as clients compute it, hex: SHA-256 of its DER key, or
    /// for an Ed25519 Rekor v2 key its note key hash.
    #[serde(rename = "logID", default, skip_serializing_if = "Option::is_none")]
    pub log_id: Option<String>,
    /// Where monitors and witnesses read a tile-based log: `/checkpoint`,
    /// `/tile/...`.
    #[serde(rename = "readURL", default, skip_serializing_if = "Option::is_none")]
    pub read_url: Option<String>,
    /// Where a tile-based log keeps its tiles. On an emptyDir it starts
    /// again empty when its Pod is replaced; its key and origin stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// The Trillian tree the log writes to.
    #[serde(rename = "treeID", default, skip_serializing_if = "Option::is_none")]
    pub tree_id: Option<i64>,
    /// The log's public key, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// Fulcio's public facts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FulcioStatus {
    /// Fulcio's in-cluster base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The CA certificate chain Fulcio issues from, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_certificate: Option<String>,
}

/// The timestamp authority's public facts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TsaStatus {
    /// The timestamp authority's in-cluster base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The timestamping certificate chain, leaf first, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
}

/// The TUF repository's public facts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TufStatus {
    /// The repository's in-cluster base URL (a TUF mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the repository's `root.json` is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<ConfigMapKeyReference>,
}

/// A key of a ConfigMap in the stack's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyReference {
    /// The ConfigMap's name.
    pub name: String,
    /// The key within it.
    pub key: String,
}
