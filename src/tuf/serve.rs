//! `serve-tuf`: serves the repository ConfigMap as mounted by the kubelet.
//! Files are read on each request, so the kubelet's atomic updates of the
//! mount show at once; a half-updated view is never served because the
//! kubelet swaps the whole directory.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use tokio_util::sync::CancellationToken;

use super::key_for_path;
use crate::Result;

/// The ConfigMap key a URL path names, and its content type.
fn resolve(dir: &Path, path: &str) -> Option<(PathBuf, &'static str)> {
    let key = key_for_path(path)?;
    let kind = if key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Some((dir.join(key), kind))
}

/// Serves `dir` on `addr` until `shutdown` is cancelled; ready once the
/// repository has a timestamp to serve.
pub async fn serve(dir: PathBuf, addr: SocketAddr, shutdown: CancellationToken) -> Result<()> {
    let what = format!("the TUF repository in {}", dir.display());
    crate::files::serve(dir, addr, resolve, "timestamp.json", None, &what, shutdown).await
}
