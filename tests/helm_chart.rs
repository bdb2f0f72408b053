//! The Helm chart in config/helm/sigstore-operator: it lints cleanly, it
//! runs the published image of its version unless told otherwise, its
//! schema refuses bad values naming the field, and what it renders is
//! accepted by a real API server (etcd + kube-apiserver built by `make tools`,
//! as is helm itself). `tests/helm_upgrade.rs` upgrades a running release.

mod support;

use kube::api::DynamicObject;
use serde_json::Value;
use support::{
    TestNamespace,
    helm::{IMAGE, assert_ok, chart, full_values, helm},
};

/// The repository releases publish the operator's image to: hack/release.env's
/// IMAGE_REPOSITORY, the chart's default `image.repository`.
fn published_repository() -> String {
    let env = std::fs::read_to_string(support::repo_root().join("hack/release.env"))
        .expect("read hack/release.env");
    env.lines()
        .find_map(|l| l.strip_prefix("IMAGE_REPOSITORY="))
        .expect("IMAGE_REPOSITORY in hack/release.env")
        .to_owned()
}

/// The image of the operator's Deployment as `helm template` renders it
/// with `extra`, checked to equal the stage Jobs' OPERATOR_IMAGE.
fn rendered_image(extra: &[&str]) -> String {
    let rendered = render("image", "sigstore-operator", extra);
    let deployment = find(&rendered, "Deployment").expect("Deployment");
    let (container, operator_image) = container_env(deployment, "OPERATOR_IMAGE");
    let image = container["image"].as_str().expect("an image").to_owned();
    assert_eq!(operator_image.as_deref(), Some(image.as_str()), "{extra:?}");
    image
}

/// `helm template --include-crds` for `release` in `namespace`, parsed with
/// the same reader the kustomize manifests' test uses.
fn render(release: &str, namespace: &str, extra: &[&str]) -> Vec<DynamicObject> {
    let chart = chart();
    let mut args = vec![
        "template",
        release,
        chart.as_str(),
        "--namespace",
        namespace,
    ];
    args.push("--include-crds");
    args.extend(extra);
    let out = helm(&args);
    assert_ok(&out, "helm template");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rendered.yaml"), &out.stdout).expect("write");
    support::manifests::read_dir(dir.path())
}

fn kind_of(o: &DynamicObject) -> &str {
    o.types.as_ref().map_or("", |t| t.kind.as_str())
}

fn find<'a>(objects: &'a [DynamicObject], kind: &str) -> Option<&'a DynamicObject> {
    objects.iter().find(|o| kind_of(o) == kind)
}

/// The operator container and the value of its env var `name`.
fn container_env(deployment: &DynamicObject, name: &str) -> (Value, Option<String>) {
    let c = deployment.data["spec"]["template"]["spec"]["containers"][0].clone();
    let value = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from));
    (c, value)
}

/// Renders with `extra`, applies everything server-side (the CRD first) and
/// checks what every rendering must hold. Returns the applied objects.
async fn render_and_apply(test: &str, extra: &[&str], image: &str) -> Vec<DynamicObject> {
    let client = support::control_plane().client().await;
    let ns = TestNamespace::new(&client, test).await;
    let rendered = render(test, &ns.name, extra);
    // The chart's CRD is the operator's, kept on uninstall.
    let crd = find(&rendered, "CustomResourceDefinition").expect("the chart renders the CRD");
    let theirs: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionSpec =
        serde_json::from_value(crd.data["spec"].clone()).expect("a CRD spec");
    assert!(
        theirs == sigstore_operator::crd::crd().spec,
        "the chart's CRD differs from `sigstore-operator crd`"
    );
    assert_eq!(
        crd.metadata.annotations.as_ref().unwrap()["helm.sh/resource-policy"],
        "keep"
    );

    // The chart's ClusterRole grants exactly what the kustomize one does.
    let kustomize = support::manifests::read_dir(&support::repo_root().join("config/rbac"));
    let rules = |objects: &[DynamicObject]| {
        find(objects, "ClusterRole").expect("ClusterRole").data["rules"].clone()
    };
    assert!(
        rules(&rendered) == rules(&kustomize),
        "the chart's ClusterRole rules differ from config/rbac/role.yaml"
    );
    // Its leader-election Role too, but for the Lease's name (the release's).
    let lease_rules = |objects: &[DynamicObject]| {
        let mut rules = find(objects, "Role").expect("leader-election Role").data["rules"].clone();
        for r in rules.as_array_mut().into_iter().flatten() {
            if let Some(names) = r.get_mut("resourceNames") {
                *names = serde_json::json!(["<lease>"]);
            }
        }
        rules
    };
    assert!(
        lease_rules(&rendered) == lease_rules(&kustomize),
        "the chart's leader-election Role differs from config/rbac/leader_election_role.yaml"
    );

    let applied = support::manifests::apply(&client, &rendered, &ns.name).await;
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
    ] {
        assert!(find(&applied, kind).is_some(), "{kind} applied");
    }

    // The stage Jobs run OPERATOR_IMAGE: it must be the Deployment's image.
    let deployment = find(&applied, "Deployment").expect("Deployment");
    let (container, operator_image) = container_env(deployment, "OPERATOR_IMAGE");
    assert_eq!(container["image"], image);
    assert_eq!(operator_image.as_deref(), Some(image));
    applied
}

