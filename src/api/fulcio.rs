//! Fulcio's part of the spec: its CA (generated or brought) and the OIDC
//! issuers it accepts.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, PodSettings, enabled};

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
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("must be a Secret name: lowercase letters, digits, '-' and '.'"))]
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
