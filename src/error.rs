//! Typed errors of the operator.

use thiserror::Error;

/// Everything that can go wrong in the operator.
#[derive(Debug, Error)]
pub enum Error {
    /// The CRD is not installed, so nothing can be watched.
    #[error(
        "the SigstoreStack CRD ({crd}) is not installed in this cluster; install it with \
         `sigstore-operator crd | kubectl apply --server-side -f -` (or `kubectl apply \
         --server-side -f crds/sigstorestack.yaml`)"
    )]
    CrdNotInstalled {
        /// Name of the missing CRD.
        crd: String,
    },
    /// A call to the API server failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// A call to the API server failed in a step of a pass, on one object.
    #[error("cannot {step} {kind} {name}: {source}")]
    Api {
        /// What the pass was doing, e.g. `apply`.
        step: &'static str,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The API server's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// The kubeconfig or in-cluster configuration could not be loaded.
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(String),
    /// The CRD could not be printed.
    #[error("cannot render the CRD: {0}")]
    Render(#[from] serde_yaml::Error),
    /// An object the API server returned lacks a field it always sets.
    #[error("{kind} is missing {field}")]
    MissingField {
        /// The object's kind.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// Serializing an object failed.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A stage failed.
    #[error("stage failed: {0}")]
    Stage(#[from] crate::stage::StageError),
    /// The cluster's service-account issuer could not be discovered.
    #[error("{0}")]
    Discovery(#[from] crate::cluster_oidc::DiscoveryError),
    /// The leader election's settings cannot work.
    #[error("leader election: {0}")]
    LeaderSettings(#[from] crate::leader::SettingsError),
    /// This replica stopped leading while it ran: it exits so that it
    /// starts again as a standby.
    #[error("stopped leading: {0}")]
    LeaseLost(String),
    /// The watch caches a pass reads from were closed (the controller is
    /// stopping).
    #[error("the watch caches closed before their first list")]
    CachesClosed,
    /// The metrics/health HTTP server failed.
    #[error("HTTP server on {addr} failed: {source}")]
    Http {
        /// The address it listened on.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Self::Kube(Box::new(e))
    }
}

impl Error {
    /// A failed API call in `step` on `kind` `name`.
    pub fn api(step: &'static str, kind: &str, name: &str, source: kube::Error) -> Self {
        Self::Api {
            step,
            kind: kind.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        }
    }

    /// A short, stable label for metrics and events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::CrdNotInstalled { .. } => "crd_not_installed",
            Self::Kube(_) | Self::Api { .. } => "kube",
            Self::Config(_) => "config",
            Self::Render(_) => "render",
            Self::MissingField { .. } => "missing_field",
            Self::Serialize { .. } => "serialize",
            Self::Http { .. } => "http",
            Self::Stage(_) => "stage",
            Self::Discovery(_) => "discovery",
            Self::LeaderSettings(_) => "leader_settings",
            Self::LeaseLost(_) => "lease_lost",
            Self::CachesClosed => "caches_closed",
        }
    }
}

/// Result with the operator's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
