//! TesseraCT (POSIX): the CT log on tiles, its checkpoints signed under its
//! origin `<stack>-tesseract.<ns>.svc`, trusting every Fulcio root the
//! stack ever had.

use super::{
    Inputs, Object, meta, tiles,
    workload::{annotate_template, container, mount, secret_volume},
};
use crate::names::{self, TESSERACT, TESSERACT_ROOTS_KEY as ROOTS_KEY};

/// TesseraCT's HTTP port in the container.
pub const PORT: i32 = 6962;
/// Where its Secret is mounted.
const KEYS_DIR: &str = "/var/run/tesseract-keys";
/// Annotation on the Pod template with the roots it trusts: a new root
/// restarts it, since it reads its roots file at start.
const ROOTS_ANNOTATION: &str = "scaffolding.sigstore.dev/tesseract-roots";

/// The in-cluster URL of the stack's TesseraCT (Fulcio's `--ct-log-url`).
pub fn url(owner: &meta::Owner) -> String {
    tiles::url(owner, TESSERACT)
}

/// The log's origin, the host of [`url`].
pub fn origin(owner: &meta::Owner) -> String {
    owner.host_of(TESSERACT)
}

/// TesseraCT's objects.
pub fn objects(inputs: &Inputs<'_>) -> Vec<Object> {
    let owner = &inputs.owner;
    let secret = names::tesseract_secret(&owner.name);
    let mut server = container(
        "tesseract",
        &inputs.images.tesseract,
        vec![
            format!("--http_endpoint=0.0.0.0:{PORT}"),
            format!("--storage_dir={}", tiles::DIR),
            format!("--origin={}", origin(owner)),
            format!("--private_key={KEYS_DIR}/private"),
            format!("--roots_pem_file={KEYS_DIR}/{ROOTS_KEY}"),
            "--ext_key_usages=CodeSigning".into(),
        ],
        &[("http", PORT)],
    );
    server.readiness_probe = Some(tiles::http_probe("/healthz", PORT));
    server.volume_mounts = Some(vec![mount("keys", KEYS_DIR, false)]);
    let mut out = tiles::objects(
        inputs,
        TESSERACT,
        server,
        (PORT, "/ct/"),
        vec![secret_volume(
            "keys",
            &secret,
            &[("private", "private"), (ROOTS_KEY, ROOTS_KEY)],
        )],
        inputs.spec.ctlog.tesseract.storage.as_ref(),
    );
    if let Some(d) = out.first_mut() {
        annotate_template(d, ROOTS_ANNOTATION, inputs.tesseract_roots.join(","));
    }
    out
}
