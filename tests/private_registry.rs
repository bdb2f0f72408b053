//! A shared staging cluster as its users meet it: the node reaches only a
//! registry mirror that wants credentials, and its pool is tainted and
//! labelled for Sigstore. The node agent refuses, as a real cluster does,
//! to schedule a Pod that does not tolerate the taint and to pull an image
//! from anywhere but the mirror or without a pull secret for it. With the
//! operator's `--image-registry` and `--image-pull-secret` and the stack's
//! `pod` settings, every Pod of the stack (workloads, TUF, each stage Job)
//! runs there and the stack becomes Ready.

mod support;

use std::time::Duration;

use k8s_openapi::api::{
    core::v1::{Pod, Secret, Taint},
    scheduling::v1::PriorityClass,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};
use sigstore_operator::{
    api::SigstoreStack,
    build::meta::STAGE_LABEL,
    conditions::{READY, find},
};
use support::{
    eventually,
    node::{Images, cluster_with},
    placement::{Mirror, NodeShape},
};

const MIRROR: &str = "registry.mirror.test:5000/sigstore";
const PRIORITY_CLASS: &str = "sigstore-staging";

fn toleration() -> Value {
    json!({"key": "dedicated", "operator": "Equal", "value": "sigstore", "effect": "NoSchedule"})
}

/// A one-container Pod of `image`, tolerating the pool's taint or not.
fn pod(name: &str, image: &str, tolerate: bool) -> Pod {
    let tolerations = if tolerate {
        json!([toleration()])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image, "args": ["--help"]}],
                 "tolerations": tolerations, "restartPolicy": "Never"},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_only_tainted_pool_runs_every_pod_of_a_stack() {
    let mirror = Mirror {
        prefix: MIRROR.into(),
        credentials: ("ci".into(), "pull-only-token".into()),
    };
    let shape = NodeShape {
        labels: [("pool".to_owned(), "sigstore".to_owned())].into(),
        taints: vec![Taint {
            key: "dedicated".into(),
            value: Some("sigstore".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        }],
    };
    // The mirror holds what the README has a user copy into it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigstore-operator"))
        .args(["images", "--image-registry", MIRROR])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let copies: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (from, to) = l.split_once(' ').expect(l);
            (from.to_owned(), to.to_owned())
        })
        .collect();
    assert_eq!(copies.len(), sigstore_operator::build::images::PINNED.len());
    let images = Images::local().behind(mirror.clone(), &copies);
    let cp = support::cluster_control_plane();
    let (cp, client, ns, _agent) = cluster_with(cp, "mirror", &[], images, shape).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);

    // The gates hold: no toleration, no scheduling; no pull secret, no pull.
    let operator_image = format!("{MIRROR}/sigstore-operator:e2e");
    // The service-account controller makes `default` shortly after the
    // namespace; a Pod created before it is refused.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &ns.name);
    eventually(
        "the namespace's default ServiceAccount",
        Duration::from_secs(30),
        || async { accounts.get_opt("default").await.ok().flatten().map(|_| ()) },
    )
    .await;
    let pp = PostParams::default();
    pods.create(&pp, &pod("untolerated", &operator_image, false))
        .await
        .unwrap();
    pods.create(&pp, &pod("no-secret", &operator_image, true))
        .await
        .unwrap();
    eventually(
        "the untolerated Pod reported unschedulable",
        Duration::from_secs(30),
        || async {
            let p = pods.get("untolerated").await.ok()?;
            let c = p
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")?;
            (c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref()?.contains("untolerated taint"))
            .then_some(())
        },
    )
    .await;
    eventually(
        "the Pod without a pull secret stuck pulling",
        Duration::from_secs(30),
        || async {
            let p = pods.get("no-secret").await.ok()?;
            let w = p
                .status?
                .container_statuses?
                .first()?
                .state
                .clone()?
                .waiting?;
            (w.reason.as_deref() == Some("ErrImagePull")
                && w.message.as_deref()?.contains("401 Unauthorized"))
            .then_some(())
        },
    )
    .await;
    for name in ["untolerated", "no-secret"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }

    // What a user of that cluster sets up: the pull Secret in the stack's
    // namespace, and a PriorityClass for Sigstore.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets
        .create(&pp, &mirror.pull_secret("regcred"))
        .await
        .unwrap();
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let class: PriorityClass =
        serde_json::from_value(json!({"metadata": {"name": PRIORITY_CLASS}, "value": 1000}))
            .unwrap();
    let _ = classes.create(&pp, &class).await;

    let _operator = support::start_for_namespace_with(
        cp,
        &client,
        &ns.name,
        &[
            "--image",
            &operator_image,
            "--image-registry",
            MIRROR,
            "--image-pull-secret",
            "regcred",
        ],
    )
    .await;
    let fulcio_resources = json!({"requests": {"cpu": "20m", "memory": "64Mi"},
                                  "limits": {"memory": "512Mi"}});
    let stack: SigstoreStack = serde_json::from_value(json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
        "metadata": {"name": "staging"},
        "spec": {
            "pod": {"nodeSelector": {"pool": "sigstore"}, "tolerations": [toleration()],
                    "priorityClassName": PRIORITY_CLASS},
            "fulcio": {"pod": {"resources": fulcio_resources}},
            "stages": {"pod": {"resources": {"limits": {"memory": "256Mi"}}}},
        },
    }))
    .unwrap();
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    stacks.create(&pp, &stack).await.unwrap();
    eventually("the stack Ready", Duration::from_secs(300), || async {
        let s = stacks.get("staging").await.ok()?;
        let ready = find(&s.status?.conditions, READY)?.status == "True";
        ready.then_some(())
    })
    .await;

    // Every Pod it ran (the finished stage Pods too) came from the mirror
    // with the secret, on the pool, at the priority asked for.
    let all = pods.list(&ListParams::default()).await.unwrap().items;
    let (mut stages, mut workloads) = (0, 0);
    for p in all
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = p.metadata.name.clone().unwrap_or_default();
        let spec = p.spec.as_ref().unwrap();
        let secrets: Vec<&str> = spec
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(secrets, ["regcred"], "{name}");
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            let image = c.image.as_deref().unwrap_or_default();
            assert!(image.starts_with(&format!("{MIRROR}/")), "{name}: {image}");
        }
        assert_eq!(
            spec.priority_class_name.as_deref(),
            Some(PRIORITY_CLASS),
            "{name}"
        );
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["pool"],
            "sigstore",
            "{name}"
        );
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let component = labels
            .get("app.kubernetes.io/component")
            .cloned()
            .unwrap_or_default();
        let resources = serde_json::to_value(&spec.containers[0].resources).unwrap();
        if labels.contains_key(STAGE_LABEL) {
            stages += 1;
            assert_eq!(resources["limits"]["memory"], "256Mi", "{name}");
        } else {
            workloads += 1;
            if component == "fulcio" {
                assert_eq!(resources, fulcio_resources, "{name}");
            }
        }
    }
    // Nine workloads (database, log server and signer, Redis, Rekor, CT
    // log, Fulcio, TSA, TUF) and one Pod per stage at least.
    assert!(workloads >= 9, "{workloads} workload Pods");
    assert!(stages >= 7, "{stages} stage Pods");
    println!(
        "mirror-only tainted pool: {workloads} workload and {stages} stage Pods, all pulled with regcred"
    );
    let _ = classes
        .delete(PRIORITY_CLASS, &DeleteParams::default())
        .await;
}
