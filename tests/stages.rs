//! The stages against the real servers: Trillian on MariaDB, on the real
//! control plane.

mod support;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, api::PostParams};
use sigstore_operator::{
    names::Log,
    stage::createtree::display_name,
    trillian::Trillian,
    trust_root::{Material, trusted_root},
};
use support::{
    Output,
    cosign::{Cosign, Services},
    run_cli,
    servers::{built, mount, mount_dir, port, redis, serve},
    trillian::trillian,
};

/// Every stack name the tests use.
const STACKS: &[&str] = &["demo", "other", "crashy"];

fn createtree<'a>(ns: &'a str, stack: &'a str, log: &'a str, address: &'a str) -> Vec<&'a str> {
    vec![
        "stage",
        "createtree",
        "--stack",
        stack,
        "--namespace",
        ns,
        "--log",
        log,
        "--trillian-address",
        address,
        "--timeout",
        "60s",
    ]
}

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

type Data = BTreeMap<String, ByteString>;

async fn secret(client: &kube::Client, ns: &str, name: &str) -> Secret {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"))
}

fn text(d: &Data, k: &str) -> String {
    String::from_utf8(d.get(k).unwrap_or_else(|| panic!("key {k}")).0.clone()).unwrap()
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|p| p.unwrap().contents)
        .collect()
}

/// Runs a stage; asserts it succeeded and logged no secret material.
fn stage(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    let out = run_cli(kubeconfig, args);
    assert_eq!(out.code, Some(0), "{args:?} failed:\n{}", out.stderr);
    for marker in ["PRIVATE KEY", "password\":", "-----BEGIN"] {
        assert!(
            !out.stderr.contains(marker),
            "{args:?} logged {marker}:\n{}",
            out.stderr
        );
    }
    out
}

/// Every stage of a stack, in an order that makes each wait briefly at most.
fn all_stages<'a>(
    ns: &'a str,
    stack: &'a str,
    trillian: &'a str,
    keys_dir: &'a str,
) -> Vec<Vec<&'a str>> {
    let common = |name: &'a str| {
        vec![
            "stage",
            name,
            "--stack",
            stack,
            "--namespace",
            ns,
            "--timeout",
            "60s",
        ]
    };
    let mut ctconfig = common("createctconfig");
    ctconfig.extend([
        "--trillian-address",
        trillian,
        "--keys-dir",
        keys_dir,
        "--prefix",
        "testlog",
    ]);
    vec![
        createtree(ns, stack, "ctlog", trillian),
        createtree(ns, stack, "rekor", trillian),
        common("createcerts"),
        common("rekorkey"),
        ctconfig,
        common("createcertchain"),
    ]
}

/// Resource versions of everything the stages wrote for `stack`.
async fn versions(client: &kube::Client, ns: &str, stack: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for cm in ["ctlog-config", "rekor-config"] {
        let name = format!("{stack}-{cm}");
        let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get(&name)
            .await
            .unwrap();
        out.push((name, c.metadata.resource_version));
    }
    for s in [
        "fulcio-ca",
        "fulcio-pub",
        "rekor-signer",
        "rekor-pub",
        "ctlog",
        "ctlog-pub",
        "tsa",
        "tsa-pub",
    ] {
        let name = format!("{stack}-{s}");
        out.push((
            name.clone(),
            secret(client, ns, &name).await.metadata.resource_version,
        ));
    }
    out
}

