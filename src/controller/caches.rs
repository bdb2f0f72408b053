//! The watch caches a pass reads what a stack owns from: one reflector
//! store per kind the operator labels, fed by the same watches whose events
//! trigger the passes, so a settled operator makes no LIST call at all.
//!
//! Objects are kept light: no managedFields, and a Secret keeps its key
//! names and public values only; its private values are dropped before
//! they reach the store ([`crate::observed::strip_secret`]).
//!
//! The caches of different kinds are not in step with each other. What a
//! pass must not see is a stage's Job finished while its outputs look
//! missing (it would run the stage again): `observe` reads such outputs
//! from the API server instead.

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
        rbac::v1::{Role, RoleBinding},
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;

/// A watch's objects, for the controller to trigger on.
pub type Feed<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The stores, one per kind a stack owns.
#[derive(Clone)]
pub struct Caches {
    pub jobs: Store<Job>,
    pub config_maps: Store<ConfigMap>,
    pub secrets: Store<Secret>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub service_accounts: Store<ServiceAccount>,
    pub roles: Store<Role>,
    pub role_bindings: Store<RoleBinding>,
    pub claims: Store<PersistentVolumeClaim>,
}

/// The watches feeding [`Caches`].
pub struct Feeds {
    pub jobs: Feed<Job>,
    pub config_maps: Feed<ConfigMap>,
    pub secrets: Feed<Secret>,
    pub deployments: Feed<Deployment>,
    pub services: Feed<Service>,
    pub service_accounts: Feed<ServiceAccount>,
    pub roles: Feed<Role>,
    pub role_bindings: Feed<RoleBinding>,
    pub claims: Feed<PersistentVolumeClaim>,
}

/// Watches of what carries `selector` in `namespace` (every namespace when
/// `None`), and the stores they fill once the controller polls them.
pub fn watch(client: &Client, namespace: Option<&str>, selector: &str) -> (Caches, Feeds) {
    let (jobs, jobs_feed) = feed(client, namespace, selector, lighten::<Job>);
    let (config_maps, config_maps_feed) = feed(client, namespace, selector, lighten::<ConfigMap>);
    let (secrets, secrets_feed) = feed(client, namespace, selector, |s: &mut Secret| {
        lighten(s);
        crate::observed::strip_secret(s);
    });
    let (deployments, deployments_feed) = feed(client, namespace, selector, lighten::<Deployment>);
    let (services, services_feed) = feed(client, namespace, selector, lighten::<Service>);
    let (service_accounts, service_accounts_feed) =
        feed(client, namespace, selector, lighten::<ServiceAccount>);
    let (roles, roles_feed) = feed(client, namespace, selector, lighten::<Role>);
    let (role_bindings, role_bindings_feed) =
        feed(client, namespace, selector, lighten::<RoleBinding>);
    let (claims, claims_feed) = feed(
        client,
        namespace,
        selector,
        lighten::<PersistentVolumeClaim>,
    );
    (
        Caches {
            jobs,
            config_maps,
            secrets,
            deployments,
            services,
            service_accounts,
            roles,
            role_bindings,
            claims,
        },
        Feeds {
            jobs: jobs_feed,
            config_maps: config_maps_feed,
            secrets: secrets_feed,
            deployments: deployments_feed,
            services: services_feed,
            service_accounts: service_accounts_feed,
            roles: roles_feed,
            role_bindings: role_bindings_feed,
            claims: claims_feed,
        },
    )
}

impl Caches {
    /// Waits until every store holds its watch's first full list.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.jobs.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        self.deployments.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.service_accounts.wait_until_ready().await?;
        self.roles.wait_until_ready().await?;
        self.role_bindings.wait_until_ready().await?;
        self.claims.wait_until_ready().await
    }
}

/// What `store` holds of stack `stack` in `namespace`.
pub fn of_stack<K>(store: &Store<K>, namespace: &str, stack: &str) -> Vec<std::sync::Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state_filter(|o| {
        o.namespace().as_deref() == Some(namespace)
            && o.labels()
                .get(crate::build::meta::INSTANCE_LABEL)
                .map(String::as_str)
                == Some(stack)
    })
}

fn feed<K>(
    client: &Client,
    namespace: Option<&str>,
    selector: &str,
    lighten: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, Feed<K>)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .modify(lighten)
        .reflect(writer)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// Drops what no decision reads and every object carries.
fn lighten<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}
