//! The cluster's service-account token issuer, as the API server announces
//! it, so Pods sign with projected tokens (audience `sigstore`): discovered
//! rather than assumed, because clusters name it differently (KinD:
//! `https://kubernetes.default.svc.cluster.local`), and checked for what
//! Fulcio can use.

use kube::Client;

/// Why the cluster's issuer could not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The request failed.
    #[error("cannot read the API server's /.well-known/openid-configuration: {0}")]
    Request(#[source] Box<kube::Error>),
    /// The document has no issuer.
    #[error("the API server's /.well-known/openid-configuration has no \"issuer\"")]
    NoIssuer,
}

/// What the API server announces of its service-account tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOidc {
    /// The issuer.
    pub issuer: String,
    /// Where it publishes its keys.
    pub jwks_uri: Option<String>,
}

/// The service-account token issuer the API server announces, and where
/// its keys are.
pub async fn discover_cluster_issuer(client: &Client) -> Result<ClusterOidc, DiscoveryError> {
    let request = http::Request::get("/.well-known/openid-configuration")
        .body(Vec::new())
        .map_err(|e| DiscoveryError::Request(Box::new(kube::Error::HttpError(e))))?;
    let doc: serde_json::Value = client
        .request(request)
        .await
        .map_err(|e| DiscoveryError::Request(Box::new(e)))?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Ok(ClusterOidc {
        issuer: field("issuer").ok_or(DiscoveryError::NoIssuer)?,
        jwks_uri: field("jwks_uri"),
    })
}

/// The condition reason for a cluster whose keys Fulcio cannot fetch.
pub const JWKS_HOST_MISMATCH: &str = "JWKSHostMismatch";

/// Why Fulcio cannot verify the cluster's tokens: the keys are published
/// on another host than the issuer's (kubeadm's default puts them on the
/// API server's address), and Fulcio fetches an issuer's keys only from
/// the issuer's own host.
pub fn jwks_problem(oidc: &ClusterOidc) -> Option<String> {
    let jwks = oidc.jwks_uri.as_deref()?;
    let authority = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let issuer = &oidc.issuer;
    (authority(issuer) != authority(jwks)).then(|| {
        format!(
            "The cluster's service-account issuer is {issuer}, but it publishes its keys at \
             {jwks} (jwks_uri), on another host. Fulcio fetches an issuer's keys only from the \
             issuer's host, so it would refuse every signature with a cluster token. Start the \
             API server with --service-account-jwks-uri={issuer}/openid/v1/jwks (KinD: kind \
             create cluster --config hack/kind-config.yaml), or set \
             spec.fulcio.trustClusterIssuer: false and name an issuer in spec.fulcio.oidcIssuers."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_on_another_host_than_the_issuer_are_named() {
        let oidc = |jwks: Option<&str>| ClusterOidc {
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
            jwks_uri: jwks.map(str::to_owned),
        };
        assert_eq!(jwks_problem(&oidc(None)), None);
        assert_eq!(
            jwks_problem(&oidc(Some(
                "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
            ))),
            None
        );
        // kubeadm's default: the API server's own address.
        let problem = jwks_problem(&oidc(Some("https://172.18.0.2:6443/openid/v1/jwks"))).unwrap();
        assert!(
            problem.contains("https://172.18.0.2:6443/openid/v1/jwks"),
            "{problem}"
        );
        assert!(
            problem.contains(
                "--service-account-jwks-uri=https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
            ),
            "{problem}"
        );
        // The port is part of the host Fulcio compares.
        let ported = ClusterOidc {
            issuer: "https://issuer.example:8443".into(),
            jwks_uri: Some("https://issuer.example/keys".into()),
        };
        assert!(jwks_problem(&ported).is_some());
    }
}
