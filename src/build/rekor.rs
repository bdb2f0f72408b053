//! Rekor v1 and its Redis search index.

use k8s_openapi::api::core::v1::PodSpec;

use super::{
    Inputs, Object, meta, trillian,
    workload::{
        annotate_template, container, env_config_map, env_secret, mount, scratch, secret_volume,
        served,
    },
};
use crate::names::{self, Log, REKOR, REKOR_REDIS, TRILLIAN_LOG_SERVER};

/// Rekor's HTTP port in the container.
pub const PORT: i32 = 3000;
/// Redis's port.
pub const REDIS_PORT: i32 = 6379;
/// Where the signing key Secret is mounted.
const SIGNER_DIR: &str = "/var/run/rekor-secrets";

/// The in-cluster URL of the stack's Rekor.
pub fn url(owner: &meta::Owner) -> String {
    format!("http://{}", origin(owner))
}

/// The log's origin: the host of [`url`], stable across Pods.
pub fn origin(owner: &meta::Owner) -> String {
    owner.host_of(REKOR)
}

/// Where Rekor keeps attestations: an emptyDir mounted there.
const ATTESTATIONS: &str = "/var/run/attestations";

/// Rekor's and Redis's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    // Redis only holds the search index; it needs no persistence.
    let mut redis = container(
        "redis",
        &inputs.images.redis,
        vec![
            "--bind".into(),
            "0.0.0.0".into(),
            "--appendonly".into(),
            "no".into(),
            "--save".into(),
            String::new(),
        ],
        &[("redis", REDIS_PORT)],
    );
    redis.volume_mounts = Some(vec![mount("data", "/data", true)]);
    let redis_pod = PodSpec {
        containers: vec![redis],
        volumes: Some(vec![scratch("data")]),
        ..PodSpec::default()
    };

    let signer = names::rekor_signer(&owner.name);
    let mut rekor = container(
        "rekor",
        &inputs.images.rekor,
        vec![
            "serve".into(),
            format!(
                "--trillian_log_server.address={}",
                owner.host_of(TRILLIAN_LOG_SERVER)
            ),
            format!("--trillian_log_server.port={}", trillian::GRPC_PORT),
            // The gate: the Pod cannot start before createtree wrote this.
            "--trillian_log_server.tlog_id=$(TREE_ID)".into(),
            "--rekor_server.address=0.0.0.0".into(),
            // The checkpoint origin (`<hostname> - <tree ID>`): by default
            // the Pod's hostname, which changes with every Pod and matches
            // nothing clients know. The Service's host is the host of the
            // log's `baseUrl` in the trust root, which verifiers compare.
            format!("--rekor_server.hostname={}", origin(owner)),
            "--host=0.0.0.0".into(),
            format!("--port={PORT}"),
            format!("--redis_server.address={}", owner.host_of(REKOR_REDIS)),
            format!("--redis_server.port={REDIS_PORT}"),
            format!("--rekor_server.signer={SIGNER_DIR}/private"),
            "--rekor_server.signer-passwd=$(SIGNER_PASSWORD)".into(),
            "--enable_retrieve_api=true".into(),
            "--log_type=prod".into(),
            "--enable_attestation_storage=true".into(),
            // The directory must exist: Rekor refuses to start otherwise.
            format!("--attestation_storage_bucket=file://{ATTESTATIONS}"),
        ],
        &[("http", PORT)],
    );
    rekor.env = Some(vec![
        env_config_map(
            "TREE_ID",
            &names::log_config(&owner.name, Log::Rekor),
            names::TREE_ID_KEY,
        ),
        env_secret("SIGNER_PASSWORD", &signer, "password"),
    ]);
    rekor.volume_mounts = Some(vec![
        mount("signer", SIGNER_DIR, false),
        mount("tmp", "/tmp", true),
        mount("attestations", ATTESTATIONS, true),
    ]);
    let rekor_pod = PodSpec {
        containers: vec![rekor],
        volumes: Some(vec![
            secret_volume("signer", &signer, &[("private", "private")]),
            scratch("tmp"),
            scratch("attestations"),
        ]),
        ..PodSpec::default()
    };
    let redis_ports = [("redis", REDIS_PORT, REDIS_PORT)];
    let mut out = Vec::from(served(
        owner,
        REKOR_REDIS,
        meta::DB_USER,
        redis_pod,
        &redis_ports,
    ));
    let mut rekor = served(
        owner,
        REKOR,
        meta::NONROOT_USER,
        rekor_pod,
        &[("http", 80, PORT)],
    );
    // Rekor reads its tree ID once: a replaced tree restarts it.
    if let Some(id) = inputs.healed_trees.get(&Log::Rekor) {
        annotate_template(&mut rekor[0], meta::TREE_ID_ANNOTATION, id.to_string());
    }
    out.extend(rekor);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::SigstoreStackSpec, build::tests::inputs};

    #[test]
    fn rekor_is_gated_on_its_tree_and_key() {
        let spec = SigstoreStackSpec::default();
        let objects = objects(&inputs(&spec));
        let Object::Deployment(d) = &objects[2] else {
            panic!("expected Rekor's Deployment")
        };
        let json = serde_json::to_value(d).unwrap();
        let c = &json["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["env"][0]["valueFrom"]["configMapKeyRef"],
            serde_json::json!({"name": "demo-rekor-config", "key": "treeID", "optional": false})
        );
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--trillian_log_server.address=demo-trillian-log-server.ns1.svc"));
        assert!(args.contains(&"--redis_server.address=demo-rekor-redis.ns1.svc"));
        // The checkpoint origin is the host of the trust root's baseUrl.
        assert!(args.contains(&"--rekor_server.hostname=demo-rekor.ns1.svc"));
        assert_eq!(
            format!("http://{}", origin(&inputs(&spec).owner)),
            url(&inputs(&spec).owner)
        );
        let volume = &json["spec"]["template"]["spec"]["volumes"][0]["secret"];
        assert_eq!(volume["secretName"], "demo-rekor-signer");
        assert_eq!(volume["items"][0]["key"], "private");
    }
}
