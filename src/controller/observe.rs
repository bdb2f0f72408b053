//! Read what a stack owns with LIST calls, and reduce it at once
//! ([`crate::observed`]).

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount},
    rbac::v1::{Role, RoleBinding},
};
use kube::{Api, Client, Resource, ResourceExt, api::ListParams};
use serde::de::DeserializeOwned;

pub use crate::observed::{Availability, JobState, JobView, Observed, SecretView};
use crate::{
    Result,
    build::meta,
    observed::{availability, job_view, pod_messages, pod_problems, record, secret_view, tuf_view},
    stage::Stage,
};

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
    // Jobs of a stage this version does not know are not its to judge.
    observed.jobs = jobs
        .iter()
        .filter_map(job_view)
        .filter(|j| Stage::from_id(&j.stage).is_some())
        .collect();

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
    if observed.deployments.values().any(|a| !a.is_available()) {
        // Why a server does not come up is on its Pod, not its Deployment.
        let pods: Vec<Pod> = list(
            client,
            namespace,
            &format!("{selector},!{}", meta::STAGE_LABEL),
        )
        .await?;
        observed.pod_problems = pod_problems(&pods);
    }
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
