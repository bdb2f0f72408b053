//! Small builders shared by the workloads: a Deployment of one Pod, a
//! Service, containers, env and volumes.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
            EnvVarSource, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec,
            PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, SecretKeySelector, SecretVolumeSource, Service, ServicePort,
            ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{
    Object,
    meta::{self, Owner},
};
use crate::api::DatabaseStorage;

/// A Deployment of one replica of `pod`, named `<stack>-<part>`. Replaced,
/// not rolled, so two servers never share a database or a key at once.
pub fn deployment(owner: &Owner, part: &str, user: i64, mut pod: PodSpec) -> Deployment {
    pod.security_context = Some(meta::pod_security(user));
    pod.automount_service_account_token = pod.automount_service_account_token.or(Some(false));
    pod.enable_service_links = Some(false);
    Deployment {
        metadata: owner.meta(owner.name_of(part), part),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(meta::selector(&owner.name, part)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta::labels(&owner.name, part)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Sets annotation `key` on a Deployment's Pod template: a new value
/// rolls its Pods.
pub fn annotate_template(object: &mut Object, key: &str, value: String) {
    if let Object::Deployment(d) = object {
        annotate_deployment(d, key, value);
    }
}

/// Sets annotation `key` on `d`'s Pod template.
pub fn annotate_deployment(d: &mut Deployment, key: &str, value: String) {
    if let Some(meta) = d.spec.as_mut().and_then(|s| s.template.metadata.as_mut()) {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
    }
}

/// A one-Pod Deployment `<stack>-<part>` running `pod` as `user`, and the
/// Service in front of it with `ports` as `(name, port, target port)`.
pub fn served(
    owner: &Owner,
    part: &str,
    user: i64,
    pod: PodSpec,
    ports: &[(&str, i32, i32)],
) -> [Object; 2] {
    [
        Object::Deployment(deployment(owner, part, user, pod)),
        Object::Service(service(owner, part, ports)),
    ]
}

/// A ClusterIP Service `<stack>-<part>` with `ports` as
/// `(name, port, target port)`.
pub fn service(owner: &Owner, part: &str, ports: &[(&str, i32, i32)]) -> Service {
    Service {
        metadata: owner.meta(owner.name_of(part), part),
        spec: Some(ServiceSpec {
            selector: Some(meta::selector(&owner.name, part)),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port, target)| ServicePort {
                        name: Some((*name).into()),
                        port: *port,
                        target_port: Some(IntOrString::Int(*target)),
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A container with the restricted security context, small requests, and
/// a TCP readiness probe on its first port.
pub fn container(name: &str, image: &str, args: Vec<String>, ports: &[(&str, i32)]) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        args: Some(args),
        ports: (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|(name, port)| ContainerPort {
                    name: Some((*name).into()),
                    container_port: *port,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        readiness_probe: ports.first().map(|(_, port)| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(*port),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        resources: Some(requests("10m", "32Mi")),
        security_context: Some(meta::container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// Resource requests only: test clusters are small, and limits would
/// throttle bring-up.
pub fn requests(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(cpu.into())),
            ("memory".into(), Quantity(memory.into())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// An env var with a literal value.
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An env var from a Secret key; the container waits until the key exists.
pub fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// An env var from a ConfigMap key; the container waits until it exists.
pub fn env_config_map(name: &str, config_map: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: config_map.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn items(keys: &[(&str, &str)]) -> Vec<KeyToPath> {
    keys.iter()
        .map(|(key, path)| KeyToPath {
            key: (*key).into(),
            path: (*path).into(),
            mode: None,
        })
        .collect()
}

/// A volume of Secret keys as files `(key, path)`. Listing the keys makes
/// the kubelet hold the Pod until each exists, also in an empty Secret.
pub fn secret_volume(name: &str, secret: &str, keys: &[(&str, &str)]) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(items(keys)),
            optional: Some(false),
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    }
}

/// A volume of ConfigMap keys as files `(key, path)`.
pub fn config_map_volume(name: &str, config_map: &str, keys: &[(&str, &str)]) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            items: Some(items(keys)),
            optional: Some(false),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// An empty scratch volume.
pub fn scratch(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(Default::default()),
        ..Volume::default()
    }
}

/// Mounts volume `name` at `path`, read-only unless `writable`.
pub fn mount(name: &str, path: &str, writable: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(!writable),
        ..VolumeMount::default()
    }
}

/// The PersistentVolumeClaim `<stack>-<part>` of `storage`, which the stack
/// owns.
pub fn claim(owner: &Owner, part: &str, storage: &DatabaseStorage) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: owner.meta(owner.name_of(part), part),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), Quantity(storage.size.clone()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// Volume `name`: claim `<stack>-<part>` when `storage` is given, an
/// emptyDir (lost with the Pod) otherwise.
pub fn storage_volume(
    name: &str,
    owner: &Owner,
    part: &str,
    storage: Option<&DatabaseStorage>,
) -> Volume {
    match storage {
        Some(_) => Volume {
            name: name.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: owner.name_of(part),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        None => scratch(name),
    }
}
