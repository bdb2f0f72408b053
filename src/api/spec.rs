//! The desired state of a stack. Defaults make `spec: {}` a complete stack;
//! rules the API server can check are CEL rules on the fields they guard.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{duration::Duration, pod::PodSettings, status::SigstoreStackStatus};

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

/// Where Trillian keeps its trees and which images run it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrillianSpec {
    /// The database Trillian stores its trees in.
    #[serde(default)]
    pub database: TrillianDatabaseSpec,
    /// The Trillian log server.
    #[serde(default)]
    pub log_server: WorkloadSpec,
    /// The Trillian log signer, which integrates queued entries into the tree.
    #[serde(default)]
    pub log_signer: WorkloadSpec,
}

/// Trillian's database: one the operator runs for this stack, or one that
/// already exists.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("self.mode == 'External' ? has(self.external) : !has(self.external)").message("external is required when mode is External, and not allowed otherwise").field_path(".external"))]
#[x_kube(validation = Rule::new("self.mode == 'Embedded' || !has(self.storage)").message("storage applies only to the Embedded database").field_path(".storage"))]
#[serde(rename_all = "camelCase")]
pub struct TrillianDatabaseSpec {
    /// `Embedded` runs a MariaDB for this stack with Trillian's schema;
    /// `External` uses the database described in `external`.
    #[serde(default)]
    pub mode: DatabaseMode,
    /// Image of the embedded database, overriding the pinned default. With
    /// an `External` database it runs only the schema client (`mysql`) in
    /// the log server's init container, so a mirror-only cluster can name
    /// its copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The existing MySQL-compatible database, when `mode` is `External`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
    /// Keep the embedded database on a PersistentVolumeClaim, so the trees
    /// survive the database Pod being replaced. Without it the data lives
    /// in an emptyDir and goes with the Pod; the operator then replaces the
    /// lost trees (same keys; what was logged before can no longer be looked
    /// up). Read when the claim is created; an existing claim is never
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<DatabaseStorage>,
    /// Scheduling and resources of the embedded database's Pod.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

/// A PersistentVolumeClaim for the embedded database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStorage {
    /// Requested size, a Kubernetes quantity such as `1Gi`.
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$')").message("must be a quantity such as 1Gi or 500Mi"))]
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// StorageClass of the claim; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// How Trillian's database is provided.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseMode {
    /// The operator runs a MariaDB for this stack.
    #[default]
    Embedded,
    /// A database the user runs; the operator only connects to it.
    External,
}

/// A MySQL-compatible database that already holds (or may be given)
/// Trillian's schema.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Host name or IP address of the database server.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$')").message("must be a host name or IP address"))]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// TCP port of the database server.
    #[serde(default = "default_mysql_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Name of the database that holds Trillian's tables.
    #[serde(default = "default_database_name")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_$]+$')").message("must be a MySQL database name: letters, digits, '_' or '$'"))]
    #[schemars(length(min = 1, max = 64))]
    pub database: String,
    /// Name of a Secret in the stack's namespace with keys `username` and
    /// `password`. The operator only reads it.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

fn default_mysql_port() -> u16 {
    3306
}

fn default_database_name() -> String {
    "trillian".into()
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

/// Rekor, the signature transparency log (Rekor v1 on Trillian).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RekorSpec {
    /// Whether to run Rekor.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Image of the Rekor server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// Image of the Redis that holds Rekor's search index, overriding the
    /// pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub redis_image: Option<String>,
    /// Scheduling and resources of its Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
    /// Scheduling and resources of the Redis Pod.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub redis_pod: PodSettings,
}

impl Default for RekorSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            redis_image: None,
            pod: PodSettings::default(),
            redis_pod: PodSettings::default(),
        }
    }
}

/// The certificate transparency log.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CtLogSpec {
    /// Whether to run the CT log. It needs Fulcio, whose root it trusts.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Image of ct_server, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The URL path segment the log is served under: the log answers at
    /// `http://<stack>-ctlog.<namespace>.svc/<prefix>/ct/v1/...`.
    #[serde(default = "default_ct_prefix")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$')").message("must be a single URL path segment: letters, digits, '.', '_' or '-', starting with a letter or digit"))]
    #[schemars(length(min = 1, max = 63))]
    pub prefix: String,
    /// Scheduling and resources of its Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

fn default_ct_prefix() -> String {
    "sigstorescaffolding".into()
}

impl Default for CtLogSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            prefix: default_ct_prefix(),
            pod: PodSettings::default(),
        }
    }
}

