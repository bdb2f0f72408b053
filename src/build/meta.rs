//! Metadata every object of a stack carries: names, labels, the owner
//! reference, and the restricted security context of its Pods.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};

/// Label naming the stage a Job (and its Pods) runs.
pub const STAGE_LABEL: &str = "scaffolding.sigstore.dev/stage";
/// Annotation holding the hash of what the operator last applied, so an
/// unchanged object is never written again.
pub const HASH_ANNOTATION: &str = "scaffolding.sigstore.dev/applied-hash";
/// On a healed log's Pod template: the tree it runs on, so a new tree
/// restarts it (a first bring-up never sets it, so it never rolls).
pub const TREE_ID_ANNOTATION: &str = "scaffolding.sigstore.dev/tree-id";
/// On Trillian's log server Pod template: the trees the stack lost, so a
/// loss restarts it (and its init container re-applies the schema).
pub const LOST_TREES_ANNOTATION: &str = "scaffolding.sigstore.dev/lost-trees";
/// Annotation holding a stage Job's attempt number.
pub const ATTEMPT_ANNOTATION: &str = "scaffolding.sigstore.dev/attempt";
/// The `managed-by` value; also the label selector of everything watched.
pub const MANAGED_BY: &str = "sigstore-operator";
/// The label naming the stack an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// What the operator's watches select: everything it labelled.
pub fn managed_selector() -> String {
    format!("app.kubernetes.io/managed-by={MANAGED_BY}")
}

/// The stack an object belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The stack's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its UID.
    pub uid: String,
}

impl Owner {
    /// `<stack>-<part>`.
    pub fn name_of(&self, part: &str) -> String {
        crate::names::part(&self.name, part)
    }

    /// The in-cluster DNS name of the stack's Service `part`.
    pub fn host_of(&self, part: &str) -> String {
        format!("{}.{}.svc", self.name_of(part), self.namespace)
    }

    /// The controller reference to the stack: deleting the stack deletes
    /// the object.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
            kind: "SigstoreStack".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Metadata of the stack's object `name` for `component`.
    pub fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.name, component)),
            owner_references: Some(vec![self.reference()]),
            ..ObjectMeta::default()
        }
    }
}

/// The `app.kubernetes.io` labels of a stack's `component`.
pub fn labels(stack: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector(stack, component);
    labels.insert("app.kubernetes.io/component".into(), component.into());
    labels.insert("app.kubernetes.io/part-of".into(), "sigstore".into());
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    labels
}

/// The labels that select a component's Pods; stable for the life of a
/// Deployment, since a selector cannot change.
pub fn selector(stack: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), component.into()),
        (INSTANCE_LABEL.into(), stack.into()),
    ])
}

/// The label selector of everything a stack owns, for lists.
pub fn owned_selector(stack: &str) -> String {
    format!("{INSTANCE_LABEL}={stack},{}", managed_selector())
}

/// A Pod security context meeting the `restricted` Pod Security Standard,
/// running as `user`.
pub fn pod_security(user: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(user),
        run_as_group: Some(user),
        fs_group: Some(user),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// A container security context meeting the `restricted` standard.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The user distroless (`nonroot`) images run as.
pub const NONROOT_USER: i64 = 65532;
/// The `mysql` user of the MariaDB image and the `redis` user of Redis's.
pub const DB_USER: i64 = 999;
