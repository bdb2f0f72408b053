//! One pass over one stack: read → decide (pure) → apply → report.

use std::{collections::BTreeMap, fmt::Debug, sync::Arc, time::Instant};

use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        batch::v1::Job,
        core::v1::{ConfigMap, PersistentVolumeClaim, PodTemplateSpec, Secret},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    core::DeserializeGuard,
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::ObjectRef,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::{
    Context, RESYNC, observe,
    plan::{self, StagePlan},
    retry_delay, status, trees, trust,
};
use crate::{
    Error, FIELD_MANAGER, Result,
    api::{SigstoreStack, SigstoreStackStatus},
    build::{self, Inputs, Object, Owner, Placeholder, meta::HASH_ANNOTATION, stages, trillian},
    conditions, fulcio_config, keys,
    names::{Log, TRILLIAN_DB, TRILLIAN_LOG_SERVER},
    validate::validate_stack,
};

/// Brings one stack and what it owns up to date. Writes nothing when
/// nothing changed.
#[tracing::instrument(skip_all, fields(stack = %guard.name_any(), namespace = guard.namespace()))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<SigstoreStack>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let started = Instant::now();
    let stack = match &guard.0 {
        Ok(stack) => stack,
        Err(invalid) => {
            // A stack this version cannot read (stored under another schema)
            // must not stall the others: say so and wait for a change.
            tracing::error!(error = %invalid.error, "cannot read this SigstoreStack; fix its spec");
            ctx.metrics
                .observe(started.elapsed(), Some("invalid_object"));
            return Ok(Action::await_change());
        }
    };
    let result = reconcile_inner(stack, &ctx).await;
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&ObjectRef::from_obj(stack));
    }
    ctx.metrics
        .observe(started.elapsed(), result.as_ref().err().map(Error::label));
    result
}

async fn reconcile_inner(stack: &SigstoreStack, ctx: &Context) -> Result<Action> {
    let namespace = stack.namespace().ok_or(Error::MissingField {
        kind: "SigstoreStack",
        field: "metadata.namespace",
    })?;
    let name = stack.name_any();
    let now = conditions::now();
    if !validate_stack(&name, &stack.spec).is_empty() {
        // Nothing is created or removed for a spec that cannot be acted on.
        report(ctx, stack, &namespace, status::desired(stack, None, &now)).await?;
        return Ok(Action::await_change());
    }
    let owner = Owner {
        name: name.clone(),
        namespace: namespace.clone(),
        uid: stack.uid().ok_or(Error::MissingField {
            kind: "SigstoreStack",
            field: "metadata.uid",
        })?,
    };
    let client = &ctx.client;
    let spec = &stack.spec;
    let mut observed = observe::observe(client, &namespace, &name).await?;
    // Each Trillian-backed log's tree, asked of Trillian itself: a lost
    // one is replaced, or reported, before anything is built from it.
    let mut health = trees::LogHealth {
        probes: probe_trees(&owner, spec, &observed).await,
        ..Default::default()
    };
    health.losses = trees::losses(&owner, spec, stack.annotations(), &observed, &health.probes);
    replace_lost_trees(ctx, &owner, &health.losses, &mut observed).await?;
    health.serving = probe_serving(&owner, spec, &observed).await;

    create_placeholders(ctx, &owner, spec, &observed).await?;
    let cluster_oidc = if spec.fulcio.enabled && spec.fulcio.trust_cluster_issuer {
        Some(ctx.cluster_issuer().await?)
    } else {
        None
    };
    let fulcio_problem = cluster_oidc.as_ref().and_then(fulcio_config::jwks_problem);
    let cluster_issuer = cluster_oidc.map(|o| o.issuer);
    let trust = trust::publish(
        &owner,
        spec,
        &observed,
        |stage| plan::done(stage, &owner, spec, &observed).0,
        cluster_issuer.as_deref(),
        Timestamp::now(),
    );
    let inputs = Inputs {
        owner: owner.clone(),
        spec,
        images: build::Images::for_spec(spec, &ctx.options.jobs.image, &ctx.options.jobs.source),
        cluster_issuer: cluster_issuer.as_deref(),
        ctlog_roots: ctlog_roots(&owner, &observed),
        trust_root: trust.as_ref().ok().cloned(),
        healed_trees: [Log::Rekor, Log::Ctlog]
            .into_iter()
            .filter_map(|log| Some((log, trees::healed_tree(&owner, log, &observed)?)))
            .collect(),
        lost_trees: trees::lost(&owner, &observed),
    };
    for object in build::objects(&inputs)? {
        apply_if_changed(ctx, &namespace, object, &observed).await?;
    }

    let plans = plan_stages(ctx, &owner, stack, &observed);
    run_plans(ctx, &owner, stack, &plans).await?;

    let facts = status::Facts {
        owner: &owner,
        observed: &observed,
        plans: &plans,
        trust: &trust,
        logs: &health,
        fulcio_problem: fulcio_problem.as_deref(),
    };
    report(
        ctx,
        stack,
        &namespace,
        status::desired(stack, Some(&facts), &now),
    )
    .await?;
    let requeue = plans
        .iter()
        .filter_map(|p| p.requeue)
        .chain(trees::requeue(&health))
        .min();
    Ok(Action::requeue(requeue.unwrap_or(RESYNC)))
}

