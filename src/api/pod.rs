//! Where a stack's Pods run and what they ask for: the same settings for
//! every component, so a shared cluster's quotas, taints and node pools can
//! be met without patching what the operator owns.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Scheduling and resources of one component's Pods. A field set here wins
/// over the same field of `spec.pod`; unset fields fall back to it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Requests and limits of the component's container, replacing the
    /// defaults (requests only, no limits; see the README's table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the Pods must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the Pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(t, (!has(t.operator) || t.operator in ['Exists', 'Equal']) && (!has(t.effect) || t.effect in ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute']))").message("each toleration's operator must be Exists or Equal, and its effect NoSchedule, PreferNoSchedule or NoExecute"))]
    #[schemars(length(max = 64))]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node and Pod affinity of the Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("must be the name of a PriorityClass"))]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

impl PodSettings {
    /// Whether nothing is set (so the field is left out of the spec).
    pub fn is_unset(&self) -> bool {
        self == &Self::default()
    }

    /// `self` with every unset field taken from `stack`.
    pub fn or(&self, stack: &PodSettings) -> PodSettings {
        PodSettings {
            resources: self.resources.clone().or_else(|| stack.resources.clone()),
            node_selector: self
                .node_selector
                .clone()
                .or_else(|| stack.node_selector.clone()),
            tolerations: self
                .tolerations
                .clone()
                .or_else(|| stack.tolerations.clone()),
            affinity: self.affinity.clone().or_else(|| stack.affinity.clone()),
            priority_class_name: self
                .priority_class_name
                .clone()
                .or_else(|| stack.priority_class_name.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_field_wins_and_unset_ones_fall_back() {
        let stack = PodSettings {
            node_selector: Some([("pool".into(), "sigstore".into())].into()),
            priority_class_name: Some("low".into()),
            ..PodSettings::default()
        };
        let component = PodSettings {
            priority_class_name: Some("high".into()),
            ..PodSettings::default()
        };
        let merged = component.or(&stack);
        assert_eq!(merged.priority_class_name.as_deref(), Some("high"));
        assert_eq!(merged.node_selector, stack.node_selector);
        assert_eq!(merged.tolerations, None);
    }
}
