//! createtree: one Trillian LOG tree per log, its ID in
//! `<stack>-<log>-config` key `treeID`.
//!
//! Crash-safe: an ID already in the ConfigMap is kept; a tree this stack
//! created earlier (found by its deterministic display name) is adopted
//! rather than creating another, so a run that died between CreateTree and
//! the ConfigMap write leaves no orphan behind.

pub mod rules;

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{StageContext, StageError};
use crate::{
    names::{Log, TREE_ID_KEY, log_config},
    retry::{Backoff, retry},
    trillian::{
        Trillian, TrillianError,
        proto::{Tree, TreeState, TreeType},
    },
};

/// Trillian's `Trees.DisplayName` column is VARCHAR(20).
pub const MAX_DISPLAY_NAME: usize = 20;

/// Roots are re-signed at least this often even without new entries.
const MAX_ROOT_DURATION: Duration = Duration::from_secs(3600);

/// Field manager of the ConfigMap write.
const FIELD_MANAGER: &str = "sigstore-operator-createtree";

/// The display name of a stack's tree for `log`: the log's name and a hash
/// of namespace and stack, so stacks sharing one Trillian never adopt each
/// other's trees. At most [`MAX_DISPLAY_NAME`] characters.
pub fn display_name(namespace: &str, stack: &str, log: Log) -> String {
    let digest = Sha256::digest(format!("{namespace}/{stack}/{}", log.as_str()));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = log.as_str();
    let room = MAX_DISPLAY_NAME - prefix.len() - 1;
    format!("{prefix}-{}", &hex[..room])
}

/// The tree's description, for people reading `ListTrees`.
pub fn description(namespace: &str, stack: &str, log: Log) -> String {
    format!(
        "sigstore-operator {} log of {namespace}/{stack}",
        log.as_str()
    )
}

/// The tree ID already recorded, if any. A value that is not a positive
/// decimal int64 is an error: it is never silently replaced.
pub fn recorded_tree_id(
    object: &str,
    data: Option<&BTreeMap<String, String>>,
) -> Result<Option<i64>, StageError> {
    let Some(value) = data.and_then(|d| d.get(TREE_ID_KEY)) else {
        return Ok(None);
    };
    match value.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(Some(id)),
        _ => Err(StageError::BadExisting {
            object: object.to_owned(),
            key: TREE_ID_KEY,
            value: value.clone(),
            expected: "a positive decimal tree ID",
        }),
    }
}

/// The live LOG tree named `display_name`, if Trillian holds one. With
/// several (which this stage never makes), the oldest wins so every run
/// picks the same.
pub fn adoptable(trees: &[Tree], display_name: &str) -> Option<i64> {
    trees
        .iter()
        .filter(|t| {
            t.display_name == display_name
                && !t.deleted
                && t.tree_type == TreeType::Log as i32
                && t.tree_state == TreeState::Active as i32
        })
        .min_by_key(|t| {
            let created = t.create_time.as_ref().map(|c| (c.seconds, c.nanos));
            (created, t.tree_id)
        })
        .map(|t| t.tree_id)
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ConfigMap already had this tree.
    Kept(i64),
    /// Trillian already had this stack's tree; it is now recorded.
    Adopted(i64),
    /// A new tree was created and recorded.
    Created(i64),
}

impl Outcome {
    /// The tree ID.
    pub fn tree_id(self) -> i64 {
        match self {
            Self::Kept(id) | Self::Adopted(id) | Self::Created(id) => id,
        }
    }
}

/// Inputs of one run.
#[derive(Clone, Debug)]
pub struct Args {
    /// Which log.
    pub log: Log,
    /// Trillian log server, `host:port`.
    pub trillian: String,
    /// The ConfigMap to record the ID in; default `<stack>-<log>-config`.
    pub config_map: Option<String>,
}

/// Runs createtree.
pub async fn run(ctx: &StageContext, args: &Args) -> Result<Outcome, StageError> {
    let name = args
        .config_map
        .clone()
        .unwrap_or_else(|| log_config(&ctx.stack, args.log));
    let object = format!("ConfigMap {}/{name}", ctx.namespace);
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let existing = cms.get_opt(&name).await?;
    if let Some(id) = recorded_tree_id(&object, existing.as_ref().and_then(|c| c.data.as_ref()))? {
        tracing::info!(tree_id = id, %object, "tree already recorded; keeping it");
        return Ok(Outcome::Kept(id));
    }

    let tree_name = display_name(&ctx.namespace, &ctx.stack, args.log);
    let trillian = Trillian::connect_lazy(&args.trillian)
        .map_err(|e| StageError::Trillian(crate::retry::RetryError::Permanent(e)))?;
    let backoff = Backoff::with_timeout(ctx.timeout);
    tracing::info!(trillian = %args.trillian, display_name = %tree_name, "finding or creating the tree");
    let outcome = find_or_create(ctx, &trillian, &backoff, &tree_name, args.log).await?;
    let id = outcome.tree_id();

    retry(
        "InitLog",
        &backoff,
        &ctx.cancel,
        TrillianError::is_transient,
        || trillian.init_log(id),
    )
    .await?;
    // The first root exists once InitLog returns; this confirms the log
    // answers before anything is told to use it.
    retry(
        "waiting for the first signed log root",
        &backoff,
        &ctx.cancel,
        |e: &TrillianError| e.is_transient() || e.code() == Some(tonic::Code::FailedPrecondition),
        || trillian.latest_root(id),
    )
    .await?;

    record(&cms, &name, &object, id).await?;
    tracing::info!(tree_id = id, %object, ?outcome, "tree recorded");
    Ok(outcome)
}

