//! The self-check's fault cases, on one stack as `hack/stack-up.sh` brings
//! it up (the operator in a Pod from `config/default`, on the node agent,
//! with the real servers). Each fault is made as it happens to users: the
//! CT log's public key Secret replaced, Rekor's Pod unable to pull its
//! image, and Fulcio unable to read the cluster's OIDC discovery. Each
//! time `SigningVerified` turns False with the reason naming the step, the
//! stack is not Ready, and once mended it comes back to Ready by itself
//! with a new round trip. (The TSA turned off under Rekor v2 is refused by
//! the API server: `tests/tiles.rs`.)

mod support;

use std::time::Duration;

use k8s_openapi::{
    ByteString,
    api::{core::v1::Pod, core::v1::Secret, rbac::v1::ClusterRoleBinding},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use sigstore_operator::{
    api::{Phase, SigstoreStack},
    keys::{Algorithm, PrivateKey},
    names,
};
use support::{
    clients::Exported,
    eventually,
    stacks::{self, condition, ready, sign},
};

const STACK: &str = "chk";
/// Long enough for a failed check's Pod retries and the stage backoff.
const WAIT: Duration = Duration::from_secs(300);
const CONDITION: &str = "SigningVerified";

/// When the last passing check ran (status.selfCheck.checkedAt).
async fn checked_at(stacks: &Api<SigstoreStack>) -> Timestamp {
    let status = stacks.get(STACK).await.unwrap().status.unwrap();
    status
        .self_check
        .and_then(|s| s.checked_at)
        .expect("status.selfCheck.checkedAt")
        .parse()
        .expect("checkedAt is a time")
}

/// Waits until `SigningVerified` says `reason` while the stack is not
/// Ready (and Degraded when `degraded`); its message.
async fn refused(stacks: &Api<SigstoreStack>, what: &str, reason: &str, degraded: bool) -> String {
    let started = std::time::Instant::now();
    let message = eventually(&format!("{what}: {CONDITION} {reason}"), WAIT, || async {
        let (status, r, message) = condition(stacks, STACK, CONDITION).await?;
        (status == "False" && r == reason).then_some(message)
    })
    .await;
    eventually(&format!("{what}: not Ready"), WAIT, || async {
        let status = stacks.get(STACK).await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let phase_ok = !degraded || status.phase == Some(Phase::Degraded);
        (!ready && phase_ok).then_some(())
    })
    .await;
    eprintln!(
        "{what}: {CONDITION}=False {reason} after {:.1}s: {message}",
        started.elapsed().as_secs_f64()
    );
    message
}

/// Waits until the stack is Ready again after a round trip newer than
/// `before`; how long it took.
async fn recovered(stacks: &Api<SigstoreStack>, what: &str, before: Timestamp) -> Duration {
    let started = std::time::Instant::now();
    eventually(&format!("{what}: Ready again"), WAIT, || async {
        let status = stacks.get(STACK).await.ok()?.status?;
        let holds = |t: &str| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True")
        };
        let at: Timestamp = status
            .self_check
            .as_ref()?
            .checked_at
            .as_ref()?
            .parse()
            .ok()?;
        (holds("Ready") && holds(CONDITION) && at > before).then_some(())
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "{what}: mended, Ready with a new round trip after {:.1}s",
        took.as_secs_f64()
    );
    took
}

async fn patch_spec(stacks: &Api<SigstoreStack>, spec: serde_json::Value) {
    stacks
        .patch(
            STACK,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// Deletes the stack's Pods of `part`, as a node drain or a crash does.
async fn delete_pods(client: &Client, ns: &str, part: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let prefix = format!("{}-", names::part(STACK, part));
    for pod in pods.list(&ListParams::default()).await.unwrap() {
        let name = pod.name_any();
        let rest = name.strip_prefix(&prefix).unwrap_or_default();
        // <part>-<replicaset hash>-<suffix>: not another part's Pods.
        if rest.split('-').count() == 2 {
            pods.delete(&name, &DeleteParams::default()).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_that_cannot_sign_is_not_ready_says_why_and_recovers_once_mended() {
    let ((_, client, ns, _agent), out, _) = stacks::up_in_cluster("selfcheck", STACK).await;
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let (status, reason, _) = condition(&stacks, STACK, CONDITION).await.unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Verified"));
    let mut figures = Vec::new();

    // 1. The CT log's public key Secret holds another key: the trust root
    // publishes it, and the SCT Fulcio embeds no longer verifies.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let public = names::ctlog_public(STACK);
    let original = secrets.get(&public).await.unwrap().data.unwrap()["public"].clone();
    let other = PrivateKey::generate(Algorithm::EcdsaP256)
        .unwrap()
        .public_pem();
    let set = |value: ByteString| json!({"data": {"public": value}});
    let before = checked_at(&stacks).await;
    secrets
        .patch(
            &public,
            &PatchParams::default(),
            &Patch::Merge(&set(ByteString(other.into_bytes()))),
        )
        .await
        .unwrap();
    let message = refused(&stacks, "another CT key", "SCTInvalid", true).await;
    assert!(message.contains("SCT"), "{message}");
    secrets
        .patch(
            &public,
            &PatchParams::default(),
            &Patch::Merge(&set(original)),
        )
        .await
        .unwrap();
    let took = recovered(&stacks, "another CT key", before).await;
    figures.push(("the CT log's key restored", took));

    // 2. Rekor's Pod cannot start (its image cannot be pulled): the check
    // waits for it, naming it.
    let before = checked_at(&stacks).await;
    patch_spec(
        &stacks,
        json!({"rekor": {"image": "registry.invalid/sigstore/rekor-server:missing"}}),
    )
    .await;
    let message = refused(&stacks, "Rekor's image", "ComponentUnavailable", false).await;
    assert!(message.contains("RekorAvailable"), "{message}");
    // Rekor's condition says why, from its Pod.
    let rekor = eventually("RekorAvailable names the Pod's problem", WAIT, || async {
        let (status, _, message) = condition(&stacks, STACK, "RekorAvailable").await?;
        (status == "False" && message.contains("ErrImagePull")).then_some(message)
    })
    .await;
    assert!(
        rekor.contains("registry.invalid/sigstore/rekor-server:missing"),
        "{rekor}"
    );
    eprintln!("Rekor's image: RekorAvailable=False: {rekor}");
    patch_spec(&stacks, json!({"rekor": {"image": null}})).await;
    let took = recovered(&stacks, "Rekor's image", before).await;
    figures.push(("Rekor's image restored", took));

    // 3. Fulcio cannot read the cluster's OIDC discovery (the binding that
    // lets service accounts read it is gone) when its Pod starts again:
    // Fulcio refuses the token, and says so.
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let discovery = "system:service-account-issuer-discovery";
    let binding = bindings.get(discovery).await.unwrap();
    let before = checked_at(&stacks).await;
    bindings
        .delete(discovery, &DeleteParams::default())
        .await
        .unwrap();
    delete_pods(&client, &ns.name, names::FULCIO).await;
    let message = refused(&stacks, "no OIDC discovery", "FulcioRefused", true).await;
    assert!(message.starts_with("Fulcio at http://"), "{message}");
    assert!(
        message.contains("identity token"),
        "Fulcio's own words: {message}"
    );
    assert!(message.contains(discovery), "where to look: {message}");
    let mut again = binding.clone();
    again.metadata = kube::api::ObjectMeta {
        name: binding.metadata.name.clone(),
        labels: binding.metadata.labels.clone(),
        annotations: binding.metadata.annotations.clone(),
        ..Default::default()
    };
    bindings
        .create(&PostParams::default(), &again)
        .await
        .unwrap();
    let took = recovered(&stacks, "no OIDC discovery", before).await;
    figures.push(("Fulcio's discovery allowed again", took));

    // After all that, users sign as before, and the stack is Ready.
    assert!(ready(&stacks, STACK).await);
    let env = Exported::read(&out);
    let (cosign, blob, bundle) = sign(&env, &out, "signed after every fault\n").await;
    let (ok, log) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &blob, &bundle)
        .await;
    assert!(ok, "signing works after the faults:\n{log}");
    for (what, took) in figures {
        eprintln!(
            "self-check recovery: {what} → Ready in {:.1}s",
            took.as_secs_f64()
        );
    }
}