/// ct_server, Fulcio and Rekor start from what the stages wrote, mounted as
/// pods mount it, and serve exactly that material.
#[tokio::test]
async fn stages_feed_the_real_servers() {
    let (cp, client, ns) = support::setup("servers").await;
    let tr = trillian();
    let keys_dir = mount_dir(&format!("{}-ctfe-keys", ns.name));
    let keys = keys_dir.display().to_string();
    let mut logs = String::new();
    for args in all_stages(&ns.name, "demo", &tr.address, &keys) {
        logs.push_str(&stage(&cp.kubeconfig, &args).stderr);
    }
    // No password reached the logs.
    for s in ["demo-fulcio-ca", "demo-rekor-signer"] {
        let pw = text(
            &secret(&client, &ns.name, s).await.data.unwrap(),
            "password",
        );
        assert_eq!(pw.len(), 32);
        assert!(!logs.contains(&pw), "the password of {s} was logged");
    }

    // timestamp-server first: it must bind :2112 for metrics, which Rekor
    // also tries (Rekor shrugs a failure off, timestamp-server does not).
    let tsa = secret(&client, &ns.name, "demo-tsa").await.data.unwrap();
    let tsa_port = start_tsa(&ns.name, &tsa);
    check_tsa(tsa_port, &tsa).await;

    // ct_server, on the config and key files as mounted at --keys-dir.
    let ct = secret(&client, &ns.name, "demo-ctlog").await.data.unwrap();
    for (k, v) in &ct {
        std::fs::write(keys_dir.join(k), &v.0).unwrap();
    }
    let fulcio_ca = secret(&client, &ns.name, "demo-fulcio-ca")
        .await
        .data
        .unwrap();
    let root = ders(&text(&fulcio_ca, "cert")).pop().unwrap();
    let ct_port = port();
    let ct_args = [
        format!("--log_config={}", keys_dir.join("config").display()),
        format!("--http_endpoint=127.0.0.1:{ct_port}"),
    ];
    let ct_pid = serve("ct_server", &built("ct_server"), &ct_args, ct_port);
    let body = get_text(format!(
        "http://127.0.0.1:{ct_port}/testlog/ct/v1/get-roots"
    ))
    .await;
    let roots: serde_json::Value = serde_json::from_str(&body).expect("get-roots JSON");
    use base64::Engine;
    let served: Vec<Vec<u8>> = roots["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c.as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(
        served,
        vec![root.clone()],
        "ct_server trusts exactly Fulcio's root"
    );

    // Fulcio, with --ca=fileca on the certificate, encrypted key and password.
    let dir = mount(&format!("{}-fulcio", ns.name), &fulcio_ca);
    // The config the operator renders: the cluster's discovered issuer plus one from the spec.
    let cluster_issuer = sigstore_operator::cluster_oidc::discover_cluster_issuer(&client)
        .await
        .expect("issuer discovery")
        .issuer;
    assert_eq!(
        cluster_issuer, cp.server,
        "the API server's --service-account-issuer"
    );
    let spec = sigstore_operator::api::FulcioSpec {
        oidc_issuers: vec![sigstore_operator::api::OidcIssuer {
            issuer_url: "https://issuer.example".into(),
            client_id: "sigstore".into(),
            issuer_type: sigstore_operator::api::IssuerType::Email,
        }],
        ..Default::default()
    };
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        sigstore_operator::fulcio_config::render(&spec, Some(&cluster_issuer)).unwrap(),
    )
    .unwrap();
    let (fulcio_port, grpc_port, metrics_port) = (port(), port(), port());
    // Fulcio fetches the issuer's discovery document and keys over TLS,
    // trusting the cluster CA at /var/run/fulcio/ca.crt as in its Pod: a
    // mount namespace of its own binds the test API server's CA there.
    let ca_dir = mount_dir(&format!("{}-fulcio-ca-crt", ns.name));
    std::fs::copy(cp.serving_ca(), ca_dir.join("ca.crt")).unwrap();
    let fulcio_args = |fulcio_ca: &Data| {
        vec![
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            "mkdir -p /var/run/fulcio && mount --bind \"$0\" /var/run/fulcio && exec \"$@\"".into(),
            ca_dir.display().to_string(),
            built("fulcio").display().to_string(),
            "serve".into(),
            "--ca=fileca".into(),
            format!("--fileca-cert={}", dir.join("cert").display()),
            format!("--fileca-key={}", dir.join("private").display()),
            format!("--fileca-key-passwd={}", text(fulcio_ca, "password")),
            "--fileca-watch=false".into(),
            "--host=127.0.0.1".into(),
            format!("--port={fulcio_port}"),
            format!("--grpc-port={grpc_port}"),
            format!("--metrics-port={metrics_port}"),
            format!("--ct-log-url=http://127.0.0.1:{ct_port}/testlog"),
            format!("--config-path={}", config.display()),
        ]
    };
    let unshare = std::path::Path::new("/usr/bin/unshare");
    let fulcio_pid = serve("fulcio", unshare, &fulcio_args(&fulcio_ca), fulcio_port);
    let served = get_text(format!("http://127.0.0.1:{fulcio_port}/api/v1/rootCert")).await;
    assert_eq!(
        ders(&served),
        ders(&text(&fulcio_ca, "cert")),
        "Fulcio serves our CA"
    );
    // Fulcio read the rendered issuers.
    let configuration = get_text(format!(
        "http://127.0.0.1:{fulcio_port}/api/v2/configuration"
    ))
    .await;
    for issuer in [cluster_issuer.as_str(), "https://issuer.example"] {
        assert!(
            configuration.contains(issuer),
            "{issuer} missing from {configuration}"
        );
    }

    // Rekor, with the signing key file, its password and the tree ID.
    let signer = secret(&client, &ns.name, "demo-rekor-signer")
        .await
        .data
        .unwrap();
    let dir = mount(&format!("{}-rekor", ns.name), &signer);
    let tree = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .get("demo-rekor-config")
        .await
        .unwrap()
        .data
        .unwrap()["treeID"]
        .clone();
    let (host, trillian_port) = tr.address.split_once(':').unwrap();
    let redis_port = redis(&ns.name);
    let rekor_port = port();
    serve(
        "rekor-server",
        &built("rekor-server"),
        &[
            "serve".into(),
            format!("--trillian_log_server.address={host}"),
            format!("--trillian_log_server.port={trillian_port}"),
            format!("--trillian_log_server.tlog_id={tree}"),
            "--host=127.0.0.1".into(),
            format!("--port={rekor_port}"),
            "--rekor_server.address=127.0.0.1".into(),
            "--redis_server.address=127.0.0.1".into(),
            format!("--redis_server.port={redis_port}"),
            format!("--rekor_server.signer={}", dir.join("private").display()),
            format!("--rekor_server.signer-passwd={}", text(&signer, "password")),
        ],
        rekor_port,
    );
    let public = get_text(format!(
        "http://127.0.0.1:{rekor_port}/api/v1/log/publicKey"
    ))
    .await;
    assert_eq!(
        public.trim(),
        text(&signer, "public").trim(),
        "Rekor signs with our key"
    );
    // An entry goes all the way through Trillian (queued, sequenced by the
    // signer, included): the schema serves writes, not just reads.
    let log_index = add_rekor_entry(rekor_port).await;
    assert_eq!(log_index, 0, "the first entry of a fresh tree");
    let public_copy = secret(&client, &ns.name, "demo-rekor-pub")
        .await
        .data
        .unwrap();
    assert_eq!(text(&public_copy, "public"), text(&signer, "public"));

    // cosign signs a blob against these servers with a service-account
    // token (audience sigstore) as the identity, and verifies it with
    // nothing but the trust root the operator would publish.
    let urls = Urls {
        fulcio: format!("http://127.0.0.1:{fulcio_port}"),
        rekor: format!("http://127.0.0.1:{rekor_port}"),
        ctlog: format!("http://127.0.0.1:{ct_port}/testlog"),
        tsa: format!("http://127.0.0.1:{tsa_port}"),
    };
    let cosign = cosign_signer(cp, &client, &ns.name).await;
    let now = k8s_openapi::jiff::Timestamp::now;
    let root_v1 = trusted_root(None, &material(&client, &ns.name, &urls).await, now()).unwrap();
    let root_v1_file = write_root(&cosign, &root_v1, "v1");
    let first = sign(&cosign, &root_v1_file, &urls, "first").await;
    let (ok, log) = cosign.verify(Some(&root_v1_file), &first.0, &first.1).await;
    assert!(ok, "cosign verify-blob failed:\n{log}");
    let changed = (cosign.work.join("changed.txt"), first.1.clone());
    std::fs::write(&changed.0, "something else\n").unwrap();
    let (ok, log) = cosign
        .verify(Some(&root_v1_file), &changed.0, &changed.1)
        .await;
    assert!(!ok, "a changed blob must not verify:\n{log}");
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first.1).unwrap()).unwrap();
    let timestamps =
        &bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"];
    assert_eq!(
        timestamps.as_array().map(Vec::len),
        Some(1),
        "the TSA's timestamp: {bundle}"
    );

    // The TUF repository built from that trust root: cosign bootstraps
    // from its root.json and mirror, then verifies with nothing else;
    // python-tuf, the reference client, reads the same targets.
    let repo_v1 = publish_and_sign(cp, &client, &ns.name, &root_v1, &cosign.issuer).await;
    let tuf = support::tuf::Served::start(&ns.name, &repo_v1);
    let root_json = cosign.work.join("root.json");
    std::fs::write(&root_json, &repo_v1["root.json"]).unwrap();
    cosign.initialize(&tuf.url, &root_json).await;
    let (ok, log) = cosign.verify(None, &first.0, &first.1).await;
    assert!(
        ok,
        "cosign verify-blob with the TUF trust root failed:\n{log}"
    );
    let (ok, _) = cosign.verify(None, &changed.0, &changed.1).await;
    assert!(!ok, "a changed blob must not verify through TUF either");
    let fetched = |target: &str| {
        support::tuf::fetch(&tuf.url, &root_json, target, None)
            .unwrap_or_else(|e| panic!("python-tuf refused {target}: {e}"))
    };
    assert_eq!(
        fetched("trusted_root.json"),
        serde_json::to_string_pretty(&root_v1).unwrap()
    );
    assert_eq!(fetched("rekor.pub").trim(), text(&signer, "public").trim());
    assert_eq!(
        ders(&fetched("tsa_leaf.crt.pem")),
        ders(&text(&tsa, "cert-chain"))[..1].to_vec()
    );

    // Fulcio's CA is replaced. The CT log trusts both roots; the next trust
    // root ends the old CA's entry and adds the new one, so the signature
    // made before still verifies and a new one verifies too.
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    for s in ["demo-fulcio-ca", "demo-fulcio-pub"] {
        secrets_api.delete(s, &Default::default()).await.unwrap();
    }
    let stages = all_stages(&ns.name, "demo", &tr.address, &keys);
    stage(&cp.kubeconfig, &stages[2]);
    stage(&cp.kubeconfig, &stages[4]);
    for (k, v) in &secret(&client, &ns.name, "demo-ctlog").await.data.unwrap() {
        std::fs::write(keys_dir.join(k), &v.0).unwrap();
    }
    support::keeper().stop(ct_pid);
    serve("ct_server", &built("ct_server"), &ct_args, ct_port);
    let new_ca = secret(&client, &ns.name, "demo-fulcio-ca")
        .await
        .data
        .unwrap();
    assert_ne!(new_ca["cert"], fulcio_ca["cert"]);
    support::keeper().stop(fulcio_pid);
    mount(&format!("{}-fulcio", ns.name), &new_ca);
    std::fs::write(
        &config,
        sigstore_operator::fulcio_config::render(&spec, Some(&cluster_issuer)).unwrap(),
    )
    .unwrap();
    serve("fulcio", unshare, &fulcio_args(&new_ca), fulcio_port);
    let root_v2 = trusted_root(
        Some(&root_v1),
        &material(&client, &ns.name, &urls).await,
        now(),
    )
    .unwrap();
    assert_eq!(root_v2.certificate_authorities.len(), 2);
    assert!(
        root_v2.certificate_authorities[0]
            .valid_for
            .unwrap()
            .end
            .is_some()
    );
    assert_eq!(root_v2.tlogs, root_v1.tlogs, "Rekor's entry is unchanged");
    let root_v2_file = write_root(&cosign, &root_v2, "v2");
    let second = sign(&cosign, &root_v2_file, &urls, "second").await;
    for (what, signed) in [("the new", &second), ("the old", &first)] {
        let (ok, log) = cosign
            .verify(Some(&root_v2_file), &signed.0, &signed.1)
            .await;
        assert!(
            ok,
            "{what} signature must verify after the rotation:\n{log}"
        );
    }
    let (ok, _) = cosign
        .verify(Some(&root_v1_file), &second.0, &second.1)
        .await;
    assert!(!ok, "the old trust root does not know the new CA");

    // The TUF repository follows: new targets, the same root.json; cosign,
    // refreshed, verifies both signatures through it.
    let repo_v2 = publish_and_sign(cp, &client, &ns.name, &root_v2, &cosign.issuer).await;
    assert_eq!(
        repo_v2["root.json"], repo_v1["root.json"],
        "root.json never changes"
    );
    assert!(
        repo_v2.contains_key("2.targets.json"),
        "targets signed again"
    );
    tuf.update(&repo_v2);
    cosign.initialize(&tuf.url, &root_json).await;
    for (what, signed) in [("the new", &second), ("the old", &first)] {
        let (ok, log) = cosign.verify(None, &signed.0, &signed.1).await;
        assert!(
            ok,
            "{what} signature must verify through TUF after the rotation:\n{log}"
        );
    }
    assert!(
        fetched("fulcio_v2.crt.pem").contains("BEGIN CERTIFICATE"),
        "the new CA is a target too"
    );
    let tuf_versions = resource_versions(&client, &ns.name).await;
    stage(&cp.kubeconfig, &createtuf(&ns.name));
    assert_eq!(
        resource_versions(&client, &ns.name).await,
        tuf_versions,
        "a createtuf re-run with nothing due writes nothing"
    );

    // Every stage run again: not a byte changes (since the rotation).
    let before = versions(&client, &ns.name, "demo").await;
    for args in all_stages(&ns.name, "demo", &tr.address, &keys) {
        stage(&cp.kubeconfig, &args);
    }
    assert_eq!(
        versions(&client, &ns.name, "demo").await,
        before,
        "re-runs wrote nothing"
    );
}

