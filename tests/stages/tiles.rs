//! The tile-based logs on keys made as the stages make them, each on a
//! POSIX directory as a Pod's volume: rekor-tiles (Rekor v2) on an
//! encrypted Ed25519 key, TesseraCT on an SEC1 P-256 key and a Fulcio-like
//! root. Entries go in, the checkpoints are signed by our keys under our
//! origins, the logs name themselves by the IDs the trust root computes,
//! and a restart on the same directory keeps the log.

use std::path::Path;

use sha2::{Digest, Sha256};
use sigstore_operator::{
    keys::{Algorithm, PrivateKey},
    stage::{createtesseract, rekorkey},
    trust_root::log_key_id,
};

use super::*;
use support::note::{b64, parse as note, unb64};

/// rekor-tiles' arguments on `keys` (the signer Secret mounted) and `tiles`.
fn rekor_v2_args(
    origin: &str,
    keys: &Path,
    password: &str,
    tiles: &Path,
    ports: [u16; 3],
) -> Vec<String> {
    let [http, grpc, metrics] = ports;
    vec![
        "serve".into(),
        "--http-address=127.0.0.1".into(),
        format!("--http-port={http}"),
        "--grpc-address=127.0.0.1".into(),
        format!("--grpc-port={grpc}"),
        format!("--http-metrics-port={metrics}"),
        format!("--signer-filepath={}", keys.join("private").display()),
        format!("--signer-password={password}"),
        format!("--hostname={origin}"),
        "--checkpoint-interval=1s".into(),
        "--persistent-antispam".into(),
        format!("--storage-dir={}", tiles.display()),
    ]
}

/// Adds a hashedrekord v0.0.2 entry for `blob`, signed by a fresh P-256
/// key; returns the status and the response.
async fn add_v2_entry(http: u16, blob: &[u8]) -> (u16, serde_json::Value) {
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};
    use p256::pkcs8::EncodePublicKey;
    let key = SigningKey::random(&mut rand_core::OsRng);
    let signature: Signature = key.sign(blob);
    let public = key.verifying_key().to_public_key_der().unwrap();
    let request = serde_json::json!({"hashedRekordRequestV002": {
        "digest": b64(&Sha256::digest(blob)),
        "signature": {
            "content": b64(signature.to_der().as_bytes()),
            "verifier": {
                "publicKey": {"rawBytes": b64(public.as_bytes())},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            },
        },
    }});
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/api/v2/log/entries"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Checks a Rekor v2 checkpoint: the origin, one signature by `key` under
/// the origin with the note key hash.
fn check_v2_checkpoint(envelope: &str, origin: &str, key: &PrivateKey) {
    support::note::check_ed25519(envelope, origin, &key.public_der);
}

#[tokio::test]
async fn rekor_v2_signs_under_its_origin_with_our_ed25519_key_and_keeps_its_log() {
    let origin = "demo-rekor-v2.ns1.svc";
    let data = rekorkey::generate_with(Algorithm::Ed25519).unwrap();
    let key =
        PrivateKey::from_pem(&text(&data, "private"), Some(&text(&data, "password"))).unwrap();
    let keys = mount("rekor-v2-keys", &data);
    let tiles = mount("rekor-v2-tiles", &Data::new());
    let ports = [port(), port(), port()];
    let args = rekor_v2_args(origin, &keys, &text(&data, "password"), &tiles, ports);
    let pid = serve("rekor-v2", &built("rekor-tiles-server"), &args, ports[0]);
    let health = get_text(format!("http://127.0.0.1:{}/healthz", ports[0])).await;
    assert!(health.contains("SERVING"), "{health}");

    let (status, entry) = add_v2_entry(ports[0], b"the first v2 entry").await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["logIndex"].as_str(), Some("0"), "{entry}");
    assert_eq!(entry["kindVersion"]["kind"], "hashedrekord", "{entry}");
    // The log names itself as the trust root will: the note key hash.
    assert_eq!(
        entry["logId"]["keyId"].as_str().map(unb64),
        log_key_id(origin, &key.public_der),
        "{entry}"
    );
    let envelope = entry["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap();
    check_v2_checkpoint(envelope, origin, &key);
    // What a monitor reads from the volume: the same signed checkpoint.
    let published = std::fs::read_to_string(tiles.join("checkpoint")).unwrap();
    check_v2_checkpoint(&published, origin, &key);
    assert!(
        tiles.join("tile/entries/000.p/1").exists(),
        "the entry bundle is on the volume"
    );

    // A restart on the same directory keeps the log.
    support::keeper().stop(pid);
    serve(
        "rekor-v2-again",
        &built("rekor-tiles-server"),
        &args,
        ports[0],
    );
    let (status, again) = add_v2_entry(ports[0], b"after the restart").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        again["logIndex"].as_str(),
        Some("1"),
        "the log went on: {again}"
    );
    let envelope = again["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap();
    check_v2_checkpoint(envelope, origin, &key);
    assert_eq!(
        note(envelope).0.lines().nth(1),
        Some("2"),
        "two entries: {envelope}"
    );
}

