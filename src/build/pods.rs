//! What every Pod of a stack gets on top of what its component builds: the
//! operator's pull secrets, and the spec's scheduling and resources (the
//! component's `pod`, falling back field by field to the stack's). One
//! place, applied to every Deployment and to the stage Jobs alike.

use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec};

use super::Object;
use crate::{
    api::{PodSettings, SigstoreStackSpec},
    names,
};

/// The settings of the Pods of `part` (a Deployment's component, or
/// [`names::STAGES`]), merged with the stack-wide ones.
pub fn settings(spec: &SigstoreStackSpec, part: &str) -> PodSettings {
    let own = match part {
        names::TRILLIAN_DB => &spec.trillian.database.pod,
        names::TRILLIAN_LOG_SERVER => &spec.trillian.log_server.pod,
        names::TRILLIAN_LOG_SIGNER => &spec.trillian.log_signer.pod,
        names::REKOR => &spec.rekor.pod,
        names::REKOR_REDIS => &spec.rekor.redis_pod,
        names::REKOR_V2 => &spec.rekor.v2.pod,
        names::CTLOG => &spec.ctlog.pod,
        names::TESSERACT => &spec.ctlog.tesseract.pod,
        names::FULCIO => &spec.fulcio.pod,
        names::TSA => &spec.tsa.pod,
        names::TUF => &spec.tuf.pod,
        names::STAGES => &spec.stages.pod,
        _ => &spec.pod,
    };
    own.or(&spec.pod)
}

/// Puts `settings` and `pull_secrets` on `pod`; `resources` replace those
/// of its first container, the component's own (init containers keep
/// theirs).
pub fn finish(pod: &mut PodSpec, settings: &PodSettings, pull_secrets: &[String]) {
    if !pull_secrets.is_empty() {
        pod.image_pull_secrets = Some(
            pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect(),
        );
    }
    if let (Some(resources), Some(c)) = (&settings.resources, pod.containers.first_mut()) {
        c.resources = Some(resources.clone());
    }
    pod.node_selector.clone_from(&settings.node_selector);
    pod.tolerations.clone_from(&settings.tolerations);
    pod.affinity.clone_from(&settings.affinity);
    pod.priority_class_name
        .clone_from(&settings.priority_class_name);
}

/// [`finish`] for every Deployment in `objects`, each by its component.
pub fn finish_all(objects: &mut [Object], spec: &SigstoreStackSpec, pull_secrets: &[String]) {
    for object in objects {
        let Object::Deployment(d) = object else {
            continue;
        };
        let part = d
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/component"))
            .cloned()
            .unwrap_or_default();
        if let Some(pod) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            finish(pod, &settings(spec, &part), pull_secrets);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{
        api::core::v1::{ResourceRequirements, Toleration},
        apimachinery::pkg::api::resource::Quantity,
    };

    use super::*;
    use crate::build::{Images, images::ImageSource, objects, tests::inputs};

    fn memory(limit: &str) -> ResourceRequirements {
        ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), Quantity(limit.into()))])),
            ..ResourceRequirements::default()
        }
    }

    #[test]
    fn every_deployment_gets_pull_secrets_and_its_settings() {
        let mut spec = SigstoreStackSpec::default();
        spec.pod.node_selector = Some([("pool".into(), "sigstore".into())].into());
        spec.pod.tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        }]);
        spec.fulcio.pod.node_selector = Some([("pool".into(), "ca".into())].into());
        spec.trillian.database.pod.resources = Some(memory("1Gi"));
        let mut inputs = inputs(&spec);
        inputs.images = Images::for_spec(
            &spec,
            "op",
            &ImageSource {
                registry: None,
                pull_secrets: vec!["regcred".into()],
            },
        );
        let objects = objects(&inputs).unwrap();
        let mut seen = 0;
        for o in &objects {
            let Object::Deployment(d) = o else { continue };
            seen += 1;
            let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let name = o.name();
            assert_eq!(
                pod.image_pull_secrets.as_ref().unwrap()[0].name,
                "regcred",
                "{name}"
            );
            assert_eq!(pod.tolerations, spec.pod.tolerations, "{name}");
            let pool = &pod.node_selector.as_ref().unwrap()["pool"];
            assert_eq!(
                pool,
                if name == "demo-fulcio" {
                    "ca"
                } else {
                    "sigstore"
                }
            );
            let resources = pod.containers[0].resources.as_ref().unwrap();
            if name == "demo-trillian-db" {
                assert_eq!(resources, &memory("1Gi"));
            } else {
                // The defaults: requests, no limits.
                assert!(
                    resources.limits.is_none() && resources.requests.is_some(),
                    "{name}"
                );
            }
        }
        assert_eq!(seen, 9);
    }

    #[test]
    fn the_tile_logs_get_their_own_settings() {
        let mut spec = SigstoreStackSpec::default();
        spec.rekor.generation = crate::api::RekorGeneration::V2;
        spec.ctlog.backend = crate::api::CtLogBackend::Tesseract;
        spec.pod.node_selector = Some([("pool".into(), "sigstore".into())].into());
        spec.rekor.v2.pod.resources = Some(memory("512Mi"));
        spec.ctlog.tesseract.pod.node_selector = Some([("pool".into(), "ct".into())].into());
        let objects = objects(&inputs(&spec)).unwrap();
        let pod_of = |name: &str| {
            objects
                .iter()
                .find_map(|o| match o {
                    Object::Deployment(d) if o.name() == name => d.spec.clone(),
                    _ => None,
                })
                .and_then(|s| s.template.spec)
                .unwrap_or_else(|| panic!("Deployment {name}"))
        };
        let rekor = pod_of("demo-rekor-v2");
        assert_eq!(rekor.containers[0].resources, Some(memory("512Mi")));
        assert_eq!(rekor.node_selector.as_ref().unwrap()["pool"], "sigstore");
        let ct = pod_of("demo-tesseract");
        assert_eq!(ct.node_selector.as_ref().unwrap()["pool"], "ct");
    }

    #[test]
    fn nothing_set_leaves_pods_as_built() {
        let spec = SigstoreStackSpec::default();
        let objects = objects(&inputs(&spec)).unwrap();
        for o in &objects {
            let Object::Deployment(d) = o else { continue };
            let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            assert!(pod.image_pull_secrets.is_none() && pod.node_selector.is_none());
            assert!(pod.affinity.is_none() && pod.priority_class_name.is_none());
        }
    }
}
