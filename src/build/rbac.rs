//! The identity stage Jobs run as: a ServiceAccount and a Role that reach
//! only the stack's stage outputs (and the user's CA Secret, read-only).

use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};

use super::{Object, Owner, Placeholder, component::Component};
use crate::{api::SigstoreStackSpec, names::STAGES};

/// The stage ServiceAccount, and a Role and RoleBinding that reach
/// `outputs` (the enabled stages' outputs).
pub fn objects(owner: &Owner, spec: &SigstoreStackSpec, outputs: &[Placeholder]) -> Vec<Object> {
    let name = owner.name_of(STAGES);
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for output in outputs {
        match output {
            Placeholder::ConfigMap(n) => config_maps.push(n.clone()),
            Placeholder::Secret(n) => secrets.push(n.clone()),
        }
    }
    let rule = |resource: &str, verbs: &[&str], names: Vec<String>| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|v| (*v).into()).collect(),
        resource_names: Some(names),
        ..PolicyRule::default()
    };
    // Outputs exist (the operator makes them empty) before a stage runs,
    // so no `create`, which RBAC cannot limit by name.
    let mut rules = Vec::new();
    if !config_maps.is_empty() {
        rules.push(rule("configmaps", &["get", "patch"], config_maps));
    }
    if !secrets.is_empty() {
        rules.push(rule("secrets", &["get", "update", "patch"], secrets));
    }
    if Component::Tuf.wanted(spec) || Component::SelfCheck.wanted(spec) {
        // createtuf and the self-check read the trust root the operator
        // publishes.
        rules.push(rule(
            "configmaps",
            &["get"],
            vec![owner.name_of(crate::names::TRUST_ROOT)],
        ));
    }
    if spec.fulcio.enabled
        && let Some(user) = &spec.fulcio.ca.existing_secret
    {
        rules.push(rule("secrets", &["get"], vec![user.clone()]));
    }
    vec![
        Object::ServiceAccount(ServiceAccount {
            metadata: owner.meta(name.clone(), STAGES),
            ..ServiceAccount::default()
        }),
        Object::Role(Role {
            metadata: owner.meta(name.clone(), STAGES),
            rules: Some(rules),
        }),
        Object::RoleBinding(RoleBinding {
            metadata: owner.meta(name.clone(), STAGES),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name,
                namespace: Some(owner.namespace.clone()),
                ..Subject::default()
            }]),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::owner;

    #[test]
    fn role_names_every_output_and_nothing_else() {
        let mut spec = SigstoreStackSpec::default();
        spec.fulcio.ca.existing_secret = Some("my-ca".into());
        let outputs = crate::build::tests::inputs(&spec).stage_outputs;
        let objects = objects(&owner(), &spec, &outputs);
        let Object::Role(role) = &objects[1] else {
            panic!("expected the Role")
        };
        let rules = role.rules.as_ref().unwrap();
        for rule in rules {
            assert!(
                !rule
                    .verbs
                    .iter()
                    .any(|v| v == "create" || v == "list" || v == "delete")
            );
            assert!(!rule.resource_names.as_ref().unwrap().is_empty());
        }
        assert_eq!(
            rules[0].resource_names.as_ref().unwrap(),
            &[
                "demo-rekor-config",
                "demo-ctlog-config",
                "demo-tuf-repository",
                "demo-selfcheck"
            ]
        );
        // createtuf and the self-check read the published trust root, and
        // nothing else.
        assert_eq!(rules[2].verbs, ["get"]);
        assert_eq!(
            rules[2].resource_names.as_ref().unwrap(),
            &["demo-trust-root"]
        );
        assert_eq!(rules[3].verbs, ["get"]);
        assert_eq!(rules[3].resource_names.as_ref().unwrap(), &["my-ca"]);
        let secrets = rules[1].resource_names.as_ref().unwrap();
        assert!(secrets.contains(&"demo-fulcio-ca".to_owned()));
        assert!(secrets.contains(&"demo-tuf-keys".to_owned()));
        assert!(!secrets.contains(&"demo-trillian-db".to_owned()));
    }
}
