//! The pure build step: a stack's spec (and the little the cluster told us)
//! in, the Kubernetes objects it should own out. No I/O, so every object
//! is unit-tested without an API server.

pub mod component;
pub mod ctlog;
pub mod fulcio;
pub mod images;
pub mod meta;
pub mod pods;
pub mod rbac;
pub mod rekor;
pub mod rekor_v2;
pub mod tesseract;
pub mod tiles;
pub mod trillian;
pub mod tsa;
pub mod tuf;
pub mod workload;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount},
    rbac::v1::{Role, RoleBinding},
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use crate::api::SigstoreStackSpec;
use component::Component;
pub use images::Images;
pub use meta::Owner;

/// What the build step reads.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The stack.
    pub owner: Owner,
    /// Its (valid) spec.
    pub spec: &'a SigstoreStackSpec,
    /// Images after the spec's overrides.
    pub images: Images,
    /// The cluster's service-account token issuer, when known.
    pub cluster_issuer: Option<&'a str>,
    /// The Fulcio root keys (`fulcio-0`, ...) the CT log's Secret holds, so
    /// ct_server mounts every root its config names.
    pub ctlog_roots: Vec<String>,
    /// The Fulcio root keys TesseraCT's Secret holds: a new one restarts it.
    pub tesseract_roots: Vec<String>,
    /// `trusted_root.json`, `signing_config.json` and `trust_config.json`
    /// to publish, once the stages that feed them are done.
    pub trust_root: Option<crate::trust_root::Published>,
    /// The tree each log that replaced a lost tree runs on now.
    pub healed_trees: BTreeMap<crate::names::Log, i64>,
    /// Every tree the stack's logs lost, in order.
    pub lost_trees: Vec<i64>,
    /// What the enabled stages write: all their Role may reach.
    pub stage_outputs: Vec<Placeholder>,
}

/// An object the operator applies (server-side) whenever its content
/// changes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
// A handful are built per pass and applied at once; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// A ConfigMap whose whole content the operator decides.
    ConfigMap(ConfigMap),
    /// A Service.
    Service(Service),
    /// A Deployment.
    Deployment(Deployment),
    /// A ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// A Role.
    Role(Role),
    /// A RoleBinding.
    RoleBinding(RoleBinding),
}

