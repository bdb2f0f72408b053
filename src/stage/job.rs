//! The stage Jobs: the Job that runs a stage with the operator's own image,
//! as the stage's service account.

use std::time::Duration as StdDuration;

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec,
            ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
            VolumeProjection,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::Stage;
use crate::{
    api::{Duration, SigstoreStackSpec},
    build::{
        images::ImageSource,
        meta::{self, Owner},
        pods,
        workload::{container, env},
    },
    names::{OPERATOR_BINARY, STAGES},
};

/// The `stage` subcommand and flags of `stage`'s Jobs (`--stack` and
/// `--namespace` come from the env).
pub fn args(
    owner: &Owner,
    spec: &SigstoreStackSpec,
    stage: Stage,
    timeout: Duration,
) -> Vec<String> {
    let mut args: Vec<String> = vec!["stage".into()];
    args.extend(stage.rules().args(owner, spec));
    args.push(format!("--timeout={timeout}"));
    args
}

/// How the operator runs stage Jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// The operator's own image.
    pub image: String,
    /// Each attempt's `--timeout`.
    pub timeout: Duration,
    /// Pod retries within one Job.
    pub backoff_limit: i32,
    /// Where every Pod's images come from, the stage Jobs' and the
    /// workloads'.
    pub source: ImageSource,
}

/// Where a stage that signs finds its projected service-account token.
pub const TOKEN_DIR: &str = "/var/run/sigstore";

/// The Pod template of `stage`'s Jobs. Its hash names the Job, so a spec
/// change that changes the stage's flags, or new `inputs` (what the stage
/// runs for beyond the spec), starts a fresh Job.
pub fn template(
    owner: &Owner,
    spec: &SigstoreStackSpec,
    stage: Stage,
    settings: &JobSettings,
    inputs: Option<&str>,
) -> PodTemplateSpec {
    let mut argv = args(owner, spec, stage, settings.timeout);
    if let Some(inputs) = inputs {
        argv.push(format!("--inputs={inputs}"));
    }
    let mut c = container("stage", &settings.image, argv, &[]);
    c.command = Some(vec![OPERATOR_BINARY.into()]);
    c.env = Some(vec![
        env("STACK", &owner.name),
        EnvVar {
            name: "NAMESPACE".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
        },
        env("NO_COLOR", "1"),
    ]);
    let mut labels = meta::labels(&owner.name, STAGES);
    labels.insert(meta::STAGE_LABEL.into(), stage.id().into());
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![c],
            restart_policy: Some("Never".into()),
            service_account_name: Some(owner.name_of(STAGES)),
            automount_service_account_token: Some(true),
            enable_service_links: Some(false),
            security_context: Some(meta::pod_security(meta::NONROOT_USER)),
            ..PodSpec::default()
        }),
    };
    if let Some(pod) = template.spec.as_mut() {
        if let Some(audience) = stage.rules().token_audience() {
            add_token(pod, audience);
        }
        let wanted = pods::settings(spec, STAGES);
        pods::finish(pod, &wanted, &settings.source.pull_secrets);
    }
    template
}

