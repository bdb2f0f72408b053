//! Least privilege, asked of the real API server's authorizer
//! (SubjectAccessReview, as `kubectl auth can-i --as` does): a stack's
//! stage ServiceAccount reaches its own stage outputs and nothing else:
//! no other Secret or ConfigMap of the namespace, nothing of another stack,
//! no list, watch, create or delete, no Pods, Jobs or RBAC.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use sigstore_operator::{api::SigstoreStackSpec, build::Placeholder, stage::Stage};

use super::*;

/// Whether `stack`'s stage account (of namespace `ns`) may `verb`
/// `resource` `name` in namespace `at`.
#[allow(clippy::too_many_arguments)]
async fn can_in(
    client: &Client,
    ns: &str,
    at: &str,
    stack: &str,
    verb: &str,
    resource: &str,
    name: Option<&str>,
) -> bool {
    let account = format!("{stack}-stages");
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(at.to_owned()),
                verb: Some(verb.to_owned()),
                resource: Some(resource.to_owned()),
                group: Some(group(resource).to_owned()),
                name: name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

fn group(resource: &str) -> &'static str {
    match resource {
        "jobs" => "batch",
        "roles" | "rolebindings" => "rbac.authorization.k8s.io",
        _ => "",
    }
}

/// [`can_in`] its own namespace.
async fn can(
    client: &Client,
    ns: &str,
    stack: &str,
    verb: &str,
    resource: &str,
    name: Option<&str>,
) -> bool {
    can_in(client, ns, ns, stack, verb, resource, name).await
}

/// The stage outputs a stack of `spec` writes, by the stage table.
fn outputs(stack: &str, spec: &SigstoreStackSpec) -> (Vec<String>, Vec<String>) {
    let (mut secrets, mut config_maps) = (Vec::new(), Vec::new());
    for stage in Stage::enabled_in(spec) {
        for output in stage.outputs(stack) {
            match output {
                Placeholder::Secret(n) => secrets.push(n),
                Placeholder::ConfigMap(n) => config_maps.push(n),
            }
        }
    }
    (secrets, config_maps)
}

#[tokio::test]
async fn a_stage_account_reaches_only_its_own_stack_s_outputs() {
    let env = Env::start("least", &["one", "two"], &trillian().address).await;
    let ns = env.ns.name.clone();
    // A user's own Secret and ConfigMap beside the stacks.
    let user_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "team-credentials"}, "stringData": {"token": "t0ps3cret"}}))
    .unwrap();
    env.api::<Secret>()
        .create(&PostParams::default(), &user_secret)
        .await
        .unwrap();
    env.create_stack("one", json!({})).await;
    env.create_stack("two", json!({})).await;
    env.kubelet.allow_all();
    env.condition_until("one", READY, "True").await;
    env.condition_until("two", READY, "True").await;

    let mut spec = SigstoreStackSpec::default();
    spec.self_check.enabled = false;
    let mut checked = 0;
    for stack in ["one", "two"] {
        let (secrets, config_maps) = outputs(stack, &spec);
        assert!(!secrets.is_empty() && !config_maps.is_empty());
        // Every Secret and ConfigMap in the namespace: its own outputs
        // only, read and written; nothing else at all.
        let all_secrets = env
            .api::<Secret>()
            .list(&ListParams::default())
            .await
            .unwrap();
        for s in all_secrets.items {
            let name = s.name_any();
            let own = secrets.contains(&name);
            for verb in ["get", "patch", "update"] {
                assert_eq!(
                    can(&env.client, &ns, stack, verb, "secrets", Some(&name)).await,
                    own,
                    "{stack}-stages {verb} Secret {name}"
                );
                checked += 1;
            }
        }
        let trust_root = format!("{stack}-trust-root");
        let all_cms = env
            .api::<ConfigMap>()
            .list(&ListParams::default())
            .await
            .unwrap();
        for c in all_cms.items {
            let name = c.name_any();
            let own = config_maps.contains(&name);
            // createtuf reads the trust root the operator writes.
            let readable = own || name == trust_root;
            assert_eq!(
                can(&env.client, &ns, stack, "get", "configmaps", Some(&name)).await,
                readable,
                "{stack}-stages get ConfigMap {name}"
            );
            assert_eq!(
                can(&env.client, &ns, stack, "patch", "configmaps", Some(&name)).await,
                own,
                "{stack}-stages patch ConfigMap {name}"
            );
            checked += 2;
        }
        // Nothing by kind, nothing new, nothing deleted, nothing else.
        let own_secret = secrets[0].as_str();
        for (verb, resource, name) in [
            ("list", "secrets", None),
            ("watch", "secrets", None),
            ("create", "secrets", None),
            ("delete", "secrets", Some(own_secret)),
            ("list", "configmaps", None),
            ("create", "configmaps", None),
            ("create", "pods", None),
            ("create", "jobs", None),
            ("update", "roles", Some(&format!("{stack}-stages") as &str)),
            ("create", "rolebindings", None),
            ("create", "serviceaccounts", None),
        ] {
            assert!(
                !can(&env.client, &ns, stack, verb, resource, name).await,
                "{stack}-stages may {verb} {resource} {name:?}"
            );
            checked += 1;
        }
        // Nor its own outputs' names in another namespace.
        let review_elsewhere = can_in(
            &env.client,
            &ns,
            "default",
            stack,
            "get",
            "secrets",
            Some(own_secret),
        )
        .await;
        assert!(!review_elsewhere, "{stack}-stages reaches into default");
        checked += 1;
    }
    eprintln!(
        "least privilege: {checked} access reviews of the two stacks' stage accounts, each as expected"
    );
}
