//! What a stack owns, reduced at once to what decisions need: names,
//! applied hashes, availability, Job outcomes and public values. Private
//! keys and passwords are dropped as soon as they are read. Pure: the
//! controller lists the objects, the stages' rules judge the result.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, Pod, Secret},
    },
    jiff::Timestamp,
};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    build::meta::{self, HASH_ANNOTATION},
    names,
};

/// Secret keys whose values are public and may be read into memory.
fn is_public_key(key: &str) -> bool {
    key == "cert" || key == "public" || key == "cert-chain" || key.starts_with("fulcio-")
}

/// What a Secret holds, without its private values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretView {
    /// Every key present.
    pub keys: BTreeSet<String>,
    /// Values of public keys (`cert`, `public`, `cert-chain`, `fulcio-N`).
    pub public: BTreeMap<String, String>,
    /// The `log_id` in a CT config (`config` key), if any.
    pub config_log_id: Option<i64>,
}

impl SecretView {
    /// Whether every key of `required` is present.
    pub fn has_all(&self, required: &[&str]) -> bool {
        required.iter().all(|k| self.keys.contains(*k))
    }
}

/// Drops a Secret's private values, keeping its key names and what
/// [`secret_view`] reads (public values, a CT config's `log_id` line), so a
/// watch cache never holds a private key or password.
pub fn strip_secret(secret: &mut Secret) {
    for (key, value) in secret.data.iter_mut().flatten() {
        if is_public_key(key) {
            continue;
        }
        let kept = match key.as_str() {
            "config" => std::str::from_utf8(&value.0)
                .ok()
                .and_then(config_log_id)
                .map(|id| format!("log_id: {id}\n").into_bytes())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        zeroize::Zeroize::zeroize(&mut value.0);
        value.0 = kept;
    }
    secret.string_data = None;
}

pub fn secret_view(secret: &Secret) -> SecretView {
    let mut view = SecretView::default();
    for (key, value) in secret.data.iter().flatten() {
        view.keys.insert(key.clone());
        if is_public_key(key)
            && let Ok(text) = std::str::from_utf8(&value.0)
        {
            view.public.insert(key.clone(), text.to_owned());
        }
        if key == "config" {
            view.config_log_id = std::str::from_utf8(&value.0).ok().and_then(config_log_id);
        }
    }
    view
}

/// The `log_id` of a text-format CT `LogMultiConfig`.
pub fn config_log_id(config: &str) -> Option<i64> {
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix("log_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A Deployment's availability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Availability {
    /// Ready Pods of the current spec.
    pub available: i32,
    /// Whether the Deployment controller has seen the current spec.
    pub current: bool,
    /// The tree its Pod template names (a log that replaced a lost tree).
    pub tree: Option<i64>,
    /// When the Deployment controller last said it became available: a
    /// Pod that went away and came back moves it, even between passes.
    pub since: Option<Timestamp>,
}

impl Availability {
    /// At least one up-to-date Pod serves.
    pub fn is_available(self) -> bool {
        self.current && self.available > 0
    }
}

pub fn availability(d: &Deployment) -> Availability {
    let status = d.status.clone().unwrap_or_default();
    let current = status.observed_generation.is_some()
        && status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) > 0;
    let tree = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(crate::build::meta::TREE_ID_ANNOTATION))
        .and_then(|v| v.parse().ok());
    let since = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Available" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    Availability {
        available: status.available_replicas.unwrap_or(0),
        current,
        tree,
        since,
    }
}

/// Where a stage Job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Not finished.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed for good (backoff limit or deadline) at `at`.
    Failed {
        /// When the Job failed.
        at: Timestamp,
        /// The Job's reason, e.g. `BackoffLimitExceeded`.
        reason: String,
    },
}

/// A stage Job, as far as decisions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    /// The Job's name.
    pub name: String,
    /// Its stage's id (the stage label).
    pub stage: String,
    /// Hash of its Pod template.
    pub hash: String,
    /// Its attempt number.
    pub attempt: u32,
    /// Where it is.
    pub state: JobState,
    /// The last failed Pod's termination message (its log's tail).
    pub message: Option<String>,
}

/// A stage Job's view; `None` for a Job without a stage label.
pub fn job_view(job: &Job) -> Option<JobView> {
    let stage = job.labels().get(meta::STAGE_LABEL)?.clone();
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let state = if holds("Complete").is_some() {
        JobState::Succeeded
    } else if let Some(failed) = holds("Failed") {
        JobState::Failed {
            at: failed
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(Timestamp::now),
            reason: failed.reason.clone().unwrap_or_default(),
        }
    } else {
        JobState::Running
    };
    Some(JobView {
        name: job.name_any(),
        stage,
        hash: annotations
            .get(HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        attempt: annotations
            .get(meta::ATTEMPT_ANNOTATION)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1),
        state,
        message: None,
    })
}