/// Adopts this stack's tree or creates it. A CreateTree that fails
/// transiently may still have created the tree, so every attempt lists first.
async fn find_or_create(
    ctx: &StageContext,
    trillian: &Trillian,
    backoff: &Backoff,
    display: &str,
    log: Log,
) -> Result<Outcome, StageError> {
    let desc = description(&ctx.namespace, &ctx.stack, log);
    let outcome = retry(
        "finding or creating the tree",
        backoff,
        &ctx.cancel,
        TrillianError::is_transient,
        || async {
            let trees = trillian.list_trees().await?;
            if let Some(id) = adoptable(&trees, display) {
                return Ok(Outcome::Adopted(id));
            }
            let tree = trillian
                .create_log_tree(display, &desc, MAX_ROOT_DURATION)
                .await?;
            Ok(Outcome::Created(tree.tree_id))
        },
    )
    .await?;
    Ok(outcome)
}

/// Writes the ID with server-side apply, without force: if another writer
/// set `treeID` meanwhile, the API server refuses and theirs is kept.
async fn record(cms: &Api<ConfigMap>, name: &str, object: &str, id: i64) -> Result<(), StageError> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {TREE_ID_KEY: id.to_string()},
    });
    match cms
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let current = cms.get(name).await?;
            let value = current
                .data
                .as_ref()
                .and_then(|d| d.get(TREE_ID_KEY))
                .cloned()
                .unwrap_or_default();
            if value == id.to_string() {
                Ok(())
            } else {
                Err(StageError::Raced {
                    object: object.to_owned(),
                    key: TREE_ID_KEY,
                    value,
                })
            }
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(id: i64, name: &str, secs: i64) -> Tree {
        Tree {
            tree_id: id,
            display_name: name.into(),
            tree_type: TreeType::Log as i32,
            tree_state: TreeState::Active as i32,
            create_time: Some(prost_types::Timestamp {
                seconds: secs,
                nanos: 0,
            }),
            ..Tree::default()
        }
    }

    #[test]
    fn display_names_are_short_stable_and_distinct() {
        let a = display_name("ns", "demo", Log::Rekor);
        assert_eq!(a, display_name("ns", "demo", Log::Rekor));
        assert_eq!(a.len(), MAX_DISPLAY_NAME);
        assert!(a.starts_with("rekor-"));
        assert_eq!(
            display_name("ns", "demo", Log::Ctlog).len(),
            MAX_DISPLAY_NAME
        );
        assert_ne!(a, display_name("ns", "demo", Log::Ctlog));
        assert_ne!(a, display_name("ns2", "demo", Log::Rekor));
        // "a-b"/"c" and "a"/"b-c" must not collide.
        assert_ne!(
            display_name("a-b", "c", Log::Rekor),
            display_name("a", "b-c", Log::Rekor)
        );
        let long = "x".repeat(253);
        assert_eq!(
            display_name(&long, &long, Log::Ctlog).len(),
            MAX_DISPLAY_NAME
        );
    }

    #[test]
    fn recorded_ids_are_read_or_refused() {
        let data = |v: &str| BTreeMap::from([(TREE_ID_KEY.to_string(), v.to_string())]);
        assert_eq!(recorded_tree_id("cm", None).unwrap(), None);
        assert_eq!(
            recorded_tree_id("cm", Some(&BTreeMap::new())).unwrap(),
            None
        );
        assert_eq!(
            recorded_tree_id("cm", Some(&data("8474918493285744124"))).unwrap(),
            Some(8474918493285744124)
        );
        for bad in ["", "abc", "-5", "0", "1e9", "99999999999999999999"] {
            let err = recorded_tree_id("ConfigMap ns/cm", Some(&data(bad))).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("ConfigMap ns/cm key treeID holds"),
                "{err}"
            );
        }
    }

    #[test]
    fn adopts_only_live_log_trees_with_the_name() {
        let name = "rekor-0123456789abcd";
        let mut deleted = tree(1, name, 1);
        deleted.deleted = true;
        let mut frozen = tree(2, name, 2);
        frozen.tree_state = TreeState::Frozen as i32;
        let mut preordered = tree(3, name, 3);
        preordered.tree_type = TreeType::PreorderedLog as i32;
        let other = tree(4, "rekor-ffffffffffffff", 4);
        let trees = vec![deleted, frozen, preordered, other.clone()];
        assert_eq!(adoptable(&trees, name), None);
        let mut with_live = trees.clone();
        with_live.push(tree(9, name, 20));
        with_live.push(tree(7, name, 10));
        assert_eq!(adoptable(&with_live, name), Some(7), "oldest live tree");
        assert_eq!(adoptable(&[other], "rekor-ffffffffffffff"), Some(4));
    }
}
