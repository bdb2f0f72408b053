//! Building the repository: sign what is new or due, keep what is not.
//!
//! Each run starts from the stored files. A role is signed again when what
//! it lists changed or when it enters its re-sign window (the second half
//! of its lifetime); every role above a re-signed one follows, and the
//! newest `root.json` stays unless root itself is due. Versions only grow.

use std::{
    collections::{BTreeMap, HashMap},
    num::NonZeroU64,
    time::Duration,
};

use aws_lc_rs::rand::SystemRandom;
use k8s_openapi::jiff::{SignedDuration, Timestamp, Unit};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use tough::{
    TargetName,
    editor::signed::SignedRole,
    key_source::KeySource,
    schema::{
        Hashes, KeyHolder, Metafile, Role as TufRole, RoleKeys, Root, Signed, Snapshot, Target,
        Targets, Timestamp as TufTimestamp,
    },
};

use super::{
    Expiry, ROOT_KEY, TufError, hex,
    keys::{KeySet, Role},
    targets::TargetFile,
};

/// The repository's files: ConfigMap key → content.
pub type Files = BTreeMap<String, String>;

/// The TUF specification version written into every role.
const SPEC_VERSION: &str = "1.0.0";
/// The timestamp's file name; the only role file without a version.
const TIMESTAMP: &str = "timestamp.json";
/// The longest head start a stage takes on the re-sign time, so a stage
/// whose clock runs a little behind the operator's still re-signs.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// One stored role: parsed, and its exact bytes (hashes cover them).
struct Stored<T> {
    signed: Signed<T>,
    text: String,
}

/// The stored repository, newest versions.
struct Current {
    root: Stored<Root>,
    targets: Stored<Targets>,
    snapshot: Stored<Snapshot>,
    timestamp: Stored<TufTimestamp>,
}

fn parse<T: DeserializeOwned>(files: &Files, key: &str) -> Result<Stored<T>, TufError> {
    let bad = |reason: String| TufError::BadMetadata {
        file: key.to_owned(),
        reason,
    };
    let text = files.get(key).ok_or_else(|| bad("missing".into()))?;
    let signed = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    Ok(Stored {
        signed,
        text: text.clone(),
    })
}

fn meta_version(meta: &HashMap<String, Metafile>, name: &str, file: &str) -> Result<u64, TufError> {
    meta.get(name)
        .map(|m| m.version.get())
        .ok_or_else(|| TufError::BadMetadata {
            file: file.to_owned(),
            reason: format!("lists no {name}"),
        })
}

