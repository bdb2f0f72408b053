//! Fulcio's `config.yaml`: which OIDC issuers it accepts tokens from,
//! rendered from the spec and the cluster's own service-account issuer
//! (discovered by [`crate::cluster_oidc`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::{FulcioSpec, IssuerType};

/// The audience Fulcio expects on Kubernetes service-account tokens.
pub const CLUSTER_CLIENT_ID: &str = "sigstore";

/// The in-cluster API server URL. Fulcio 1.8 trusts the cluster's CA
/// (`/var/run/fulcio/ca.crt`) for a `kubernetes` issuer only when its
/// config also lists this URL, so it is listed beside any other cluster
/// issuer (KinD's is `https://kubernetes.default.svc.cluster.local`).
pub const IN_CLUSTER_ISSUER: &str = "https://kubernetes.default.svc";

/// One entry of `oidc-issuers`, as Fulcio 1.8 reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct IssuerEntry {
    /// The issuer URL (`iss`).
    pub issuer_url: String,
    /// The audience.
    pub client_id: String,
    /// How the identity is read from the token.
    #[serde(rename = "type")]
    pub issuer_type: IssuerType,
}

#[derive(Serialize)]
struct Config {
    #[serde(rename = "oidc-issuers")]
    oidc_issuers: BTreeMap<String, IssuerEntry>,
}

/// The issuers of a stack's Fulcio: the cluster's (when trusted and known)
/// and the spec's. A spec entry for the cluster's URL replaces the default.
pub fn issuers(spec: &FulcioSpec, cluster_issuer: Option<&str>) -> BTreeMap<String, IssuerEntry> {
    let mut out = BTreeMap::new();
    if spec.trust_cluster_issuer
        && let Some(url) = cluster_issuer
    {
        for url in [url, IN_CLUSTER_ISSUER] {
            out.insert(
                url.to_owned(),
                IssuerEntry {
                    issuer_url: url.to_owned(),
                    client_id: CLUSTER_CLIENT_ID.to_owned(),
                    issuer_type: IssuerType::Kubernetes,
                },
            );
        }
    }
    for i in &spec.oidc_issuers {
        out.insert(
            i.issuer_url.clone(),
            IssuerEntry {
                issuer_url: i.issuer_url.clone(),
                client_id: i.client_id.clone(),
                issuer_type: i.issuer_type,
            },
        );
    }
    out
}

/// Fulcio's `config.yaml` for `spec`. Deterministic (issuers sorted by
/// URL), so an unchanged stack renders identical bytes.
pub fn render(
    spec: &FulcioSpec,
    cluster_issuer: Option<&str>,
) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&Config {
        oidc_issuers: issuers(spec, cluster_issuer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OidcIssuer;

    fn parsed(yaml: &str) -> serde_yaml::Value {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn cluster_issuer_is_a_kubernetes_issuer_with_audience_sigstore() {
        let yaml = render(
            &FulcioSpec::default(),
            Some("https://kubernetes.default.svc.cluster.local"),
        )
        .unwrap();
        let v = parsed(&yaml);
        let entry = &v["oidc-issuers"]["https://kubernetes.default.svc.cluster.local"];
        assert_eq!(
            entry["issuer-url"],
            "https://kubernetes.default.svc.cluster.local"
        );
        assert_eq!(entry["client-id"], "sigstore");
        assert_eq!(entry["type"], "kubernetes");
        // Without this entry Fulcio 1.8 would not trust the cluster's CA
        // when it fetches the issuer's discovery document.
        assert_eq!(
            v["oidc-issuers"]["https://kubernetes.default.svc"]["type"],
            "kubernetes"
        );
    }

    #[test]
    fn spec_issuers_join_and_may_replace_the_default() {
        let mut spec = FulcioSpec {
            oidc_issuers: vec![
                OidcIssuer {
                    issuer_url: "https://token.actions.githubusercontent.com".into(),
                    client_id: "sigstore".into(),
                    issuer_type: IssuerType::GithubWorkflow,
                },
                OidcIssuer {
                    issuer_url: "https://cluster.example".into(),
                    client_id: "other-audience".into(),
                    issuer_type: IssuerType::Kubernetes,
                },
            ],
            ..FulcioSpec::default()
        };
        let all = issuers(&spec, Some("https://cluster.example"));
        assert_eq!(all.len(), 3, "the spec's two and the in-cluster URL");
        assert_eq!(all["https://cluster.example"].client_id, "other-audience");
        let v = parsed(&render(&spec, Some("https://cluster.example")).unwrap());
        assert_eq!(
            v["oidc-issuers"]["https://token.actions.githubusercontent.com"]["type"],
            "github-workflow"
        );
        spec.trust_cluster_issuer = false;
        spec.oidc_issuers.pop();
        let only = issuers(&spec, Some("https://cluster.example"));
        assert_eq!(
            only.keys().collect::<Vec<_>>(),
            ["https://token.actions.githubusercontent.com"]
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let spec = FulcioSpec::default();
        assert_eq!(
            render(&spec, Some("https://a")).unwrap(),
            render(&spec, Some("https://a")).unwrap()
        );
        assert_eq!(render(&spec, None).unwrap().trim(), "oidc-issuers: {}");
    }
}
