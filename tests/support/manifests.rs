//! Applying the repository's YAML manifests with server-side apply.

use std::path::Path;

use serde::Deserialize;

use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    discovery::{Discovery, Scope},
};

/// Every document of every `.yaml` file directly in `dir` (kustomization
/// files excluded), in file-name order.
pub fn read_dir(dir: &Path) -> Vec<DynamicObject> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject =
                serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            objects.push(obj);
        }
    }
    objects
}

/// Server-side applies `objects`, namespaced ones into `namespace` unless
/// they name their own. Returns the applied objects.
pub async fn apply(
    client: &Client,
    objects: &[DynamicObject],
    namespace: &str,
) -> Vec<DynamicObject> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let params = PatchParams::apply("sigstore-operator-tests").force();
    // Namespaces and CRDs first, as kubectl orders them.
    let mut ordered: Vec<&DynamicObject> = objects.iter().collect();
    ordered.sort_by_key(|o| match o.types.as_ref().map(|t| t.kind.as_str()) {
        Some("Namespace" | "CustomResourceDefinition") => 0,
        _ => 1,
    });
    let mut applied = Vec::new();
    for obj in ordered {
        let types = obj.types.as_ref().expect("apiVersion and kind");
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", types.api_version.as_str()));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, &types.kind);
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("the API server does not serve {gvk:?}"));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &ar),
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.namespace().as_deref().unwrap_or(namespace),
                &ar,
            ),
        };
        let result = api
            .patch(&obj.name_any(), &params, &Patch::Apply(obj))
            .await
            .unwrap_or_else(|e| panic!("apply {} {}: {e}", types.kind, obj.name_any()));
        applied.push(result);
    }
    applied
}
