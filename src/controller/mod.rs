//! The `SigstoreStack` controller: watch, reconcile, report.

mod reconcile;
pub mod status;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, CustomResourceExt,
    core::DeserializeGuard,
    runtime::{
        Controller,
        events::{Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result, api::SigstoreStack, health::Readiness, metrics::Metrics};

pub use reconcile::{error_policy, reconcile};

/// What every reconcile shares.
pub struct Context {
    /// Client for the API server.
    pub client: Client,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events on the stacks.
    pub recorder: Recorder,
    /// Consecutive failures per stack, for the retry backoff.
    pub failures: Mutex<HashMap<ObjectRef<SigstoreStack>, u32>>,
}

/// How the controller runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// How many stacks may be reconciled at once (0: no limit).
    pub concurrency: u16,
}

/// The first retry delay after a transient error; it doubles per failure.
const RETRY_BASE: Duration = Duration::from_secs(2);
/// The longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures` (1 for the first failure).
pub fn retry_delay(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    RETRY_BASE.saturating_mul(factor).min(RETRY_MAX)
}

/// Checks the CRD is installed, then reconciles stacks until `shutdown`.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<()> {
    ensure_crd_installed(&client).await?;
    // Guarded, so one stack that cannot be read never stalls the watch.
    let stacks: Api<DeserializeGuard<SigstoreStack>> = match &options.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let reporter = Reporter {
        controller: crate::FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics,
        failures: Mutex::default(),
    });
    tracing::info!(namespace = ?options.namespace, "watching SigstoreStacks");
    ready.set(true);
    Controller::new(stacks, watcher::Config::default().any_semantic())
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(stack = %obj, "reconciled"),
                Err(error) => tracing::warn!(%error, "reconcile failed"),
            }
        })
        .await;
    ready.set(false);
    tracing::info!("controller stopped");
    Ok(())
}

/// Fails with a clear message when the CRD is missing.
async fn ensure_crd_installed(client: &Client) -> Result<()> {
    let name = SigstoreStack::crd_name();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.get_opt(name).await? {
        Some(_) => Ok(()),
        None => Err(Error::CrdNotInstalled { crd: name.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(2));
        assert_eq!(retry_delay(2), Duration::from_secs(4));
        assert_eq!(retry_delay(5), Duration::from_secs(32));
        assert_eq!(retry_delay(9), RETRY_MAX);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }
}