/// A new Fulcio CA is added to the CT log's trusted roots; the old root and
/// the CT key stay.
#[tokio::test]
async fn createctconfig_keeps_old_roots_when_fulcio_rotates() {
    let (cp, client, ns) = support::setup("rotate").await;
    let tr = trillian();
    let keys_dir = mount_dir(&format!("{}-ctfe-keys", ns.name));
    let keys = keys_dir.display().to_string();
    let stages = all_stages(&ns.name, "rot", &tr.address, &keys);
    for i in [0, 2, 4] {
        stage(&cp.kubeconfig, &stages[i]);
    }
    let first = secret(&client, &ns.name, "rot-ctlog").await.data.unwrap();
    let old_root = ders(&text(
        &secret(&client, &ns.name, "rot-fulcio-pub")
            .await
            .data
            .unwrap(),
        "cert",
    ));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    for s in ["rot-fulcio-ca", "rot-fulcio-pub"] {
        secrets.delete(s, &Default::default()).await.unwrap();
    }
    stage(&cp.kubeconfig, &stages[2]);
    stage(&cp.kubeconfig, &stages[4]);
    let new_root = ders(&text(
        &secret(&client, &ns.name, "rot-fulcio-pub")
            .await
            .data
            .unwrap(),
        "cert",
    ));
    assert_ne!(old_root, new_root);
    let after = secret(&client, &ns.name, "rot-ctlog").await.data.unwrap();
    assert_eq!(after["private"], first["private"], "CT key kept");
    assert_eq!(after["public"], first["public"]);
    assert_eq!(ders(&text(&after, "fulcio-0")), old_root);
    assert_eq!(ders(&text(&after, "fulcio-1")), new_root);
    let config = text(&after, "config");
    assert!(
        config.contains("fulcio-0\"") && config.contains("fulcio-1\""),
        "{config}"
    );
}

