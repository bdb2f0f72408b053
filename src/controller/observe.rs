//! Read what a stack owns from the watch caches ([`super::caches`]), and
//! reduce it at once ([`crate::observed`]).

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{Api, Client, Resource, ResourceExt, api::ListParams};
use serde::de::DeserializeOwned;

use super::caches::{Caches, of_stack};

pub use crate::observed::{Availability, JobState, JobView, Observed, SecretView};
use crate::{
    Result,
    api::SigstoreStack,
    build::{Placeholder, meta},
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

/// Reads everything stack `stack` owns in `namespace` from the watch
/// caches; Pods (only while something does not start or failed) and the
/// outputs of a stage just finished from the API server.
pub async fn observe(
    client: &Client,
    caches: &Caches,
    namespace: &str,
    stack: &SigstoreStack,
) -> Result<Observed> {
    let name = stack.name_any();
    let selector = meta::owned_selector(&name);
    let mut observed = Observed::default();
    let jobs = of_stack(&caches.jobs, namespace, &name);
    // Jobs of a stage this version does not know are not its to judge.
    observed.jobs = jobs
        .iter()
        .filter_map(|j| job_view(j))
        .filter(|j| Stage::from_id(&j.stage).is_some())
        .collect();

    let config_maps = of_stack(&caches.config_maps, namespace, &name);
    record(&mut observed, "ConfigMap", &config_maps);
    for cm in &config_maps {
        add_config_map(&mut observed, &name, cm);
    }
    for s in of_stack(&caches.secrets, namespace, &name) {
        observed.secrets.insert(s.name_any(), secret_view(&s));
    }
    let deployments = of_stack(&caches.deployments, namespace, &name);
    record(&mut observed, "Deployment", &deployments);
    for d in &deployments {
        observed.deployments.insert(d.name_any(), availability(d));
    }
    record(
        &mut observed,
        "Service",
        &of_stack(&caches.services, namespace, &name),
    );
    record(
        &mut observed,
        "ServiceAccount",
        &of_stack(&caches.service_accounts, namespace, &name),
    );
    record(
        &mut observed,
        "Role",
        &of_stack(&caches.roles, namespace, &name),
    );
    record(
        &mut observed,
        "RoleBinding",
        &of_stack(&caches.role_bindings, namespace, &name),
    );
    observed.claims = of_stack(&caches.claims, namespace, &name)
        .iter()
        .map(|c| c.name_any())
        .collect();
    read_fresh_outputs(client, namespace, stack, &mut observed).await?;
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

fn add_config_map(observed: &mut Observed, stack: &str, cm: &ConfigMap) {
    if cm.name_any() == crate::names::tuf_repository(stack) {
        observed.tuf = Some(tuf_view(cm));
    } else {
        observed
            .config_maps
            .insert(cm.name_any(), cm.data.clone().unwrap_or_default());
    }
}

/// The stages whose latest Job succeeded while the stack's status does not
/// yet say they are done: their outputs were written before the Job
/// finished, but the caches of Secrets and ConfigMaps need not have them
/// yet, and a finished Job with outputs missing would run the stage again.
pub fn just_finished(observed: &Observed, stack: &SigstoreStack) -> Vec<Stage> {
    let done: std::collections::BTreeSet<&str> = stack
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .filter(|c| c.status == "True")
        .map(|c| c.type_.as_str())
        .collect();
    let mut stages: Vec<Stage> = observed
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .filter_map(|j| Stage::from_id(&j.stage))
        .filter(|s| !done.contains(s.condition()))
        .collect();
    stages.sort_by_key(|s| s.id());
    stages.dedup();
    stages
}

/// Reads the outputs of [`just_finished`] stages from the API server.
async fn read_fresh_outputs(
    client: &Client,
    namespace: &str,
    stack: &SigstoreStack,
    observed: &mut Observed,
) -> Result<()> {
    let name = stack.name_any();
    for stage in just_finished(observed, stack) {
        for output in stage.outputs(&name) {
            match output {
                Placeholder::ConfigMap(cm) => {
                    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
                    if let Some(cm) = api.get_opt(&cm).await? {
                        add_config_map(observed, &name, &cm);
                    }
                }
                Placeholder::Secret(secret) => {
                    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
                    if let Some(s) = api.get_opt(&secret).await? {
                        observed.secrets.insert(s.name_any(), secret_view(&s));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::JobView;

    fn job(stage: Stage, state: JobState) -> JobView {
        JobView {
            name: format!("demo-{}-h-1", stage.id()),
            stage: stage.id().into(),
            hash: "h".into(),
            attempt: 1,
            state,
            message: None,
        }
    }

    fn stack(done: &[&str]) -> SigstoreStack {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
            "metadata": {"name": "demo", "namespace": "ns"}, "spec": {},
            "status": {"conditions": done.iter().map(|t| serde_json::json!({
                "type": t, "status": "True", "reason": "Done", "message": "",
                "lastTransitionTime": "2026-12-03T00:00:00Z"})).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn only_a_succeeded_stage_not_yet_recorded_done_is_read_fresh() {
        let certs = Stage::from_id("certs").unwrap();
        let tsa = Stage::from_id("tsa-chain").unwrap();
        let tuf = Stage::from_id("tuf").unwrap();
        let observed = Observed {
            jobs: vec![
                job(certs, JobState::Succeeded),
                job(certs, JobState::Succeeded),
                job(tsa, JobState::Succeeded),
                job(tuf, JobState::Running),
            ],
            ..Observed::default()
        };
        // Nothing recorded yet: both finished stages, once each.
        assert_eq!(just_finished(&observed, &stack(&[])), vec![certs, tsa]);
        // createcerts recorded done: its outputs are as the cache has them.
        assert_eq!(
            just_finished(&observed, &stack(&[certs.condition()])),
            vec![tsa]
        );
        assert!(just_finished(&observed, &stack(&[certs.condition(), tsa.condition()])).is_empty());
    }
}
