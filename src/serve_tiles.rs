//! `serve-tiles`: the front of a tile-based log (Rekor v2, TesseraCT). It
//! serves the read path neither server serves itself (`/checkpoint`,
//! `/tile/...` and the log's other public files, read-only from the volume
//! the log writes) and forwards the write API (`/api/` or `/ct/`) to the
//! log's server in the same Pod, so the log's one URL serves both. The
//! log's internal state (`.state/`, and any other dot-path) is never
//! served.

use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
};

use tokio_util::sync::CancellationToken;

use crate::Result;

/// The file under `dir` that URL path `path` names, if it may be served:
/// relative, with no empty, `.`, `..` or dot-prefixed segment.
pub fn file_for(dir: &FsPath, path: &str) -> Option<PathBuf> {
    let mut out = dir.to_path_buf();
    for segment in path.split('/') {
        if segment.is_empty() || segment.starts_with('.') || segment.contains('\\') {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

/// The file a URL path names, and its content type.
fn resolve(dir: &FsPath, path: &str) -> Option<(PathBuf, &'static str)> {
    let kind = if path == "checkpoint" {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    Some((file_for(dir, path)?, kind))
}

/// Serves the log in `dir` on `addr`, and passes `forward` (the log's
/// write API) on to its server, until `shutdown` is cancelled; ready once
/// the log has published a checkpoint.
pub async fn serve(
    dir: PathBuf,
    addr: SocketAddr,
    forward: Option<crate::files::Forward>,
    shutdown: CancellationToken,
) -> Result<()> {
    let what = format!("the log's tiles in {}", dir.display());
    crate::files::serve(dir, addr, resolve, "checkpoint", forward, &what, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_log_and_nothing_of_its_state_or_outside_it() {
        let dir = FsPath::new("/tiles");
        assert_eq!(
            file_for(dir, "checkpoint"),
            Some("/tiles/checkpoint".into())
        );
        assert_eq!(
            file_for(dir, "tile/entries/000.p/1"),
            Some("/tiles/tile/entries/000.p/1".into())
        );
        assert_eq!(
            file_for(dir, "tile/0/x001/234"),
            Some("/tiles/tile/0/x001/234".into())
        );
        for hidden in [
            ".state/treeState",
            ".state/antispam/MANIFEST",
            "tile/../.state/treeState",
            "../etc/passwd",
            "tile//0",
            "",
            "tile/.hidden",
        ] {
            assert_eq!(file_for(dir, hidden), None, "{hidden}");
        }
    }
}