/// A user's CA is imported as it is (their Secret untouched); an unusable
/// one is refused with the reason and nothing is written.
#[tokio::test]
async fn createcerts_imports_a_users_ca_and_refuses_a_bad_one() {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let (cp, client, ns) = support::setup("byo").await;
    let root_key = KeyPair::generate().unwrap();
    let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
    rp.distinguished_name.push(DnType::CommonName, "BYO Root");
    rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root_pem = rp.self_signed(&root_key).unwrap().pem();
    let root = Issuer::new(rp, root_key);
    let key = KeyPair::generate().unwrap();
    let mut ip = CertificateParams::new(Vec::<String>::new()).unwrap();
    ip.distinguished_name
        .push(DnType::CommonName, "BYO Intermediate");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ip.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let chain = format!("{}{root_pem}", ip.signed_by(&key, &root).unwrap().pem());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let user = |name: &str, private: String| Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("cert".into(), chain.clone()),
            ("private".into(), private),
        ])),
        ..Default::default()
    };
    let good = secrets
        .create(&PostParams::default(), &user("my-ca", key.serialize_pem()))
        .await
        .unwrap();
    let bad = secrets
        .create(
            &PostParams::default(),
            &user("wrong-key", KeyPair::generate().unwrap().serialize_pem()),
        )
        .await
        .unwrap();

    let args = |stack: &'static str, existing: &'static str| {
        vec![
            "stage",
            "createcerts",
            "--stack",
            stack,
            "--namespace",
            &ns.name,
            "--existing-secret",
            existing,
        ]
    };
    let refused = run_cli(&cp.kubeconfig, &args("bad", "wrong-key"));
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains(&format!(
            "Secret {}/wrong-key: key private does not match the first certificate",
            ns.name
        )),
        "{}",
        refused.stderr
    );
    assert!(
        secrets.get_opt("bad-fulcio-ca").await.unwrap().is_none(),
        "nothing written"
    );
    let missing = run_cli(&cp.kubeconfig, &args("bad", "no-such-secret"));
    assert!(
        missing
            .stderr
            .contains("not found; spec.fulcio.ca.existingSecret"),
        "{}",
        missing.stderr
    );

    stage(&cp.kubeconfig, &args("mine", "my-ca"));
    let ca = secret(&client, &ns.name, "mine-fulcio-ca")
        .await
        .data
        .unwrap();
    assert_eq!(
        ders(&text(&ca, "cert")),
        ders(&chain),
        "the user's chain, in order"
    );
    let pw = text(&ca, "password");
    let imported =
        sigstore_operator::keys::PrivateKey::from_pem(&text(&ca, "private"), Some(&pw)).unwrap();
    assert_eq!(
        imported.public_der,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
    for (s, original) in [("my-ca", &good), ("wrong-key", &bad)] {
        let now = secrets.get(s).await.unwrap();
        assert_eq!(
            now.metadata.resource_version, original.metadata.resource_version,
            "{s} untouched"
        );
    }
}

