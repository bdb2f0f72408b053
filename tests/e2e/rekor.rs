//! Rekor signs its checkpoints under the host of its `baseUrl` in the trust
//! root, also after its Pod is replaced (a new Pod, a new hostname).

use super::*;

/// Checks the origin (the `baseUrl` host) before and after Rekor's Pod is deleted; returns the
/// figure line.
pub async fn origin_survives_a_new_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
    origin: &str,
    env: &Exported,
) -> String {
    assert_eq!(origin, format!("{name}-rekor.{ns}.svc"));
    let first = checkpoint_origin(env.get("REKOR_URL")).await;
    assert!(
        first.starts_with(&format!("{origin} - ")),
        "Rekor's checkpoint origin {first:?} is not {origin}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let rekor_pods = ListParams::default().labels(&format!(
        "app.kubernetes.io/name=rekor,app.kubernetes.io/instance={name}"
    ));
    let old = pods.list(&rekor_pods).await.unwrap().items.remove(0);
    let old_name = old.metadata.name.clone().unwrap();
    pods.delete(&old_name, &Default::default()).await.unwrap();
    let new_name = support::eventually("a new Rekor Pod Ready", Duration::from_secs(120), || {
        let pods = pods.clone();
        let rekor_pods = rekor_pods.clone();
        let old_name = old_name.clone();
        async move {
            let list = pods.list(&rekor_pods).await.ok()?;
            list.items.into_iter().find_map(|p| {
                let n = p.metadata.name.clone()?;
                let ready = p
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (n != old_name && ready).then_some(n)
            })
        }
    })
    .await;
    let again = checkpoint_origin(env.get("REKOR_URL")).await;
    assert_eq!(
        again, first,
        "the checkpoint origin survives a new Rekor Pod ({old_name} → {new_name})"
    );
    format!(
        "  Rekor checkpoint origin {first:?}, the same after its Pod {old_name} was replaced by {new_name}\n"
    )
}

/// Rekor's current checkpoint (`signedTreeHead`). Waits for Rekor to
/// answer: after a Pod change the Service's endpoints follow a moment
/// later, as in a cluster.
pub async fn signed_tree_head(rekor: &str) -> String {
    support::eventually("Rekor's log info", Duration::from_secs(60), || async {
        let log: Value = reqwest::get(format!("{rekor}/api/v1/log"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        log["signedTreeHead"].as_str().map(str::to_owned)
    })
    .await
}

/// The first line of Rekor's current checkpoint: `<origin> - <tree ID>`.
async fn checkpoint_origin(rekor: &str) -> String {
    let note = signed_tree_head(rekor).await;
    note.lines().next().unwrap_or_default().to_owned()
}
