//! Reading a stack as a user does: its conditions, its Events, its
//! ConfigMaps; nudging it; signing against it with what stack-up exported.

use std::{collections::BTreeMap, path::Path};

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use sigstore_operator::api::SigstoreStack;

use super::{
    clients::Exported,
    cosign::{Cosign, Services},
};

/// A ConfigMap's data, empty when it does not exist.
pub async fn config_map(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|c| c.data)
        .unwrap_or_default()
}

/// The stack's Events of `reason`, their messages.
pub async fn events(client: &Client, ns: &str, stack: &str, reason: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={stack}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

/// A condition's `(status, reason, message)`.
pub async fn condition(
    stacks: &Api<SigstoreStack>,
    stack: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let s = stacks.get(stack).await.ok()?.status?;
    s.conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason, c.message))
}

/// Whether the stack says Ready.
pub async fn ready(stacks: &Api<SigstoreStack>, stack: &str) -> bool {
    condition(stacks, stack, "Ready")
        .await
        .is_some_and(|(s, _, _)| s == "True")
}

/// Whether the stack says Ready about its current spec (the status has
/// seen the latest generation).
pub async fn ready_for_current_spec(stacks: &Api<SigstoreStack>, stack: &str) -> bool {
    let Ok(s) = stacks.get(stack).await else {
        return false;
    };
    let generation = s.metadata.generation;
    s.status.is_some_and(|st| {
        st.observed_generation == generation
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Patches `stack`'s spec with `patch` (a merge, as `kubectl patch --type
/// merge` does) and waits up to `wait` until it says Ready about it.
pub async fn switch(
    stacks: &Api<SigstoreStack>,
    stack: &str,
    patch: serde_json::Value,
    wait: std::time::Duration,
) {
    stacks
        .patch(
            stack,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": patch })),
        )
        .await
        .unwrap();
    super::eventually(&format!("{stack} Ready after {patch}"), wait, || async {
        ready_for_current_spec(stacks, stack).await.then_some(())
    })
    .await;
}

/// A reconcile now, by changing an annotation nothing reads.
pub async fn poke(stacks: &Api<SigstoreStack>, stack: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let patch = json!({"metadata": {"annotations": {"test/poke": now.to_string()}}});
    stacks
        .patch(stack, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Signs a blob of `text` with cosign 2 and the exported variables (the
/// TSA too): the signer, the blob and the bundle.
pub async fn sign(
    env: &Exported,
    work: &Path,
    text: &str,
) -> (Cosign, std::path::PathBuf, std::path::PathBuf) {
    let cosign = Cosign::with_token_file(
        work.to_owned(),
        env.path("OIDC_TOKEN_FILE"),
        env.get("SIGNER_IDENTITY").to_owned(),
        env.get("ISSUER_URL").to_owned(),
    );
    let blob = work.join(super::blob_name(text));
    std::fs::write(&blob, text).unwrap();
    let services = Services {
        fulcio: env.get("FULCIO_URL").to_owned(),
        rekor: env.get("REKOR_URL").to_owned(),
        timestamp: env.get("TSA_URL").to_owned(),
    };
    let bundle = cosign
        .sign(env.path("TRUSTED_ROOT"), &services, &blob)
        .await;
    (cosign, blob, bundle)
}

/// The self-check's published proof, as a user reads it: status.selfCheck
/// names the ConfigMap keys; each bundle and the artifact are written
/// under `dir`. One [`Signed`] per Rekor log, with the duration it took.
pub async fn self_check_proof(
    client: &Client,
    ns: &str,
    stack: &str,
    dir: &Path,
) -> (Vec<super::clients::Signed>, String) {
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), ns);
    let status = stacks.get(stack).await.unwrap().status.unwrap();
    let proof = status
        .self_check
        .unwrap_or_else(|| panic!("{stack}: status.selfCheck"));
    let artifact = proof.artifact.expect("status.selfCheck.artifact");
    let data = config_map(client, ns, &artifact.name).await;
    std::fs::create_dir_all(dir).unwrap();
    let blob = dir.join("selfcheck-artifact.txt");
    std::fs::write(&blob, &data[&artifact.key]).unwrap();
    assert!(!proof.bundles.is_empty(), "{stack}: no self-check bundle");
    let signed = proof
        .bundles
        .iter()
        .map(|b| {
            let bundle = dir.join(format!("selfcheck-{}", b.key));
            std::fs::write(&bundle, &data[&b.key]).unwrap();
            super::clients::Signed {
                by: super::clients::Kind::SelfCheck,
                blob: blob.clone(),
                bundle,
                identity: proof.identity.clone().expect("status.selfCheck.identity"),
            }
        })
        .collect();
    (signed, proof.duration.unwrap_or_default())
}

/// The README's commands that verify the self-check's proof ("Verify it
/// with any client"), run as written against `stack` (the README's `demo`)
/// in namespace `ns` (the kubeconfig's current one), with cosign 3 as
/// `cosign` and `trusted_root.json` in the working directory `dir`.
pub async fn verify_self_check_as_readme(
    kubeconfig: &Path,
    ns: &str,
    stack: &str,
    trusted_root: &Path,
    dir: &Path,
) -> (bool, String) {
    let readme = std::fs::read_to_string(super::repo_root().join("README.md")).unwrap();
    let after = readme
        .split_once("Verify it with any client:")
        .expect("the README's self-check section")
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("its sh block")
        .0
        .replace("demo", stack);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(trusted_root, dir.join("trusted_root.json")).unwrap();
    for (name, tool) in [("cosign", "cosign3"), ("kubectl", "kubectl")] {
        let link = dir.join("bin").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(super::servers::built(tool), &link).unwrap();
    }
    let config = dir.join("kubeconfig");
    std::fs::copy(kubeconfig, &config).unwrap();
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let set = tokio::process::Command::new("kubectl")
        .args([
            "config",
            "set-context",
            "--current",
            &format!("--namespace={ns}"),
        ])
        .env("KUBECONFIG", &config)
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let out = tokio::process::Command::new("sh")
        .args(["-euc", &block])
        .current_dir(dir)
        .env("KUBECONFIG", &config)
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    let log = format!(
        "$ {block}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

/// A node-agent cluster with `stack` brought up by `hack/stack-up.sh` with
/// spec `{}`, as a user does (the operator in a Pod from `config/default`):
/// the cluster, stack-up's output directory and the variables it ran with.
pub async fn up_in_cluster(
    test: &str,
    stack: &str,
) -> (
    super::node::Cluster,
    std::path::PathBuf,
    Vec<(&'static str, String)>,
) {
    let cluster = super::node::cluster(test, &["sigstore-operator-system"]).await;
    let ns = &cluster.2.name;
    let out = super::logs_dir().join(format!("{ns}-{stack}"));
    let vars = vec![
        ("STACK_NAME", stack.to_owned()),
        ("STACK_NAMESPACE", ns.clone()),
        ("STACK_SPEC", "{}".to_owned()),
    ];
    let (ok, log) = super::clients::stack_up(&cluster.0.kubeconfig, &out, &vars).await;
    assert!(ok, "hack/stack-up.sh failed:\n{log}");
    (cluster, out, vars)
}