/// createctconfig says what it waits for, and fails with the reason when
/// its inputs do not appear before the deadline.
#[tokio::test]
async fn createctconfig_waits_for_its_inputs_then_gives_up() {
    let (cp, client, ns) = support::setup("ctconfig-wait").await;
    let out = run_cli(
        &cp.kubeconfig,
        &[
            "stage",
            "createctconfig",
            "--stack",
            "lonely",
            "--namespace",
            &ns.name,
            "--trillian-address",
            "127.0.0.1:1",
            "--timeout",
            "3s",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let what = format!("ConfigMap {}/lonely-ctlog-config key treeID", ns.name);
    assert!(
        out.stderr.contains(&format!("waiting for {what}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("gave up waiting for {what}")),
        "{}",
        out.stderr
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        secrets.get_opt("lonely-ctlog").await.unwrap().is_none(),
        "nothing written"
    );
}

/// OpenSSL, a parser independent of this project's crypto crates, opens the
/// encrypted keys with their passwords and finds the certificate's key.
#[tokio::test]
async fn openssl_reads_what_the_stages_write() {
    let (cp, client, ns) = support::setup("openssl").await;
    let common = |name: &'static str| {
        vec![
            "stage",
            name,
            "--stack",
            "ossl",
            "--namespace",
            ns.name.as_str(),
        ]
    };
    stage(&cp.kubeconfig, &common("createcerts"));
    stage(&cp.kubeconfig, &common("rekorkey"));
    let dir = mount_dir(&format!("{}-openssl", ns.name));
    let openssl = |args: &[&str]| -> String {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for (secret_name, cert) in [("ossl-fulcio-ca", true), ("ossl-rekor-signer", false)] {
        let data = secret(&client, &ns.name, secret_name).await.data.unwrap();
        let enc = dir.join(format!("{secret_name}.key"));
        let pw = dir.join(format!("{secret_name}.pw"));
        std::fs::write(&enc, text(&data, "private")).unwrap();
        std::fs::write(&pw, text(&data, "password")).unwrap();
        let (enc, pw) = (enc.display().to_string(), format!("file:{}", pw.display()));
        // The encryption is PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC.
        let asn1 = openssl(&["asn1parse", "-in", &enc]);
        for oid in ["PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"] {
            assert!(
                asn1.contains(oid),
                "{secret_name}: {oid} missing in\n{asn1}"
            );
        }
        let public = openssl(&["pkey", "-in", &enc, "-passin", &pw, "-pubout"]);
        assert_eq!(public.trim(), text(&data, "public").trim(), "{secret_name}");
        if cert {
            let c = dir.join("fulcio.crt");
            std::fs::write(&c, text(&data, "cert")).unwrap();
            let c = c.display().to_string();
            let cert_public = openssl(&["x509", "-in", &c, "-noout", "-pubkey"]);
            assert_eq!(cert_public.trim(), public.trim());
            let info = openssl(&["x509", "-in", &c, "-noout", "-text"]);
            assert!(info.contains("CA:TRUE"), "{info}");
            assert!(info.contains("Certificate Sign"), "{info}");
            assert!(
                info.contains("CN=sigstore-operator") || info.contains("CN = sigstore-operator"),
                "{info}"
            );
        }
    }
}

/// Uploads a hashedrekord entry signed by a fresh key; returns its log
/// index. Rekor answers 201 only once Trillian has included the leaf.
async fn add_rekor_entry(rekor_port: u16) -> i64 {
    use base64::Engine;
    use p256::{
        ecdsa::{Signature, SigningKey, signature::Signer},
        pkcs8::{EncodePublicKey, LineEnding},
    };
    use sha2::{Digest, Sha256};
    let key = SigningKey::random(&mut rand_core::OsRng);
    let blob = b"signed by the stages test";
    let signature: Signature = key.sign(blob);
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let hex: String = Sha256::digest(blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let entry = serde_json::json!({
        "apiVersion": "0.0.1", "kind": "hashedrekord",
        "spec": {
            "signature": {"content": b64(signature.to_der().as_bytes()),
                          "publicKey": {"content": b64(public.as_bytes())}},
            "data": {"hash": {"algorithm": "sha256", "value": hex}},
        },
    });
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{rekor_port}/api/v1/log/entries"))
        .json(&entry)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status.as_u16(), 201, "{body}");
    let (_, entry) = body.as_object().unwrap().iter().next().unwrap();
    entry["logIndex"].as_i64().unwrap()
}

/// createcertchain publishes only the chain and a re-run changes nothing.
/// (timestamp-server itself runs in `stages_feed_the_real_servers`: it
/// binds the fixed port :2112 for metrics, so one runs per test binary.)
#[tokio::test]
async fn createcertchain_writes_once_and_publishes_only_the_chain() {
    let (cp, client, ns) = support::setup("tsa").await;
    let args = [
        "stage",
        "createcertchain",
        "--stack",
        "demo",
        "--namespace",
        &ns.name,
    ];
    stage(&cp.kubeconfig, &args);
    let tsa = secret(&client, &ns.name, "demo-tsa").await.data.unwrap();
    assert!(createcertchain_keys_open(&tsa));
    let public = secret(&client, &ns.name, "demo-tsa-pub").await;
    assert_eq!(
        public.data.unwrap().keys().collect::<Vec<_>>(),
        ["cert-chain"],
        "only the chain is public"
    );
    // A second run changes nothing.
    let version = secret(&client, &ns.name, "demo-tsa")
        .await
        .metadata
        .resource_version;
    stage(&cp.kubeconfig, &args);
    assert_eq!(
        secret(&client, &ns.name, "demo-tsa")
            .await
            .metadata
            .resource_version,
        version
    );
}

/// A running timestamp-server on createcertchain's output serves that chain
/// and signs a timestamp that embeds our leaf.
async fn check_tsa(tsa_port: u16, tsa: &Data) {
    let base = format!("http://127.0.0.1:{tsa_port}/api/v1/timestamp");
    let chain = get_text(format!("{base}/certchain")).await;
    assert_eq!(
        ders(&chain),
        ders(&text(tsa, "cert-chain")),
        "serves our chain"
    );
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(b"timestamp me");
    let request = serde_json::json!({
        "artifactHash": base64::engine::general_purpose::STANDARD.encode(digest),
        "hashAlgorithm": "sha256",
        "certificates": true,
    });
    let response = reqwest::Client::new()
        .post(&base)
        .json(&request)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    // A DER TimeStampResp whose status is granted (0) and whose token
    // embeds our leaf certificate.
    assert_eq!(body[0], 0x30, "DER");
    let leaf = &ders(&text(tsa, "cert-chain"))[0];
    assert!(
        body.windows(leaf.len()).any(|w| w == leaf.as_slice()),
        "the response carries our leaf"
    );
}

/// timestamp-server on createcertchain's output, mounted as a pod would.
fn start_tsa(ns: &str, tsa: &Data) -> u16 {
    let dir = mount(&format!("{ns}-tsa"), tsa);
    let tsa_port = port();
    serve(
        "timestamp-server",
        &built("timestamp-server"),
        &[
            "serve".into(),
            "--host=127.0.0.1".into(),
            format!("--port={tsa_port}"),
            "--timestamp-signer=file".into(),
            format!("--file-signer-key-path={}", dir.join("private").display()),
            format!("--file-signer-passwd={}", text(tsa, "password")),
            format!(
                "--certificate-chain-path={}",
                dir.join("cert-chain").display()
            ),
            "--disable-ntp-monitoring".into(),
        ],
        tsa_port,
    );
    tsa_port
}

/// Where the local servers answer.
struct Urls {
    fulcio: String,
    rekor: String,
    ctlog: String,
    tsa: String,
}

/// The stack's public material, as the operator reads it, at `urls`.
async fn material(client: &kube::Client, ns: &str, urls: &Urls) -> Material {
    let mut public = Vec::new();
    for (name, key) in [
        ("demo-fulcio-pub", "cert"),
        ("demo-rekor-pub", "public"),
        ("demo-ctlog-pub", "public"),
        ("demo-tsa-pub", "cert-chain"),
    ] {
        public.push(text(&secret(client, ns, name).await.data.unwrap(), key));
    }
    Material {
        fulcio: Some((public[0].clone(), urls.fulcio.clone())),
        rekor: Some((public[1].clone(), urls.rekor.clone())),
        ctlog: Some((public[2].clone(), urls.ctlog.clone())),
        tsa: Some((public[3].clone(), urls.tsa.clone())),
    }
}

/// cosign as ServiceAccount `signer`, whose issuer's discovery is open to
/// Fulcio (as KinD setups open it).
async fn cosign_signer(cp: &support::ControlPlane, client: &kube::Client, ns: &str) -> Cosign {
    support::manifests::apply(
        client,
        &[serde_json::from_value(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "sigstore-test-oidc-discovery"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:service-account-issuer-discovery"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": "system:unauthenticated"}],
        }))
        .unwrap()],
        "default",
    )
    .await;
    Cosign::signer(client, ns, mount_dir(&format!("{ns}-cosign")), &cp.server).await
}

