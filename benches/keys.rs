//! Cost of the stages' pure work: key generation, encryption, the CA, the
//! CT config and the TUF repository. `make bench` prints the figures; nothing is asserted.

use std::time::Duration;

use sigstore_operator::{
    api::KeyAlgorithm,
    keys::{PrivateKey, random_password},
    stage::{
        createcerts::{CaSpec, generate},
        createctconfig::{ConfigInputs, render_config},
    },
};

mod common;

fn bench(name: &str, budget: Duration, f: impl FnMut()) {
    common::bench(name, budget, "ms", f);
}

fn main() {
    let budget = Duration::from_secs(2);
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa3072,
    ] {
        bench(&format!("generate key {alg:?}"), budget, || {
            PrivateKey::generate(alg).expect("key");
        });
    }
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let password = random_password();
    bench("encrypt key (PBES2, 100k PBKDF2 rounds)", budget, || {
        key.encrypted_pem(&password).expect("encrypt");
    });
    let pem = key.encrypted_pem(&password).expect("encrypt");
    bench("decrypt key", budget, || {
        PrivateKey::from_pem(&pem, Some(&password)).expect("decrypt");
    });
    let spec = CaSpec {
        common_name: "bench".into(),
        organization: "bench".into(),
        validity: Duration::from_secs(3600 * 87600),
        algorithm: KeyAlgorithm::EcdsaP256,
    };
    bench("createcerts core (P-256 CA)", budget, || {
        generate(&spec, time::OffsetDateTime::now_utc()).expect("CA");
    });
    let roots: Vec<String> = (0..4).map(|i| format!("fulcio-{i}")).collect();
    bench(
        "createctconfig core (render config)",
        Duration::from_millis(500),
        || {
            let _ = render_config(&ConfigInputs {
                tree_id: 1,
                prefix: "sigstorescaffolding",
                trillian: "demo-trillian.ns.svc:8090",
                keys_dir: "/ctfe-keys",
                roots: &roots,
                private_der: key.pkcs8_der(),
                public_der: &key.public_der,
            });
        },
    );
    tuf(budget);
}

/// createtuf's core: signing a new repository of a typical trust root's
/// targets, and a run with nothing new or due.
fn tuf(budget: Duration) {
    use sigstore_operator::tuf::{
        Expiry,
        keys::{KeySet, generate},
        repo::{Files, build},
        targets::TargetFile,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let keys = KeySet::from_data(&generate().expect("keys")).expect("key set");
    let targets: Vec<TargetFile> = [
        "trusted_root.json",
        "fulcio_v1.crt.pem",
        "rekor.pub",
        "ctfe.pub",
    ]
    .iter()
    .map(|name| TargetFile {
        name: (*name).into(),
        content: "x".repeat(2048),
        custom: None,
    })
    .collect();
    let year = Duration::from_secs(365 * 24 * 3600);
    let expiry = Expiry {
        root: year * 10,
        targets: year * 10,
        snapshot: year,
        timestamp: year,
    };
    let now = k8s_openapi::jiff::Timestamp::now;
    bench("createtuf core (sign a new repository)", budget, || {
        rt.block_on(build(&Files::new(), &targets, &keys, &expiry, now()))
            .expect("repository");
    });
    let built = rt
        .block_on(build(&Files::new(), &targets, &keys, &expiry, now()))
        .expect("repository");
    bench("createtuf core (re-run, nothing due)", budget, || {
        rt.block_on(build(&built.files, &targets, &keys, &expiry, now()))
            .expect("repository");
    });
}
