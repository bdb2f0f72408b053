//! `serve-tuf`: serves the repository ConfigMap as mounted by the kubelet.
//! Files are read on each request, so the kubelet's atomic updates of the
//! mount show at once; a half-updated view is never served because the
//! kubelet swaps the whole directory.

use std::{net::SocketAddr, path::PathBuf};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio_util::sync::CancellationToken;

use super::key_for_path;
use crate::Result;

async fn file(State(dir): State<PathBuf>, Path(path): Path<String>) -> Response {
    let Some(key) = key_for_path(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(dir.join(&key)).await {
        Ok(body) => {
            let kind = if key.ends_with(".json") {
                "application/json"
            } else {
                "application/octet-stream"
            };
            ([(header::CONTENT_TYPE, kind)], body).into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Ready once the repository has a timestamp to serve.
async fn readyz(State(dir): State<PathBuf>) -> StatusCode {
    if tokio::fs::try_exists(dir.join("timestamp.json"))
        .await
        .unwrap_or(false)
    {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Serves `dir` on `addr` until `shutdown` is cancelled.
pub async fn serve(dir: PathBuf, addr: SocketAddr, shutdown: CancellationToken) -> Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/{*path}", get(file))
        .with_state(dir.clone());
    let what = format!("the TUF repository in {}", dir.display());
    crate::health::serve_app(addr, app, &what, shutdown).await
}
