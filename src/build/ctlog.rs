//! The CT log: ct_server, configured by createctconfig's Secret.

use k8s_openapi::api::core::v1::PodSpec;

use super::{
    Inputs, Object, meta,
    workload::{annotate_template, container, mount, secret_volume, served},
};
use crate::{
    names::CTLOG_KEYS_DIR,
    names::{self, CTLOG},
};

/// ct_server's HTTP port in the container.
pub const PORT: i32 = 6962;

/// The in-cluster URL of the stack's CT log, prefix included (Fulcio's
/// `--ct-log-url`).
pub fn url(owner: &meta::Owner, prefix: &str) -> String {
    format!("http://{}/{prefix}", owner.host_of(CTLOG))
}

/// ct_server's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    let mut server = container(
        "ct-server",
        &inputs.images.ctlog,
        vec![
            format!("--http_endpoint=0.0.0.0:{PORT}"),
            format!("--log_config={CTLOG_KEYS_DIR}/config"),
        ],
        &[("http", PORT)],
    );
    server.volume_mounts = Some(vec![mount("keys", CTLOG_KEYS_DIR, false)]);
    // The config names every trusted root file; each must be mounted. The
    // private key is inline in the config, so `private` is not.
    let mut keys = vec![("config", "config")];
    let roots: Vec<&str> = if inputs.ctlog_roots.is_empty() {
        vec!["fulcio-0"]
    } else {
        inputs.ctlog_roots.iter().map(String::as_str).collect()
    };
    keys.extend(roots.iter().map(|r| (*r, *r)));
    let pod = PodSpec {
        containers: vec![server],
        volumes: Some(vec![secret_volume(
            "keys",
            &names::ctlog_secret(&owner.name),
            &keys,
        )]),
        ..PodSpec::default()
    };
    let mut out = served(owner, CTLOG, meta::NONROOT_USER, pod, &[("http", 80, PORT)]);
    // ct_server reads its config once: a replaced tree restarts it.
    if let Some(id) = inputs.healed_trees.get(&names::Log::Ctlog) {
        annotate_template(&mut out[0], meta::TREE_ID_ANNOTATION, id.to_string());
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::SigstoreStackSpec, build::tests::inputs};

    #[test]
    fn every_trusted_root_is_mounted() {
        let spec = SigstoreStackSpec::default();
        let mut i = inputs(&spec);
        i.ctlog_roots = vec!["fulcio-0".into(), "fulcio-1".into()];
        let Object::Deployment(d) = &objects(&i)[0] else {
            panic!("expected a Deployment")
        };
        let json = serde_json::to_value(d).unwrap();
        let items = &json["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"];
        let keys: Vec<&str> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["config", "fulcio-0", "fulcio-1"]);
        assert_eq!(url(&i.owner, "p"), "http://demo-ctlog.ns1.svc/p");
    }
}
