//! Fulcio with the file CA createcerts wrote, trusting the cluster's
//! service-account issuer and the spec's issuers, logging to this stack's
//! CT log.

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, ServiceAccount};

use super::{
    Inputs, Object, ctlog, meta,
    workload::{config_map_volume, container, env_secret, mount, secret_volume, served},
};
use crate::{
    fulcio_config,
    names::{self, FULCIO, FULCIO_CONFIG},
};

/// Fulcio's HTTP port in the container.
pub const PORT: i32 = 5555;
/// Fulcio's gRPC port.
pub const GRPC_PORT: i32 = 5554;

/// The in-cluster URL of the stack's Fulcio.
pub fn url(owner: &meta::Owner) -> String {
    format!("http://{}", owner.host_of(FULCIO))
}

/// Fulcio's objects.
pub fn objects(inputs: &Inputs<'_>) -> Result<Vec<Object>, serde_yaml::Error> {
    let owner = &inputs.owner;
    let spec = &inputs.spec.fulcio;
    let config = fulcio_config::render(spec, inputs.cluster_issuer)?;
    // Whichever CT log runs; empty turns CT submission off (Fulcio's
    // default is a local URL).
    let ct_log_url = match super::component::CtBackend::wanted(inputs.spec) {
        Some(super::component::CtBackend::Trillian) => ctlog::url(owner, &inputs.spec.ctlog.prefix),
        Some(super::component::CtBackend::Tesseract) => super::tesseract::url(owner),
        None => String::new(),
    };
    let mut server = container(
        "fulcio",
        &inputs.images.fulcio,
        vec![
            "serve".into(),
            "--host=0.0.0.0".into(),
            format!("--port={PORT}"),
            format!("--grpc-port={GRPC_PORT}"),
            "--ca=fileca".into(),
            "--fileca-key=/var/run/fulcio-secrets/key.pem".into(),
            "--fileca-cert=/var/run/fulcio-secrets/cert.pem".into(),
            "--fileca-key-passwd=$(PASSWORD)".into(),
            format!("--ct-log-url={ct_log_url}"),
            "--config-path=/etc/fulcio-config/config.yaml".into(),
        ],
        &[("http", PORT), ("grpc", GRPC_PORT)],
    );
    server.env = Some(vec![env_secret(
        "PASSWORD",
        &names::fulcio_ca(&owner.name),
        "password",
    )]);
    server.volume_mounts = Some(vec![
        mount("ca", "/var/run/fulcio-secrets", false),
        mount("config", "/etc/fulcio-config", false),
        // Fulcio reads this fixed path as the CA of the cluster's issuer.
        mount("cluster-ca", "/var/run/fulcio", false),
    ]);
    let pod = PodSpec {
        containers: vec![server],
        volumes: Some(vec![
            secret_volume(
                "ca",
                &names::fulcio_ca(&owner.name),
                &[("private", "key.pem"), ("cert", "cert.pem")],
            ),
            config_map_volume(
                "config",
                &owner.name_of(FULCIO_CONFIG),
                &[("config.yaml", "config.yaml")],
            ),
            config_map_volume("cluster-ca", "kube-root-ca.crt", &[("ca.crt", "ca.crt")]),
        ]),
        // Its token lets Fulcio read the cluster's OIDC discovery and JWKS.
        service_account_name: Some(owner.name_of(FULCIO)),
        automount_service_account_token: Some(spec.trust_cluster_issuer),
        ..PodSpec::default()
    };
    let mut out = vec![
        Object::ServiceAccount(ServiceAccount {
            metadata: owner.meta(owner.name_of(FULCIO), FULCIO),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }),
        Object::ConfigMap(ConfigMap {
            metadata: owner.meta(owner.name_of(FULCIO_CONFIG), FULCIO),
            data: Some([("config.yaml".to_owned(), config)].into()),
            ..ConfigMap::default()
        }),
    ];
    let ports = [("http", 80, PORT), ("grpc", GRPC_PORT, GRPC_PORT)];
    out.extend(served(owner, FULCIO, meta::NONROOT_USER, pod, &ports));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::SigstoreStackSpec, build::tests::inputs};

    #[test]
    fn fulcio_trusts_the_cluster_and_logs_to_this_stack() {
        let spec = SigstoreStackSpec::default();
        let objects = objects(&inputs(&spec)).unwrap();
        let Object::ConfigMap(cm) = &objects[1] else {
            panic!("expected the config")
        };
        let config = &cm.data.as_ref().unwrap()["config.yaml"];
        assert!(
            config.contains("https://kubernetes.default.svc.cluster.local"),
            "{config}"
        );
        let json = serde_json::to_string(&objects[2]).unwrap();
        assert!(
            json.contains("--ct-log-url=http://demo-ctlog.ns1.svc/sigstorescaffolding"),
            "{json}"
        );
        assert!(json.contains("\"secretName\":\"demo-fulcio-ca\""));
    }

    #[test]
    fn no_ct_log_means_no_submission() {
        let mut spec = SigstoreStackSpec::default();
        spec.ctlog.enabled = false;
        let objects = objects(&inputs(&spec)).unwrap();
        let json = serde_json::to_string(&objects[2]).unwrap();
        assert!(json.contains("\"--ct-log-url=\""), "{json}");
        spec.ctlog.enabled = true;
        spec.ctlog.backend = crate::api::CtLogBackend::Tesseract;
        let json = serde_json::to_string(&super::objects(&inputs(&spec)).unwrap()).unwrap();
        assert!(
            json.contains("--ct-log-url=http://demo-tesseract.ns1.svc\""),
            "Fulcio submits to whichever CT log runs: {json}"
        );
    }
}
