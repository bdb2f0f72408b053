//! The timestamp authority: timestamp-server with the file signer, on the
//! key and chain createcertchain wrote.

use k8s_openapi::api::core::v1::PodSpec;

use super::{
    Inputs, Object, meta,
    workload::{container, env_secret, mount, secret_volume, served},
};
use crate::names::{self, TSA};

/// timestamp-server's HTTP port in the container.
pub const PORT: i32 = 3000;
/// Where the key and chain are mounted.
const DIR: &str = "/var/run/tsa-secrets";

/// The in-cluster URL of the stack's TSA (clients add
/// `/api/v1/timestamp`).
pub fn url(owner: &meta::Owner) -> String {
    format!("http://{}", owner.host_of(TSA))
}

/// timestamp-server's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    let secret = names::tsa_secret(&owner.name);
    let mut server = container(
        "timestamp-server",
        &inputs.images.tsa,
        vec![
            "serve".into(),
            // Outside Knative nothing sets PORT, so both are explicit.
            "--host=0.0.0.0".into(),
            format!("--port={PORT}"),
            "--timestamp-signer=file".into(),
            format!("--file-signer-key-path={DIR}/private"),
            "--file-signer-passwd=$(PASSWORD)".into(),
            format!("--certificate-chain-path={DIR}/cert-chain"),
        ],
        &[("http", PORT)],
    );
    server.env = Some(vec![env_secret("PASSWORD", &secret, "password")]);
    server.volume_mounts = Some(vec![mount("keys", DIR, false)]);
    let pod = PodSpec {
        containers: vec![server],
        volumes: Some(vec![secret_volume(
            "keys",
            &secret,
            &[("private", "private"), ("cert-chain", "cert-chain")],
        )]),
        ..PodSpec::default()
    };
    served(owner, TSA, meta::NONROOT_USER, pod, &[("http", 80, PORT)]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::SigstoreStackSpec, build::tests::inputs};

    #[test]
    fn tsa_is_gated_on_its_key_and_chain() {
        let spec = SigstoreStackSpec::default();
        let json = serde_json::to_value(&objects(&inputs(&spec))[0]).unwrap();
        let pod = &json["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "demo-tsa");
        assert_eq!(
            pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"],
            "password"
        );
        let args = pod["containers"][0]["args"].to_string();
        assert!(
            args.contains("--port=3000") && args.contains("--timestamp-signer=file"),
            "{args}"
        );
    }
}
