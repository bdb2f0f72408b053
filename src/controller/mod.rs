//! The `SigstoreStack` controller: watch, reconcile, report.

pub mod caches;
pub mod decide;
pub mod events;
mod http_probe;
pub mod observe;
pub mod plan;
mod reconcile;
pub mod status;
pub mod trees;
pub mod trust;

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

use crate::{
    Error, Result, api::SigstoreStack, cluster_oidc, health::Readiness, metrics::Metrics,
    stage::job::JobSettings,
};

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
    /// How stages run.
    pub options: Options,
    /// The cluster's service-account issuer and keys, once discovered.
    issuer: tokio::sync::Mutex<Option<cluster_oidc::ClusterOidc>>,
    /// What the stacks own, as the watches last saw it.
    pub caches: caches::Caches,
}

impl Context {
    /// The cluster's service-account token issuer and keys, discovered
    /// once.
    pub async fn cluster_issuer(&self) -> Result<cluster_oidc::ClusterOidc> {
        let mut cached = self.issuer.lock().await;
        if let Some(oidc) = cached.as_ref() {
            return Ok(oidc.clone());
        }
        let oidc = cluster_oidc::discover_cluster_issuer(&self.client).await?;
        tracing::info!(issuer = %oidc.issuer, jwks_uri = ?oidc.jwks_uri, "discovered the cluster's service-account issuer");
        if let Some(problem) = cluster_oidc::jwks_problem(&oidc) {
            tracing::warn!(%problem, "Fulcio cannot verify this cluster's tokens");
        }
        *cached = Some(oidc.clone());
        Ok(oidc)
    }
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// How many stacks may be reconciled at once (0: no limit).
    pub concurrency: u16,
    /// How stage Jobs run.
    pub jobs: JobSettings,
    /// The first delay before a failed stage Job is replaced.
    pub stage_retry_base: Duration,
}

/// A settled stack is looked at again after this long, in case an event
/// was missed; a pass over a settled stack writes nothing.
pub const RESYNC: Duration = Duration::from_secs(600);

/// The first retry delay after a transient error; it doubles per failure.
const RETRY_BASE: Duration = Duration::from_secs(2);
/// The longest retry delay (the same cap as a failed stage's).
#[cfg(test)]
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures` (1 for the first failure).
pub fn retry_delay(failures: u32) -> Duration {
    plan::retry_delay(RETRY_BASE, failures)
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
    let stacks = match &options.namespace {
        Some(ns) => Api::<DeserializeGuard<SigstoreStack>>::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Only what this operator labelled is watched, so other Secrets never
    // reach it; a change to any of it moves its stack on at once, and the
    // passes read it from these watches' caches.
    let (caches, feeds) = caches::watch(
        &client,
        options.namespace.as_deref(),
        &crate::build::meta::managed_selector(),
    );
    let reporter = Reporter {
        controller: crate::FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        metrics,
        failures: Mutex::default(),
        options: options.clone(),
        issuer: tokio::sync::Mutex::default(),
        caches,
    });
    tracing::info!(namespace = ?options.namespace, "watching SigstoreStacks");
    ready.set(true);
    Controller::new(stacks, watcher::Config::default().any_semantic())
        .owns_stream(feeds.jobs)
        .owns_stream(feeds.deployments)
        .owns_stream(feeds.config_maps)
        .owns_stream(feeds.secrets)
        .owns_stream(feeds.services)
        .owns_stream(feeds.service_accounts)
        .owns_stream(feeds.roles)
        .owns_stream(feeds.role_bindings)
        .owns_stream(feeds.claims)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(options.concurrency)
                .debounce(Duration::from_millis(200)),
        )
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
