//! The stack's TUF repository, for clients that bootstrap their trust from
//! TUF (`cosign initialize --mirror … --root root.json`).
//!
//! The repository is a set of files kept in one ConfigMap and served as
//! they are. Its role keys are made once and kept in a Secret, so
//! `root.json` never changes on a restart; metadata is signed with `tough`
//! and re-signed well before it expires.

pub mod keys;
pub mod repo;
pub mod serve;
pub mod targets;

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::api::TufExpiry;

/// Annotation on the repository ConfigMap: the digest of the inputs it was
/// built from (see [`inputs_digest`]).
pub const INPUTS_ANNOTATION: &str = "scaffolding.sigstore.dev/tuf-inputs";
/// Annotation on the repository ConfigMap: when a role enters its re-sign
/// window, so the operator knows when to run the stage again.
pub const RESIGN_AT_ANNOTATION: &str = "scaffolding.sigstore.dev/tuf-resign-at";
/// The repository ConfigMap's key of the newest `root.json`, which clients
/// are given to start from.
pub const ROOT_KEY: &str = "root.json";

/// Why the TUF repository cannot be built. Messages never carry key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// The trust root to publish cannot be read.
    #[error("trusted_root.json cannot be read: {0}")]
    TrustRoot(String),
    /// Stored metadata does not parse.
    #[error("{file} in the repository is not valid TUF metadata: {reason}")]
    BadMetadata {
        /// The file (ConfigMap key).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A role key in the Secret is unusable.
    #[error("the {role} key is not an Ed25519 PKCS#8 key: {reason}")]
    BadKey {
        /// The role.
        role: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The Secret holds other keys than `root.json` trusts; going on would
    /// need a root rotation signed by keys that are gone.
    #[error(
        "root.json trusts other keys than the key Secret holds (was the Secret replaced?); \
         clients holding this root.json could not follow a new one. Delete the repository \
         ConfigMap to start a new repository, and hand clients its new root.json"
    )]
    KeysChanged,
    /// tough refused to sign.
    #[error("signing {role} failed: {reason}")]
    Sign {
        /// The role.
        role: &'static str,
        /// Why.
        reason: String,
    },
}

/// How long each role's metadata stays valid once signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// `root.json`.
    pub root: Duration,
    /// `targets.json`.
    pub targets: Duration,
    /// `snapshot.json`.
    pub snapshot: Duration,
    /// `timestamp.json`.
    pub timestamp: Duration,
}

impl From<&TufExpiry> for Expiry {
    fn from(e: &TufExpiry) -> Self {
        Self {
            root: e.root.as_std(),
            targets: e.targets.as_std(),
            snapshot: e.snapshot.as_std(),
            timestamp: e.timestamp.as_std(),
        }
    }
}

/// The digest of everything a repository is built from: the trust root,
/// the signing config and the expiries. The stage records it on the
/// repository; the operator compares it with what it publishes now.
pub fn inputs_digest(trusted_root: &str, signing_config: Option<&str>, expiry: &Expiry) -> String {
    let mut h = Sha256::new();
    for part in [trusted_root, signing_config.unwrap_or("")] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    for d in [
        expiry.root,
        expiry.targets,
        expiry.snapshot,
        expiry.timestamp,
    ] {
        h.update(d.as_secs().to_be_bytes());
    }
    hex(&h.finalize())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ConfigMap key that holds the file at URL path `path` (relative to
/// the repository's base URL), if it names one. ConfigMap keys cannot hold
/// `/`, so `targets/<file>` is kept as `targets.<file>`.
pub fn key_for_path(path: &str) -> Option<String> {
    let path = path.trim_start_matches('/');
    let key = match path.strip_prefix("targets/") {
        Some(rest) => format!("targets.{rest}"),
        None => path.to_owned(),
    };
    let valid = !key.is_empty()
        && !key.starts_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    valid.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_map_to_config_map_keys() {
        assert_eq!(
            key_for_path("/timestamp.json").as_deref(),
            Some("timestamp.json")
        );
        assert_eq!(key_for_path("/3.root.json").as_deref(), Some("3.root.json"));
        assert_eq!(
            key_for_path("/targets/ab12.trusted_root.json").as_deref(),
            Some("targets.ab12.trusted_root.json")
        );
        for bad in ["/", "/../x", "/a/b", "/targets/a/b", "/..data", "/%2e"] {
            assert_eq!(key_for_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn digest_follows_every_input() {
        let e = Expiry {
            root: Duration::from_secs(4),
            targets: Duration::from_secs(3),
            snapshot: Duration::from_secs(2),
            timestamp: Duration::from_secs(1),
        };
        let base = inputs_digest("a", Some("b"), &e);
        assert_eq!(base, inputs_digest("a", Some("b"), &e));
        assert_ne!(base, inputs_digest("ab", None, &e));
        assert_ne!(base, inputs_digest("a", None, &e));
        let mut shorter = e;
        shorter.timestamp = Duration::from_secs(0);
        assert_ne!(base, inputs_digest("a", Some("b"), &shorter));
    }
}