/// A projected service-account token for `audience` at
/// `TOKEN_DIR/token`, as a client Pod signing with Fulcio has it.
fn add_token(pod: &mut PodSpec, audience: &str) {
    pod.volumes.get_or_insert_default().push(Volume {
        name: "sigstore-token".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(audience.into()),
                    // The shortest the API server issues; the check takes seconds.
                    expiration_seconds: Some(600),
                    path: "token".into(),
                }),
                ..VolumeProjection::default()
            }]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    });
    for c in &mut pod.containers {
        c.volume_mounts.get_or_insert_default().push(VolumeMount {
            name: "sigstore-token".into(),
            mount_path: TOKEN_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
}

/// `<stack>-<stage>-<hash>-<attempt>`.
pub fn job_name(stack: &str, stage: Stage, hash: &str, attempt: u32) -> String {
    let short: String = hash.chars().take(5).collect();
    format!("{stack}-{}-{short}-{attempt}", stage.id())
}

/// Attempt `attempt` of `stage` with the Pod template of hash `hash`.
pub fn job(
    owner: &Owner,
    stage: Stage,
    template: PodTemplateSpec,
    hash: &str,
    attempt: u32,
    settings: &JobSettings,
) -> Job {
    let mut metadata = owner.meta(job_name(&owner.name, stage, hash, attempt), STAGES);
    if let Some(labels) = metadata.labels.as_mut() {
        labels.insert(meta::STAGE_LABEL.into(), stage.id().into());
    }
    metadata.annotations = Some(
        [
            (meta::HASH_ANNOTATION.to_owned(), hash.to_owned()),
            (meta::ATTEMPT_ANNOTATION.to_owned(), attempt.to_string()),
        ]
        .into(),
    );
    // An attempt that hangs past every pod's timeout is failed and retried.
    let per_pod = settings.timeout.as_std() + StdDuration::from_secs(60);
    let deadline = per_pod
        .as_secs()
        .saturating_mul(u64::from(settings.backoff_limit.unsigned_abs()) + 1);
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(settings.backoff_limit),
            active_deadline_seconds: i64::try_from(deadline).ok(),
            template,
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{api::KeyAlgorithm, build::tests::owner, cli::Cli, names};

    fn settings() -> JobSettings {
        JobSettings {
            image: "sigstore-operator:dev".into(),
            timeout: "5m".parse().unwrap(),
            backoff_limit: 2,
            source: Default::default(),
        }
    }

    #[test]
    fn every_stage_command_parses() {
        let mut spec = SigstoreStackSpec::default();
        spec.fulcio.ca.existing_secret = Some("mine".into());
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa3072,
        ] {
            spec.fulcio.ca.key_algorithm = algorithm;
            for stage in Stage::ALL {
                let args = args(&owner(), &spec, stage, "90s".parse().unwrap());
                let argv = ["sigstore-operator".to_owned(), "--log-format=text".into()]
                    .into_iter()
                    .chain(args.iter().cloned())
                    .chain(["--stack=demo".into(), "--namespace=ns1".into()]);
                if let Err(e) = Cli::try_parse_from(argv) {
                    panic!("{stage:?} {args:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn job_runs_as_the_stage_account() {
        let spec = SigstoreStackSpec::default();
        let t = template(&owner(), &spec, Stage::RekorTree, &settings(), None);
        let hash = crate::build::content_hash(&t);
        let job = job(&owner(), Stage::RekorTree, t, &hash, 3, &settings());
        assert_eq!(
            job.metadata.name.as_deref(),
            Some(format!("demo-rekor-tree-{}-3", &hash[..5]).as_str())
        );
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("demo-stages"));
        let args = pod.containers[0].args.as_ref().unwrap();
        assert!(
            args.contains(&"--trillian-address=demo-trillian-log-server.ns1.svc:8090".to_owned())
        );
        assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(2));
        assert!(
            pod.volumes.is_none(),
            "no token for a stage that does not sign"
        );
    }

    #[test]
    fn the_self_check_signs_with_a_sigstore_token_and_runs_for_its_inputs() {
        let spec = SigstoreStackSpec::default();
        let t = template(
            &owner(),
            &spec,
            Stage::SelfCheck,
            &settings(),
            Some("ab.12"),
        );
        let pod = t.spec.as_ref().unwrap();
        let projected = pod.volumes.as_ref().unwrap()[0].projected.as_ref().unwrap();
        let token = projected.sources.as_ref().unwrap()[0]
            .service_account_token
            .as_ref()
            .unwrap();
        assert_eq!(token.audience.as_deref(), Some("sigstore"));
        let c = &pod.containers[0];
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, TOKEN_DIR);
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--inputs=ab.12".to_owned())
        );
        let other = template(
            &owner(),
            &spec,
            Stage::SelfCheck,
            &settings(),
            Some("cd.12"),
        );
        assert_ne!(
            crate::build::content_hash(&t),
            crate::build::content_hash(&other)
        );
    }

    #[test]
    fn longest_job_name_is_a_dns_label() {
        let stack = "s".repeat(names::MAX_STACK_NAME);
        for stage in Stage::ALL {
            let name = job_name(&stack, stage, "0123456789abcdef", 9999);
            assert!(name.len() <= 63, "{name}");
        }
    }
}
