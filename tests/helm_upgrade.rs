//! `helm upgrade` of a running operator, as a staging cluster gets it: the
//! release of an earlier chart (whose CRD lacks a field) runs the operator
//! in a Pod (the node agent's) and a stack is Ready; upgrading to this chart
//! upgrades the CRD (the new field is kept, not pruned), replaces the
//! operator's Pod, and the stack stays Ready throughout with nothing it runs
//! rolled. Uninstalling keeps the CRD and the stack.

mod support;

use serde_json::Value;
use support::helm;

/// A copy of the chart as an earlier version shipped it: its CRD does not
/// know `spec.stages`, a field this version added.
fn earlier_chart(dir: &std::path::Path) -> String {
    let status = std::process::Command::new("cp")
        .args(["-r", &helm::chart()])
        .arg(dir)
        .status()
        .expect("cp");
    assert!(status.success());
    let copy = dir.join("sigstore-operator");
    let file = copy.join("files/sigstorestack.yaml");
    let mut crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["properties"].as_object_mut().unwrap().remove("stages");
    std::fs::write(&file, serde_yaml::to_string(&crd).unwrap()).unwrap();
    copy.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_upgrades_the_crd_and_keeps_stacks_ready() {
    use k8s_openapi::{
        api::{apps::v1::Deployment, core::v1::Pod},
        apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    };
    use kube::{
        Api,
        api::{ListParams, PostParams},
    };
    use sigstore_operator::{
        api::SigstoreStack,
        conditions::{READY, find},
    };
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    const RELEASE_NS: &str = "sigstore-helm-upgrade";
    let (cp, client, ns, _agent) = support::node::cluster("helm-upgrade", &[RELEASE_NS]).await;
    let kubeconfig = cp.kubeconfig.clone();
    let watch = format!("watchNamespaces={{{}}}", ns.name);
    let common = [
        "--namespace",
        RELEASE_NS,
        "--set",
        helm::IMAGE,
        "--set",
        "image.tag=e2e",
        "--set",
        &watch,
        "--set",
        "logFormat=json",
        "--wait",
        "--timeout",
        "3m",
    ];
    // The CRD is already there (applied with kubectl, as `make up` and
    // config/default do): hand it to the release as the README says.
    let crd = "crd/sigstorestacks.scaffolding.sigstore.dev";
    for args in [
        vec![
            "label",
            "--overwrite",
            crd,
            "app.kubernetes.io/managed-by=Helm",
        ],
        vec![
            "annotate",
            "--overwrite",
            crd,
            "meta.helm.sh/release-name=op",
            &format!("meta.helm.sh/release-namespace={RELEASE_NS}"),
        ],
    ] {
        let (ok, out) = support::clients::kubectl(&kubeconfig, RELEASE_NS, &args).await;
        assert!(ok, "kubectl {args:?}: {out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let earlier = earlier_chart(dir.path());
    let mut install = vec!["install", "op", earlier.as_str(), "--create-namespace"];
    install.extend(common);
    helm::helm_on(&kubeconfig, &install);

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let has_stages = || async {
        let crd = crds
            .get("sigstorestacks.scaffolding.sigstore.dev")
            .await
            .unwrap();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        schema["openAPIV3Schema"]["properties"]["spec"]["properties"]
            .get("stages")
            .is_some()
    };
    assert!(!has_stages().await, "the earlier chart's CRD is installed");

    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), &ns.name);
    let stack: SigstoreStack = serde_json::from_value(serde_json::json!({
        "apiVersion": "scaffolding.sigstore.dev/v1alpha1", "kind": "SigstoreStack",
        "metadata": {"name": "kept"}, "spec": {}}))
    .unwrap();
    stacks.create(&PostParams::default(), &stack).await.unwrap();
    let ready = |stacks: Api<SigstoreStack>| async move {
        let s = stacks.get("kept").await.ok()?;
        Some(find(&s.status?.conditions, READY)?.status == "True")
    };
    support::eventually("the stack Ready", Duration::from_secs(300), || {
        let stacks = stacks.clone();
        async move { ready(stacks).await.filter(|r| *r).map(|_| ()) }
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let generations = || async {
        let list = deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        list.into_iter()
            .map(|d| (d.metadata.name.unwrap(), d.metadata.generation))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = generations().await;
    let operator_pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NS);
    let old_pod = operator_pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();

    // Watch the stack through the upgrade: it must never stop being Ready.
    let lapses = Arc::new(Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (stacks, lapses, stop) = (stacks.clone(), lapses.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if ready(stacks.clone()).await == Some(false) {
                    lapses.lock().unwrap().push(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // This chart, with a value changed so the operator's Pod is replaced.
    let chart = helm::chart();
    let mut upgrade = vec!["upgrade", "op", chart.as_str(), "--set", "logLevel=debug"];
    upgrade.extend(common);
    helm::helm_on(&kubeconfig, &upgrade);
    assert!(has_stages().await, "helm upgrade upgraded the CRD");
    // The image named on install wins over the chart's default (the
    // published image), through the upgrade too.
    let operator = Api::<Deployment>::namespaced(client.clone(), RELEASE_NS)
        .get("op-sigstore-operator")
        .await
        .unwrap();
    let pod_spec = operator.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod_spec.containers[0].image.as_deref(),
        Some("sigstore-operator:e2e")
    );
    support::eventually(
        "the new operator Pod running",
        Duration::from_secs(120),
        || async {
            let pods = operator_pods.list(&ListParams::default()).await.ok()?.items;
            pods.iter()
                .any(|p| {
                    p.metadata.name.as_deref() != Some(old_pod.as_str())
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                })
                .then_some(())
        },
    )
    .await;
    // A field only the new CRD knows is kept, not pruned.
    let patch = serde_json::json!({"spec": {"stages": {"pod": {"resources": {"limits": {"memory": "256Mi"}}}}}});
    let patched = stacks
        .patch(
            "kept",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    assert!(
        patched.spec.stages.pod.resources.is_some(),
        "spec.stages was pruned: {:?}",
        patched.spec
    );
    // The new operator has seen the stack (the status says the new
    // generation) and nothing it runs was rolled.
    support::eventually(
        "the new operator's pass",
        Duration::from_secs(60),
        || async {
            let s = stacks.get("kept").await.ok()?;
            (s.status?.observed_generation == s.metadata.generation).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    watcher.await.unwrap();
    assert!(
        lapses.lock().unwrap().is_empty(),
        "the stack stopped being Ready during the upgrade"
    );
    assert_eq!(generations().await, before, "the upgrade rolled a workload");
    helm::helm_on(
        &kubeconfig,
        &["uninstall", "op", "--namespace", RELEASE_NS, "--wait"],
    );
    assert!(
        has_stages().await,
        "uninstalling keeps the CRD (and every stack)"
    );
    assert!(stacks.get("kept").await.is_ok());
}