fn read(files: &Files) -> Result<Option<Current>, TufError> {
    if !files.contains_key(ROOT_KEY) {
        return Ok(None);
    }
    let root = parse::<Root>(files, ROOT_KEY)?;
    let timestamp = parse::<TufTimestamp>(files, TIMESTAMP)?;
    let v = meta_version(&timestamp.signed.signed.meta, "snapshot.json", TIMESTAMP)?;
    let name = format!("{v}.snapshot.json");
    let snapshot = parse::<Snapshot>(files, &name)?;
    let v = meta_version(&snapshot.signed.signed.meta, "targets.json", &name)?;
    let targets = parse::<Targets>(files, &format!("{v}.targets.json"))?;
    Ok(Some(Current {
        root,
        targets,
        snapshot,
        timestamp,
    }))
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn before(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// When metadata signed to expire at `expires` should be signed again:
/// half its lifetime before it expires.
pub fn resign_at(expires: Timestamp, lifetime: Duration) -> Timestamp {
    before(expires, lifetime / 2)
}

/// Whether metadata expiring at `expires` is due at `now`: in its re-sign
/// window (with a small head start for clock skew), or valid longer than
/// `lifetime` allows (the lifetime was shortened).
pub fn due(expires: Timestamp, lifetime: Duration, now: Timestamp) -> bool {
    let margin = (lifetime / 20).min(MAX_MARGIN);
    after(now, margin) >= resign_at(expires, lifetime) || expires > after(now, lifetime + margin)
}

/// The repository after a run.
#[derive(Debug)]
pub struct Built {
    /// Every file to serve.
    pub files: Files,
    /// When the earliest role enters its re-sign window.
    pub resign_at: Timestamp,
    /// The new versions of root, targets, snapshot and timestamp.
    pub versions: [u64; 4],
}

fn target_map(files: &[TargetFile]) -> Result<HashMap<TargetName, Target>, TufError> {
    files
        .iter()
        .map(|f| {
            let name = TargetName::new(f.name.as_str())
                .map_err(|e| TufError::TrustRoot(format!("target name {}: {e}", f.name)))?;
            let custom = f
                .custom
                .as_ref()
                .and_then(|c| c.as_object())
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let target = Target {
                length: f.content.len() as u64,
                hashes: Hashes {
                    sha256: Sha256::digest(f.content.as_bytes()).to_vec().into(),
                    _extra: HashMap::new(),
                },
                custom,
                _extra: HashMap::new(),
            };
            Ok((name, target))
        })
        .collect()
}

/// The file key of a target, as consistent snapshots name it.
fn target_key(name: &TargetName, t: &Target) -> String {
    format!("targets.{}.{}", hex(&t.hashes.sha256), name.raw())
}

fn metafile(text: &str, version: u64) -> Metafile {
    Metafile {
        length: Some(text.len() as u64),
        hashes: Some(Hashes {
            sha256: Sha256::digest(text.as_bytes()).to_vec().into(),
            _extra: HashMap::new(),
        }),
        version: NonZeroU64::new(version).unwrap_or(NonZeroU64::MIN),
        _extra: HashMap::new(),
    }
}

async fn sign<T: TufRole + Serialize>(
    role: T,
    holder: &KeyHolder,
    keys: &[Box<dyn KeySource>],
    name: Role,
) -> Result<String, TufError> {
    let fail = |reason: String| TufError::Sign {
        role: name.name(),
        reason,
    };
    let signed = SignedRole::new(role, holder, keys, &SystemRandom::new())
        .await
        .map_err(|e| fail(e.to_string()))?;
    String::from_utf8(signed.buffer().clone()).map_err(|e| fail(e.to_string()))
}

/// Signs roles with the keys the root trusts.
struct Signer<'a> {
    holder: &'a KeyHolder,
    keys: &'a KeySet,
}

impl Signer<'_> {
    /// The stored role unless it is `due` (or absent); else a new one made
    /// by `make` at the next version, signed with `role`'s key. The text
    /// and the version.
    async fn keep_or_sign<T: TufRole + Serialize>(
        &self,
        stored: Option<&Stored<T>>,
        due: bool,
        role: Role,
        make: impl FnOnce(NonZeroU64) -> T,
    ) -> Result<(String, u64), TufError> {
        match stored {
            Some(s) if !due => Ok((s.text.clone(), s.signed.signed.version().get())),
            s => {
                let v = s.map_or(1, |s| s.signed.signed.version().get().saturating_add(1));
                let version = NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN);
                let text = sign(make(version), self.holder, &self.keys.source(role), role).await?;
                Ok((text, v))
            }
        }
    }
}

fn new_root(keys: &KeySet, version: u64, expires: Timestamp) -> Result<Root, TufError> {
    let mut root = Root {
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version: NonZeroU64::new(version).unwrap_or(NonZeroU64::MIN),
        expires,
        keys: HashMap::new(),
        roles: HashMap::new(),
        _extra: HashMap::new(),
    };
    for role in Role::ALL {
        let id = keys.key_id(role)?;
        if let Some(public) = keys.public(role) {
            root.keys.insert(id.clone(), public.clone());
        }
        root.roles.insert(
            role.role_type(),
            RoleKeys {
                keyids: vec![id],
                threshold: NonZeroU64::MIN,
                _extra: HashMap::new(),
            },
        );
    }
    Ok(root)
}

