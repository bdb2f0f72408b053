//! Read what a stack owns, and reduce it at once to what decisions need:
//! names, applied hashes, availability, Job outcomes and public values.
//! Private keys and passwords are dropped as soon as they are read.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount},
        rbac::v1::{Role, RoleBinding},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, ObjectMeta},
};
use serde::de::DeserializeOwned;

use crate::{
    Result,
    build::{
        meta::{self, HASH_ANNOTATION},
        stages::Stage,
    },
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

fn secret_view(secret: &Secret) -> SecretView {
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
}

impl Availability {
    /// At least one up-to-date Pod serves.
    pub fn is_available(self) -> bool {
        self.current && self.available > 0
    }
}

fn availability(d: &Deployment) -> Availability {
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
    Availability {
        available: status.available_replicas.unwrap_or(0),
        current,
        tree,
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
    /// Its stage.
    pub stage: Stage,
    /// Hash of its Pod template.
    pub hash: String,
    /// Its attempt number.
    pub attempt: u32,
    /// Where it is.
    pub state: JobState,
    /// The last failed Pod's termination message (its log's tail).
    pub message: Option<String>,
}

fn job_view(job: &Job) -> Option<JobView> {
    let labels = job.metadata.labels.as_ref()?;
    let stage = Stage::ALL
        .into_iter()
        .find(|s| labels.get(meta::STAGE_LABEL).map(String::as_str) == Some(s.id()))?;
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
fn pod_messages(pods: &[Pod]) -> BTreeMap<String, String> {
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

fn tuf_view(cm: &ConfigMap) -> TufView {
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
}

fn record<K>(observed: &mut Observed, kind: &str, items: &[K])
where
    K: Resource,
{
    for item in items {
        let meta: &ObjectMeta = item.meta();
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

async fn list<K>(client: &Client, namespace: &str, selector: &str) -> Result<Vec<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// Reads everything the stack `stack` owns in `namespace`.
pub async fn observe(client: &Client, namespace: &str, stack: &str) -> Result<Observed> {
    let selector = meta::owned_selector(stack);
    let mut observed = Observed::default();
    // Jobs first: a stage writes its outputs before its Job completes, so
    // outputs read after a completed Job are never older than it. Read the
    // other way round, a Job could look finished with its outputs missing.
    let jobs: Vec<Job> = list(client, namespace, &selector).await?;
    observed.jobs = jobs.iter().filter_map(job_view).collect();

    let config_maps: Vec<ConfigMap> = list(client, namespace, &selector).await?;
    record(&mut observed, "ConfigMap", &config_maps);
    let repository = crate::names::tuf_repository(stack);
    for cm in &config_maps {
        if cm.name_any() == repository {
            observed.tuf = Some(tuf_view(cm));
            continue;
        }
        observed
            .config_maps
            .insert(cm.name_any(), cm.data.clone().unwrap_or_default());
    }
    let secrets: Vec<Secret> = list(client, namespace, &selector).await?;
    for s in &secrets {
        observed.secrets.insert(s.name_any(), secret_view(s));
    }
    drop(secrets);
    let deployments: Vec<Deployment> = list(client, namespace, &selector).await?;
    record(&mut observed, "Deployment", &deployments);
    for d in &deployments {
        observed.deployments.insert(d.name_any(), availability(d));
    }
    record(
        &mut observed,
        "Service",
        &list::<Service>(client, namespace, &selector).await?,
    );
    record(
        &mut observed,
        "ServiceAccount",
        &list::<ServiceAccount>(client, namespace, &selector).await?,
    );
    record(
        &mut observed,
        "Role",
        &list::<Role>(client, namespace, &selector).await?,
    );
    record(
        &mut observed,
        "RoleBinding",
        &list::<RoleBinding>(client, namespace, &selector).await?,
    );
    observed.claims = list::<PersistentVolumeClaim>(client, namespace, &selector)
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    if observed
        .jobs
        .iter()
        .any(|j| matches!(j.state, JobState::Failed { .. }))
    {
        let pods: Vec<Pod> = list(
            client,
            namespace,
            &format!("{selector},{}", meta::STAGE_LABEL),
        )
        .await?;
        let messages = pod_messages(&pods);
        for job in &mut observed.jobs {
            job.message = messages.get(&job.name).cloned();
        }
    }
    Ok(observed)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

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
