//! One pass's decision, pure: what the read step saw in; every write, the
//! status, the Events and when to look again out. `reconcile.rs` reads,
//! calls [`decide`], applies what it says and reports.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{ConfigMap, PersistentVolumeClaim, Secret},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{Timestamp, Unit},
};
use kube::ResourceExt;

mod prune;
pub use prune::Removal;
use prune::{removal_notice, removals};
use serde_json::json;

use super::{
    Options,
    events::{self, Notice},
    plan::{self, StagePlan},
    status, trees, trust,
};
use crate::{
    Error, Result,
    api::{SigstoreStack, SigstoreStackSpec, SigstoreStackStatus},
    build::component::Component,
    build::{self, Inputs, Object, Owner, Placeholder, trillian},
    cluster_oidc::{self, ClusterOidc},
    names::{self, Log},
    observed::{JobView, Observed},
    stage::{Stage, View, job},
    validate::{FieldError, validate_stack},
};

/// What the read step learnt: the stack's objects, and what Trillian, the
/// logs and the API server said.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// What the stack owns.
    pub observed: Observed,
    /// What Trillian said of each recorded tree.
    pub tree_probes: BTreeMap<Log, trees::Probe>,
    /// What each available log's server said.
    pub serving: BTreeMap<Log, trees::Serving>,
    /// The cluster's service-account issuer, when Fulcio trusts it.
    pub cluster_oidc: Option<ClusterOidc>,
    /// Why the CA the spec brings (`spec.fulcio.ca.existingSecret`)
    /// cannot be imported, while the stack holds no CA yet.
    pub brought_ca: Option<String>,
}

/// How often a stack whose brought CA is refused looks at it again: the
/// user's Secret is not the stack's, so no watch event says it changed.
pub const BROUGHT_CA_RECHECK: Duration = Duration::from_secs(10);

/// Whether the read step must discover the cluster's service-account
/// issuer for `spec`.
pub fn needs_cluster_issuer(spec: &SigstoreStackSpec) -> bool {
    spec.fulcio.enabled && spec.fulcio.trust_cluster_issuer
}

/// A lost tree to unrecord, so createtree makes a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeReset {
    /// The log.
    pub log: Log,
    /// The lost tree.
    pub tree_id: i64,
    /// The log's ConfigMap.
    pub config_map: String,
    /// The merge patch for it.
    pub patch: serde_json::Value,
}

/// An object to create unless it exists; never changed once it does.
#[derive(Clone, Debug, PartialEq)]
// A few per new stack, none once it settled; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Create {
    /// An empty stage output.
    ConfigMap(ConfigMap),
    /// An empty stage output.
    Secret(Secret),
    /// The embedded database's claim.
    Claim(PersistentVolumeClaim),
    /// The embedded database's credentials for this stack: the passwords
    /// are made when the Secret is written, never held in a decision.
    DatabaseCredentials(Owner),
}

/// Everything one pass does, in the order it is done.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// Lost trees to unrecord.
    pub tree_resets: Vec<TreeReset>,
    /// Objects to create once.
    pub create: Vec<Create>,
    /// Objects whose content changed, with the hash to record on them.
    pub apply: Vec<(Object, String)>,
    /// Objects to delete.
    pub delete: Vec<Removal>,
    /// Stage Jobs to delete (superseded, or of a stage the spec turned
    /// off).
    pub delete_jobs: Vec<String>,
    /// Stage Jobs to start.
    pub create_jobs: Vec<Job>,
    /// The status to write, when it differs from the stack's.
    pub status: Option<SigstoreStackStatus>,
    /// Events to publish once the status is written.
    pub events: Vec<Notice>,
    /// Look again after this long; `None` waits for a change.
    pub requeue: Option<Duration>,
}