/// Fulcio, the code-signing certificate authority.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FulcioSpec {
    /// Whether to run Fulcio.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Image of Fulcio, overriding the pinned default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^\\\\s]+$')").message("must be a non-empty image reference without spaces"))]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The CA that signs Fulcio's certificates.
    #[serde(default)]
    pub ca: FulcioCaSpec,
    /// Trust the cluster's own service-account token issuer (discovered from
    /// the API server), so Pods can sign with their projected tokens.
    #[serde(default = "enabled")]
    pub trust_cluster_issuer: bool,
    /// Further OIDC issuers Fulcio accepts tokens from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["issuerURL".into()]))]
    #[schemars(length(max = 32))]
    pub oidc_issuers: Vec<OidcIssuer>,
    /// Scheduling and resources of its Pods.
    #[serde(default, skip_serializing_if = "PodSettings::is_unset")]
    pub pod: PodSettings,
}

impl Default for FulcioSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            ca: FulcioCaSpec::default(),
            trust_cluster_issuer: true,
            oidc_issuers: Vec::new(),
            pod: PodSettings::default(),
        }
    }
}

/// Fulcio's certificate authority: generated once by the operator, or
/// brought by the user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FulcioCaSpec {
    /// Subject of a generated CA certificate.
    #[serde(default)]
    pub subject: CertificateSubject,
    /// How long a generated CA certificate is valid, as a Go duration
    /// (`87600h` is ten years).
    #[serde(default = "default_ca_validity")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h')").message("must be a Go duration of at least 1h, e.g. 87600h"))]
    #[schemars(length(max = 32))]
    pub validity: Duration,
    /// Key algorithm of a generated CA.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// Name of a Secret in the stack's namespace holding a CA to use instead
    /// of generating one: key `cert` (the chain, CA first), `private` (the
    /// PEM private key) and optionally `password`. The operator only reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub existing_secret: Option<String>,
}

fn default_ca_validity() -> Duration {
    Duration::from_hours(87600)
}

impl Default for FulcioCaSpec {
    fn default() -> Self {
        Self {
            subject: CertificateSubject::default(),
            validity: default_ca_validity(),
            key_algorithm: KeyAlgorithm::default(),
            existing_secret: None,
        }
    }
}

/// Subject names of a generated certificate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSubject {
    /// Common name (CN).
    #[serde(default = "default_common_name")]
    #[x_kube(validation = Rule::new("self.trim().size() > 0").message("must not be blank"))]
    #[schemars(length(min = 1, max = 64))]
    pub common_name: String,
    /// Organization (O).
    #[serde(default = "default_organization")]
    #[schemars(length(max = 64))]
    pub organization: String,
}

fn default_common_name() -> String {
    "sigstore-operator".into()
}

fn default_organization() -> String {
    "sigstore-operator".into()
}

impl Default for CertificateSubject {
    fn default() -> Self {
        Self {
            common_name: default_common_name(),
            organization: default_organization(),
        }
    }
}

/// A key algorithm for generated keys.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256.
    #[default]
    #[serde(rename = "ECDSA-P256")]
    EcdsaP256,
    /// ECDSA on NIST P-384.
    #[serde(rename = "ECDSA-P384")]
    EcdsaP384,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "RSA-3072")]
    Rsa3072,
}

/// An OIDC issuer whose tokens Fulcio turns into certificates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OidcIssuer {
    /// The issuer URL, exactly as it appears in the tokens' `iss` claim.
    #[serde(rename = "issuerURL")]
    #[x_kube(validation = Rule::new("self.matches('^https://[^\\\\s/]+(/[^\\\\s]*)?$')").message("must be an https:// URL"))]
    #[schemars(length(min = 9, max = 512))]
    pub issuer_url: String,
    /// The audience (`aud`) the tokens must carry.
    #[serde(rename = "clientID", default = "default_client_id")]
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// How Fulcio reads the identity from the token.
    #[serde(rename = "type", default)]
    pub issuer_type: IssuerType,
}

fn default_client_id() -> String {
    "sigstore".into()
}

/// Fulcio's issuer types: which claim becomes the certificate's identity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerType {
    /// The `email` claim (requires `email_verified`).
    #[default]
    Email,
    /// A Kubernetes service-account token.
    Kubernetes,
    /// A GitHub Actions workflow token.
    GithubWorkflow,
    /// A GitLab CI pipeline token.
    GitlabPipeline,
    /// A Buildkite job token.
    BuildkiteJob,
    /// A Codefresh workflow token.
    CodefreshWorkflow,
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

fn enabled() -> bool {
    true
}
