//! A stack whose logs lost their data says so and heals: on the node
//! agent, with the operator in a Pod from `config/default` (so it reaches
//! Trillian as it does in a cluster). The embedded database on an emptyDir
//! loses its Pod: the stack leaves Ready with `TreeMissing`, gets new
//! trees with the same keys, and signs again, and what was signed before
//! still verifies. With the database on a claim, the same loss (its trees
//! dropped) is reported and left alone until the documented annotation
//! asks for a new tree.

mod support;

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use sigstore_operator::api::SigstoreStack;
use support::{
    clients::{self, Exported},
    eventually,
    stacks::{self, condition, events, poke, ready, sign},
};

const WAIT: Duration = Duration::from_secs(240);

/// The tree IDs and replaced trees a log's ConfigMap records.
async fn trees(client: &Client, ns: &str, stack: &str, log: &str) -> BTreeMap<String, String> {
    stacks::config_map(client, ns, &format!("{stack}-{log}-config")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_trees_are_reported_and_healed_only_where_the_data_was_ephemeral() {
    let (cp, client, ns, _agent) =
        support::node::cluster("loss", &["sigstore-operator-system"]).await;
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let up = |name: &str, spec: &str, install: bool| {
        let out = support::logs_dir().join(format!("{}-{name}", ns.name));
        let mut vars = vec![
            ("STACK_NAME", name.to_owned()),
            ("STACK_NAMESPACE", ns.name.clone()),
            ("STACK_SPEC", spec.to_owned()),
        ];
        if !install {
            vars.push(("INSTALL", "none".into()));
        }
        async move {
            let (ok, log) = clients::stack_up(&cp.kubeconfig, &out, &vars).await;
            assert!(ok, "hack/stack-up.sh failed:\n{log}");
            (Exported::read(&out), out)
        }
    };

    // The default: the embedded database on an emptyDir.
    let (env, work) = up("eph", "{}", true).await;
    let (cosign, old_blob, old_bundle) = sign(&env, &work, "signed before the loss\n").await;
    let rekor_before = trees(&client, &ns.name, "eph", "rekor").await["treeID"].clone();
    let ct_before = trees(&client, &ns.name, "eph", "ctlog").await["treeID"].clone();
    let trust_before = std::fs::read_to_string(env.path("TRUSTED_ROOT")).unwrap();

    // What a node drain or an eviction does: a new database Pod, empty.
    let db = ListParams::default()
        .labels("app.kubernetes.io/name=trillian-db,app.kubernetes.io/instance=eph");
    let old_db = pods.list(&db).await.unwrap().items.remove(0);
    pods.delete(&old_db.metadata.name.unwrap(), &Default::default())
        .await
        .unwrap();
    // Each log's loss is reported when its probe sees it; the logs are
    // probed one pass at a time, so wait for Rekor's.
    let missing = eventually("a TreeMissing Event for Rekor's tree", WAIT, || async {
        let e = events(&client, &ns.name, "eph", "TreeMissing").await;
        e.iter().any(|m| m.contains(&rekor_before)).then_some(e)
    })
    .await;
    assert!(
        missing
            .iter()
            .any(|m| m.contains(&rekor_before) && m.contains("emptyDir")),
        "the Event names the lost tree and why: {missing:?}"
    );
    let (rekor_after, ct_after) =
        eventually("new trees recorded and the stack Ready", WAIT, || async {
            if !ready(&stacks, "eph").await {
                return None;
            }
            let r = trees(&client, &ns.name, "eph", "rekor").await;
            let c = trees(&client, &ns.name, "eph", "ctlog").await;
            let (r_id, c_id) = (r.get("treeID")?.clone(), c.get("treeID")?.clone());
            (r_id != rekor_before && c_id != ct_before).then(|| {
                assert_eq!(r["replacedTreeIDs"], rekor_before);
                assert_eq!(c["replacedTreeIDs"], ct_before);
                (r_id, c_id)
            })
        })
        .await;
    // Each log's Event names its old and new tree (published just after
    // the status that says so).
    for (what, old, new) in [
        ("Rekor", &rekor_before, &rekor_after),
        ("the CT log", &ct_before, &ct_after),
    ] {
        eventually(
            &format!("a TreeReplaced Event for {what}"),
            WAIT,
            || async {
                let e = events(&client, &ns.name, "eph", "TreeReplaced").await;
                e.iter()
                    .any(|m| m.contains(new.as_str()) && m.contains(old.as_str()))
                    .then_some(())
            },
        )
        .await;
    }
    let stack = stacks.get("eph").await.unwrap().status.unwrap();
    assert_eq!(
        stack.rekor.unwrap().tree_id.map(|i| i.to_string()),
        Some(rekor_after)
    );
    assert_eq!(
        stack.ctlog.unwrap().tree_id.map(|i| i.to_string()),
        Some(ct_after)
    );

    // The keys did not change: the trust root is the same, what was signed
    // before still verifies with it, and signing works again.
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .get("eph-trust-root")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["trusted_root.json"], trust_before);
    let (ok, log) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &old_blob, &old_bundle)
        .await;
    assert!(ok, "a bundle signed before the loss verifies:\n{log}");
    let (_, blob, bundle) = sign(&env, &work, "signed after the new trees\n").await;
    let (ok, log) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &blob, &bundle)
        .await;
    assert!(ok, "signing works again:\n{log}");

    // On a claim the trees should have lasted: the same loss (the
    // database's trees dropped) is reported, and nothing replaces them.
    let (_env, _) = up(
        "kept",
        "trillian:\n  database:\n    storage:\n      size: 1Gi\n",
        false,
    )
    .await;
    let kept_tree = trees(&client, &ns.name, "kept", "rekor").await["treeID"].clone();
    let kept_ct = trees(&client, &ns.name, "kept", "ctlog").await["treeID"].clone();
    let secret = Api::<Secret>::namespaced(client.clone(), &ns.name)
        .get("kept-trillian-db")
        .await
        .unwrap()
        .data
        .unwrap();
    let field = |k: &str| String::from_utf8(secret[k].0.clone()).unwrap();
    let db_ip = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &ns.name)
        .get("kept-trillian-db")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let (ok, log) = support::node::run(
        Path::new("/usr/bin/mariadb"),
        &[
            "--no-defaults".into(),
            format!("--host={db_ip}"),
            "--port=3306".into(),
            format!("--user={}", field("username")),
            "trillian".into(),
            "-e".into(),
            "DELETE FROM Trees".into(),
        ],
        &[("MYSQL_PWD", field("password"))],
    )
    .await;
    assert!(ok, "dropping the trees:\n{log}");
    poke(&stacks, "kept").await;
    let (_, reason, message) = eventually("RekorAvailable TreeMissing", WAIT, || async {
        condition(&stacks, "kept", "RekorAvailable")
            .await
            .filter(|(_, r, _)| r == "TreeMissing")
    })
    .await;
    assert_eq!(reason, "TreeMissing");
    assert!(
        message.contains("PersistentVolumeClaim kept-trillian-db")
            && message.contains(&format!(
                "scaffolding.sigstore.dev/replace-tree={kept_tree}"
            )),
        "the message says what to check and how to start anew: {message}"
    );
    assert!(
        !ready(&stacks, "kept").await,
        "a stack with a lost tree is not Ready"
    );
    // Left alone: the recorded tree stays, and no tree is made.
    for _ in 0..3 {
        poke(&stacks, "kept").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        trees(&client, &ns.name, "kept", "rekor").await["treeID"],
        kept_tree
    );
    assert!(
        events(&client, &ns.name, "kept", "TreeReplaced")
            .await
            .is_empty(),
        "no tree was replaced"
    );

    // The documented way to start a new log on purpose.
    let (ok, log) = clients::kubectl(
        &cp.kubeconfig,
        &ns.name,
        &[
            "annotate",
            "sst/kept",
            &format!("scaffolding.sigstore.dev/replace-tree={kept_tree},{kept_ct}"),
        ],
    )
    .await;
    assert!(ok, "kubectl annotate:\n{log}");
    eventually("a new Rekor tree and the stack Ready", WAIT, || async {
        let r = trees(&client, &ns.name, "kept", "rekor").await;
        (r.get("treeID").is_some_and(|id| *id != kept_tree) && ready(&stacks, "kept").await)
            .then_some(())
    })
    .await;

    // Rekor that cannot reach Trillian answers, but not with its log.
    let scale = |replicas: i32| {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, &ns)
                .patch(
                    "kept-trillian-log-server",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
                )
                .await
                .unwrap();
        }
    };
    scale(0).await;
    // Not poked in the loop: a stack changed more often than the
    // controller's debounce (200 ms) is never reconciled.
    let (_, _, message) = eventually("RekorAvailable LogNotServing", WAIT, || async {
        condition(&stacks, "kept", "RekorAvailable")
            .await
            .filter(|(_, r, _)| r == "LogNotServing")
    })
    .await;
    assert!(message.contains("HTTP 5"), "Rekor's own answer: {message}");
    scale(1).await;
    eventually("the stack Ready again", WAIT, || async {
        ready(&stacks, "kept").await.then_some(())
    })
    .await;
}
