//! The tile-based log generation end to end, on the node agent with the
//! operator in a Pod from `config/default`: a Rekor v2 + TesseraCT + TSA
//! stack comes up with no Trillian and no database; cosign 3 and
//! sigstore-python sign and verify against it with what
//! `hack/stack-up.sh` exports; the read path serves a checkpoint that
//! verifies with the trust root's key. Then a Rekor v1 stack moves to both
//! and on to v2: what was signed on each log verifies with one trust root.

mod support;

use std::{path::Path, time::Duration};

use kube::Api;
use serde_json::{Value, json};
use sigstore_operator::{
    api::SigstoreStack,
    verify::bundle::{Refusal, verify_bundle},
};
use support::{
    clients::{self, Exported, Kind, Signed, SigstorePython},
    cosign::Cosign,
    stacks::{self, config_map},
};

const WAIT: Duration = Duration::from_secs(240);

fn cosign3(env: &Exported, work: &Path) -> Cosign {
    Cosign::with_token_file(
        work.to_owned(),
        env.path("OIDC_TOKEN_FILE"),
        env.get("SIGNER_IDENTITY").to_owned(),
        env.get("ISSUER_URL").to_owned(),
    )
    .v3()
}

fn blob(work: &Path, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(work).unwrap();
    let path = work.join(support::blob_name(text));
    std::fs::write(&path, text).unwrap();
    path
}

/// The stack's published trusted root and signing config.
async fn trust(client: &kube::Client, ns: &str, stack: &str) -> (Value, Value) {
    let cm = config_map(client, ns, &format!("{stack}-trust-root")).await;
    let parse = |k: &str| serde_json::from_str(&cm[k]).unwrap();
    (parse("trusted_root.json"), parse("signing_config.json"))
}

