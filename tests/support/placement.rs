//! What a node agent checks before a Pod runs that a real cluster checks
//! too: whether the scheduler may put it on the Node (node selector, taints,
//! required node affinity), and whether the container runtime can pull its
//! images (a mirror-only cluster reaches one registry, which wants
//! credentials from the Pod's `imagePullSecrets`).

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, PodSpec, Secret, Taint};
use kube::{Api, Client};

/// The Node's labels and taints, as the scheduler reads them.
#[derive(Clone, Debug, Default)]
pub struct NodeShape {
    /// Labels beside the ones every KinD node carries.
    pub labels: BTreeMap<String, String>,
    /// Taints of the Node.
    pub taints: Vec<Taint>,
}

/// Why the scheduler would not place `pod` on a Node with `labels` and
/// `taints`, in the scheduler's words; `None` when it fits.
pub fn unschedulable(
    pod: &PodSpec,
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> Option<String> {
    for (k, v) in pod.node_selector.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Some(format!(
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector ({k}={v})"
            ));
        }
    }
    let required = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(required) = required {
        let fits = required.node_selector_terms.iter().any(|term| {
            term.match_expressions
                .iter()
                .flatten()
                .all(|e| matches(e, labels))
        });
        if !fits {
            return Some(
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector"
                    .into(),
            );
        }
    }
    for taint in taints
        .iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
    {
        let tolerated = pod.tolerations.iter().flatten().any(|t| {
            let key = t.key.as_deref().unwrap_or_default();
            let key_ok = key.is_empty() || key == taint.key;
            let value_ok = match t.operator.as_deref().unwrap_or("Equal") {
                "Exists" => true,
                _ => {
                    t.value.as_deref().unwrap_or_default()
                        == taint.value.as_deref().unwrap_or_default()
                }
            };
            let effect_ok = t
                .effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == taint.effect);
            key_ok && value_ok && effect_ok
        });
        if !tolerated {
            return Some(format!(
                "0/1 nodes are available: 1 node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            ));
        }
    }
    None
}

fn matches(e: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&e.key);
    let values = e.values.clone().unwrap_or_default();
    match e.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// The only registry a mirror-only cluster reaches, and the credentials it
/// wants.
#[derive(Clone, Debug)]
pub struct Mirror {
    /// `host[:port]/path` the images live under.
    pub prefix: String,
    /// User and password it accepts.
    pub credentials: (String, String),
}

impl Mirror {
    fn host(&self) -> &str {
        self.prefix.split('/').next().unwrap_or_default()
    }

    /// A `kubernetes.io/dockerconfigjson` Secret `name` with the right
    /// credentials, as `kubectl create secret docker-registry` makes it.
    pub fn pull_secret(&self, name: &str) -> Secret {
        let (user, password) = &self.credentials;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let config = serde_json::json!({"auths": {self.host(): {
            "username": user, "password": password, "auth": auth}}});
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": config.to_string()},
        }))
        .expect("a pull Secret")
    }

    /// Why the runtime could not pull every image of `pod`, as
    /// `(container, message)`; `None` when it can.
    pub async fn pull_problem(
        &self,
        client: &Client,
        ns: &str,
        pod: &PodSpec,
    ) -> Option<(String, String)> {
        let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
        for c in containers {
            let image = c.image.clone().unwrap_or_default();
            if !image.starts_with(&format!("{}/", self.prefix)) {
                let host = image.split('/').next().unwrap_or_default();
                return Some((
                    c.name.clone(),
                    format!(
                        "failed to pull image \"{image}\": dial tcp: lookup {host}: no such host \
                         (this cluster reaches only {})",
                        self.host()
                    ),
                ));
            }
            if !self.authorized(client, ns, pod).await {
                return Some((
                    c.name.clone(),
                    format!(
                        "failed to pull image \"{image}\": failed to authorize: 401 Unauthorized \
                         (no imagePullSecret of the Pod has credentials for {})",
                        self.host()
                    ),
                ));
            }
        }
        None
    }

    async fn authorized(&self, client: &Client, ns: &str, pod: &PodSpec) -> bool {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        for r in pod.image_pull_secrets.iter().flatten() {
            let Ok(Some(secret)) = secrets.get_opt(&r.name).await else {
                continue;
            };
            if secret.type_.as_deref() != Some("kubernetes.io/dockerconfigjson") {
                continue;
            }
            let Some(config) = secret
                .data
                .as_ref()
                .and_then(|d| d.get(".dockerconfigjson"))
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.0).ok())
            else {
                continue;
            };
            let (user, password) = &self.credentials;
            let entry = &config["auths"][self.host()];
            let given = entry["auth"]
                .as_str()
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if given.as_deref() == Some(&format!("{user}:{password}")) {
                return true;
            }
        }
        false
    }
}
