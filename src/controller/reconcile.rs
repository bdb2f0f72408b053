//! One pass over one stack: read → decide (pure) → apply → report.

use std::{sync::Arc, time::Instant};

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{
        controller::Action,
        events::{Event, EventType},
        reflector::ObjectRef,
    },
};
use serde_json::json;

use super::{Context, retry_delay, status};
use crate::{
    Error, FIELD_MANAGER, Result,
    api::{SigstoreStack, SigstoreStackStatus},
    conditions,
};

/// Brings one stack's status up to date. Writes nothing when nothing changed.
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
    let desired = status::desired(stack, &conditions::now());
    if status::needs_write(stack, &desired) {
        let api: Api<SigstoreStack> = Api::namespaced(ctx.client.clone(), &namespace);
        apply_status(&api, &stack.name_any(), &desired).await?;
        ctx.metrics.status_writes.inc();
        tracing::info!(phase = ?desired.phase, "status updated");
        if let Some(notice) = status::notice(stack.status.as_ref(), &desired) {
            publish(ctx, stack, notice).await;
        }
    }
    // Every change to the stack triggers a pass; there is nothing to poll.
    Ok(Action::await_change())
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
        action: "Reconcile".into(),
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
