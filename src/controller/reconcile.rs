//! One pass over one stack: read → [`decide`](super::decide::decide)
//! (pure) → apply → report. Nothing here decides.

use std::{collections::BTreeMap, fmt::Debug, sync::Arc, time::Instant};

use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
        rbac::v1::{Role, RoleBinding},
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
    Context,
    decide::{self, Create, Decision, Removal, Seen},
    events, observe, trees,
};
use crate::{
    Error, FIELD_MANAGER, Result,
    api::{SigstoreStack, SigstoreStackSpec, SigstoreStackStatus},
    build::component::Component,
    build::{Object, Owner, meta::HASH_ANNOTATION, trillian},
    keys,
    names::{Log, TRILLIAN_LOG_SERVER},
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
    let seen = read(ctx, stack, &namespace).await?;
    let decision = decide::decide(stack, &seen, &ctx.options, Timestamp::now())?;
    let requeue = decision.requeue;
    apply(ctx, stack, &namespace, decision).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Reads what the stack owns and asks its servers what decisions need. A
/// spec the operator cannot act on is not looked into further.
async fn read(ctx: &Context, stack: &SigstoreStack, namespace: &str) -> Result<Seen> {
    let name = stack.name_any();
    // The first passes wait for every watch's first list.
    ctx.caches.ready().await.map_err(|_| Error::CachesClosed)?;
    let observed = observe::observe(&ctx.client, &ctx.caches, namespace, stack).await?;
    let owner = Owner {
        name,
        namespace: namespace.to_owned(),
        uid: stack.uid().unwrap_or_default(),
    };
    let spec = &stack.spec;
    let cluster_oidc = if decide::needs_cluster_issuer(spec) {
        Some(ctx.cluster_issuer().await?)
    } else {
        None
    };
    Ok(Seen {
        brought_ca: brought_ca(ctx, &owner, spec, &observed).await?,
        tree_probes: probe_trees(&owner, spec, &observed).await,
        serving: probe_serving(&owner, spec, &observed).await,
        cluster_oidc,
        observed,
    })
}

/// Why the CA the spec brings cannot be imported, asked before anything is
/// applied and only while the stack holds no CA: once imported, the user's
/// Secret is theirs to change or delete. Only the verdict is kept.
async fn brought_ca(
    ctx: &Context,
    owner: &Owner,
    spec: &SigstoreStackSpec,
    observed: &observe::Observed,
) -> Result<Option<String>> {
    let Some(user) = spec.fulcio.ca.existing_secret.as_ref() else {
        return Ok(None);
    };
    let ours = crate::names::fulcio_ca(&owner.name);
    if !spec.fulcio.enabled
        || observed
            .secrets
            .get(&ours)
            .is_some_and(|s| s.has_all(crate::stage::createcerts::REQUIRED))
    {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let secret = api
        .get_opt(user)
        .await
        .map_err(|e| Error::api("read the brought CA", "Secret", user, e))?;
    let object = format!("Secret {}/{user}", owner.namespace);
    let Some(secret) = secret else {
        return Ok(Some(format!(
            "{object} not found; it must exist in the stack's namespace"
        )));
    };
    let data = secret.data.unwrap_or_default();
    Ok(
        crate::stage::createcerts::check_brought(&object, &data, time::OffsetDateTime::now_utc())
            .err()
            .map(|e| e.to_string()),
    )
}

/// What Trillian says of each recorded tree, once its log server is
/// available (before, there is nothing to ask).
async fn probe_trees(
    owner: &Owner,
    spec: &SigstoreStackSpec,
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
    spec: &SigstoreStackSpec,
    observed: &observe::Observed,
) -> BTreeMap<Log, trees::Serving> {
    let mut out = BTreeMap::new();
    for component in Component::ALL.into_iter().filter(|c| c.wanted(spec)) {
        let Some(log) = component.trillian_log() else {
            continue;
        };
        // The log's server is `<stack>-<log>`.
        if !observed.available(&owner.name_of(log.as_str())) {
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

/// Does what `decision` says, in its order, then writes the status and
/// publishes its Events.
async fn apply(
    ctx: &Context,
    stack: &SigstoreStack,
    namespace: &str,
    decision: Decision,
) -> Result<()> {
    let client = &ctx.client;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for reset in &decision.tree_resets {
        config_maps
            .patch(
                &reset.config_map,
                &PatchParams::default(),
                &Patch::Merge(&reset.patch),
            )
            .await
            .map_err(|e| Error::api("unrecord a lost tree", "ConfigMap", &reset.config_map, e))?;
        tracing::warn!(log = ?reset.log, tree_id = reset.tree_id, config_map = %reset.config_map, "tree lost; a new one replaces it");
    }
    for create in &decision.create {
        create_once(client, namespace, create).await?;
    }
    for (object, hash) in decision.apply {
        tracing::info!(kind = object.kind(), name = object.name(), "applying");
        apply_object(client, namespace, object, &hash).await?;
    }
    for removal in &decision.delete {
        remove(client, namespace, removal).await?;
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    for name in &decision.delete_jobs {
        match jobs.delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(job = %name, "deleted a stage Job"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::api("delete a stage Job", "Job", name, e)),
        }
    }
    for job in &decision.create_jobs {
        let name = job.name_any();
        if create_new(&jobs, job)
            .await
            .map_err(|e| Error::api("start a stage Job", "Job", &name, e))?
        {
            tracing::info!(job = %name, "started a stage Job");
        }
    }
    if let Some(desired) = &decision.status {
        report(ctx, stack, namespace, desired).await?;
        for notice in &decision.events {
            publish(ctx, stack, notice).await;
        }
    }
    Ok(())
}

/// Creates an object that is made once and never changed.
async fn create_once(client: &Client, namespace: &str, create: &Create) -> Result<()> {
    let (what, kind, name, created) = match create {
        Create::ConfigMap(cm) => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            (
                "an empty stage output",
                "ConfigMap",
                cm.name_any(),
                create_new(&api, cm).await,
            )
        }
        Create::Secret(s) => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            (
                "an empty stage output",
                "Secret",
                s.name_any(),
                create_new(&api, s).await,
            )
        }
        Create::Claim(c) => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
            (
                "the database's claim",
                "PersistentVolumeClaim",
                c.name_any(),
                create_new(&api, c).await,
            )
        }
        Create::DatabaseCredentials(owner) => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let (password, root) = (keys::random_password(), keys::random_password());
            let secret = trillian::database_secret(owner, &password, &root);
            let name = secret.name_any();
            (
                "the database's credentials",
                "Secret",
                name,
                create_new(&api, &secret).await,
            )
        }
    };
    if created.map_err(|e| Error::api("create", kind, &name, e))? {
        tracing::info!(kind, %name, "created {what}");
    }
    Ok(())
}

/// Creates `object` unless it exists; `true` when this call created it.
async fn create_new<K>(api: &Api<K>, object: &K) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Server-side applies `object`, recording `hash` on it.
async fn apply_object(client: &Client, namespace: &str, object: Object, hash: &str) -> Result<()> {
    match object {
        Object::ConfigMap(o) => server_side_apply(client, namespace, o, hash).await,
        Object::Service(o) => server_side_apply(client, namespace, o, hash).await,
        Object::Deployment(o) => server_side_apply(client, namespace, o, hash).await,
        Object::ServiceAccount(o) => server_side_apply(client, namespace, o, hash).await,
        Object::Role(o) => server_side_apply(client, namespace, o, hash).await,
        Object::RoleBinding(o) => server_side_apply(client, namespace, o, hash).await,
    }
}

async fn server_side_apply<K>(
    client: &Client,
    namespace: &str,
    mut object: K,
    hash: &str,
) -> Result<()>
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
    .await
    .map_err(|e| Error::api("apply", K::kind(&()).as_ref(), &name, e))?;
    Ok(())
}

