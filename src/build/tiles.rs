//! What the two tile-based logs (Rekor v2 and TesseraCT) share: their
//! volume, the front beside the server (the operator's `serve-tiles`: the
//! read path over the same volume, read-only, and the write API forwarded
//! to the server) and their Service, whose host is the log's origin. One
//! URL serves writes and reads, as the public logs do.

use k8s_openapi::{
    api::core::v1::{Container, HTTPGetAction, PodSpec, Probe, Volume},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::component::{Component, CtBackend, RekorBackend};
use super::{
    Inputs, Object, meta,
    workload::{container, mount, served, storage_volume},
};
use crate::api::{DatabaseStorage, SigstoreStackSpec};

/// The front's port in the container; the Service's port 80 goes there.
pub const FRONT_PORT: i32 = 8080;
/// Where the log's volume is mounted.
pub const DIR: &str = "/var/run/tiles";

/// Where `component` keeps its tiles under `spec`: `Some` for a tile-based
/// log (holding its claim's storage, or `None` for an emptyDir), `None`
/// for any other component.
pub fn storage(component: Component, spec: &SigstoreStackSpec) -> Option<Option<&DatabaseStorage>> {
    match component {
        Component::Rekor(RekorBackend::Tiles) => Some(spec.rekor.v2.storage.as_ref()),
        Component::Ctlog(CtBackend::Tesseract) => Some(spec.ctlog.tesseract.storage.as_ref()),
        Component::Rekor(RekorBackend::Trillian)
        | Component::Ctlog(CtBackend::Trillian)
        | Component::Trillian
        | Component::Fulcio
        | Component::Tsa
        | Component::Tuf
        | Component::SelfCheck => None,
    }
}

/// The log's in-cluster URL: `http://<origin>`, so the host of its
/// `baseUrl` in the trust root is its checkpoint origin.
pub fn url(owner: &meta::Owner, part: &str) -> String {
    format!("http://{}", owner.host_of(part))
}

/// An HTTP readiness probe on `path` at `port`.
pub fn http_probe(path: &str, port: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(2),
        ..Probe::default()
    }
}

/// The log's Deployment and Service: `server` (listening on `port`, with
/// the volume `tiles` mounted at [`DIR`]) and the front beside it, which
/// passes `api` (the write API's path prefix) on to the server; with
/// `volumes` (the log's own, e.g. its key) and the tiles volume.
pub fn objects(
    inputs: &Inputs<'_>,
    part: &str,
    mut server: Container,
    (port, api): (i32, &str),
    volumes: Vec<Volume>,
    storage: Option<&DatabaseStorage>,
) -> Vec<Object> {
    let owner = &inputs.owner;
    server
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(mount("tiles", DIR, true));
    let mut front = container(
        "front",
        &inputs.images.operator,
        vec![
            "serve-tiles".into(),
            format!("--dir={DIR}"),
            format!("--http-addr=0.0.0.0:{FRONT_PORT}"),
            format!("--forward={api}=http://127.0.0.1:{port}"),
        ],
        &[("http", FRONT_PORT)],
    );
    front.command = Some(vec![crate::names::OPERATOR_BINARY.into()]);
    front.readiness_probe = Some(http_probe("/readyz", FRONT_PORT));
    front.volume_mounts = Some(vec![mount("tiles", DIR, false)]);
    let mut all = volumes;
    all.push(storage_volume("tiles", owner, part, storage));
    let pod = PodSpec {
        containers: vec![server, front],
        volumes: Some(all),
        ..PodSpec::default()
    };
    served(
        owner,
        part,
        meta::NONROOT_USER,
        pod,
        &[("http", 80, FRONT_PORT)],
    )
    .into()
}