/// What Trillian says of each recorded tree, once its log server is
/// available (before, there is nothing to ask).
async fn probe_trees(
    owner: &Owner,
    spec: &crate::api::SigstoreStackSpec,
    observed: &observe::Observed,
) -> BTreeMap<Log, trees::Probe> {
    let server = owner.name_of(TRILLIAN_LOG_SERVER);
    if !trillian::needed(spec) || !observed.available(&server) {
        return BTreeMap::new();
    }
    let recorded = trees::recorded(owner, spec, observed);
    let probes = trees::probe(&trillian::address(owner), &recorded).await;
    for (log, probe) in &probes {
        if let trees::Probe::Unknown(why) = probe {
            tracing::debug!(?log, %why, "cannot ask Trillian for the tree");
        }
    }
    probes
}

/// What each log's server says of its log, for those whose Deployment is
/// available.
async fn probe_serving(
    owner: &Owner,
    spec: &crate::api::SigstoreStackSpec,
    observed: &observe::Observed,
) -> BTreeMap<Log, trees::Serving> {
    let mut out = BTreeMap::new();
    for (log, enabled, part) in [
        (Log::Rekor, spec.rekor.enabled, crate::names::REKOR),
        (Log::Ctlog, spec.ctlog.enabled, crate::names::CTLOG),
    ] {
        if !enabled || !observed.available(&owner.name_of(part)) {
            continue;
        }
        let url = trees::serving_url(owner, spec, log);
        let verdict = trees::classify_serving(
            super::http_probe::get(&url, std::time::Duration::from_secs(3)).await,
        );
        if let trees::Serving::Unknown(why) = &verdict {
            tracing::debug!(?log, %why, "cannot ask the log whether it serves");
        }
        out.insert(log, verdict);
    }
    out
}

/// Unrecords each tree to replace, so createtree makes a new one, and
/// remembers the lost one in the log's ConfigMap (which restarts the log
/// onto the new tree once it is recorded).
async fn replace_lost_trees(
    ctx: &Context,
    owner: &Owner,
    losses: &[trees::Loss],
    observed: &mut observe::Observed,
) -> Result<()> {
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    for loss in losses.iter().filter(|l| l.replace) {
        let name = crate::names::log_config(&owner.name, loss.log);
        let mut data = observed.config_maps.get(&name).cloned().unwrap_or_default();
        trees::forget(&mut data, loss);
        let patch = json!({"data": {
            crate::names::TREE_ID_KEY: null,
            trees::REPLACED_KEY: data.get(trees::REPLACED_KEY),
        }});
        config_maps
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::warn!(log = ?loss.log, tree_id = loss.tree_id, config_map = %name, "tree lost; a new one replaces it");
        observed.config_maps.insert(name, data);
    }
    Ok(())
}