/// Decides one pass over `stack` at `now` from what was `seen`.
pub fn decide(
    stack: &SigstoreStack,
    seen: &Seen,
    options: &Options,
    now: Timestamp,
) -> Result<Decision> {
    let missing = |field| Error::MissingField {
        kind: "SigstoreStack",
        field,
    };
    let owner = Owner {
        name: stack.name_any(),
        namespace: stack.namespace().ok_or(missing("metadata.namespace"))?,
        uid: stack.uid().ok_or(missing("metadata.uid"))?,
    };
    let time = Time(now.round(Unit::Second).unwrap_or(now));
    let mut errors = validate_stack(&owner.name, &stack.spec);
    errors.extend(seen.brought_ca.iter().map(|reason| FieldError {
        field: "spec.fulcio.ca.existingSecret".into(),
        message: format!("names a CA that cannot be imported: {reason}"),
    }));
    if !errors.is_empty() {
        // Nothing is created or removed for a spec that cannot be acted on.
        let (status, events) = report(stack, status::invalid(stack, &errors, &time));
        return Ok(Decision {
            status,
            events,
            requeue: seen.brought_ca.as_ref().map(|_| BROUGHT_CA_RECHECK),
            ..Decision::default()
        });
    }
    let spec = &stack.spec;
    let mut observed = seen.observed.clone();
    observed.conditions = crate::observed::condition_views(
        stack
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
    );
    let mut logs = trees::LogHealth {
        probes: seen.tree_probes.clone(),
        serving: seen.serving.clone(),
        ..trees::LogHealth::default()
    };
    logs.losses = trees::losses(&owner, spec, stack.annotations(), &observed, &logs.probes);
    let tree_resets = reset_lost_trees(&owner, &logs.losses, &mut observed);
    let create = creations(&owner, spec, &observed);

    let fulcio_problem = seen
        .cluster_oidc
        .as_ref()
        .and_then(cluster_oidc::jwks_problem);
    let cluster_issuer = seen.cluster_oidc.as_ref().map(|o| o.issuer.as_str());
    let trust = trust::publish(
        &owner,
        spec,
        &observed,
        |stage| {
            stage
                .done(View {
                    owner: &owner,
                    spec,
                    observed: &observed,
                })
                .0
        },
        cluster_issuer,
        now,
    );
    let inputs = Inputs {
        owner: owner.clone(),
        spec,
        images: build::Images::for_spec(spec, &options.jobs.image, &options.jobs.source),
        cluster_issuer,
        ctlog_roots: fulcio_roots(&names::ctlog_secret(&owner.name), &observed),
        tesseract_roots: fulcio_roots(&names::tesseract_secret(&owner.name), &observed),
        trust_root: trust.as_ref().ok().cloned(),
        healed_trees: [Log::Rekor, Log::Ctlog]
            .into_iter()
            .filter_map(|log| Some((log, trees::healed_tree(&owner, log, &observed)?)))
            .collect(),
        lost_trees: trees::lost(&owner, &observed),
        stage_outputs: Stage::all_outputs(spec, &owner.name),
    };
    let objects = build::objects(&inputs)?;
    // The stages are decided on the trust root this pass publishes, so the
    // TUF repository is not called current against the one it replaces.
    if let Ok(published) = &trust {
        observed
            .config_maps
            .insert(owner.name_of(names::TRUST_ROOT), published.data());
    }
    let delete = removals(&owner, &objects, &observed);
    let apply = changes(objects, &observed);

    let (plans, create_jobs) = stage_jobs(&owner, stack, &observed, options, now);
    let mut delete_jobs: Vec<String> = plans.iter().flat_map(|p| p.delete.clone()).collect();
    // A stage the spec turned off runs no more.
    delete_jobs.extend(
        observed
            .jobs
            .iter()
            .filter(|j| Stage::from_id(&j.stage).is_none_or(|s| !s.enabled(spec)))
            .map(|j| j.name.clone()),
    );

    let facts = status::Facts {
        owner: &owner,
        observed: &observed,
        plans: &plans,
        trust: &trust,
        logs: &logs,
        fulcio_problem: fulcio_problem.as_deref(),
    };
    let (status, mut events) = report(stack, status::desired(stack, &facts, &time));
    events.extend(removal_notice(spec, &delete));
    // A Pod that cannot start changes no Deployment: look again while a
    // server is down, so its condition says why.
    let down = status::components(&owner, spec)
        .iter()
        .flat_map(|(_, deployments)| deployments)
        .any(|d| !observed.available(d));
    let requeue = plans
        .iter()
        .filter_map(|p| p.requeue)
        .chain(trees::requeue(&logs))
        .chain(down.then_some(UNAVAILABLE_RECHECK))
        .min()
        .unwrap_or(super::RESYNC);
    Ok(Decision {
        tree_resets,
        create,
        apply,
        delete,
        delete_jobs,
        create_jobs,
        status,
        events,
        requeue: Some(requeue),
    })
}

/// How soon a pass looks again while a wanted server is unavailable.
pub const UNAVAILABLE_RECHECK: Duration = Duration::from_secs(15);

/// The status to write and the Events for it: nothing when `desired` is
/// what the stack already carries.
fn report(
    stack: &SigstoreStack,
    desired: SigstoreStackStatus,
) -> (Option<SigstoreStackStatus>, Vec<Notice>) {
    if status::needs_write(stack, &desired) {
        let events = events::notices(stack.status.as_ref(), &desired);
        (Some(desired), events)
    } else {
        (None, Vec::new())
    }
}

