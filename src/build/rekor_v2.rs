//! Rekor v2 (rekor-tiles, POSIX): its tiles on a volume, its checkpoints
//! signed under its origin `<stack>-rekor-v2.<ns>.svc`.

use super::{
    Inputs, Object, meta, tiles,
    workload::{container, env_secret, mount, secret_volume},
};
use crate::names::{self, REKOR_V2};

/// rekor-server's HTTP port in the container.
pub const PORT: i32 = 3000;
/// Its gRPC port, bound to the Pod's loopback: clients use HTTP.
const GRPC_PORT: i32 = 3001;
/// Its metrics port.
const METRICS_PORT: i32 = 2112;
/// Where the signing key Secret is mounted.
const SIGNER_DIR: &str = "/var/run/rekor-secrets";

/// The in-cluster URL of the stack's Rekor v2 (its `baseUrl`).
pub fn url(owner: &meta::Owner) -> String {
    tiles::url(owner, REKOR_V2)
}

/// The log's origin, the host of [`url`].
pub fn origin(owner: &meta::Owner) -> String {
    owner.host_of(REKOR_V2)
}

/// Rekor v2's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    let signer = names::rekor_v2_signer(&owner.name);
    let mut server = container(
        "rekor",
        &inputs.images.rekor_v2,
        vec![
            "serve".into(),
            "--http-address=0.0.0.0".into(),
            format!("--http-port={PORT}"),
            "--grpc-address=127.0.0.1".into(),
            format!("--grpc-port={GRPC_PORT}"),
            format!("--http-metrics-port={METRICS_PORT}"),
            // The checkpoint origin; by default the Pod's hostname.
            format!("--hostname={}", origin(owner)),
            format!("--signer-filepath={SIGNER_DIR}/private"),
            // rekor-tiles reads its password from this flag only.
            "--signer-password=$(SIGNER_PASSWORD)".into(),
            "--checkpoint-interval=2s".into(),
            "--persistent-antispam".into(),
            format!("--storage-dir={}", tiles::DIR),
        ],
        &[("http", PORT), ("metrics", METRICS_PORT)],
    );
    // The image has no entrypoint, only `CMD ["rekor-server", "serve"]`.
    server.command = Some(vec!["rekor-server".into()]);
    server.readiness_probe = Some(tiles::http_probe("/healthz", PORT));
    server.env = Some(vec![env_secret("SIGNER_PASSWORD", &signer, "password")]);
    server.volume_mounts = Some(vec![mount("signer", SIGNER_DIR, false)]);
    tiles::objects(
        inputs,
        REKOR_V2,
        server,
        (PORT, "/api/"),
        vec![secret_volume("signer", &signer, &[("private", "private")])],
        inputs.spec.rekor.v2.storage.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{RekorGeneration, SigstoreStackSpec},
        build::tests::inputs,
    };

    #[test]
    fn signs_under_its_service_host_and_serves_its_tiles_beside_it() {
        let mut spec = SigstoreStackSpec::default();
        spec.rekor.generation = RekorGeneration::V2;
        let objects = objects(&inputs(&spec));
        let json = serde_json::to_string(&objects).unwrap();
        assert!(json.contains("--hostname=demo-rekor-v2.ns1.svc"), "{json}");
        assert!(json.contains("\"serve-tiles\""), "{json}");
        assert!(json.contains("\"emptyDir\""), "no storage: an emptyDir");
        let Object::Service(service) = &objects[1] else {
            panic!("a Service")
        };
        let ports = service.spec.as_ref().unwrap().ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1, "one URL for writes and reads");
        assert_eq!(ports[0].port, 80, "the baseUrl has no port");
        assert!(
            json.contains("--forward=/api/=http://127.0.0.1:3000"),
            "{json}"
        );
        assert_eq!(url(&inputs(&spec).owner), "http://demo-rekor-v2.ns1.svc");
        spec.rekor.v2.storage = Some(crate::api::DatabaseStorage {
            size: "1Gi".into(),
            storage_class_name: None,
        });
        let json = serde_json::to_string(&super::objects(&inputs(&spec))).unwrap();
        assert!(json.contains("\"claimName\":\"demo-rekor-v2\""), "{json}");
    }
}