/// The `fulcio-N` keys of the CT log's Secret, in numeric order.
fn ctlog_roots(owner: &Owner, observed: &observe::Observed) -> Vec<String> {
    let mut roots: Vec<(u32, String)> = observed
        .secrets
        .get(&crate::names::ctlog_secret(&owner.name))
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

/// Creates each missing stage output empty (and the embedded database's
/// credentials once). Existing objects are never touched.
async fn create_placeholders(
    ctx: &Context,
    owner: &Owner,
    spec: &crate::api::SigstoreStackSpec,
    observed: &observe::Observed,
) -> Result<()> {
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    for stage in plan::enabled_stages(spec) {
        for output in stage.outputs(&owner.name) {
            let meta = |name: &str| owner.meta(name.to_owned(), stage.component());
            let created = match &output {
                Placeholder::ConfigMap(name)
                    if observed.applied_hash("ConfigMap", name).is_none() =>
                {
                    let cm = ConfigMap {
                        metadata: meta(name),
                        ..ConfigMap::default()
                    };
                    Some(create_new(&config_maps, &cm).await?)
                }
                Placeholder::Secret(name) if !observed.secrets.contains_key(name) => {
                    let secret = Secret {
                        metadata: meta(name),
                        type_: Some("Opaque".into()),
                        ..Secret::default()
                    };
                    Some(create_new(&secrets, &secret).await?)
                }
                _ => None,
            };
            if created == Some(true) {
                tracing::info!(?output, "created an empty stage output");
            }
        }
    }
    if let Some(claim) = trillian::database_claim(owner, spec) {
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(ctx.client.clone(), &owner.namespace);
        // Looked up first: a create refused as a duplicate still counts
        // as a write request, and a settled stack makes none.
        if claims.get_opt(&owner.name_of(TRILLIAN_DB)).await?.is_none()
            && create_new(&claims, &claim).await?
        {
            tracing::info!(claim = %owner.name_of(TRILLIAN_DB), "created the database's claim");
        }
    }
    let db = owner.name_of(TRILLIAN_DB);
    if trillian::needed(spec) && trillian::embedded(spec) && !observed.secrets.contains_key(&db) {
        let password = keys::random_password();
        let root = keys::random_password();
        let secret = trillian::database_secret(owner, &password, &root);
        if create_new(&secrets, &secret).await? {
            tracing::info!(secret = %db, "created the database credentials");
        }
    }
    Ok(())
}

/// Creates `object` unless it exists; `true` when this call created it.
async fn create_new<K>(api: &Api<K>, object: &K) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Server-side applies `object` when its content differs from what was
/// last applied (recorded as a hash annotation); otherwise writes nothing.
async fn apply_if_changed(
    ctx: &Context,
    namespace: &str,
    object: Object,
    observed: &observe::Observed,
) -> Result<()> {
    let hash = build::content_hash(&object);
    if observed.applied_hash(object.kind(), object.name()) == Some(Some(hash.as_str())) {
        return Ok(());
    }
    tracing::info!(kind = object.kind(), name = object.name(), "applying");
    let client = &ctx.client;
    match object {
        Object::ConfigMap(o) => apply(client, namespace, o, &hash).await,
        Object::Service(o) => apply(client, namespace, o, &hash).await,
        Object::Deployment(o) => apply(client, namespace, o, &hash).await,
        Object::ServiceAccount(o) => apply(client, namespace, o, &hash).await,
        Object::Role(o) => apply(client, namespace, o, &hash).await,
        Object::RoleBinding(o) => apply(client, namespace, o, &hash).await,
    }
}

async fn apply<K>(client: &Client, namespace: &str, mut object: K, hash: &str) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(HASH_ANNOTATION.into(), hash.into());
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    Ok(())
}

