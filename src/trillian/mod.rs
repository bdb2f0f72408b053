//! A client for the parts of Trillian's gRPC API the stages use. One
//! connection serves both services: the log server implements both.

use std::time::Duration;

use tonic::{Code, Status, transport::Channel};

use proto::{
    CreateTreeRequest, GetLatestSignedLogRootRequest, InitLogRequest, ListTreesRequest, Tree,
    TreeState, TreeType, trillian_admin_client::TrillianAdminClient,
    trillian_log_client::TrillianLogClient,
};

/// Generated from `proto/trillian.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("trillian");
}

/// Errors talking to Trillian.
#[derive(Debug, thiserror::Error)]
pub enum TrillianError {
    /// The address is not a valid endpoint.
    #[error("invalid Trillian address {address:?}: {source}")]
    Address {
        /// The address given.
        address: String,
        /// The cause.
        #[source]
        source: tonic::codegen::http::uri::InvalidUri,
    },
    /// A call failed.
    #[error("Trillian {call} failed: {code:?}: {message}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
}

impl TrillianError {
    fn call(call: &'static str, status: Status) -> Self {
        Self::Call {
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// The gRPC code, for a failed call.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Call { code, .. } => Some(*code),
            Self::Address { .. } => None,
        }
    }

    /// Whether retrying may help: the server is unreachable, busy or slow.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code(),
            Some(
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::ResourceExhausted
            )
        )
    }
}

/// A connection to a Trillian log server.
#[derive(Clone, Debug)]
pub struct Trillian {
    admin: TrillianAdminClient<Channel>,
    log: TrillianLogClient<Channel>,
}

impl Trillian {
    /// Prepares a connection to `address` (`host:port`). Nothing is dialled
    /// until the first call, so an unreachable server surfaces as a
    /// retryable `Unavailable`.
    pub fn connect_lazy(address: &str) -> Result<Self, TrillianError> {
        let uri = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let channel = Channel::from_shared(uri)
            .map_err(|e| TrillianError::Address {
                address: address.to_owned(),
                source: e,
            })?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        Ok(Self {
            admin: TrillianAdminClient::new(channel.clone()),
            log: TrillianLogClient::new(channel),
        })
    }

    /// Every tree, deleted ones included.
    pub async fn list_trees(&self) -> Result<Vec<Tree>, TrillianError> {
        let mut admin = self.admin.clone();
        let resp = admin
            .list_trees(ListTreesRequest { show_deleted: true })
            .await
            .map_err(|s| TrillianError::call("ListTrees", s))?;
        Ok(resp.into_inner().tree)
    }

    /// Creates an ACTIVE LOG tree.
    pub async fn create_log_tree(
        &self,
        display_name: &str,
        description: &str,
        max_root_duration: Duration,
    ) -> Result<Tree, TrillianError> {
        let tree = Tree {
            tree_state: TreeState::Active.into(),
            tree_type: TreeType::Log.into(),
            display_name: display_name.to_owned(),
            description: description.to_owned(),
            max_root_duration: Some(prost_types::Duration {
                seconds: i64::try_from(max_root_duration.as_secs()).unwrap_or(i64::MAX),
                nanos: 0,
            }),
            ..Tree::default()
        };
        let mut admin = self.admin.clone();
        let resp = admin
            .create_tree(CreateTreeRequest { tree: Some(tree) })
            .await
            .map_err(|s| TrillianError::call("CreateTree", s))?;
        Ok(resp.into_inner())
    }

    /// Writes the tree's first signed root. `Ok(false)` when it already had
    /// one.
    pub async fn init_log(&self, tree_id: i64) -> Result<bool, TrillianError> {
        let mut log = self.log.clone();
        match log
            .init_log(InitLogRequest {
                log_id: tree_id,
                charge_to: None,
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::AlreadyExists => Ok(false),
            Err(s) => Err(TrillianError::call("InitLog", s)),
        }
    }

    /// The tree's latest signed root, raw.
    pub async fn latest_root(&self, tree_id: i64) -> Result<Vec<u8>, TrillianError> {
        let mut log = self.log.clone();
        let resp = log
            .get_latest_signed_log_root(GetLatestSignedLogRootRequest {
                log_id: tree_id,
                charge_to: None,
                first_tree_size: 0,
            })
            .await
            .map_err(|s| TrillianError::call("GetLatestSignedLogRoot", s))?;
        Ok(resp
            .into_inner()
            .signed_log_root
            .map(|r| r.log_root)
            .unwrap_or_default())
    }
}
