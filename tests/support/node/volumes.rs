//! The kubelet's volume part: ConfigMap, Secret, projected (token, CA,
//! namespace), downwardAPI and emptyDir volumes written under the Pod's
//! directory, with their `items`.

use super::*;

impl Agent {
    /// Materializes every volume: name → host directory.
    pub(super) async fn volumes(
        &self,
        pod: &Pod,
        dir: &Path,
    ) -> anyhow::Result<BTreeMap<String, PathBuf>> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut out = BTreeMap::new();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        for v in spec.volumes.iter().flatten() {
            let path = dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&path)?;
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                let data = secrets
                    .get_opt(&name)
                    .await?
                    .and_then(|s| s.data)
                    .unwrap_or_default();
                files.extend(pick(
                    data.into_iter().map(|(k, v)| (k, v.0)).collect(),
                    &s.items,
                ));
            } else if let Some(c) = &v.config_map {
                files.extend(config_map_files(&cms, &c.name, &c.items).await?);
            } else if let Some(p) = &v.projected {
                for source in p.sources.iter().flatten() {
                    if let Some(t) = &source.service_account_token {
                        // Written once per Pod: tokens outlive these tests.
                        if !path.join(&t.path).exists() {
                            files.push((
                                t.path.clone(),
                                self.token(pod, t.audience.clone(), t.expiration_seconds)
                                    .await?
                                    .into_bytes(),
                            ));
                        }
                    }
                    if let Some(c) = &source.config_map {
                        files.extend(config_map_files(&cms, &c.name, &c.items).await?);
                    }
                    if let Some(d) = &source.downward_api {
                        for item in d.items.iter().flatten() {
                            let value = match item.field_ref.as_ref().map(|f| f.field_path.as_str())
                            {
                                Some("metadata.namespace") => self.ns.clone(),
                                Some("metadata.name") => pod.name_any(),
                                _ => String::new(),
                            };
                            files.push((item.path.clone(), value.into_bytes()));
                        }
                    }
                }
            } else if v.persistent_volume_claim.is_some() {
                let claim = self.volume_dir(v, dir);
                std::fs::create_dir_all(&claim)?;
                // As KinD's local-path provisioner makes its volumes:
                // world-writable, for whichever user the Pod runs as.
                std::fs::set_permissions(&claim, std::fs::Permissions::from_mode(0o777))?;
                out.insert(v.name.clone(), claim);
                continue;
            }
            let whole = v.secret.as_ref().is_some_and(|s| s.items.is_none())
                || v.config_map.as_ref().is_some_and(|c| c.items.is_none());
            if whole {
                // Keys removed from the object disappear from the volume.
                let keep: BTreeSet<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
                for entry in std::fs::read_dir(&path)?.flatten() {
                    let n = entry.file_name().to_string_lossy().into_owned();
                    if !keep.contains(n.as_str()) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            // emptyDir and the rest: an empty directory.
            for (rel, bytes) in files {
                let f = path.join(rel);
                if let Some(parent) = f.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&f, bytes)?;
            }
            out.insert(v.name.clone(), path);
        }
        Ok(out)
    }

    /// Where volume `v` of the Pod in `dir` lives on this host: a claim
    /// is local storage that outlives its Pods, the rest are the Pod's.
    pub(super) fn volume_dir(&self, v: &k8s_openapi::api::core::v1::Volume, dir: &Path) -> PathBuf {
        match &v.persistent_volume_claim {
            Some(c) => logs_dir()
                .join("claims")
                .join(format!("{}-{}", self.ns, c.claim_name)),
            None => dir.join("volumes").join(&v.name),
        }
    }

    pub(super) async fn token(
        &self,
        pod: &Pod,
        audience: Option<String>,
        seconds: Option<i64>,
    ) -> anyhow::Result<String> {
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), &self.ns);
        let mut spec = json!({
            "expirationSeconds": seconds.unwrap_or(3607).max(600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid()},
        });
        if let Some(a) = audience {
            spec["audiences"] = json!([a]);
        }
        let request: TokenRequest = serde_json::from_value(json!({ "spec": spec }))?;
        let token: TokenRequest = accounts
            .create_subresource("token", &sa, &PostParams::default(), &request)
            .await?;
        Ok(token.status.map(|s| s.token).unwrap_or_default())
    }
}

/// The files of a volume's keys: `items` maps keys to paths; without it,
/// every key is a file of its name.
pub(super) fn pick(
    data: BTreeMap<String, Vec<u8>>,
    items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
) -> Vec<(String, Vec<u8>)> {
    match items {
        Some(items) => items
            .iter()
            .filter_map(|i| data.get(&i.key).map(|d| (i.path.clone(), d.clone())))
            .collect(),
        None => data.into_iter().collect(),
    }
}

pub(super) async fn config_map_files(
    cms: &Api<ConfigMap>,
    name: &str,
    items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let data = cms
        .get_opt(name)
        .await?
        .and_then(|c| c.data)
        .unwrap_or_default();
    Ok(pick(
        data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect(),
        items,
    ))
}
