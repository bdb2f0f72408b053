//! The bootstrap stages, one folder each: `mod.rs` runs the stage (a pure
//! core, inputs → what to write, and a thin shell that reads and writes the
//! cluster, run as `sigstore-operator stage <name>` by the operator's Jobs
//! or by hand); `rules.rs` tells the operator when and how to run it
//! ([`table::Rules`]). [`table`] lists them; [`job`] builds their Jobs.

pub mod createcertchain;
pub mod createcerts;
pub mod createctconfig;
pub mod createtesseract;
pub mod createtree;
pub mod createtuf;
pub mod job;
pub mod rekorkey;
pub mod secrets;
pub mod selfcheck;
pub mod table;

pub use table::{Stage, View};

use std::time::Duration;

use kube::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{retry::RetryError, trillian::TrillianError};

/// What every stage run knows.
#[derive(Clone)]
pub struct StageContext {
    /// Client for the API server.
    pub client: Client,
    /// The stack's namespace.
    pub namespace: String,
    /// The stack's name.
    pub stack: String,
    /// Fires on SIGTERM.
    pub cancel: CancellationToken,
    /// How long to wait for inputs and servers before giving up.
    pub timeout: Duration,
}

/// Why a stage failed. The message says what to fix; it never carries key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A call to the API server failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// Trillian refused a call, or stayed unreachable until the deadline.
    #[error("{0}")]
    Trillian(#[source] RetryError<TrillianError>),
    /// An existing output holds something the stage cannot use. It is left
    /// as it is.
    #[error("{object} key {key} holds {value:?}, which is not {expected}; fix or delete the key")]
    BadExisting {
        /// `ConfigMap ns/name` or `Secret ns/name`.
        object: String,
        /// The key.
        key: &'static str,
        /// What is there (never a secret).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Another writer set the output while this run worked.
    #[error(
        "{object} key {key} was set by another writer to {value:?} during this run; keeping it"
    )]
    Raced {
        /// The object.
        object: String,
        /// The key.
        key: &'static str,
        /// The value found.
        value: String,
    },
    /// An existing output lacks keys; completing it with fresh material
    /// would not match what it holds, so it is left for a person to fix.
    #[error("{object} exists but lacks {missing}; delete it to regenerate, or add the keys")]
    Incomplete {
        /// The object.
        object: String,
        /// The missing keys.
        missing: String,
    },
    /// Making or reading a key failed.
    #[error("{0}")]
    Key(#[from] crate::keys::KeyError),
    /// A certificate could not be built.
    #[error("cannot build the certificate: {0}")]
    Certificate(String),
    /// A bring-your-own input is unusable; the message says why.
    #[error("{object}: {reason}")]
    BadInput {
        /// The user's object.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An input did not appear before the deadline.
    #[error("gave up waiting for {0}")]
    InputTimeout(String),
    /// The TUF repository cannot be built; the message says why.
    #[error("{0}")]
    Tuf(#[from] crate::tuf::TufError),
    /// The self-check failed; the message names the step and the server.
    #[error("{0}")]
    SelfCheck(#[from] selfcheck::record::CheckError),
    /// Stopped by a signal.
    #[error("cancelled")]
    Cancelled,
}

impl From<kube::Error> for StageError {
    fn from(e: kube::Error) -> Self {
        Self::Kube(Box::new(e))
    }
}

impl From<RetryError<TrillianError>> for StageError {
    fn from(e: RetryError<TrillianError>) -> Self {
        match e {
            RetryError::Cancelled => Self::Cancelled,
            other => Self::Trillian(other),
        }
    }
}

/// Polls `check` every 2 s until it yields a value, the deadline passes
/// (an error naming `what`) or the stage is cancelled.
pub(crate) async fn wait_for<T, F, Fut>(
    ctx: &StageContext,
    deadline: Instant,
    what: &str,
    mut check: F,
) -> Result<T, StageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, StageError>>,
{
    let mut said = false;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if !said {
            tracing::info!("waiting for {what}");
            said = true;
        }
        if Instant::now() >= deadline {
            return Err(StageError::InputTimeout(what.to_owned()));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = ctx.cancel.cancelled() => return Err(StageError::Cancelled),
        }
    }
}
