//! Cost of the stages' pure work: key generation, encryption, the CA and
//! the CT config. `make bench` prints the figures; nothing is asserted.

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
}
