//! An OCI registry (CNCF distribution's `registry`, built from the Go
//! module proxy) on 127.0.0.1, and images pushed to it over its HTTP API,
//! as `docker push` or `crane` would.

use sha2::{Digest, Sha256};

use super::{logs_dir, servers};

/// A running registry: its `host:port`.
pub struct Registry {
    pub host: String,
}

fn digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

impl Registry {
    /// Starts one with its storage under the test logs.
    pub fn start(name: &str) -> Self {
        let port = servers::port();
        let dir = servers::mount_dir(&format!("{name}-registry"));
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .expect("registry config");
        servers::serve(
            &format!("{name}-registry"),
            &servers::built("registry"),
            &["serve".into(), config.display().to_string()],
            port,
        );
        Self {
            host: format!("127.0.0.1:{port}"),
        }
    }

    async fn put_blob(&self, http: &reqwest::Client, repo: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let start = http
            .post(format!("http://{}/v2/{repo}/blobs/uploads/", self.host))
            .send()
            .await
            .expect("start an upload");
        assert_eq!(start.status().as_u16(), 202, "upload refused");
        let location = start
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("upload location")
            .to_owned();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.host)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let done = http
            .put(format!("{url}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("upload");
        assert_eq!(done.status().as_u16(), 201, "blob {d} not stored");
        d
    }

    /// Pushes a one-layer image holding `content` as `repo:tag`; returns
    /// `host/repo@sha256:...`.
    pub async fn push_image(&self, repo: &str, tag: &str, content: &str) -> String {
        let http = reqwest::Client::new();
        let layer = tar_of("hello.txt", content.as_bytes());
        let layer_digest = self.put_blob(&http, repo, &layer).await;
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))
        .unwrap();
        let config_digest = self.put_blob(&http, repo, &config).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let put = http
            .put(format!("http://{}/v2/{repo}/manifests/{tag}", self.host))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .expect("push the manifest");
        assert_eq!(put.status().as_u16(), 201, "manifest not stored");
        format!("{}/{repo}@{}", self.host, digest(&manifest))
    }
}

/// A tar archive of one file.
fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(b"0000644");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Where a test's files for the registry go.
pub fn work(name: &str) -> std::path::PathBuf {
    let dir = logs_dir().join(format!("{name}-oci"));
    std::fs::create_dir_all(&dir).expect("oci work dir");
    dir
}
