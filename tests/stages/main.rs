//! The stages against the real servers: Trillian on MariaDB, on the real
//! control plane.

#[path = "../support/mod.rs"]
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

mod keys;
mod servers;
mod tiles;
mod trees;

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
        rekor_v2: None,
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
    let config = sigstore_operator::trust_root::signing_config(root, Some(issuer), &[]);
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
