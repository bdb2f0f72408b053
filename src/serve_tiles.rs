//! `serve-tiles`: the read path of a tile-based log (Rekor v2, TesseraCT),
//! which neither server serves itself: `/checkpoint`, `/tile/...` and the
//! log's other public files, read-only from the volume the log writes.
//! The log's internal state (`.state/`, and any other dot-path) is never
//! served.

use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
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

async fn file(State(dir): State<PathBuf>, Path(path): Path<String>) -> Response {
    let Some(file) = file_for(&dir, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(body) => {
            let kind = if path == "checkpoint" {
                "text/plain; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            ([(header::CONTENT_TYPE, kind)], body).into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Ready once the log has published a checkpoint.
async fn readyz(State(dir): State<PathBuf>) -> StatusCode {
    if tokio::fs::try_exists(dir.join("checkpoint"))
        .await
        .unwrap_or(false)
    {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serves the log in `dir` on `addr` until `shutdown` is cancelled.
pub async fn serve(dir: PathBuf, addr: SocketAddr, shutdown: CancellationToken) -> Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/{*path}", get(file))
        .with_state(dir.clone());
    let what = format!("the log's tiles in {}", dir.display());
    crate::health::serve_app(addr, app, &what, shutdown).await
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
