//! Every stage's output fed to the real servers, mounted as Pods mount it.

use super::*;

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