/// Unrecords each tree to replace in `observed`, and the patches that do
/// the same to the log's ConfigMap (which restarts the log onto the new
/// tree once it is recorded).
fn reset_lost_trees(
    owner: &Owner,
    losses: &[trees::Loss],
    observed: &mut Observed,
) -> Vec<TreeReset> {
    losses
        .iter()
        .filter(|l| l.replace)
        .map(|loss| {
            let name = names::log_config(&owner.name, loss.log);
            let mut data = observed.config_maps.get(&name).cloned().unwrap_or_default();
            trees::forget(&mut data, loss);
            let patch = json!({"data": {
                names::TREE_ID_KEY: null,
                trees::REPLACED_KEY: data.get(trees::REPLACED_KEY),
            }});
            observed.config_maps.insert(name.clone(), data);
            TreeReset {
                log: loss.log,
                tree_id: loss.tree_id,
                config_map: name,
                patch,
            }
        })
        .collect()
}

/// Each missing stage output (empty), the database's claim and its
/// credentials, when the spec wants them and they do not exist.
fn creations(owner: &Owner, spec: &SigstoreStackSpec, observed: &Observed) -> Vec<Create> {
    let mut out = Vec::new();
    for stage in Stage::enabled_in(spec) {
        for output in stage.outputs(&owner.name) {
            let meta = |name: &str| owner.meta(name.to_owned(), stage.label());
            match &output {
                Placeholder::ConfigMap(name)
                    if observed.applied_hash("ConfigMap", name).is_none() =>
                {
                    out.push(Create::ConfigMap(ConfigMap {
                        metadata: meta(name),
                        ..ConfigMap::default()
                    }));
                }
                Placeholder::Secret(name) if !observed.secrets.contains_key(name) => {
                    out.push(Create::Secret(Secret {
                        metadata: meta(name),
                        type_: Some("Opaque".into()),
                        ..Secret::default()
                    }));
                }
                _ => {}
            }
        }
    }
    for claim in build::claims(owner, spec) {
        if !observed
            .claims
            .contains(claim.metadata.name.as_deref().unwrap_or_default())
        {
            out.push(Create::Claim(claim));
        }
    }
    let db = owner.name_of(names::TRILLIAN_DB);
    if Component::Trillian.wanted(spec)
        && trillian::embedded(spec)
        && !observed.secrets.contains_key(&db)
    {
        out.push(Create::DatabaseCredentials(owner.clone()));
    }
    out
}

/// The `fulcio-N` keys of Secret `secret`, in numeric order.
fn fulcio_roots(secret: &str, observed: &Observed) -> Vec<String> {
    let mut roots: Vec<(u32, String)> = observed
        .secrets
        .get(secret)
        .map(|s| {
            s.keys
                .iter()
                .filter_map(|k| Some((k.strip_prefix("fulcio-")?.parse().ok()?, k.clone())))
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    roots.into_iter().map(|(_, k)| k).collect()
}

/// The objects whose content differs from what was last applied.
fn changes(objects: Vec<Object>, observed: &Observed) -> Vec<(Object, String)> {
    objects
        .into_iter()
        .filter_map(|object| {
            let hash = build::content_hash(&object);
            let same = observed.applied_hash(object.kind(), object.name()) == Some(Some(&hash));
            (!same).then_some((object, hash))
        })
        .collect()
}

/// The decision for every enabled stage, and the Jobs to start. Each
/// stage's Pod template is built once, for its hash and its Job.
fn stage_jobs(
    owner: &Owner,
    stack: &SigstoreStack,
    observed: &Observed,
    options: &Options,
    now: Timestamp,
) -> (Vec<StagePlan>, Vec<Job>) {
    let spec = &stack.spec;
    let mut jobs = Vec::new();
    let view = View {
        owner,
        spec,
        observed,
    };
    let plans = Stage::enabled_in(spec)
        .into_iter()
        .map(|stage| {
            let inputs = stage.rules().inputs(view);
            let template = job::template(owner, spec, stage, &options.jobs, inputs.as_deref());
            // A spec change (which may be the fix a failing stage needs)
            // starts again from attempt 1, at once.
            let hash = build::content_hash(&(&template, stack.metadata.generation));
            let own: Vec<&JobView> = observed
                .jobs
                .iter()
                .filter(|j| j.stage == stage.id())
                .collect();
            let p = plan::plan(
                stage,
                plan::state(stage, view),
                &own,
                &hash,
                now,
                options.stage_retry_base,
            );
            if let Some(attempt) = p.create {
                jobs.push(job::job(
                    owner,
                    stage,
                    template,
                    &hash,
                    attempt,
                    &options.jobs,
                ));
            }
            p
        })
        .collect();
    (plans, jobs)
}

#[cfg(test)]
pub(crate) mod tests;
