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