/// Deletes an object the spec no longer wants; gone already is as good.
async fn remove(client: &Client, namespace: &str, removal: &Removal) -> Result<()> {
    let name = removal.name.as_str();
    let result = match removal.kind.as_str() {
        "ConfigMap" => delete::<ConfigMap>(client, namespace, name).await,
        "Service" => delete::<Service>(client, namespace, name).await,
        "Deployment" => delete::<Deployment>(client, namespace, name).await,
        "ServiceAccount" => delete::<ServiceAccount>(client, namespace, name).await,
        "Role" => delete::<Role>(client, namespace, name).await,
        "RoleBinding" => delete::<RoleBinding>(client, namespace, name).await,
        // Observe records no other kind with an applied hash.
        _ => Ok(()),
    };
    match result {
        Ok(()) => {
            tracing::info!(kind = %removal.kind, %name, "deleted what the spec no longer wants");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::api("delete", &removal.kind, name, e)),
    }
}

async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.delete(name, &DeleteParams::background()).await?;
    Ok(())
}

/// Writes `desired` with server-side apply on the status subresource.
async fn report(
    ctx: &Context,
    stack: &SigstoreStack,
    namespace: &str,
    desired: &SigstoreStackStatus,
) -> Result<()> {
    let api: Api<SigstoreStack> = Api::namespaced(ctx.client.clone(), namespace);
    let name = stack.name_any();
    let body = json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "SigstoreStack",
        "status": serde_json::to_value(desired).map_err(|source| Error::Serialize {
            what: "status",
            source,
        })?,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| Error::api("write the status of", "SigstoreStack", &name, e))?;
    ctx.metrics.status_writes.inc();
    tracing::info!(phase = ?desired.phase, "status updated");
    Ok(())
}

/// Records a status change as an Event on the stack. A failure is logged,
/// not fatal: the status already says the same.
async fn publish(ctx: &Context, stack: &SigstoreStack, notice: &events::Notice) {
    let event = Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason.clone(),
        note: Some(notice.note.clone()),
        action: notice.action.clone(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &stack.object_ref(&())).await {
        tracing::warn!(%error, "cannot publish an event");
    }
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
    let delay = super::retry_delay(failures);
    tracing::warn!(stack = %stack.name_any(), %error, failures, ?delay, "reconcile failed; will retry");
    Action::requeue(delay)
}
