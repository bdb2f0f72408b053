//! The TUF repository server: the operator's own binary (`serve-tuf`)
//! serving the repository ConfigMap createtuf writes.

use k8s_openapi::{
    api::core::v1::{ConfigMapVolumeSource, HTTPGetAction, PodSpec, Probe, Volume},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    Inputs, Object, meta,
    workload::{container, mount, served},
};
use crate::names::{self, TUF};

/// serve-tuf's port in the container.
pub const PORT: i32 = 8080;
/// Where the repository is mounted.
const DIR: &str = "/var/run/tuf";

/// The in-cluster URL of the stack's TUF repository (a TUF mirror).
pub fn url(owner: &meta::Owner) -> String {
    format!("http://{}", owner.host_of(TUF))
}

/// The TUF server's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    let mut server = container(
        "tuf",
        &inputs.images.tuf,
        vec![
            "serve-tuf".into(),
            format!("--dir={DIR}"),
            format!("--http-addr=0.0.0.0:{PORT}"),
        ],
        &[("http", PORT)],
    );
    server.command = Some(vec![crate::names::OPERATOR_BINARY.into()]);
    // Ready once there is a repository to serve, not merely a socket.
    server.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/readyz".into()),
            port: IntOrString::Int(PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    });
    server.volume_mounts = Some(vec![mount("repository", DIR, false)]);
    // The whole ConfigMap: its file names change with every signing, so
    // they cannot be listed as items.
    let volume = Volume {
        name: "repository".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::tuf_repository(&owner.name),
            optional: Some(false),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let pod = PodSpec {
        containers: vec![server],
        volumes: Some(vec![volume]),
        ..PodSpec::default()
    };
    served(owner, TUF, meta::NONROOT_USER, pod, &[("http", 80, PORT)]).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::SigstoreStackSpec, build::tests::inputs};

    #[test]
    fn tuf_serves_the_repository_config_map() {
        let spec = SigstoreStackSpec::default();
        let json = serde_json::to_value(&objects(&inputs(&spec))[0]).unwrap();
        let pod = &json["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0]["configMap"]["name"],
            "demo-tuf-repository"
        );
        assert_eq!(pod["containers"][0]["image"], "sigstore-operator:dev");
        assert_eq!(
            pod["containers"][0]["command"][0],
            crate::names::OPERATOR_BINARY
        );
        assert_eq!(
            pod["containers"][0]["readinessProbe"]["httpGet"]["path"],
            "/readyz"
        );
    }
}
