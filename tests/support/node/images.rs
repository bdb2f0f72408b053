//! The image table: which local program an image reference runs, and
//! the mirror a mirror-only node pulls from.

use super::*;

/// cosign's image (ghcr.io/sigstore/cosign/cosign, published by cosign's
/// release), at the version `hack/versions.env` builds as `cosign3`.
pub const COSIGN_IMAGE: &str = "ghcr.io/sigstore/cosign/cosign:v3.1.3@sha256:9e5c2f2edc34351160407ca3416c61855bdf9403c3c5936e0f0be7fc261611b8";

/// Where an image's programs are on this machine.
#[derive(Clone, Debug, Default)]
pub struct Images {
    /// Image repository (no tag or digest) → its entrypoint, as local
    /// programs and fixed leading arguments.
    pub entrypoints: BTreeMap<String, Vec<String>>,
    /// Absolute program paths inside images → local programs.
    pub paths: BTreeMap<String, String>,
    /// Image repository → programs a `command` may name in that image (on
    /// its PATH) → local programs.
    pub programs: BTreeMap<String, BTreeMap<String, String>>,
    /// The only registry the node reaches, when it is mirror-only.
    pub mirror: Option<Mirror>,
}

impl Images {
    /// The command line for `c`, as the kubelet builds it: `command` (or
    /// the image's entrypoint) then `args`, `$(VAR)` expanded.
    pub(super) fn argv(
        &self,
        c: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<String>, String> {
        let image = c.image.clone().unwrap_or_default();
        let repo = repository(&image);
        let mut argv: Vec<String> = match &c.command {
            Some(cmd) if !cmd.is_empty() => cmd.iter().map(|a| expand(a, env)).collect(),
            _ => self
                .entrypoints
                .get(&repo)
                .cloned()
                .ok_or_else(|| format!("no local program for image {image}"))?,
        };
        argv.extend(c.args.iter().flatten().map(|a| expand(a, env)));
        let in_image = self.programs.get(&repo).and_then(|p| p.get(&argv[0]));
        if let Some(local) = in_image.or_else(|| self.paths.get(&argv[0])) {
            argv[0] = local.clone();
        }
        Ok(argv)
    }
}

impl Images {
    /// The first container whose image no registry holds, as containerd
    /// says it: an image this node has no program for and that names no
    /// command (a named command runs the node's own program).
    pub(super) fn missing(
        &self,
        pod: &k8s_openapi::api::core::v1::PodSpec,
    ) -> Option<(String, String)> {
        let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
        containers
            .filter(|c| c.command.as_ref().is_none_or(Vec::is_empty))
            .find(|c| {
                let repo = repository(c.image.as_deref().unwrap_or_default());
                !self.entrypoints.contains_key(&repo) && !self.programs.contains_key(&repo)
            })
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                (
                    c.name.clone(),
                    format!(
                        "failed to pull and unpack image \"{image}\": failed to resolve reference \
                         \"{image}\": not found"
                    ),
                )
            })
    }

    /// This table behind `mirror`, holding what a user copied into it:
    /// each `(upstream, mirrored)` pair of `copies` (as `sigstore-operator
    /// images --image-registry` prints them) and the operator's own image,
    /// pushed as `<mirror>/sigstore-operator`. Nothing else can be pulled.
    pub fn behind(self, mirror: Mirror, copies: &[(String, String)]) -> Self {
        let mut entrypoints = BTreeMap::new();
        let mut programs = BTreeMap::new();
        for (upstream, mirrored) in copies {
            if let Some(argv) = self.entrypoints.get(&repository(upstream)) {
                entrypoints.insert(repository(mirrored), argv.clone());
            }
            if let Some(p) = self.programs.get(&repository(upstream)) {
                programs.insert(repository(mirrored), p.clone());
            }
        }
        if let Some(argv) = self.entrypoints.get("sigstore-operator") {
            entrypoints.insert(format!("{}/sigstore-operator", mirror.prefix), argv.clone());
        }
        Self {
            entrypoints,
            paths: self.paths,
            programs,
            mirror: Some(mirror),
        }
    }

    /// The table for the operator's images: each pinned image of
    /// `src/build/images.rs` → the program built from the Go module proxy
    /// or installed from apt; the operator's own image → this binary.
    pub fn local() -> Self {
        use sigstore_operator::build::images as pinned;
        let tool = |name: &str| super::super::servers::built(name).display().to_string();
        let script = |name: &str| {
            super::super::repo_root()
                .join("tests/support/images")
                .join(name)
                .display()
                .to_string()
        };
        let entrypoints = [
            (pinned::MARIADB, vec!["sh".to_owned(), script("mariadb.sh")]),
            (
                pinned::TRILLIAN_LOG_SERVER,
                vec![tool("trillian_log_server")],
            ),
            (
                pinned::TRILLIAN_LOG_SIGNER,
                vec![tool("trillian_log_signer")],
            ),
            // The image's entrypoint runs redis-server for `--` args.
            (pinned::REDIS, vec!["redis-server".to_owned()]),
            (pinned::REKOR, vec![tool("rekor-server")]),
            (pinned::CTLOG, vec![tool("ct_server")]),
            // ko's entrypoint, /ko-app/posix.
            (pinned::TESSERACT, vec![tool("tesseract")]),
            (pinned::FULCIO, vec![tool("fulcio")]),
            (pinned::TSA, vec![tool("timestamp-server")]),
            // cosign 3's image, for clients in Pods (the tests' own Jobs
            // and config/samples/clients).
            (COSIGN_IMAGE, vec![tool("cosign3")]),
            // The operator's own image, as config/manager names it.
            (
                "sigstore-operator:dev",
                vec![super::super::operator_bin().display().to_string()],
            ),
        ]
        .into_iter()
        .map(|(image, argv)| (repository(image), argv))
        .collect();
        // rekor-tiles' image has no entrypoint: its Pods name `rekor-server`,
        // on the image's PATH.
        let programs = BTreeMap::from([(
            repository(pinned::REKOR_V2),
            BTreeMap::from([("rekor-server".to_owned(), tool("rekor-tiles-server"))]),
        )]);
        Self {
            mirror: None,
            programs,
            entrypoints,
            paths: BTreeMap::from([(
                sigstore_operator::names::OPERATOR_BINARY.to_owned(),
                super::super::operator_bin().display().to_string(),
            )]),
        }
    }
}

/// `registry/repo` of an image reference, without tag or digest.
pub fn repository(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => no_digest.to_owned(),
    }
}