/// Writes `root` for cosign as `trusted_root-<name>.json`.
fn write_root(
    cosign: &Cosign,
    root: &sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot,
    name: &str,
) -> std::path::PathBuf {
    let file = cosign.work.join(format!("trusted_root-{name}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(root).unwrap()).unwrap();
    file
}

/// Signs a new blob `name` against `urls`; returns the blob and its bundle.
async fn sign(
    cosign: &Cosign,
    root: &std::path::Path,
    urls: &Urls,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let blob = cosign.work.join(format!("{name}.txt"));
    std::fs::write(
        &blob,
        format!("{name}, signed with a service-account identity\n"),
    )
    .unwrap();
    let services = Services {
        fulcio: urls.fulcio.clone(),
        rekor: urls.rekor.clone(),
        timestamp: format!("{}/api/v1/timestamp", urls.tsa),
    };
    let bundle = cosign.sign(root, &services, &blob).await;
    (blob, bundle)
}

fn createtuf(ns: &str) -> Vec<&str> {
    vec![
        "stage",
        "createtuf",
        "--stack",
        "demo",
        "--namespace",
        ns,
        "--timeout",
        "60s",
    ]
}

/// Publishes `root` as the operator does (ConfigMap `demo-trust-root`),
/// runs createtuf, and returns the repository ConfigMap's files.
async fn publish_and_sign(
    cp: &support::ControlPlane,
    client: &kube::Client,
    ns: &str,
    root: &sigstore_protobuf_specs::dev::sigstore::trustroot::v1::TrustedRoot,
    issuer: &str,
) -> BTreeMap<String, String> {
    let config = sigstore_operator::trust_root::signing_config(root, Some(issuer));
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "demo-trust-root"},
        "data": {
            "trusted_root.json": serde_json::to_string_pretty(root).unwrap(),
            "signing_config.json": serde_json::to_string_pretty(&config).unwrap(),
        },
    });
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.patch(
        "demo-trust-root",
        &kube::api::PatchParams::apply("test").force(),
        &kube::api::Patch::Apply(&cm),
    )
    .await
    .unwrap();
    stage(&cp.kubeconfig, &createtuf(ns));
    cms.get("demo-tuf-repository").await.unwrap().data.unwrap()
}

/// Resource versions of the TUF repository and its key Secret.
async fn resource_versions(client: &kube::Client, ns: &str) -> (Option<String>, Option<String>) {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("demo-tuf-repository")
        .await
        .unwrap();
    let keys = secret(client, ns, "demo-tuf-keys").await;
    (cm.metadata.resource_version, keys.metadata.resource_version)
}

/// The TSA key opens with its password and matches the chain's leaf.
fn createcertchain_keys_open(tsa: &Data) -> bool {
    let key = sigstore_operator::keys::PrivateKey::from_pem(
        &text(tsa, "private"),
        Some(&text(tsa, "password")),
    )
    .expect("the key opens with its password");
    let leaf = ders(&text(tsa, "cert-chain")).remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.public_key().raw == key.public_der.as_slice()
}

/// The body of a GET that must succeed.
async fn get_text(url: impl reqwest::IntoUrl) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}
