//! Stands in for the kubelet and the Deployment controller, which do not run
//! here. A Deployment the test lets up is marked available once every
//! ConfigMap and Secret key its Pod references exists: the same gate the
//! kubelet applies before it starts a container. Until then it stays
//! unavailable, as its Pod would.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, PodSpec, Secret},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

/// Which Deployments may come up.
#[derive(Clone, Debug)]
enum Allowed {
    All,
    Some(BTreeSet<String>),
}

/// A running stand-in; stops when dropped.
pub struct Kubelet {
    allowed: Arc<Mutex<Allowed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// Starts watching `namespace`, with no Deployment allowed up yet.
    pub fn start(client: Client, namespace: &str) -> Self {
        let allowed = Arc::new(Mutex::new(Allowed::Some(BTreeSet::new())));
        let shared = allowed.clone();
        let ns = namespace.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let allowed = shared.lock().unwrap().clone();
                let _ = pass(&client, &ns, &allowed).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Self { allowed, task }
    }

    /// Lets these Deployments come up (once their keys exist).
    pub fn allow(&self, names: &[&str]) {
        let mut allowed = self.allowed.lock().unwrap();
        if let Allowed::Some(set) = &mut *allowed {
            set.extend(names.iter().map(|n| (*n).to_owned()));
        }
    }

    /// Lets every Deployment come up.
    pub fn allow_all(&self) {
        *self.allowed.lock().unwrap() = Allowed::All;
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pass(client: &Client, ns: &str, allowed: &Allowed) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in deployments.list(&ListParams::default()).await?.items {
        let name = d.name_any();
        if let Allowed::Some(set) = allowed
            && !set.contains(&name)
        {
            continue;
        }
        let generation = d.metadata.generation;
        let status = d.status.clone().unwrap_or_default();
        if status.observed_generation == generation && status.available_replicas == Some(1) {
            continue;
        }
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .unwrap_or_default();
        if !references_resolve(client, ns, &pod).await? {
            continue;
        }
        let body = json!({"status": {
            "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
        }});
        deployments
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(())
}

/// Whether every ConfigMap/Secret key `pod` needs exists.
pub async fn references_resolve(client: &Client, ns: &str, pod: &PodSpec) -> anyhow::Result<bool> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut needed: Vec<(bool, String, Option<String>)> = Vec::new(); // (secret?, name, key)
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.secret_key_ref
                && !r.optional.unwrap_or(false)
            {
                needed.push((true, r.name.clone(), Some(r.key.clone())));
            }
            if let Some(r) = &from.config_map_key_ref
                && !r.optional.unwrap_or(false)
            {
                needed.push((false, r.name.clone(), Some(r.key.clone())));
            }
        }
    }
    for v in pod.volumes.iter().flatten() {
        if let Some(s) = &v.secret
            && !s.optional.unwrap_or(false)
        {
            let name = s.secret_name.clone().unwrap_or_default();
            match &s.items {
                Some(items) => needed.extend(
                    items
                        .iter()
                        .map(|i| (true, name.clone(), Some(i.key.clone()))),
                ),
                None => needed.push((true, name, None)),
            }
        }
        if let Some(c) = &v.config_map
            && !c.optional.unwrap_or(false)
        {
            match &c.items {
                Some(items) => needed.extend(
                    items
                        .iter()
                        .map(|i| (false, c.name.clone(), Some(i.key.clone()))),
                ),
                None => needed.push((false, c.name.clone(), None)),
            }
        }
    }
    for (secret, name, key) in needed {
        let keys: Option<BTreeSet<String>> = if secret {
            secrets
                .get_opt(&name)
                .await?
                .map(|s| s.data.unwrap_or_default().into_keys().collect())
        } else {
            config_maps
                .get_opt(&name)
                .await?
                .map(|c| c.data.unwrap_or_default().into_keys().collect())
        };
        match (keys, key) {
            (None, _) => return Ok(false),
            (Some(keys), Some(key)) if !keys.contains(&key) => return Ok(false),
            _ => {}
        }
    }
    Ok(true)
}

/// A container's env as the kubelet resolves it, in order, after `base`:
/// values (with `$(VAR)` expansion), fieldRefs, and Secret and ConfigMap
/// keys; each value passed through `rewrite`.
pub async fn resolve_env(
    client: &Client,
    ns: &str,
    pod: &str,
    c: &k8s_openapi::api::core::v1::Container,
    base: Vec<(String, String)>,
    rewrite: impl Fn(&str) -> String,
) -> anyhow::Result<Vec<(String, String)>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut out = base;
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            super::jobs::expand(v, &out)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                match f.field_path.as_str() {
                    "metadata.namespace" => ns.to_owned(),
                    "metadata.name" => pod.to_owned(),
                    other => anyhow::bail!("unsupported fieldRef {other}"),
                }
            } else if let Some(r) = &from.secret_key_ref {
                let s = secrets.get_opt(&r.name).await?;
                let v = s.and_then(|s| s.data).and_then(|d| d.get(&r.key).cloned());
                v.map(|v| String::from_utf8_lossy(&v.0).into_owned())
                    .ok_or_else(|| {
                        anyhow::anyhow!("secret {:?} key {:?} not found", r.name, r.key)
                    })?
            } else if let Some(r) = &from.config_map_key_ref {
                let cm = config_maps.get_opt(&r.name).await?;
                cm.and_then(|c| c.data)
                    .and_then(|d| d.get(&r.key).cloned())
                    .ok_or_else(|| {
                        anyhow::anyhow!("configmap {:?} key {:?} not found", r.name, r.key)
                    })?
            } else {
                anyhow::bail!("unsupported valueFrom for {}", e.name)
            }
        } else {
            String::new()
        };
        out.retain(|(k, _)| k != &e.name);
        out.push((e.name.clone(), rewrite(&value)));
    }
    Ok(out)
}