/// The termination message of the latest finished Pod of each Job.
pub fn pod_messages(pods: &[Pod]) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<String, (Timestamp, String)> = BTreeMap::new();
    for pod in pods {
        let Some(job) = pod
            .labels()
            .get("batch.kubernetes.io/job-name")
            .or(pod.labels().get("job-name"))
        else {
            continue;
        };
        let terminated = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let Some(t) = terminated else { continue };
        let at = t
            .finished_at
            .as_ref()
            .map(|f| f.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let message = t
            .message
            .clone()
            .or_else(|| t.reason.clone())
            .unwrap_or_default();
        if latest.get(job).is_none_or(|(seen, _)| *seen <= at) {
            latest.insert(job.clone(), (at, message));
        }
    }
    latest.into_iter().map(|(k, (_, m))| (k, m)).collect()
}

/// Container waiting reasons that only say a Pod is on its way.
const STARTING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// Why each workload Pod of a stack does not run, by its Deployment's name
/// (`<instance>-<name>` from its labels): the scheduler's refusal or a
/// container's waiting reason (`ErrImagePull`, `CrashLoopBackOff`, ...)
/// with its message. Pods on their way and running Pods say nothing.
pub fn pod_problems(pods: &[Pod]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let labels = pod.labels();
        let (Some(part), Some(stack)) = (
            labels.get("app.kubernetes.io/name"),
            labels.get("app.kubernetes.io/instance"),
        ) else {
            continue;
        };
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        let unscheduled = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| {
                let reason = c.reason.as_deref().unwrap_or("Unschedulable");
                format!("{reason}: {}", c.message.as_deref().unwrap_or_default())
            });
        let waiting = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| {
                let w = c.state.as_ref()?.waiting.as_ref()?;
                let reason = w.reason.as_deref()?;
                (!STARTING.contains(&reason)).then(|| {
                    format!(
                        "container {}: {reason}: {}",
                        c.name,
                        w.message.as_deref().unwrap_or_default()
                    )
                })
            })
            .next();
        if let Some(why) = unscheduled.or(waiting) {
            let mut why = format!(
                "Pod {}: {}",
                pod.name_any(),
                why.trim_end_matches([' ', ':'])
            );
            if why.len() > 400 {
                let mut end = 400;
                while !why.is_char_boundary(end) {
                    end -= 1;
                }
                why.truncate(end);
                why.push('…');
            }
            out.entry(names::part(stack, part)).or_insert(why);
        }
    }
    out
}

/// The TUF repository ConfigMap, reduced to what decisions need (its
/// files are not kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TufView {
    /// Whether it holds a `root.json`.
    pub has_root: bool,
    /// The digest of the inputs it was built from.
    pub inputs: Option<String>,
    /// When its first role comes due for re-signing.
    pub resign_at: Option<Timestamp>,
}

pub fn tuf_view(cm: &ConfigMap) -> TufView {
    let annotation = |k: &str| {
        cm.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .cloned()
    };
    TufView {
        has_root: cm
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(crate::tuf::ROOT_KEY)),
        inputs: annotation(crate::tuf::INPUTS_ANNOTATION),
        resign_at: annotation(crate::tuf::RESIGN_AT_ANNOTATION).and_then(|t| t.parse().ok()),
    }
}

/// One of the stack's own conditions, as its status carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionView {
    /// Whether it is `True`.
    pub holds: bool,
    /// Its reason.
    pub reason: String,
    /// When it last changed.
    pub since: Option<Timestamp>,
}

/// The stack's conditions by type, from its status.
pub fn condition_views(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> BTreeMap<String, ConditionView> {
    conditions
        .iter()
        .map(|c| {
            (
                c.type_.clone(),
                ConditionView {
                    holds: c.status == "True",
                    reason: c.reason.clone(),
                    since: Some(c.last_transition_time.0),
                },
            )
        })
        .collect()
}

/// Everything a stack owns, reduced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// `(kind, name)` of each applied object → the hash it was applied with.
    pub applied: BTreeMap<(String, String), Option<String>>,
    /// ConfigMap data by name.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretView>,
    /// Deployments by name.
    pub deployments: BTreeMap<String, Availability>,
    /// Stage Jobs.
    pub jobs: Vec<JobView>,
    /// The TUF repository, once its ConfigMap exists.
    pub tuf: Option<TufView>,
    /// PersistentVolumeClaims by name.
    pub claims: BTreeSet<String>,
    /// The stack's own conditions as the last pass wrote them.
    pub conditions: BTreeMap<String, ConditionView>,
    /// Why a Deployment's Pod does not start, by Deployment name (read
    /// only while one is unavailable).
    pub pod_problems: BTreeMap<String, String>,
}

