//! Serving files read-only from a mounted directory: the TUF repository
//! (`serve-tuf`) and a tile-based log's read path (`serve-tiles`). Files
//! are read on each request, so a changed mount shows at once. A log's
//! front also forwards its write API to the log's server, so one host
//! serves both, as the public logs do.

use std::{
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
};

use axum::{
    Router,
    body::Body,
    extract::{Path, Request, State},
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio_util::sync::CancellationToken;

use crate::Result;

/// The file a URL path names under the directory, and its content type;
/// `None` for what must not be served.
pub type Resolve = fn(&FsPath, &str) -> Option<(PathBuf, &'static str)>;

#[derive(Clone)]
struct Served {
    dir: PathBuf,
    resolve: Resolve,
    ready_file: &'static str,
}

async fn file(State(s): State<Served>, Path(path): Path<String>) -> Response {
    let Some((file, kind)) = (s.resolve)(&s.dir, &path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(body) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Ready once `ready_file` exists: there is something to serve.
async fn readyz(State(s): State<Served>) -> StatusCode {
    if tokio::fs::try_exists(s.dir.join(s.ready_file))
        .await
        .unwrap_or(false)
    {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Requests under `prefix` go to `upstream` (`http://host:port`).
#[derive(Clone, Debug)]
pub struct Forward {
    /// A path prefix such as `/api/`.
    pub prefix: String,
    /// Where they go.
    pub upstream: String,
}

#[derive(Clone)]
struct Forwarding {
    upstream: String,
    client: Client<HttpConnector, Body>,
}

async fn forward(State(f): State<Forwarding>, mut request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(uri) = format!("{}{path}", f.upstream).parse::<Uri>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    *request.uri_mut() = uri;
    match f.client.request(request).await {
        Ok(response) => response.map(Body::new).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, upstream = %f.upstream, "the log's server did not answer");
            (StatusCode::BAD_GATEWAY, "the log's server did not answer\n").into_response()
        }
    }
}

/// Serves `dir` on `addr` through `resolve` until `shutdown` is cancelled,
/// with `/healthz`, a `/readyz` that waits for `ready_file`, and `forward`'s
/// prefix passed on to its upstream.
pub async fn serve(
    dir: PathBuf,
    addr: SocketAddr,
    resolve: Resolve,
    ready_file: &'static str,
    forward_to: Option<Forward>,
    what: &str,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/{*path}", get(file))
        .with_state(Served {
            dir,
            resolve,
            ready_file,
        });
    if let Some(f) = forward_to {
        let prefix = format!("/{}", f.prefix.trim_matches('/'));
        let forwarding = Forwarding {
            upstream: f.upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        app = app.merge(
            Router::new()
                .route(&format!("{prefix}/{{*rest}}"), any(forward))
                .with_state(forwarding),
        );
    }
    crate::health::serve_app(addr, app, what, shutdown).await
}
