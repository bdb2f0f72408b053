//! The GitHub Action's logic (`hack/stack-up.sh`), everything but making
//! the cluster: on the real control plane with the node agent, it installs
//! the operator from `config/default` (the operator then runs in-cluster,
//! in a Pod), brings a stack up, and exports what tests need; cosign signs
//! and verifies with nothing but those variables.

mod support;

use std::{collections::BTreeMap, path::Path};

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::Value;
use support::{
    CLUSTER_ISSUER,
    cosign::{Cosign, Services},
    servers::built,
};

async fn run(program: &Path, args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    support::node::run(program, &args, env).await
}

/// A JWT's claims.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_up_script_installs_brings_up_and_exports() {
    let (cp, client, ns, _agent) =
        support::node::cluster("action", &["sigstore-operator-system"]).await;
    let out_dir = support::logs_dir().join(format!("{}-out", ns.name));
    let (ok, log) = support::clients::stack_up(
        &cp.kubeconfig,
        &out_dir,
        &[
            ("STACK_NAME", "ci".into()),
            ("STACK_NAMESPACE", ns.name.clone()),
            // The Action's operator-image input: the operator and its
            // stage Jobs run it (the node agent maps the repository).
            ("OPERATOR_IMAGE", "sigstore-operator:pinned".into()),
            // A YAML spec, as an Action input would carry it.
            (
                "STACK_SPEC",
                "tuf:\n  expiry:\n    timestamp: 2h\n    snapshot: 4h\n".into(),
            ),
        ],
    )
    .await;
    assert!(ok, "hack/stack-up.sh failed:\n{log}");
    assert!(!log.contains("OIDC_TOKEN=ey"), "the token is not printed");

    // The operator ran in its own Pod, from config/default.
    let operator = Api::<Deployment>::namespaced(client.clone(), "sigstore-operator-system")
        .get("sigstore-operator")
        .await
        .unwrap();
    assert_eq!(operator.status.clone().unwrap().available_replicas, Some(1));
    let container = &operator.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("sigstore-operator:pinned"));
    let stage_image = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "OPERATOR_IMAGE")
        .and_then(|e| e.value.clone());
    assert_eq!(stage_image.as_deref(), Some("sigstore-operator:pinned"));
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), &ns.name)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(!jobs.items.is_empty(), "the stages ran as Jobs");
    for job in &jobs.items {
        let image = job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone();
        assert_eq!(
            image.as_deref(),
            Some("sigstore-operator:pinned"),
            "{:?}",
            job.metadata.name
        );
    }

    let env: BTreeMap<String, String> = std::fs::read_to_string(out_dir.join("env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for key in [
        "FULCIO_URL",
        "REKOR_URL",
        "CTLOG_URL",
        "TSA_URL",
        "TUF_MIRROR",
        "TUF_ROOT",
        "TUF_ROOT_JSON",
        "TRUSTED_ROOT",
        "SIGNING_CONFIG",
        "TRUST_CONFIG",
        "ISSUER_URL",
        "OIDC_TOKEN",
        "OIDC_TOKEN_FILE",
    ] {
        assert!(
            env.get(key).is_some_and(|v| !v.is_empty()),
            "{key}: {env:?}"
        );
    }
    assert_eq!(env["ISSUER_URL"], CLUSTER_ISSUER);
    assert!(env["CTLOG_URL"].ends_with("/sigstorescaffolding"));
    let token = claims(&env["OIDC_TOKEN"]);
    assert_eq!(token["iss"], CLUSTER_ISSUER);
    assert_eq!(token["aud"][0], "sigstore");
    let root: Value =
        serde_json::from_str(&std::fs::read_to_string(&env["TUF_ROOT_JSON"]).unwrap()).unwrap();
    assert_eq!(root["signed"]["_type"], "root");
    // cosign's own TUF_ROOT is its cache directory: the one exported holds root.json.
    assert!(
        Path::new(&env["TUF_ROOT"]).is_dir(),
        "TUF_ROOT is a directory"
    );
    assert!(Path::new(&env["TUF_ROOT_JSON"]).starts_with(&env["TUF_ROOT"]));
    let ct = reqwest::get(format!("{}/ct/v1/get-roots", env["CTLOG_URL"]))
        .await
        .unwrap();
    assert!(ct.status().is_success(), "the CT log answers at CTLOG_URL");
    let helper = std::fs::read_to_string(&env["OIDC_TOKEN_COMMAND"]).unwrap();
    assert!(
        helper.contains("--context"),
        "the helper pins the context: {helper}"
    );
    let (ok, fresh) = run(Path::new(&env["OIDC_TOKEN_COMMAND"]), &[], &[]).await;
    assert!(ok, "{fresh}");
    assert_eq!(claims(fresh.trim())["aud"][0], "sigstore");

    // cosign with nothing but the exported variables.
    let cosign = Cosign::with_token_file(
        out_dir.clone(),
        Path::new(&env["OIDC_TOKEN_FILE"]),
        env["SIGNER_IDENTITY"].clone(),
        env["ISSUER_URL"].clone(),
    );
    let blob = out_dir.join("blob.txt");
    std::fs::write(&blob, "signed in CI\n").unwrap();
    let trusted_root = Path::new(&env["TRUSTED_ROOT"]);
    let services = Services {
        fulcio: env["FULCIO_URL"].clone(),
        rekor: env["REKOR_URL"].clone(),
        timestamp: env["TSA_URL"].clone(),
    };
    let bundle = cosign.sign(trusted_root, &services, &blob).await;
    let (ok, log) = cosign.verify(Some(trusted_root), &blob, &bundle).await;
    assert!(ok, "cosign verify-blob failed:\n{log}");

    // A later workflow step: every exported variable in cosign's
    // environment, as GITHUB_ENV puts it there. cosign bootstraps from the
    // stack's TUF and verifies with nothing else.
    let step_env: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .chain([("HOME", out_dir.display().to_string())])
        .collect();
    let (ok, log) = run(
        &built("cosign"),
        &[
            "initialize",
            &format!("--mirror={}", env["TUF_MIRROR"]),
            &format!("--root={}", env["TUF_ROOT_JSON"]),
        ],
        &step_env,
    )
    .await;
    assert!(
        ok,
        "cosign initialize with the exported variables failed:\n{log}"
    );
    let (ok, log) = run(
        &built("cosign"),
        &[
            "verify-blob",
            &format!("--bundle={}", bundle.display()),
            &format!("--certificate-identity={}", env["SIGNER_IDENTITY"]),
            &format!("--certificate-oidc-issuer={}", env["ISSUER_URL"]),
            &blob.display().to_string(),
        ],
        &step_env,
    )
    .await;
    assert!(
        ok,
        "cosign verify-blob through the stack's TUF failed:\n{log}"
    );

    // cosign 3 in a later step, as the README shows it: the exported
    // signing config and trusted root, no service URL flags.
    let bundle3 = out_dir.join("blob3.sigstore.json");
    let (ok, log) = run(
        &built("cosign3"),
        &[
            "sign-blob",
            "--yes",
            &format!("--signing-config={}", env["SIGNING_CONFIG"]),
            &format!("--trusted-root={}", env["TRUSTED_ROOT"]),
            &format!("--identity-token={}", env["OIDC_TOKEN_FILE"]),
            &format!("--bundle={}", bundle3.display()),
            &blob.display().to_string(),
        ],
        &step_env,
    )
    .await;
    assert!(ok, "cosign 3 sign-blob with SIGNING_CONFIG failed:\n{log}");
    let (ok, log) = run(
        &built("cosign3"),
        &[
            "verify-blob",
            &format!("--trusted-root={}", env["TRUSTED_ROOT"]),
            &format!("--bundle={}", bundle3.display()),
            &format!("--certificate-identity={}", env["SIGNER_IDENTITY"]),
            &format!("--certificate-oidc-issuer={}", env["ISSUER_URL"]),
            &blob.display().to_string(),
        ],
        &step_env,
    )
    .await;
    assert!(ok, "cosign 3 verify-blob with TRUSTED_ROOT failed:\n{log}");

    // The port-forward path (the Action's) cannot run on the node agent,
    // which serves no kubelet streaming API: that makes it a test of its
    // check, which stops a forward that never came up and says why,
    // instead of exporting a dead URL.
    let forward_dir = support::logs_dir().join(format!("{}-forward", ns.name));
    let (ok, log) = support::clients::stack_up(
        &cp.kubeconfig,
        &forward_dir,
        &[
            ("STACK_NAME", "ci".into()),
            ("STACK_NAMESPACE", ns.name.clone()),
            ("INSTALL", "none".into()),
            ("EXPOSE", "port-forward".into()),
        ],
    )
    .await;
    assert!(
        !ok && log.contains("port-forward svc/ci-fulcio did not come up"),
        "{log}"
    );
    let pids = std::fs::read_to_string(forward_dir.join("port-forward.pids")).unwrap();
    for pid in pids.split_whitespace() {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "the failed forward {pid} was stopped");
    }
}

