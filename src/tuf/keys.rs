//! The four TUF role keys: Ed25519, made once, kept in a Secret as PKCS#8
//! PEM, and handed to tough for signing.

use std::{collections::BTreeMap, fmt};

use aws_lc_rs::{rand::SystemRandom, signature::Ed25519KeyPair};
use pkcs8::{LineEnding, SecretDocument};
use tough::{
    async_trait,
    key_source::KeySource,
    schema::{RoleType, decoded::Decoded, decoded::Hex, key::Key},
    sign::{Sign, parse_keypair},
};
use zeroize::Zeroizing;

use super::TufError;
use crate::secret_data::{self as secrets, Data};

/// A top-level TUF role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Trusts the keys of every role.
    Root,
    /// Lists the targets.
    Targets,
    /// Pins the targets metadata's version.
    Snapshot,
    /// Pins the snapshot's version; re-signed most often.
    Timestamp,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 4] = [Self::Root, Self::Targets, Self::Snapshot, Self::Timestamp];

    /// The role's name, also its key's name in the Secret.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Targets => "targets",
            Self::Snapshot => "snapshot",
            Self::Timestamp => "timestamp",
        }
    }

    /// tough's name for it.
    pub fn role_type(self) -> RoleType {
        match self {
            Self::Root => RoleType::Root,
            Self::Targets => RoleType::Targets,
            Self::Snapshot => RoleType::Snapshot,
            Self::Timestamp => RoleType::Timestamp,
        }
    }
}

/// The Secret keys a complete key Secret holds.
pub const REQUIRED: &[&str] = &["root", "targets", "snapshot", "timestamp"];

/// Four fresh role keys, as Secret data.
pub fn generate() -> Result<Data, TufError> {
    let rng = SystemRandom::new();
    let mut data = Data::new();
    for role in Role::ALL {
        let bad = |reason: String| TufError::BadKey {
            role: role.name(),
            reason,
        };
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| bad(e.to_string()))?;
        let pem = SecretDocument::try_from(doc.as_ref())
            .and_then(|d| d.to_pem("PRIVATE KEY", LineEnding::LF))
            .map_err(|e| bad(e.to_string()))?;
        data.extend(secrets::data([(role.name(), pem.as_str())]));
    }
    Ok(data)
}

/// One role's private key, in memory only.
pub struct RoleKey {
    der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for RoleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoleKey(..)")
    }
}

#[async_trait]
impl KeySource for RoleKey {
    async fn as_sign(
        &self,
    ) -> Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(Box::new(parse_keypair(&self.der)?))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        // Keys are made once and never replaced.
        Err("TUF role keys are read-only".into())
    }
}

/// The four role keys and their public halves.
#[derive(Debug)]
pub struct KeySet {
    keys: BTreeMap<Role, (RoleKey, Key)>,
}

impl KeySet {
    /// Reads the keys from the key Secret's data.
    pub fn from_data(data: &Data) -> Result<Self, TufError> {
        let mut keys = BTreeMap::new();
        for role in Role::ALL {
            let bad = |reason: String| TufError::BadKey {
                role: role.name(),
                reason,
            };
            let pem = secrets::text(data, role.name()).ok_or_else(|| bad("missing".into()))?;
            let (label, doc) = SecretDocument::from_pem(pem).map_err(|e| bad(e.to_string()))?;
            if label != "PRIVATE KEY" {
                return Err(bad(format!("PEM label {label}")));
            }
            let der = Zeroizing::new(doc.as_bytes().to_vec());
            let public = parse_keypair(&der)
                .map_err(|e| bad(e.to_string()))?
                .tuf_key();
            if !matches!(public, Key::Ed25519 { .. }) {
                return Err(bad("not Ed25519".into()));
            }
            keys.insert(role, (RoleKey { der }, public));
        }
        Ok(Self { keys })
    }

    /// The public key of `role`.
    pub fn public(&self, role: Role) -> Option<&Key> {
        self.keys.get(&role).map(|(_, k)| k)
    }

    /// The key ID of `role`'s key (hex SHA-256 of its canonical JSON).
    pub fn key_id(&self, role: Role) -> Result<Decoded<Hex>, TufError> {
        self.public(role)
            .ok_or(TufError::BadKey {
                role: role.name(),
                reason: "missing".into(),
            })?
            .key_id()
            .map_err(|e| TufError::BadKey {
                role: role.name(),
                reason: e.to_string(),
            })
    }

    /// `role`'s key as a tough key source.
    pub fn source(&self, role: Role) -> Vec<Box<dyn KeySource>> {
        self.keys
            .get(&role)
            .map(|(k, _)| vec![Box::new(RoleKey { der: k.der.clone() }) as Box<dyn KeySource>])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_differ() {
        let data = generate().unwrap();
        assert_eq!(
            data.keys().map(String::as_str).collect::<Vec<_>>(),
            ["root", "snapshot", "targets", "timestamp"]
        );
        let set = KeySet::from_data(&data).unwrap();
        let ids: std::collections::BTreeSet<String> = Role::ALL
            .iter()
            .map(|r| crate::tuf::hex(&set.key_id(*r).unwrap()))
            .collect();
        assert_eq!(ids.len(), 4, "one distinct key per role");
        assert!(!format!("{set:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_missing_or_foreign_key_is_named() {
        let mut data = generate().unwrap();
        data.remove("snapshot");
        let e = KeySet::from_data(&data).unwrap_err().to_string();
        assert!(e.contains("snapshot"), "{e}");
        let mut data = generate().unwrap();
        data.extend(secrets::data([("timestamp", "not a key")]));
        let e = KeySet::from_data(&data).unwrap_err().to_string();
        assert!(e.contains("timestamp"), "{e}");
    }
}