/// Whether `root` trusts exactly `keys`, one per role.
fn trusts(root: &Root, keys: &KeySet) -> Result<bool, TufError> {
    for role in Role::ALL {
        let id = keys.key_id(role)?;
        let listed = root
            .roles
            .get(&role.role_type())
            .map(|r| r.keyids.as_slice());
        if listed != Some(std::slice::from_ref(&id)) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn is_root_file(key: &str) -> bool {
    key.strip_suffix(".root.json")
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// Builds the repository for `targets` from the stored `files`, signing
/// only what is new or due at `now`. Unchanged inputs give back the same
/// files.
pub async fn build(
    files: &Files,
    targets: &[TargetFile],
    keys: &KeySet,
    expiry: &Expiry,
    now: Timestamp,
) -> Result<Built, TufError> {
    let now = now.round(Unit::Second).unwrap_or(now);
    let current = read(files)?;
    if let Some(c) = &current
        && !trusts(&c.root.signed.signed, keys)?
    {
        return Err(TufError::KeysChanged);
    }
    let wanted = target_map(targets)?;
    let version = |v: NonZeroU64| v.get().saturating_add(1);
    let mut out = Files::new();

    // Root: kept unless new or due; every version stays for clients that
    // walk the chain from an older root.json.
    let root = match &current {
        Some(c) if !due(c.root.signed.signed.expires, expiry.root, now) => {
            c.root.signed.signed.clone()
        }
        c => {
            let v = c
                .as_ref()
                .map_or(1, |c| version(c.root.signed.signed.version));
            let root = new_root(keys, v, after(now, expiry.root))?;
            let holder = KeyHolder::Root(root.clone());
            let text = sign(root.clone(), &holder, &keys.source(Role::Root), Role::Root).await?;
            out.insert(format!("{v}.root.json"), text);
            root
        }
    };
    let holder = KeyHolder::Root(root.clone());
    for (k, v) in files.iter().filter(|(k, _)| is_root_file(k)) {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let root_key = format!("{}.root.json", root.version);
    if let Some(text) = out.get(&root_key).cloned() {
        out.insert(ROOT_KEY.into(), text);
    }

    // Targets, then snapshot, then timestamp: each is signed again when
    // the one below changed or it is due.
    let keep = |stored: &Option<&Stored<Targets>>| stored.map(|s| s.signed.signed.clone());
    let old_targets = keep(&current.as_ref().map(|c| &c.targets));
    let targets_due = match &old_targets {
        Some(t) => t.targets != wanted || due(t.expires, expiry.targets, now),
        None => true,
    };
    let signer = Signer {
        holder: &holder,
        keys,
    };
    let (targets_text, targets_version) = signer
        .keep_or_sign(
            current.as_ref().map(|c| &c.targets),
            targets_due,
            Role::Targets,
            |v| Targets {
                spec_version: SPEC_VERSION.into(),
                version: v,
                expires: after(now, expiry.targets),
                targets: wanted.clone(),
                delegations: None,
                _extra: HashMap::new(),
            },
        )
        .await?;
    let snapshot_due = targets_due
        || current
            .as_ref()
            .is_none_or(|c| due(c.snapshot.signed.signed.expires, expiry.snapshot, now));
    let (snapshot_text, snapshot_version) = signer
        .keep_or_sign(
            current.as_ref().map(|c| &c.snapshot),
            snapshot_due,
            Role::Snapshot,
            |v| {
                let mut s = Snapshot::new(SPEC_VERSION.into(), v, after(now, expiry.snapshot));
                s.meta.insert(
                    "targets.json".into(),
                    metafile(&targets_text, targets_version),
                );
                s
            },
        )
        .await?;
    let timestamp_due = snapshot_due
        || current
            .as_ref()
            .is_none_or(|c| due(c.timestamp.signed.signed.expires, expiry.timestamp, now));
    let (timestamp_text, timestamp_version) = signer
        .keep_or_sign(
            current.as_ref().map(|c| &c.timestamp),
            timestamp_due,
            Role::Timestamp,
            |v| {
                let mut t = TufTimestamp::new(SPEC_VERSION.into(), v, after(now, expiry.timestamp));
                t.meta.insert(
                    "snapshot.json".into(),
                    metafile(&snapshot_text, snapshot_version),
                );
                t
            },
        )
        .await?;

    // The version before the newest snapshot and targets stays, with its
    // target files, for clients that read the previous timestamp just
    // before a change. Derived from the versions alone, so a run with
    // nothing due keeps exactly the same files.
    for key in [
        format!("{}.snapshot.json", snapshot_version.saturating_sub(1)),
        format!("{}.targets.json", targets_version.saturating_sub(1)),
    ] {
        if let Some(text) = files.get(&key) {
            out.insert(key.clone(), text.clone());
        }
    }
    let previous = format!("{}.targets.json", targets_version.saturating_sub(1));
    if let Ok(old) = parse::<Targets>(files, &previous) {
        for (name, t) in &old.signed.signed.targets {
            let key = target_key(name, t);
            if let Some(content) = files.get(&key) {
                out.insert(key, content.clone());
            }
        }
    }
    for f in targets {
        if let Ok(name) = TargetName::new(f.name.as_str())
            && let Some(t) = wanted.get(&name)
        {
            out.insert(target_key(&name, t), f.content.clone());
        }
    }
    out.insert(format!("{targets_version}.targets.json"), targets_text);
    out.insert(format!("{snapshot_version}.snapshot.json"), snapshot_text);
    out.insert(TIMESTAMP.into(), timestamp_text);

    let signed = read(&out)?.ok_or(TufError::BadMetadata {
        file: ROOT_KEY.into(),
        reason: "missing".into(),
    })?;
    let resign = [
        resign_at(signed.root.signed.signed.expires, expiry.root),
        resign_at(signed.targets.signed.signed.expires, expiry.targets),
        resign_at(signed.snapshot.signed.signed.expires, expiry.snapshot),
        resign_at(signed.timestamp.signed.signed.expires, expiry.timestamp),
    ]
    .into_iter()
    .min()
    .unwrap_or(now);
    Ok(Built {
        files: out,
        resign_at: resign,
        versions: [
            root.version.get(),
            targets_version,
            snapshot_version,
            timestamp_version,
        ],
    })
}

#[cfg(test)]
mod tests;