/// The Action's inputs are documented and its steps run the tested script.
#[test]
fn action_runs_the_tested_script() {
    let text = std::fs::read_to_string(support::repo_root().join("action.yml")).unwrap();
    let action: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(action["runs"]["using"], "composite");
    let inputs = action["inputs"].as_mapping().unwrap();
    for (name, input) in inputs {
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name:?}"
        );
    }
    for name in [
        "operator-image",
        "kubernetes-version",
        "create-cluster",
        "stack-spec",
    ] {
        assert!(inputs.contains_key(name), "input {name}");
    }
    assert!(text.contains("hack/stack-up.sh"));

    // The image is chosen by hack/operator-image.sh (its cases are in
    // tests/release.rs) from the input and the ref the action is used at,
    // read in the step's env: inside run: a composite action's
    // github.action_ref is empty. The stack runs what it chose.
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let step = |id: &str| {
        steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("step {id}"))
    };
    let image = step("image");
    for (var, value) in [
        ("REQUESTED_IMAGE", "${{ inputs.operator-image }}"),
        ("ACTION_REF", "${{ github.action_ref }}"),
        ("ACTION_REPOSITORY", "${{ github.action_repository }}"),
    ] {
        assert_eq!(image["env"][var].as_str(), Some(value), "{var}");
    }
    let run = image["run"].as_str().unwrap();
    assert!(
        run.contains(
            r#"hack/operator-image.sh" "$REQUESTED_IMAGE" "$ACTION_REF" "$ACTION_REPOSITORY""#
        ),
        "{run}"
    );
    assert!(!run.contains("${{"), "no expressions inside run:");
    assert_eq!(
        step("up")["env"]["OPERATOR_IMAGE"].as_str(),
        Some("${{ steps.image.outputs.image }}")
    );
}