#[test]
fn chart_lints_strictly() {
    let chart = chart();
    let full = full_values();
    assert_ok(&helm(&["lint", "--strict", &chart]), "helm lint");
    assert_ok(
        &helm(&["lint", "--strict", &chart, "-f", &full]),
        "helm lint with every value set",
    );
}

#[tokio::test]
async fn default_values_are_accepted_by_the_api_server() {
    // The published image of this version (nothing runs it here).
    let image = format!("{}:{}", published_repository(), env!("CARGO_PKG_VERSION"));
    let applied = render_and_apply("helm-defaults", &[], &image).await;
    // All namespaces, no metrics Service.
    let deployment = find(&applied, "Deployment").expect("Deployment");
    let (container, _) = container_env(deployment, "OPERATOR_IMAGE");
    let args = container["args"].to_string();
    assert!(!args.contains("--watch-namespace"), "{args}");
    assert!(args.contains("--log-format=json"), "{args}");
    // One replica, electing itself leader on a Lease named after the
    // release; no PodDisruptionBudget for one.
    assert_eq!(deployment.data["spec"]["replicas"], 1);
    assert!(args.contains("--leader-elect"), "{args}");
    assert!(
        args.contains("--leader-election-id=helm-defaults-sigstore-operator"),
        "{args}"
    );
    assert!(container["env"].to_string().contains("POD_NAMESPACE"));
    assert!(find(&applied, "PodDisruptionBudget").is_none());
    assert!(find(&applied, "Service").is_none());
    let env = container["env"].to_string();
    assert!(
        !env.contains("IMAGE_REGISTRY") && !env.contains("IMAGE_PULL_SECRETS"),
        "{env}"
    );
}