/// The decision for every enabled stage.
fn plan_stages(
    ctx: &Context,
    owner: &Owner,
    stack: &SigstoreStack,
    observed: &observe::Observed,
) -> Vec<StagePlan> {
    let now = Timestamp::now();
    plan::enabled_stages(&stack.spec)
        .into_iter()
        .map(|stage| {
            let template = stages::template(owner, &stack.spec, stage, &ctx.options.jobs);
            let hash = job_hash(&template, stack);
            let jobs: Vec<&observe::JobView> =
                observed.jobs.iter().filter(|j| j.stage == stage).collect();
            plan::plan(
                stage,
                plan::state(stage, owner, &stack.spec, observed),
                &jobs,
                &hash,
                now,
                ctx.options.stage_retry_base,
            )
        })
        .collect()
}

/// Names a stage's Jobs: the Pod template and the stack's generation, so a
/// spec change (which may be the fix a failing stage needs) starts again
/// from attempt 1, at once.
fn job_hash(template: &PodTemplateSpec, stack: &SigstoreStack) -> String {
    build::content_hash(&(template, stack.metadata.generation))
}

/// Deletes superseded Jobs and starts the planned attempts.
async fn run_plans(
    ctx: &Context,
    owner: &Owner,
    stack: &SigstoreStack,
    plans: &[StagePlan],
) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    for p in plans {
        for name in &p.delete {
            match jobs.delete(name, &DeleteParams::background()).await {
                Ok(_) => tracing::info!(job = %name, "deleted a superseded stage Job"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(attempt) = p.create {
            let template = stages::template(owner, &stack.spec, p.stage, &ctx.options.jobs);
            let hash = job_hash(&template, stack);
            let job = stages::job(owner, p.stage, template, &hash, attempt, &ctx.options.jobs);
            if create_new(&jobs, &job).await? {
                tracing::info!(job = %job.name_any(), stage = p.stage.id(), attempt, "started a stage Job");
            }
        }
    }
    Ok(())
}

/// Writes `desired` if it differs from the stack's status, and publishes
/// an Event for each transition.
async fn report(
    ctx: &Context,
    stack: &SigstoreStack,
    namespace: &str,
    desired: SigstoreStackStatus,
) -> Result<()> {
    if !status::needs_write(stack, &desired) {
        return Ok(());
    }
    let api: Api<SigstoreStack> = Api::namespaced(ctx.client.clone(), namespace);
    apply_status(&api, &stack.name_any(), &desired).await?;
    ctx.metrics.status_writes.inc();
    tracing::info!(phase = ?desired.phase, "status updated");
    for notice in status::notices(stack.status.as_ref(), &desired) {
        publish(ctx, stack, notice).await;
    }
    Ok(())
}

/// Records a status change as an Event on the stack. A failure is logged,
/// not fatal: the status already says the same.
async fn publish(ctx: &Context, stack: &SigstoreStack, notice: status::Notice) {
    let event = Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason,
        note: Some(notice.note),
        action: notice.action,
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &stack.object_ref(&())).await {
        tracing::warn!(%error, "cannot publish an event");
    }
}

/// Writes `status` with server-side apply on the status subresource.
async fn apply_status(
    api: &Api<SigstoreStack>,
    name: &str,
    status: &SigstoreStackStatus,
) -> Result<()> {
    let body = json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "SigstoreStack",
        "status": serde_json::to_value(status).map_err(|source| Error::Serialize {
            what: "status",
            source,
        })?,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Retries a failed stack with a delay that grows with each failure in a row.
/// An invalid spec is not an error here: it is reported in status and waits
/// for a change.
pub fn error_policy(
    stack: Arc<DeserializeGuard<SigstoreStack>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let Ok(readable) = &stack.0 else {
        return Action::await_change();
    };
    let failures = match ctx.failures.lock() {
        Ok(mut map) => {
            let n = map.entry(ObjectRef::from_obj(readable)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    let delay = retry_delay(failures);
    tracing::warn!(stack = %stack.name_any(), %error, failures, ?delay, "reconcile failed; will retry");
    Action::requeue(delay)
}
