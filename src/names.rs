//! Names of the objects a stack owns: `<stack>-<part>`, so stacks never
//! collide in a namespace.

/// A transparency log backed by a Trillian tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Log {
    /// Rekor's log.
    Rekor,
    /// The certificate transparency log.
    Ctlog,
}

impl Log {
    /// The short name used in object names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rekor => "rekor",
            Self::Ctlog => "ctlog",
        }
    }
}

/// The ConfigMap that holds a log's tree ID (key `treeID`).
pub fn log_config(stack: &str, log: Log) -> String {
    format!("{stack}-{}-config", log.as_str())
}

/// Where the operator's image keeps its binary (stage Jobs and the TUF
/// server run it).
pub const OPERATOR_BINARY: &str = "/usr/local/bin/sigstore-operator";
/// Where ct_server's Pod mounts the CT Secret; its config names the key
/// files there.
pub const CTLOG_KEYS_DIR: &str = "/ctfe-keys";

/// The ConfigMap key holding a tree ID.
pub const TREE_ID_KEY: &str = "treeID";
/// In a log's ConfigMap: the trees it replaced, oldest first, space
/// separated.
pub const REPLACED_KEY: &str = "replacedTreeIDs";

/// Fulcio's CA: keys `cert`, `private`, `public`, `password`.
pub fn fulcio_ca(stack: &str) -> String {
    format!("{stack}-fulcio-ca")
}

/// The public half of Fulcio's CA: keys `cert`, `public`.
pub fn fulcio_public(stack: &str) -> String {
    format!("{stack}-fulcio-pub")
}

/// Rekor's signing key: keys `private`, `password`, `public`.
pub fn rekor_signer(stack: &str) -> String {
    format!("{stack}-rekor-signer")
}

/// Rekor's public key: key `public`.
pub fn rekor_public(stack: &str) -> String {
    format!("{stack}-rekor-pub")
}

/// Rekor v2's signing key: keys `private`, `password`, `public`.
pub fn rekor_v2_signer(stack: &str) -> String {
    format!("{stack}-rekor-v2-signer")
}

/// Rekor v2's public key: key `public`.
pub fn rekor_v2_public(stack: &str) -> String {
    format!("{stack}-rekor-v2-pub")
}

/// TesseraCT's key and roots: keys `private` (unencrypted SEC1: the only
/// form TesseraCT reads, so only this Secret protects it), `public`,
/// `roots.pem` and `fulcio-0`, `fulcio-1`, ...
pub fn tesseract_secret(stack: &str) -> String {
    format!("{stack}-tesseract")
}

/// The key of TesseraCT's Secret holding every trusted root in one PEM
/// file, its `--roots_pem_file`.
pub const TESSERACT_ROOTS_KEY: &str = "roots.pem";

/// TesseraCT's public key: key `public`.
pub fn tesseract_public(stack: &str) -> String {
    format!("{stack}-tesseract-pub")
}

/// The CT log's key and config: keys `private`, `public`, `config`,
/// `fulcio-0`, `fulcio-1`, ...
pub fn ctlog_secret(stack: &str) -> String {
    format!("{stack}-ctlog")
}

/// The CT log's public key: key `public`.
pub fn ctlog_public(stack: &str) -> String {
    format!("{stack}-ctlog-pub")
}

/// The TSA's key and chain: keys `private`, `password`, `public`,
/// `cert-chain`.
pub fn tsa_secret(stack: &str) -> String {
    format!("{stack}-tsa")
}

/// The TSA's public chain: key `cert-chain`.
pub fn tsa_public(stack: &str) -> String {
    format!("{stack}-tsa-pub")
}

/// The TUF role keys: keys `root`, `targets`, `snapshot`, `timestamp`.
pub fn tuf_keys(stack: &str) -> String {
    format!("{stack}-tuf-keys")
}

/// The TUF repository's files, served by the TUF workload; key
/// `root.json` is the root clients start from.
pub fn tuf_repository(stack: &str) -> String {
    format!("{stack}-tuf-repository")
}

/// The self-check's record and proof: keys `result`, `reason`,
/// `message`, `inputs`, `checkedAt`, the artifact and a bundle per log.
pub fn selfcheck(stack: &str) -> String {
    format!("{stack}-{SELFCHECK}")
}

/// A workload part: Deployment, Service and (where it has one) its
/// ServiceAccount share the name `<stack>-<part>`.
pub fn part(stack: &str, part: &str) -> String {
    format!("{stack}-{part}")
}

/// The embedded Trillian database.
pub const TRILLIAN_DB: &str = "trillian-db";
/// Trillian's log server (gRPC on 8090).
pub const TRILLIAN_LOG_SERVER: &str = "trillian-log-server";
/// Trillian's log signer.
pub const TRILLIAN_LOG_SIGNER: &str = "trillian-log-signer";
/// Trillian's schema ConfigMap (key `schema.sql`).
pub const TRILLIAN_SCHEMA: &str = "trillian-schema";
/// Rekor's Redis.
pub const REKOR_REDIS: &str = "rekor-redis";
/// Rekor.
pub const REKOR: &str = "rekor";
/// The CT log (ct_server).
pub const CTLOG: &str = "ctlog";
/// Rekor v2 (rekor-tiles): its Deployment, Service and origin's host.
pub const REKOR_V2: &str = "rekor-v2";
/// TesseraCT: its Deployment, Service and origin's host.
pub const TESSERACT: &str = "tesseract";
/// Fulcio.
pub const FULCIO: &str = "fulcio";
/// The timestamp authority.
pub const TSA: &str = "tsa";
/// The published trust root ConfigMap (`trusted_root.json`,
/// `signing_config.json`).
pub const TRUST_ROOT: &str = "trust-root";
/// The TUF repository server.
pub const TUF: &str = "tuf";
/// Fulcio's config ConfigMap (key `config.yaml`).
pub const FULCIO_CONFIG: &str = "fulcio-config";
/// The self-check: its stage, label and ConfigMap.
pub const SELFCHECK: &str = "selfcheck";
/// The ServiceAccount, Role and RoleBinding the stage Jobs run as.
pub const STAGES: &str = "stages";

/// The longest stack name: every object name derived from it, up to the
/// stage Jobs `<stack>-ctlog-tree-<hash>-<attempt>`, must stay a valid
/// DNS label (63 characters).
pub const MAX_STACK_NAME: usize = 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_stack() {
        assert_eq!(log_config("demo", Log::Rekor), "demo-rekor-config");
        assert_eq!(log_config("demo", Log::Ctlog), "demo-ctlog-config");
    }
}
