//! The images a stack runs, pinned by digest in this one table, and where
//! they are pulled from. Each can be overridden per stack in the spec; the
//! operator's `--image-registry` moves every default to a mirror, and its
//! `--image-pull-secret`s go on every Pod a stack runs.
//!
//! Digests are the multi-arch index digests published for these tags (the
//! Sigstore ones as the sigstore/helm-charts pin them).

use crate::api::SigstoreStackSpec;

/// MariaDB 11.4 LTS (multi-arch), the embedded Trillian database.
pub const MARIADB: &str = "docker.io/library/mariadb:11.4.8@sha256:bc474f00629f0123c10f9e1bca193a45d18af15a274cf0656acda64f1086c3b6";
/// Trillian v1.7.3 log server.
pub const TRILLIAN_LOG_SERVER: &str = "ghcr.io/sigstore/scaffolding/trillian_log_server@sha256:5a878e4e4f03790d2dda4b07a551ff9832128b307447d4156255c73690aa2da3";
/// Trillian v1.7.3 log signer.
pub const TRILLIAN_LOG_SIGNER: &str = "ghcr.io/sigstore/scaffolding/trillian_log_signer@sha256:28c5ff40963f83ffdf4e2d9ea1e4e2c877c33cfb0ff068f3daad1c1080aad0ac";
/// Redis 6.2.17 (alpine), Rekor's search index.
pub const REDIS: &str = "docker.io/library/redis@sha256:148bb5411c184abd288d9aaed139c98123eeb8824c5d3fce03cf721db58066d8";
/// Rekor v1.5.4.
pub const REKOR: &str = "ghcr.io/sigstore/rekor/rekor-server:v1.5.4@sha256:100d793d68d0e1ba9fea7df8503304cef1ca736c891bd074fcae3d450dd64169";
/// ct_server as scaffolding v0.7.31 publishes it.
pub const CTLOG: &str = "ghcr.io/sigstore/scaffolding/ct_server:v0.7.31@sha256:66664ba563e7c2564ba32fb5d0e8fdeb42d7f0d5ce45f0df5d80074daea5126c";
/// Fulcio v1.8.8 (not v1.8.6, which breaks `…svc.cluster.local` issuers).
pub const FULCIO: &str = "ghcr.io/sigstore/fulcio:v1.8.8@sha256:ef72cf56c64b7455ceda5268d1cc801b92992e7ce36b744b40b7761684d60753";

/// Rekor v2 (rekor-tiles) v2.2.1, POSIX, as sigstore/scaffolding deploys it
/// (config/rekor-tiles/rekor-tiles/300-rekor.yaml).
pub const REKOR_V2: &str = "ghcr.io/sigstore/rekor-tiles/posix:v2.2.1@sha256:627422bf9da146d1d9ff4e1c1e8301a1780ab6ad9b32bccff51ecd9f8c820e41";
/// TesseraCT v0.1.1, POSIX, as sigstore/scaffolding (config/ctlog/ctlog/
/// 300-ctlog.yaml) and Fulcio's Dockerfile.tesseract pin it.
pub const TESSERACT: &str = "ghcr.io/transparency-dev/tesseract/posix:v0.1.1@sha256:8269c32a1b1deb159ba75016421314cb5e68304c2813d444aca3efdf0e9d5027";

/// timestamp-server v2.1.0.
pub const TSA: &str = "ghcr.io/sigstore/timestamp-server:v2.1.0@sha256:8637f0482ed1ecb229b44ebd0afc760f6f57114a4d53c6953cf65c00218896b2";

/// Every pinned image, for a mirror to copy (`sigstore-operator images`).
pub const PINNED: [&str; 10] = [
    MARIADB,
    TRILLIAN_LOG_SERVER,
    TRILLIAN_LOG_SIGNER,
    REDIS,
    REKOR,
    REKOR_V2,
    CTLOG,
    TESSERACT,
    FULCIO,
    TSA,
];

/// Where the operator pulls images from: set once for the operator, the
/// same for every stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSource {
    /// Registry (and path) that holds copies of the default images under
    /// their upstream paths; `None` pulls each from its own registry.
    pub registry: Option<String>,
    /// Secrets of each stack's namespace that every Pod pulls with.
    pub pull_secrets: Vec<String>,
}

/// `image` pulled from `registry` instead of its own registry: the path,
/// tag and digest are kept, so `ghcr.io/sigstore/fulcio@sha256:…` becomes
/// `<registry>/sigstore/fulcio@sha256:…` (Docker Hub's `library/` stays).
pub fn mirrored(image: &str, registry: &str) -> String {
    let path = match image.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest.to_owned(),
        Some(_) => image.to_owned(),
        None => format!("library/{image}"),
    };
    format!("{}/{path}", registry.trim_end_matches('/'))
}

/// Checks a `--image-registry` value: a registry host with an optional
/// path, no scheme, tag or digest.
pub fn parse_registry(value: &str) -> Result<String, String> {
    let v = value.trim_end_matches('/');
    let host = v.split('/').next().unwrap_or_default();
    if v.is_empty() || v.contains("://") {
        return Err("expected a registry host and optional path, e.g. registry.example.com/sigstore-mirror (no https://)"
            .into());
    }
    if v.chars().any(|c| c.is_whitespace() || c == '@')
        || v.split('/')
            .skip(1)
            .any(|p| p.is_empty() || p.contains(':'))
        || host.is_empty()
    {
        return Err(format!(
            "{value:?} is not a registry host and path (no tag, digest or spaces), e.g. \
             registry.example.com/sigstore-mirror"
        ));
    }
    Ok(v.to_owned())
}