/// A CA and two CodeSigning leaves it issued (each chain leaf first), as
/// Fulcio issues them.
fn fulcio_like_chains() -> (String, [Vec<Vec<u8>>; 2]) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let chain = || {
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        vec![leaf_cert.der().to_vec(), ca_cert.der().to_vec()]
    };
    (ca_cert.pem(), [chain(), chain()])
}

/// Submits `chain`; returns the SCT.
async fn add_chain(http: u16, chain: &[Vec<u8>]) -> serde_json::Value {
    let body = serde_json::json!({"chain": chain.iter().map(|c| b64(c)).collect::<Vec<_>>()});
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/ct/v1/add-chain"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "add-chain: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The leaf index in a static-ct SCT's extensions: type 0, length 5, index.
fn leaf_index(sct: &serde_json::Value) -> u64 {
    let ext = unb64(sct["extensions"].as_str().unwrap());
    assert_eq!(&ext[..3], &[0, 0, 5], "a leaf-index extension: {sct}");
    ext[3..8].iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

#[tokio::test]
async fn tesseract_logs_fulcios_chains_under_our_sec1_key_and_keeps_its_log() {
    let origin = "demo-tesseract.ns1.svc";
    let (root, [chain, second]) = fulcio_like_chains();
    // What createtesseract writes, mounted as the Pod mounts it.
    let data = createtesseract::generate(&root).unwrap();
    let key = PrivateKey::from_pem(&text(&data, "private"), None).unwrap();
    let keys = mount("tesseract-keys", &data);
    let storage = mount("tesseract-storage", &Data::new());
    let http = port();
    let args = vec![
        format!("--http_endpoint=127.0.0.1:{http}"),
        format!("--storage_dir={}", storage.display()),
        format!("--origin={origin}"),
        format!("--private_key={}", keys.join("private").display()),
        format!("--roots_pem_file={}", keys.join("roots.pem").display()),
        "--ext_key_usages=CodeSigning".into(),
    ];
    let pid = serve("tesseract", &built("tesseract"), &args, http);

    let sct = add_chain(http, &chain).await;
    // SCTs name the log by SHA-256 of its DER key, as the trust root does.
    assert_eq!(
        sct["id"].as_str().map(unb64),
        log_key_id(origin, &key.public_der),
        "{sct}"
    );
    assert_eq!(leaf_index(&sct), 0);
    let checkpoint = std::fs::read_to_string(storage.join("checkpoint")).unwrap();
    let (body, signatures) = note(&checkpoint);
    assert_eq!(body.lines().next(), Some(origin), "{checkpoint}");
    assert_eq!(signatures[0].0, origin, "{checkpoint}");

    // A restart on the same directory keeps the log: the next chain is the
    // second entry.
    support::keeper().stop(pid);
    serve("tesseract-again", &built("tesseract"), &args, http);
    let again = add_chain(http, &second).await;
    assert_eq!(leaf_index(&again), 1, "the log went on: {again}");
    // Only our root is trusted.
    let (_, [foreign, _]) = fulcio_like_chains();
    let refused = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/ct/v1/add-chain"))
        .json(&serde_json::json!({"chain": foreign.iter().map(|c| b64(c)).collect::<Vec<_>>()}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400, "a foreign root is refused");
}
