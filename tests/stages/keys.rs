//! The key stages: rotation kept, a user's CA imported or refused, inputs waited for, and what they write readable by OpenSSL.

use super::*;

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