impl Object {
    /// The kind, as Kubernetes spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConfigMap(_) => "ConfigMap",
            Self::Service(_) => "Service",
            Self::Deployment(_) => "Deployment",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::Role(_) => "Role",
            Self::RoleBinding(_) => "RoleBinding",
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        let meta = match self {
            Self::ConfigMap(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::ServiceAccount(o) => &o.metadata,
            Self::Role(o) => &o.metadata,
            Self::RoleBinding(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

/// Where an output of a stage lives. The operator creates it empty and
/// owned by the stack, so the stage's Role needs no `create` and the
/// output is deleted with the stack.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placeholder {
    /// An empty ConfigMap.
    ConfigMap(String),
    /// An empty Secret.
    Secret(String),
}

/// Every object `inputs` calls for, in dependency order.
pub fn objects(inputs: &Inputs<'_>) -> Result<Vec<Object>, serde_yaml::Error> {
    let spec = inputs.spec;
    let mut out = Vec::new();
    out.extend(rbac::objects(&inputs.owner, spec, &inputs.stage_outputs));
    for component in Component::ALL.into_iter().filter(|c| c.wanted(spec)) {
        out.extend(match component {
            Component::Trillian => trillian::objects(inputs),
            Component::Rekor(component::RekorBackend::Trillian) => rekor::objects(inputs),
            Component::Rekor(component::RekorBackend::Tiles) => rekor_v2::objects(inputs),
            Component::Ctlog(component::CtBackend::Trillian) => ctlog::objects(inputs),
            Component::Ctlog(component::CtBackend::Tesseract) => tesseract::objects(inputs),
            Component::Fulcio => fulcio::objects(inputs)?,
            Component::Tsa => tsa::objects(inputs),
            Component::Tuf => tuf::objects(inputs),
            // A stage, no workload.
            Component::SelfCheck => Vec::new(),
        });
    }
    if let Some(published) = &inputs.trust_root {
        let owner = &inputs.owner;
        out.push(Object::ConfigMap(ConfigMap {
            metadata: owner.meta(
                owner.name_of(crate::names::TRUST_ROOT),
                crate::names::TRUST_ROOT,
            ),
            data: Some(published.data()),
            ..ConfigMap::default()
        }));
    }
    pods::finish_all(&mut out, spec, &inputs.images.pull_secrets);
    Ok(out)
}

/// The PersistentVolumeClaims `spec` wants the stack to own: the embedded
/// database's and each tile-based log's, where storage is given. The
/// operator creates them once and never deletes them (they hold the logs).
pub fn claims(owner: &Owner, spec: &SigstoreStackSpec) -> Vec<PersistentVolumeClaim> {
    let mut out: Vec<PersistentVolumeClaim> =
        trillian::database_claim(owner, spec).into_iter().collect();
    for component in Component::ALL.into_iter().filter(|c| c.wanted(spec)) {
        if let Some(Some(storage)) = tiles::storage(component, spec) {
            out.push(workload::claim(owner, component.label(), storage));
        }
    }
    out
}

/// A short, stable hash of `value`'s JSON form: what the operator records
/// on an object to know it need not apply it again.
pub fn content_hash<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::SigstoreStackSpec;

    pub fn owner() -> Owner {
        Owner {
            name: "demo".into(),
            namespace: "ns1".into(),
            uid: "uid-1".into(),
        }
    }

    pub fn inputs(spec: &SigstoreStackSpec) -> Inputs<'_> {
        Inputs {
            owner: owner(),
            spec,
            images: Images::for_spec(spec, "sigstore-operator:dev", &Default::default()),
            cluster_issuer: Some("https://kubernetes.default.svc.cluster.local"),
            ctlog_roots: vec!["fulcio-0".into()],
            tesseract_roots: vec!["fulcio-0".into()],
            trust_root: None,
            healed_trees: BTreeMap::new(),
            lost_trees: Vec::new(),
            stage_outputs: crate::stage::Stage::all_outputs(spec, "demo"),
        }
    }

    #[test]
    fn default_stack_has_every_workload() {
        let spec = SigstoreStackSpec::default();
        let objects = objects(&inputs(&spec)).unwrap();
        let deployments: Vec<&str> = objects
            .iter()
            .filter(|o| o.kind() == "Deployment")
            .map(Object::name)
            .collect();
        assert_eq!(
            deployments,
            [
                "demo-trillian-db",
                "demo-trillian-log-server",
                "demo-trillian-log-signer",
                "demo-rekor-redis",
                "demo-rekor",
                "demo-ctlog",
                "demo-fulcio",
                "demo-tsa",
                "demo-tuf"
            ]
        );
        for o in &objects {
            assert!(o.name().starts_with("demo-"), "{}", o.name());
        }
    }

    #[test]
    fn disabled_components_are_left_out() {
        let mut spec = SigstoreStackSpec::default();
        spec.rekor.enabled = false;
        spec.ctlog.enabled = false;
        let objects = objects(&inputs(&spec)).unwrap();
        let names: Vec<&str> = objects.iter().map(Object::name).collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains("rekor") || n.contains("ctlog") || n.contains("trillian")),
            "{names:?}"
        );
        assert!(names.contains(&"demo-fulcio"));
    }

    #[test]
    fn hash_follows_content() {
        assert_eq!(content_hash(&"a"), content_hash(&"a"));
        assert_ne!(content_hash(&"a"), content_hash(&"b"));
        assert_eq!(content_hash(&"a").len(), 16);
    }
}
