//! createtree against Trillian on MariaDB: once, adopted after a crash, never replaced, bounded by its deadline.

use super::*;

/// IDs of the trees of the stacks in `ns` (tests share one Trillian).
async fn tree_ids(t: &Trillian, ns: &str, stacks: &[&str]) -> Vec<i64> {
    let names: Vec<String> = stacks
        .iter()
        .flat_map(|s| {
            [
                display_name(ns, s, Log::Rekor),
                display_name(ns, s, Log::Ctlog),
            ]
        })
        .collect();
    let mut ids: Vec<i64> = t
        .list_trees()
        .await
        .expect("ListTrees")
        .iter()
        .filter(|t| names.contains(&t.display_name))
        .map(|t| t.tree_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn createtree_creates_once_and_reruns_change_nothing() {
    let (cp, client, ns) = support::setup("createtree").await;
    let tr = trillian();
    let t = Trillian::connect_lazy(&tr.address).unwrap();

    let before = tree_ids(&t, &ns.name, STACKS).await;
    let first = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "demo", "rekor", &tr.address),
    );
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let id: i64 = first.stdout.trim().parse().expect("tree ID on stdout");

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm = cms
        .get("demo-rekor-config")
        .await
        .expect("ConfigMap written");
    assert_eq!(cm.data.as_ref().unwrap()["treeID"], id.to_string());
    // The tree is live in Trillian and answers GetLatestSignedLogRoot.
    let root = t.latest_root(id).await.expect("signed root");
    assert!(!root.is_empty(), "a signed log root");
    let trees = t.list_trees().await.unwrap();
    let tree = trees.iter().find(|x| x.tree_id == id).expect("tree listed");
    assert_eq!(
        tree.display_name,
        display_name(&ns.name, "demo", Log::Rekor)
    );
    assert_eq!(
        tree.max_root_duration.as_ref().map(|d| d.seconds),
        Some(3600)
    );
    let after_first = tree_ids(&t, &ns.name, STACKS).await;
    assert_eq!(after_first.len(), before.len() + 1);

    // A second run keeps the tree: no new tree, not a byte of the ConfigMap changed.
    let second = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "demo", "rekor", &tr.address),
    );
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(second.stdout.trim(), id.to_string());
    assert!(
        second.stderr.contains("tree already recorded; keeping it"),
        "{}",
        second.stderr
    );
    assert_eq!(
        tree_ids(&t, &ns.name, STACKS).await,
        after_first,
        "ListTrees unchanged"
    );
    let again = cms.get("demo-rekor-config").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        cm.metadata.resource_version
    );
    assert_eq!(again.data, cm.data);

    // The other log of the same stack, and another stack, get trees of their own.
    let ct = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "demo", "ctlog", &tr.address),
    );
    let other = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "other", "rekor", &tr.address),
    );
    assert_eq!(
        (ct.code, other.code),
        (Some(0), Some(0)),
        "{}\n{}",
        ct.stderr,
        other.stderr
    );
    let ids = [
        id,
        ct.stdout.trim().parse().unwrap(),
        other.stdout.trim().parse().unwrap(),
    ];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
}

/// A run that died after CreateTree and before the ConfigMap write left a
/// tree behind; the next run adopts it instead of creating another.
#[tokio::test]
async fn createtree_adopts_the_tree_of_a_run_that_died() {
    let (cp, client, ns) = support::setup("createtree-adopt").await;
    let tr = trillian();
    let t = Trillian::connect_lazy(&tr.address).unwrap();
    // What the dead run did: CreateTree with the stack's name, nothing more.
    let orphan = t
        .create_log_tree(
            &display_name(&ns.name, "crashy", Log::Ctlog),
            "left by a dead run",
            Duration::from_secs(3600),
        )
        .await
        .expect("CreateTree");
    let before = tree_ids(&t, &ns.name, STACKS).await;

    let run = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "crashy", "ctlog", &tr.address),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        orphan.tree_id.to_string(),
        "the orphan is adopted"
    );
    assert!(run.stderr.contains("Adopted"), "{}", run.stderr);
    assert_eq!(
        tree_ids(&t, &ns.name, STACKS).await,
        before,
        "no tree created"
    );
    // The adopted tree was initialised by the run.
    assert!(
        !t.latest_root(orphan.tree_id)
            .await
            .expect("root")
            .is_empty()
    );

    // Deleting the ConfigMap and running again restores the same tree.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    cms.delete("crashy-ctlog-config", &Default::default())
        .await
        .unwrap();
    let rerun = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "crashy", "ctlog", &tr.address),
    );
    assert_eq!(
        rerun.stdout.trim(),
        orphan.tree_id.to_string(),
        "{}",
        rerun.stderr
    );
    assert_eq!(tree_ids(&t, &ns.name, STACKS).await, before);
}

#[tokio::test]
async fn createtree_never_replaces_a_recorded_value() {
    let (cp, client, ns) = support::setup("createtree-garbage").await;
    let tr = trillian();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("bad-rekor-config".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("treeID".into(), "not-a-number".into())])),
        ..Default::default()
    };
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let run = run_cli(
        &cp.kubeconfig,
        &createtree(&ns.name, "bad", "rekor", &tr.address),
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains(&format!(
            "ConfigMap {}/bad-rekor-config key treeID holds \\\"not-a-number\\\"",
            ns.name
        )) || run.stderr.contains(&format!(
            "ConfigMap {}/bad-rekor-config key treeID holds \"not-a-number\"",
            ns.name
        )),
        "{}",
        run.stderr
    );
    let after = cms.get("bad-rekor-config").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, created.metadata.resource_version,
        "left alone"
    );
}

#[tokio::test]
async fn createtree_gives_up_at_its_deadline_and_stops_on_sigterm() {
    let (cp, client, ns) = support::setup("createtree-down").await;
    // Nothing listens here.
    let dead = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let mut args = createtree(&ns.name, "down", "rekor", &dead);
    let n = args.len();
    args[n - 1] = "3s";
    let started = Instant::now();
    let run = run_cli(&cp.kubeconfig, &args);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("gave up after"), "{}", run.stderr);
    assert!(run.stderr.contains("Unavailable"), "{}", run.stderr);
    assert!(
        run.stderr.contains("will retry"),
        "says what it waits for: {}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // With a long deadline, SIGTERM ends the wait at once.
    args[n - 1] = "10m";
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigstore-operator"))
        .args(&args)
        .env("KUBECONFIG", &cp.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signalled = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    assert_eq!(out.0.code(), Some(1), "{}", out.1);
    assert!(out.1.contains("cancelled"), "{}", out.1);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        cms.get_opt("down-rekor-config").await.unwrap().is_none(),
        "nothing written"
    );
}
