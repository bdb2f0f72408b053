//! createtuf: the stack's TUF repository.
//!
//! Waits for the published trust root (`<stack>-trust-root`), makes the
//! four role keys once (Secret `<stack>-tuf-keys`), and writes the signed
//! repository into ConfigMap `<stack>-tuf-repository`, which the TUF
//! workload serves. A run signs only what changed or is due (see
//! [`crate::tuf::repo`]); a run with nothing to do writes nothing. The
//! ConfigMap records the inputs' digest and the next re-sign time, so the
//! operator knows when to run it again.

pub mod rules;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{StageContext, StageError, secrets, wait_for};
use crate::{
    names,
    trust_root::{SIGNING_CONFIG_KEY, TRUSTED_ROOT_KEY},
    tuf::{
        self, Expiry, INPUTS_ANNOTATION, RESIGN_AT_ANNOTATION,
        keys::{self as tuf_keys, KeySet},
        repo, targets,
    },
};

/// What the run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the repository ConfigMap was written.
    pub wrote: bool,
    /// Root, targets, snapshot and timestamp versions now served.
    pub versions: [u64; 4],
}

/// The ConfigMap write: the new files (and `null` for files no longer
/// served), the annotations, and the resourceVersion read, so a concurrent
/// writer makes this one fail rather than be overwritten.
fn patch_body(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    annotations: &BTreeMap<&str, String>,
    resource_version: Option<&str>,
) -> Value {
    let mut data = serde_json::Map::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            data.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        data.insert(k.clone(), Value::Null);
    }
    json!({
        "metadata": {"resourceVersion": resource_version, "annotations": annotations},
        "data": data,
    })
}

/// Runs createtuf.
pub async fn run(ctx: &StageContext, expiry: &Expiry) -> Result<Outcome, StageError> {
    let deadline = Instant::now() + ctx.timeout;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let trust = names::part(&ctx.stack, names::TRUST_ROOT);
    let what = format!("ConfigMap {}/{trust} key {TRUSTED_ROOT_KEY}", ctx.namespace);
    let (trusted_root, signing_config) = wait_for(ctx, deadline, &what, || async {
        let data = cms.get_opt(&trust).await?.and_then(|c| c.data);
        Ok(data.and_then(|d| {
            let root = d.get(TRUSTED_ROOT_KEY)?.clone();
            Some((root, d.get(SIGNING_CONFIG_KEY).cloned()))
        }))
    })
    .await?;

    let key_secret = names::tuf_keys(&ctx.stack);
    let labels = secrets::labels(&ctx.stack, names::TUF);
    let created = secrets::create_once(
        &secrets_api,
        &ctx.namespace,
        &key_secret,
        tuf_keys::REQUIRED,
        &labels,
        || Ok(tuf_keys::generate()?),
    )
    .await?;
    let keys = KeySet::from_data(created.data())?;
    let files = targets::from_trust_root(&trusted_root, signing_config.as_deref())?;

    let name = names::tuf_repository(&ctx.stack);
    let existing = cms.get_opt(&name).await?;
    let old_files = existing
        .as_ref()
        .and_then(|c| c.data.clone())
        .unwrap_or_default();
    let built = repo::build(&old_files, &files, &keys, expiry, Timestamp::now()).await?;
    let annotations = BTreeMap::from([
        (
            INPUTS_ANNOTATION,
            tuf::inputs_digest(&trusted_root, signing_config.as_deref(), expiry),
        ),
        (RESIGN_AT_ANNOTATION, built.resign_at.to_string()),
    ]);
    let recorded = existing
        .as_ref()
        .and_then(|c| c.metadata.annotations.as_ref())
        .map(|a| {
            annotations
                .iter()
                .all(|(k, v)| a.get(*k).map(String::as_str) == Some(v.as_str()))
        })
        .unwrap_or(false);
    let wrote = built.files != old_files || !recorded;
    match &existing {
        Some(cm) if wrote => {
            let body = patch_body(
                &old_files,
                &built.files,
                &annotations,
                cm.metadata.resource_version.as_deref(),
            );
            cms.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
        }
        Some(_) => {}
        None => {
            // Run by hand: the operator would have made it empty first.
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    annotations: Some(
                        annotations
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), v.clone()))
                            .collect(),
                    ),
                    ..ObjectMeta::default()
                },
                data: Some(built.files.clone()),
                ..ConfigMap::default()
            };
            cms.create(&PostParams::default(), &cm).await?;
        }
    }
    let [root, targets, snapshot, timestamp] = built.versions;
    tracing::info!(
        configmap = %name,
        wrote,
        root,
        targets,
        snapshot,
        timestamp,
        resign_at = %built.resign_at,
        "TUF repository ready"
    );
    Ok(Outcome {
        wrote,
        versions: built.versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_sends_only_changes_and_removes_old_files() {
        let old = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let new = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("c".to_owned(), "3".to_owned()),
        ]);
        let body = patch_body(&old, &new, &BTreeMap::from([("x", "y".into())]), Some("42"));
        assert_eq!(body["data"], json!({"b": null, "c": "3"}));
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["metadata"]["annotations"]["x"], "y");
    }
}