/// The images of one stack, after the spec's overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// The embedded database (also runs the schema init container).
    pub database: String,
    /// Trillian log server.
    pub log_server: String,
    /// Trillian log signer.
    pub log_signer: String,
    /// Redis.
    pub redis: String,
    /// Rekor.
    pub rekor: String,
    /// Rekor v2 (rekor-tiles).
    pub rekor_v2: String,
    /// ct_server.
    pub ctlog: String,
    /// TesseraCT.
    pub tesseract: String,
    /// Fulcio.
    pub fulcio: String,
    /// timestamp-server.
    pub tsa: String,
    /// The TUF server: the operator's own image unless overridden.
    pub tuf: String,
    /// The operator's own image (the logs' read path).
    pub operator: String,
    /// Secrets every Pod of the stack pulls with.
    pub pull_secrets: Vec<String>,
}

impl Images {
    /// The table's images, from `source`'s registry when it names one, with
    /// `spec`'s overrides applied as written. The operator's own image (the
    /// TUF server's default) is used as given.
    pub fn for_spec(spec: &SigstoreStackSpec, operator_image: &str, source: &ImageSource) -> Self {
        let pick = |o: &Option<String>, default: &str| {
            o.clone().unwrap_or_else(|| match &source.registry {
                Some(registry) => mirrored(default, registry),
                None => default.into(),
            })
        };
        Self {
            database: pick(&spec.trillian.database.image, MARIADB),
            log_server: pick(&spec.trillian.log_server.image, TRILLIAN_LOG_SERVER),
            log_signer: pick(&spec.trillian.log_signer.image, TRILLIAN_LOG_SIGNER),
            redis: pick(&spec.rekor.redis_image, REDIS),
            rekor: pick(&spec.rekor.image, REKOR),
            rekor_v2: pick(&spec.rekor.v2.image, REKOR_V2),
            ctlog: pick(&spec.ctlog.image, CTLOG),
            tesseract: pick(&spec.ctlog.tesseract.image, TESSERACT),
            fulcio: pick(&spec.fulcio.image, FULCIO),
            tsa: pick(&spec.tsa.image, TSA),
            tuf: spec
                .tuf
                .image
                .clone()
                .unwrap_or_else(|| operator_image.into()),
            operator: operator_image.into(),
            pull_secrets: source.pull_secrets.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_pinned_by_digest() {
        for image in PINNED {
            let (_, digest) = image.split_once("@sha256:").expect(image);
            assert_eq!(digest.len(), 64, "{image}");
            assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{image}");
        }
    }

    #[test]
    fn spec_overrides_win() {
        let mut spec = SigstoreStackSpec::default();
        spec.fulcio.image = Some("example.com/fulcio:dev".into());
        let images = Images::for_spec(&spec, "op", &ImageSource::default());
        assert_eq!(images.fulcio, "example.com/fulcio:dev");
        assert_eq!(images.rekor, REKOR);
    }

    #[test]
    fn a_registry_moves_every_default_and_keeps_paths_and_digests() {
        let mut spec = SigstoreStackSpec::default();
        spec.fulcio.image = Some("example.com/fulcio:dev".into());
        let source = ImageSource {
            registry: Some("mirror.example:5000/sigstore/".into()),
            pull_secrets: vec!["regcred".into()],
        };
        let images = Images::for_spec(&spec, "op.example/sigstore-operator:1", &source);
        assert_eq!(
            images.database,
            "mirror.example:5000/sigstore/library/mariadb:11.4.8@sha256:\
             bc474f00629f0123c10f9e1bca193a45d18af15a274cf0656acda64f1086c3b6"
        );
        assert!(
            images
                .rekor
                .starts_with("mirror.example:5000/sigstore/sigstore/rekor/rekor-server:v1.5.4@"),
            "{}",
            images.rekor
        );
        // What the user named, and the operator's own image, stay as given.
        assert_eq!(images.fulcio, "example.com/fulcio:dev");
        assert_eq!(images.tuf, "op.example/sigstore-operator:1");
        assert_eq!(images.pull_secrets, ["regcred"]);
        assert_eq!(
            mirrored("redis:7", "m.example"),
            "m.example/library/redis:7"
        );
        assert_eq!(
            mirrored("bitnami/redis:7", "m.example"),
            "m.example/bitnami/redis:7"
        );
        assert_eq!(mirrored("localhost/x:1", "m.example"), "m.example/x:1");
    }

    #[test]
    fn registry_values_are_checked() {
        assert_eq!(parse_registry("m.example/a/").unwrap(), "m.example/a");
        assert_eq!(parse_registry("m.example:5000").unwrap(), "m.example:5000");
        for bad in [
            "",
            "https://m.example",
            "m.example/a:1",
            "m.example/a@sha256:00",
            "m .x",
            "m.example//a",
        ] {
            assert!(parse_registry(bad).is_err(), "{bad}");
        }
    }
}