impl Observed {
    /// The hash `kind/name` was last applied with, if it exists.
    pub fn applied_hash(&self, kind: &str, name: &str) -> Option<Option<&str>> {
        self.applied
            .get(&(kind.to_owned(), name.to_owned()))
            .map(Option::as_deref)
    }

    /// Whether Deployment `name` serves.
    pub fn available(&self, name: &str) -> bool {
        self.deployments.get(name).is_some_and(|a| a.is_available())
    }

    /// The tree ID a log's ConfigMap records.
    pub fn tree_id(&self, config_map: &str) -> Option<i64> {
        self.config_maps
            .get(config_map)?
            .get(names::TREE_ID_KEY)?
            .trim()
            .parse()
            .ok()
            .filter(|id| *id > 0)
    }

    /// The trees a log's ConfigMap says it replaced, oldest first.
    pub fn replaced_trees(&self, config_map: &str) -> Vec<i64> {
        self.config_maps
            .get(config_map)
            .and_then(|d| d.get(names::REPLACED_KEY))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Records each item's name and applied hash under `kind`.
pub fn record<K, R>(observed: &mut Observed, kind: &str, items: &[R])
where
    K: Resource,
    R: std::ops::Deref<Target = K>,
{
    for item in items {
        let meta: &ObjectMeta = item.deref().meta();
        let hash = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(HASH_ANNOTATION))
            .cloned();
        observed.applied.insert(
            (kind.to_owned(), meta.name.clone().unwrap_or_default()),
            hash,
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn a_stripped_secret_keeps_its_view_and_loses_its_private_values() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-ctlog"},
            "data": {
                "private": "c2VjcmV0LWtleQ==",
                "password": "aHVudGVyMg==",
                "public": "UFVCTElD",
                "fulcio-0": "Uk9PVA==",
                "config": "bG9nX2lkOiA0Mgpwcml2YXRlX2tleTogeyBkZXI6ICJzZWNyZXQiIH0K",
            },
        }))
        .unwrap();
        let before = secret_view(&secret);
        strip_secret(&mut secret);
        assert_eq!(secret_view(&secret), before);
        assert_eq!(before.config_log_id, Some(42));
        let data = secret.data.unwrap();
        assert!(data["private"].0.is_empty() && data["password"].0.is_empty());
        assert_eq!(data["config"].0, b"log_id: 42\n");
        assert_eq!(data["public"].0, b"PUBLIC");
    }

    fn pod(name: &str, part: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {
                "app.kubernetes.io/name": part, "app.kubernetes.io/instance": "demo"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_that_cannot_start_says_why_and_one_on_its_way_says_nothing() {
        let waiting = |reason: &str, message: &str| {
            serde_json::json!({"containerStatuses": [{"name": "server", "ready": false,
                "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": reason, "message": message}}}]})
        };
        let pods = [
            pod(
                "demo-rekor-1",
                "rekor",
                waiting("ErrImagePull", "not found"),
            ),
            pod("demo-tsa-1", "tsa", waiting("ContainerCreating", "")),
            pod(
                "demo-fulcio-1",
                "fulcio",
                serde_json::json!({"conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": "0/1 nodes are available"}]}),
            ),
            pod("demo-tuf-1", "tuf", serde_json::json!({"phase": "Running"})),
        ];
        let problems = pod_problems(&pods);
        assert_eq!(
            problems["demo-rekor"],
            "Pod demo-rekor-1: container server: ErrImagePull: not found"
        );
        assert_eq!(
            problems["demo-fulcio"],
            "Pod demo-fulcio-1: Unschedulable: 0/1 nodes are available"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let long = pod(
            "demo-ctlog-1",
            "ctlog",
            waiting("CrashLoopBackOff", &"é".repeat(400)),
        );
        assert!(pod_problems(&[long])["demo-ctlog"].chars().count() < 400);
    }

    #[test]
    fn private_values_are_not_kept() {
        let secret = Secret {
            data: Some(
                [
                    ("private", "KEY"),
                    ("password", "PW"),
                    ("cert", "CERT"),
                    ("config", "log_configs {\n  config {\n    log_id: 42\n"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into())))
                .collect(),
            ),
            ..Secret::default()
        };
        let view = secret_view(&secret);
        assert!(view.has_all(&["private", "password", "cert", "config"]));
        assert_eq!(view.public.keys().collect::<Vec<_>>(), ["cert"]);
        assert_eq!(view.config_log_id, Some(42));
        assert!(!format!("{view:?}").contains("KEY"));
        assert!(!format!("{view:?}").contains("PW"));
    }
}