/// The open entries of a trusted root list, by `baseUrl`.
fn open(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["publicKey"]["validFor"].get("end").is_none())
        .map(|e| e["baseUrl"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The bundle's tlog entry: its kind version and log ID.
fn entry(bundle: &Path) -> Value {
    let b: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    b["verificationMaterial"]["tlogEntries"][0].clone()
}

/// From the stack's creation to its Ready condition turning True.
async fn apply_to_ready(stacks: &Api<SigstoreStack>, stack: &str) -> Duration {
    let s = stacks.get(stack).await.unwrap();
    let created = s.metadata.creation_timestamp.unwrap().0;
    let ready = s
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .expect("Ready")
        .last_transition_time
        .0;
    Duration::try_from(ready.duration_since(created)).unwrap_or_default()
}

/// One cluster, one node agent (two cannot share this machine): the tile
/// stack, then the move from v1, each stack in the test's namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tile_logs_run_without_trillian_and_a_v1_stack_moves_to_them() {
    let (cp, client, ns, _agent) =
        support::node::cluster("tiles", &["sigstore-operator-system"]).await;
    let (v2_ready, matrix) = tile_stack(cp, &client, &ns.name).await;
    let v1_ready = moving_from_rekor_v1_through_both_to_v2(cp, &client, &ns.name).await;
    let figures = format!(
        "log generations, apply → Ready (same run, same machine):\n  \
         Rekor v1 + ct_server on Trillian (spec: {{}})       {v1_ready:.1?}\n  \
         Rekor v2 + TesseraCT, no Trillian                  {v2_ready:.1?}\n  {matrix}\n"
    );
    eprint!("{figures}");
    let _ = std::fs::write(
        support::repo_root().join("target/tiles-figures.txt"),
        figures,
    );
}

/// A Rekor v2 + TesseraCT + TSA stack: no Trillian, every v2 client signs
/// and verifies; returns its apply → Ready time and the clients' line.
async fn tile_stack(
    cp: &support::ControlPlane,
    client: &kube::Client,
    ns: &str,
) -> (Duration, String) {
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), ns);
    let out = support::logs_dir().join(format!("{ns}-tiles"));
    // The sample users apply: config/samples/generations/tiles.yaml.
    let sample =
        support::manifests::read_dir(&support::repo_root().join("config/samples/generations"))
            .into_iter()
            .find(|o| o.metadata.name.as_deref() == Some("tiles"))
            .expect("the tiles sample");
    let spec = serde_json::to_string(&sample.data["spec"]).unwrap();
    let vars = [
        ("STACK_NAME", "tiles".to_owned()),
        ("STACK_NAMESPACE", ns.to_owned()),
        ("STACK_SPEC", spec),
    ];
    let (ok, log) = clients::stack_up(&cp.kubeconfig, &out, &vars).await;
    assert!(ok, "hack/stack-up.sh failed:\n{log}");
    let ready = apply_to_ready(&stacks, "tiles").await;
    let env = Exported::read(&out);

    // No Trillian and no database: nothing of theirs exists.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), ns);
    let names: Vec<String> = deployments
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("trillian")
            || n.contains("redis")
            || n == "tiles-rekor"
            || n == "tiles-ctlog"),
        "{names:?}"
    );
    for part in ["rekor-v2", "tesseract", "fulcio", "tsa", "tuf"] {
        assert!(
            names.contains(&format!("tiles-{part}")),
            "{part}: {names:?}"
        );
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    assert!(
        secrets
            .get_opt("tiles-trillian-db")
            .await
            .unwrap()
            .is_none()
    );

    // Status names each log's origin, ID and read path.
    let status = stacks.get("tiles").await.unwrap().status.unwrap();
    let v2 = status.rekor_v2.clone().expect("rekorV2 in status");
    let origin = format!("tiles-rekor-v2.{}.svc", ns);
    assert_eq!(v2.origin.as_deref(), Some(origin.as_str()));
    assert!(
        v2.storage
            .as_deref()
            .unwrap_or_default()
            .contains("emptyDir")
    );
    assert!(status.rekor.is_none(), "no Rekor v1");
    let ct = status.ctlog.clone().expect("ctlog in status");
    assert_eq!(
        ct.url.as_deref(),
        Some(format!("http://tiles-tesseract.{}.svc", ns).as_str())
    );

    // The trust root: the v2 log under its origin, by its note key hash;
    // the signing config asks for Rekor's v2 API.
    let (root, signing) = trust(client, ns, "tiles").await;
    let tlog = &root["tlogs"][0];
    assert_eq!(tlog["baseUrl"], format!("http://{origin}"));
    assert_eq!(tlog["publicKey"]["keyDetails"], "PKIX_ED25519");
    let spki = support::note::unb64(tlog["publicKey"]["rawBytes"].as_str().unwrap());
    let hex: String = support::note::unb64(tlog["logId"]["keyId"].as_str().unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v2.log_id.as_deref(), Some(hex.as_str()));
    assert_eq!(signing["rekorTlogUrls"][0]["majorApiVersion"], 2);
    assert_eq!(root["ctlogs"].as_array().map(Vec::len), Some(1));

    // cosign 3 signs with the exported signing config and verifies with the
    // trust root alone; a changed blob is refused.
    let work = out.join("cosign3");
    let cosign = cosign3(&env, &work);
    // A fresh log's first entry has an inclusion proof with no hashes and
    // index 0, which its JSON omits: sigstore-python refuses such a bundle
    // (the README's troubleshooting says so), so the matrix starts after it.
    let first = blob(&work, "the log's first entry\n");
    let (ok, log, first_bundle) = cosign
        .sign_with_config(env.path("SIGNING_CONFIG"), env.path("TRUSTED_ROOT"), &first)
        .await;
    assert!(ok, "cosign 3 sign-blob on Rekor v2:\n{log}");
    let (ok, log) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &first, &first_bundle)
        .await;
    assert!(ok, "cosign 3 verifies the first entry:\n{log}");
    let signed = blob(&work, "signed on Rekor v2\n");
    let (ok, log, bundle) = cosign
        .sign_with_config(
            env.path("SIGNING_CONFIG"),
            env.path("TRUSTED_ROOT"),
            &signed,
        )
        .await;
    assert!(ok, "cosign 3 sign-blob on Rekor v2:\n{log}");
    assert_eq!(
        entry(&bundle)["kindVersion"]["version"],
        "0.0.2",
        "a Rekor v2 entry"
    );
    let (ok, log) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &signed, &bundle)
        .await;
    assert!(ok, "cosign 3 verify-blob:\n{log}");
    let changed = blob(&work, "something else entirely\n");
    let (ok, _) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &changed, &bundle)
        .await;
    assert!(!ok, "a changed blob is refused");

    // sigstore-python signs with the trust config and verifies offline;
    // each client verifies the other's bundle.
    let python = SigstorePython::new(out.join("python"));
    let py_blob = blob(
        &out.join("python"),
        "signed by sigstore-python on Rekor v2\n",
    );
    let (ok, log, py_bundle) = python
        .sign(env.path("TRUST_CONFIG"), env.get("OIDC_TOKEN"), &py_blob)
        .await;
    assert!(ok, "sigstore-python sign on Rekor v2:\n{log}");
    let trust_args = [format!(
        "--trust-config={}",
        env.path("TRUST_CONFIG").display()
    )];
    let identity = env.get("SIGNER_IDENTITY");
    for (what, b, bl) in [
        ("cosign's", &signed, &bundle),
        ("its own", &py_blob, &py_bundle),
    ] {
        let (ok, log) = python.verify(&trust_args, true, identity, b, bl).await;
        assert!(ok, "sigstore-python verifies {what} bundle:\n{log}");
    }
    let (ok, log) = cosign
        .verify(Some(env.path("TRUSTED_ROOT")), &py_blob, &py_bundle)
        .await;
    assert!(ok, "cosign 3 verifies sigstore-python's bundle:\n{log}");
    // The self-check's published proof (the log's first entry: its empty
    // proof is written out, so sigstore-python takes it too) verifies with
    // both clients; not for another blob.
    let (proof, took) =
        support::stacks::self_check_proof(client, ns, "tiles", &out.join("selfcheck")).await;
    assert_eq!(proof.len(), 1, "one bundle: Rekor v2 only");
    assert_eq!(entry(&proof[0].bundle)["kindVersion"]["version"], "0.0.2");
    for p in &proof {
        let (ok, log) = cosign
            .verify_as(
                &p.identity,
                Some(env.path("TRUSTED_ROOT")),
                &p.blob,
                &p.bundle,
            )
            .await;
        assert!(ok, "cosign 3 verifies the self-check's bundle:\n{log}");
        let (ok, log) = python
            .verify(&trust_args, true, &p.identity, &p.blob, &p.bundle)
            .await;
        assert!(
            ok,
            "sigstore-python verifies the self-check's bundle:\n{log}"
        );
        let (ok, _) = cosign
            .verify_as(
                &p.identity,
                Some(env.path("TRUSTED_ROOT")),
                &changed,
                &p.bundle,
            )
            .await;
        assert!(
            !ok,
            "cosign 3 refuses the self-check's bundle for another blob"
        );
        let (ok, _) = python
            .verify(&trust_args, true, &p.identity, &changed, &p.bundle)
            .await;
        assert!(
            !ok,
            "sigstore-python refuses the self-check's bundle for another blob"
        );
    }
    eprintln!("tiles: self-check round trip {took}");
    // The TSA turned off under Rekor v2 (whose entries carry no signed
    // time): refused by the API server, so the stack never gets there.
    let refused = stacks
        .patch(
            "tiles",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"tsa": {"enabled": false}}})),
        )
        .await
        .expect_err("the TSA off under Rekor v2 is refused");
    assert!(
        refused.to_string().contains("need tsa.enabled"),
        "the refusal says what is needed: {refused}"
    );
    assert!(stacks::ready(&stacks, "tiles").await, "still Ready");
    // The operator's own verifier (the self-check's) accepts both with
    // nothing but the published trust root, and says which check refuses
    // a broken one.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let root_json = read(env.path("TRUSTED_ROOT"));
    let issuer = env.get("ISSUER_URL");
    for (b, bl) in [(&signed, &bundle), (&py_blob, &py_bundle)] {
        verify_bundle(
            &root_json,
            &read(bl),
            &std::fs::read(b).unwrap(),
            identity,
            issuer,
        )
        .unwrap_or_else(|e| panic!("the operator's verifier refuses {}: {e}", bl.display()));
    }
    let refusal = |root: &str, bundle_json: &str, artifact: &[u8], who: &str| {
        verify_bundle(root, bundle_json, artifact, who, issuer)
            .expect_err("refused")
            .reason
    };
    let good = read(&bundle);
    let artifact = std::fs::read(&signed).unwrap();
    assert_eq!(
        refusal(&root_json, &good, b"another artifact", identity),
        Refusal::SignatureInvalid
    );
    assert_eq!(
        refusal(
            &root_json,
            &good,
            &artifact,
            "https://kubernetes.io/namespaces/x/serviceaccounts/y"
        ),
        Refusal::IdentityMismatch
    );
    let mut no_tsa: Value = serde_json::from_str(&root_json).unwrap();
    no_tsa["timestampAuthorities"] = json!([]);
    assert_eq!(
        refusal(&no_tsa.to_string(), &good, &artifact, identity),
        Refusal::TimestampInvalid,
        "Rekor v2 gives no time: without the TSA nothing dates the certificate"
    );
    // Another CT log's key in the trust root: the SCT is by no trusted log.
    let other = sigstore_operator::keys::PrivateKey::generate(
        sigstore_operator::keys::Algorithm::EcdsaP256,
    )
    .unwrap();
    let other_id = sigstore_operator::trust_root::log_key_id("x", &other.public_der).unwrap();
    let mut other_ct: Value = serde_json::from_str(&root_json).unwrap();
    let b64 = support::note::b64;
    other_ct["ctlogs"][0]["publicKey"]["rawBytes"] = json!(b64(&other.public_der));
    other_ct["ctlogs"][0]["logId"]["keyId"] = json!(b64(&other_id));
    assert_eq!(
        refusal(&other_ct.to_string(), &good, &artifact, identity),
        Refusal::SctInvalid
    );
    // A checkpoint re-signed under another name is not the log's.
    let mut moved: Value = serde_json::from_str(&good).unwrap();
    let envelope = &mut moved["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
        ["envelope"];
    let text = envelope
        .as_str()
        .unwrap()
        .replacen(&origin, "elsewhere.example", 1);
    *envelope = json!(text);
    assert_eq!(
        refusal(&root_json, &moved.to_string(), &artifact, identity),
        Refusal::CheckpointInvalid
    );
    // cosign 3 in a Pod, trusting nothing but the stack's TUF repository,
    // verifies both bundles and refuses a changed blob.
    let signed_here = [
        Signed {
            by: Kind::Cosign3,
            blob: signed.clone(),
            bundle: bundle.clone(),
            identity: identity.to_owned(),
        },
        Signed {
            by: Kind::SigstorePython,
            blob: py_blob.clone(),
            bundle: py_bundle.clone(),
            identity: identity.to_owned(),
        },
    ];
    let (in_pod, refused) =
        clients::verify_in_pod(client, ns, "tiles", &signed_here, &changed).await;
    for (s, (ok, log)) in signed_here.iter().zip(&in_pod) {
        assert!(
            ok,
            "cosign 3 in a Pod (TUF only) verifies {}'s bundle:\n{log}",
            s.by.name()
        );
    }
    assert!(
        refused.0,
        "cosign 3 in a Pod refuses a changed blob:\n{}",
        refused.1
    );
    // sigstore-python bootstraps from the stack's TUF workload too
    // (`trust-instance`) and verifies through it.
    let instance = [format!("--instance={}", env.get("TUF_MIRROR"))];
    let mut trust_instance = instance.to_vec();
    trust_instance.extend([
        "trust-instance".to_owned(),
        env.get("TUF_ROOT_JSON").to_owned(),
    ]);
    let (ok, log) = python.run(&trust_instance).await;
    assert!(ok, "sigstore-python trust-instance on a v2 stack:\n{log}");
    let (ok, log) = python
        .verify(&instance, false, identity, &signed, &bundle)
        .await;
    assert!(
        ok,
        "sigstore-python verifies through the stack's TUF:\n{log}"
    );

    // The read path: a checkpoint that verifies with the trust root's key
    // under the log's origin, covering both entries.
    let read = env.get("REKOR_V2_URL");
    let checkpoint = reqwest::get(format!("{read}/checkpoint"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let size = support::note::check_ed25519(&checkpoint, &origin, &spki);
    assert!(size >= 3, "{checkpoint}");
    let state = reqwest::get(format!("{read}/.state/treeState"))
        .await
        .unwrap();
    assert_eq!(state.status().as_u16(), 404, "internal state is not served");
    let ct_checkpoint = reqwest::get(format!("{}/checkpoint", env.get("CTLOG_URL")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ct_checkpoint.starts_with(&format!("tiles-tesseract.{ns}.svc\n")),
        "{ct_checkpoint}"
    );
    let matrix = format!(
        "on Rekor v2 + TesseraCT: cosign 3.1.3 and sigstore-python 4.5.1 sign, each verifies \
         both bundles, as do cosign 3.1.3 in a Pod and sigstore-python through the stack's \
         TUF, and every cosign refuses a changed blob; the read path's checkpoint ({size} entries) verifies \
         with the trust root's key"
    );
    (ready, matrix)
}

/// A Rekor v1 stack moved to both and on to v2: every bundle made on
/// either log verifies with the trust root of the moment and the last one.
/// Returns the v1 stack's apply → Ready time.
async fn moving_from_rekor_v1_through_both_to_v2(
    cp: &support::ControlPlane,
    client: &kube::Client,
    ns: &str,
) -> Duration {
    let stacks: Api<SigstoreStack> = Api::namespaced(client.clone(), ns);
    let out = support::logs_dir().join(format!("{ns}-migrate"));
    let vars = [
        ("STACK_NAME", "mig".to_owned()),
        ("STACK_NAMESPACE", ns.to_owned()),
        ("STACK_SPEC", "{}".to_owned()),
        // The operator runs already.
        ("INSTALL", "none".to_owned()),
    ];
    let (ok, log) = clients::stack_up(&cp.kubeconfig, &out, &vars).await;
    assert!(ok, "hack/stack-up.sh failed:\n{log}");
    let v1_ready = apply_to_ready(&stacks, "mig").await;
    let env = Exported::read(&out);
    let work = out.join("cosign3");
    let cosign = cosign3(&env, &work);
    let on_v1 = blob(&work, "signed on Rekor v1 before the move\n");
    let (ok, log, v1_bundle) = cosign
        .sign_with_config(env.path("SIGNING_CONFIG"), env.path("TRUSTED_ROOT"), &on_v1)
        .await;
    assert!(ok, "cosign 3 on Rekor v1:\n{log}");
    assert_eq!(entry(&v1_bundle)["kindVersion"]["version"], "0.0.1");

    // Both side by side: two open tlogs, v2 first in the signing config.
    stacks::switch(
        &stacks,
        "mig",
        json!({"rekor": {"generation": "both"}}),
        WAIT,
    )
    .await;
    let (root, signing) = trust(client, ns, "mig").await;
    let v1_url = format!("http://mig-rekor.{}.svc", ns);
    let v2_url = format!("http://mig-rekor-v2.{}.svc", ns);
    let mut open_logs = open(&root["tlogs"]);
    open_logs.sort();
    let mut both = [v1_url.clone(), v2_url.clone()];
    both.sort();
    assert_eq!(open_logs, both);
    assert_eq!(signing["rekorTlogUrls"][0]["url"], v2_url.as_str());
    assert_eq!(signing["rekorTlogUrls"][1]["url"], v1_url.as_str());
    // stack-up again (as a user does) exports the v2 log's address too.
    let again = out.join("both");
    let (ok, log) = clients::stack_up(&cp.kubeconfig, &again, &vars).await;
    assert!(ok, "hack/stack-up.sh on both:\n{log}");
    let env = Exported::read(&again);
    let cosign = cosign3(&env, &work);
    let on_v2 = blob(&work, "signed on Rekor v2 with both running\n");
    let (ok, log, v2_bundle) = cosign
        .sign_with_config(env.path("SIGNING_CONFIG"), env.path("TRUSTED_ROOT"), &on_v2)
        .await;
    assert!(ok, "cosign 3 with both logs:\n{log}");
    assert_eq!(
        entry(&v2_bundle)["kindVersion"]["version"],
        "0.0.2",
        "v2 is used first"
    );
    // cosign 2, which speaks only v1, keeps signing on v1 (its
    // --rekor-url) while both run.
    std::fs::create_dir_all(out.join("cosign2")).unwrap();
    let (_, on_v1_again, cosign2_bundle) = stacks::sign(
        &env,
        &out.join("cosign2"),
        "signed by cosign 2 with both running\n",
    )
    .await;
    assert_eq!(entry(&cosign2_bundle)["kindVersion"]["version"], "0.0.1");
    for (what, b, bl) in [
        ("v1", &on_v1, &v1_bundle),
        ("v2", &on_v2, &v2_bundle),
        ("cosign 2's v1", &on_v1_again, &cosign2_bundle),
    ] {
        let (ok, log) = cosign.verify(Some(env.path("TRUSTED_ROOT")), b, bl).await;
        assert!(
            ok,
            "the {what} bundle verifies with the one trust root:\n{log}"
        );
    }
    // Ready on both means the self-check signed on each log.
    let (proof, _) =
        support::stacks::self_check_proof(client, ns, "mig", &out.join("selfcheck-both")).await;
    let mut versions: Vec<String> = proof
        .iter()
        .map(|p| {
            entry(&p.bundle)["kindVersion"]["version"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, ["0.0.1", "0.0.2"], "a bundle per log");
    for p in &proof {
        let (ok, log) = cosign
            .verify_as(
                &p.identity,
                Some(env.path("TRUSTED_ROOT")),
                &p.blob,
                &p.bundle,
            )
            .await;
        assert!(
            ok,
            "cosign 3 verifies the self-check's {}:\n{log}",
            p.bundle.display()
        );
    }

    // On to v2 alone, and ct_server to TesseraCT: v1's and ct_server's
    // entries are closed, Trillian is gone, and every bundle still verifies.
    stacks::switch(
        &stacks,
        "mig",
        json!({"rekor": {"generation": "v2"}, "ctlog": {"backend": "tesseract"}}),
        WAIT,
    )
    .await;
    let (root, signing) = trust(client, ns, "mig").await;
    assert_eq!(open(&root["tlogs"]), std::slice::from_ref(&v2_url));
    assert_eq!(
        root["tlogs"].as_array().map(Vec::len),
        Some(2),
        "v1 kept, closed"
    );
    assert_eq!(
        open(&root["ctlogs"]),
        [format!("http://mig-tesseract.{ns}.svc")],
        "TesseraCT open, ct_server closed"
    );
    assert_eq!(root["ctlogs"].as_array().map(Vec::len), Some(2));
    assert_eq!(signing["rekorTlogUrls"].as_array().map(Vec::len), Some(1));
    let on_tesseract = blob(&work, "signed with an SCT from TesseraCT\n");
    let (ok, log, tesseract_bundle) = cosign
        .sign_with_config(
            env.path("SIGNING_CONFIG"),
            env.path("TRUSTED_ROOT"),
            &on_tesseract,
        )
        .await;
    assert!(ok, "cosign 3 after the CT log moved:\n{log}");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), ns);
    for gone in [
        "mig-rekor",
        "mig-ctlog",
        "mig-trillian-log-server",
        "mig-trillian-db",
    ] {
        assert!(
            deployments.get_opt(gone).await.unwrap().is_none(),
            "{gone} is gone"
        );
    }
    let final_root = out.join("trusted_root.v2.json");
    std::fs::write(&final_root, root.to_string()).unwrap();
    for (what, b, bl) in [
        ("v1", &on_v1, &v1_bundle),
        ("v2", &on_v2, &v2_bundle),
        ("TesseraCT", &on_tesseract, &tesseract_bundle),
    ] {
        let (ok, log) = cosign.verify(Some(&final_root), b, bl).await;
        verify_bundle(
            &root.to_string(),
            &std::fs::read_to_string(bl).unwrap(),
            &std::fs::read(b).unwrap(),
            env.get("SIGNER_IDENTITY"),
            env.get("ISSUER_URL"),
        )
        .unwrap_or_else(|e| panic!("the operator's verifier refuses the {what} bundle: {e}"));
        assert!(ok, "the {what} bundle verifies after the move:\n{log}");
    }
    v1_ready
}