#[test]
fn two_replicas_without_leader_election_are_refused() {
    let out = helm(&[
        "template",
        "two",
        &chart(),
        "--set",
        IMAGE,
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=false",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two replicas without an election");
    assert!(stderr.contains("leaderElection.enabled"), "{stderr}");
}

/// With no image values the chart runs the image released with it: the
/// published repository at the chart's appVersion (the crate's version).
#[test]
fn the_default_image_is_the_published_one_of_this_version() {
    let repository = published_repository();
    assert!(
        repository.starts_with("ghcr.io/") && repository.ends_with("/sigstore-operator"),
        "{repository}"
    );
    assert_eq!(
        rendered_image(&[]),
        format!("{repository}:{}", env!("CARGO_PKG_VERSION"))
    );
}

/// An image named on install wins over the published default, in part or
/// whole; an empty repository is refused by the schema.
#[test]
fn an_explicit_image_wins_over_the_default() {
    let published = published_repository();
    let version = env!("CARGO_PKG_VERSION");
    let mine = "registry.example.com/me/sigstore-operator";
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for (set, want) in [
        (
            format!("image.repository={mine}"),
            format!("{mine}:{version}"),
        ),
        (
            format!("image.repository={mine},image.tag=dev"),
            format!("{mine}:dev"),
        ),
        ("image.tag=dev".to_owned(), format!("{published}:dev")),
        (
            format!("image.repository={mine},image.tag=dev,image.digest={digest}"),
            format!("{mine}@{digest}"),
        ),
        (IMAGE.to_owned(), format!("sigstore-operator:{version}")),
    ] {
        assert_eq!(rendered_image(&["--set", &set]), want, "--set {set}");
    }
}

#[tokio::test]
async fn every_value_set_is_accepted_by_the_api_server() {
    let full = full_values();
    let image = "registry.example.com:5000/sigstore/sigstore-operator@sha256:\
                 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let applied = render_and_apply("helm-full", &["-f", &full], image).await;
    let deployment = find(&applied, "Deployment").expect("Deployment");
    let (container, rust_log) = container_env(deployment, "RUST_LOG");
    assert_eq!(rust_log.as_deref(), Some("info,sigstore_operator=debug"));
    let (_, registry) = container_env(deployment, "IMAGE_REGISTRY");
    assert_eq!(
        registry.as_deref(),
        Some("registry.example.com:5000/sigstore-mirror")
    );
    let (_, secrets) = container_env(deployment, "IMAGE_PULL_SECRETS");
    assert_eq!(
        secrets.as_deref(),
        Some("registry-credentials,mirror-credentials")
    );
    let args = container["args"].to_string();
    for flag in [
        "--watch-namespace=sigstore",
        "--log-format=text",
        "--concurrency=8",
        "--stage-timeout=10m",
        "--stage-backoff-limit=5",
        "--stage-retry-base=1m30s",
    ] {
        assert!(args.contains(flag), "{flag} in {args}");
    }
    // Two replicas: leader election on, rolled one at a time, one kept up.
    assert_eq!(deployment.data["spec"]["replicas"], 2);
    assert_eq!(deployment.data["spec"]["strategy"]["type"], "RollingUpdate");
    for flag in [
        "--leader-elect",
        "--leader-election-id=sigstore-operator-full",
        "--leader-election-lease-duration=30s",
        "--leader-election-renew-deadline=20s",
        "--leader-election-retry-period=5s",
    ] {
        assert!(args.contains(flag), "{flag} in {args}");
    }
    let pdb = find(&applied, "PodDisruptionBudget").expect("a PodDisruptionBudget for 2");
    assert_eq!(pdb.data["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb.data["spec"]["selector"]["matchLabels"],
        deployment.data["spec"]["selector"]["matchLabels"]
    );
    let role = find(&applied, "Role").expect("Role");
    assert_eq!(
        role.data["rules"][1]["resourceNames"][0],
        "sigstore-operator-full"
    );
    let service = find(&applied, "Service").expect("metrics Service");
    assert_eq!(service.data["spec"]["ports"][0]["port"], 9090);
    assert_eq!(service.data["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn values_the_schema_refuses_fail_naming_the_field() {
    let chart = chart();
    for (set, field) in [
        ("logFormat=yaml", "/logFormat"),
        ("bogus=1", "'bogus'"),
        ("watchNamespaces={a,b}", "/watchNamespaces"),
        ("image.digest=latest", "/image/digest"),
        ("stage.timeout=soon", "/stage/timeout"),
        ("metrics.service.extra=1", "'extra'"),
        (
            "stacks.imageRegistry=https://mirror.example",
            "/stacks/imageRegistry",
        ),
        (
            "stacks.imagePullSecrets[0].name=Reg_Cred",
            "/stacks/imagePullSecrets/0/name",
        ),
        ("crds.install=maybe", "/crds/install"),
        ("image.repository=", "/image/repository"),
        ("replicaCount=0", "/replicaCount"),
        (
            "leaderElection.leaseDuration=long",
            "/leaderElection/leaseDuration",
        ),
    ] {
        let out = helm(&["template", "bad", &chart, "--set", IMAGE, "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(
            stderr.contains(field),
            "{set}: {field} not named in {stderr}"
        );
    }
}
