//! Logs whose Trillian tree is gone. As part of each log's availability
//! the operator asks Trillian for the tree its ConfigMap records
//! (`GetLatestSignedLogRoot`). A tree Trillian says does not exist is a
//! loss: where the database was ephemeral by design (embedded, on an
//! emptyDir) a new tree replaces it, since the old one provably no longer
//! exists; where the data should have lasted (a claim, an external
//! database) it is reported and left alone until the user asks for a new
//! tree with [`REPLACE_TREE_ANNOTATION`].
//!
//! The keys never change, so the trust root keeps verifying what was
//! signed before: a client checks an entry against the checkpoint in its
//! bundle, signed by the log's key, not against the live tree.

use std::{collections::BTreeMap, time::Duration};

use crate::observed::Observed;
use crate::{
    api::{DatabaseMode, SigstoreStackSpec},
    build::{Owner, trillian},
    names::{self, Log},
    trillian::{Trillian, TrillianError},
};

/// On the stack: the IDs (comma separated) of missing trees the user wants
/// replaced by new, empty ones (for a database that was meant to keep
/// them).
pub const REPLACE_TREE_ANNOTATION: &str = "scaffolding.sigstore.dev/replace-tree";
pub use crate::build::meta::TREE_ID_ANNOTATION;
pub use crate::names::REPLACED_KEY;
/// The availability condition's reason for a lost tree.
pub const TREE_MISSING: &str = "TreeMissing";
/// The availability condition's reason for a log server that answers, but
/// not with its log.
pub const LOG_NOT_SERVING: &str = "LogNotServing";
/// How long one probe may take; an unreachable Trillian is no verdict.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How soon to look again when a probe had no answer.
pub const UNKNOWN_REQUEUE: Duration = Duration::from_secs(15);
/// How often a Trillian-backed stack's trees are checked when nothing
/// else happens.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// What Trillian said of a recorded tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It answers.
    Present,
    /// Trillian says it does not exist (its message).
    Missing(String),
    /// No verdict: unreachable, or another error (its message).
    Unknown(String),
}

/// The verdict of one `GetLatestSignedLogRoot`.
pub fn classify<T>(result: &Result<T, TrillianError>) -> Probe {
    match result {
        Ok(_) => Probe::Present,
        Err(e) if e.code() == Some(tonic::Code::NotFound) => Probe::Missing(e.to_string()),
        // MySQL's error 1146: the schema itself is gone, so is every tree
        // (a database that came back empty).
        Err(e) if e.to_string().contains("doesn't exist") => Probe::Missing(e.to_string()),
        Err(e) => Probe::Unknown(e.to_string()),
    }
}

/// The recorded trees of the stack's Trillian-backed logs.
pub fn recorded(owner: &Owner, spec: &SigstoreStackSpec, observed: &Observed) -> Vec<(Log, i64)> {
    crate::build::component::Component::ALL
        .into_iter()
        .filter(|c| c.wanted(spec))
        .filter_map(|c| c.trillian_log())
        .filter_map(|log| {
            let id = observed.tree_id(&names::log_config(&owner.name, log))?;
            Some((log, id))
        })
        .collect()
}

/// Asks Trillian at `address` for each of `trees`.
pub async fn probe(address: &str, trees: &[(Log, i64)]) -> BTreeMap<Log, Probe> {
    let mut out = BTreeMap::new();
    let client = match Trillian::connect_lazy(address) {
        Ok(c) => c,
        Err(e) => {
            for (log, _) in trees {
                out.insert(*log, Probe::Unknown(e.to_string()));
            }
            return out;
        }
    };
    for (log, id) in trees {
        let verdict = match tokio::time::timeout(PROBE_TIMEOUT, client.latest_root(*id)).await {
            Ok(result) => classify(&result),
            Err(_) => Probe::Unknown(format!("no answer from {address} in {PROBE_TIMEOUT:?}")),
        };
        out.insert(*log, verdict);
    }
    out
}

/// What a log's server said when asked for its current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serving {
    /// It answered with its log.
    Serves,
    /// It answered with an error (the status and the start of the body).
    Refuses(String),
    /// No answer (unreachable from here): no verdict.
    Unknown(String),
}

/// Where `log`'s server says what its log holds: Rekor's log info, the CT
/// log's signed tree head. Both read the tree from Trillian.
pub fn serving_url(owner: &Owner, spec: &SigstoreStackSpec, log: Log) -> String {
    match log {
        Log::Rekor => format!("{}/api/v1/log", crate::build::rekor::url(owner)),
        Log::Ctlog => format!(
            "{}/ct/v1/get-sth",
            crate::build::ctlog::url(owner, &spec.ctlog.prefix)
        ),
    }
}

/// The verdict of one GET of [`serving_url`].
pub fn classify_serving(result: Result<(u16, String), String>) -> Serving {
    match result {
        Ok((code, _)) if (200..300).contains(&code) => Serving::Serves,
        Ok((code, body)) => Serving::Refuses(format!("HTTP {code}: {body}")),
        Err(why) => Serving::Unknown(why),
    }
}

/// What the operator learnt of a stack's logs this pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogHealth {
    /// What Trillian said of each recorded tree.
    pub probes: BTreeMap<Log, Probe>,
    /// The logs whose tree Trillian no longer has.
    pub losses: Vec<Loss>,
    /// What each log's server said.
    pub serving: BTreeMap<Log, Serving>,
}

/// Where the trees' database keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The embedded database on an emptyDir: gone with its Pod.
    Ephemeral,
    /// The embedded database on this PersistentVolumeClaim.
    Claim(String),
    /// An external database at this host.
    External(String),
}

/// Where `spec`'s database keeps its data.
pub fn durability(owner: &Owner, spec: &SigstoreStackSpec) -> Durability {
    match spec.trillian.database.mode {
        DatabaseMode::External => {
            Durability::External(trillian::database(owner, spec).host.clone())
        }
        DatabaseMode::Embedded if spec.trillian.database.storage.is_some() => {
            Durability::Claim(owner.name_of(names::TRILLIAN_DB))
        }
        DatabaseMode::Embedded => Durability::Ephemeral,
    }
}

/// A log whose recorded tree Trillian no longer has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// The log.
    pub log: Log,
    /// The missing tree.
    pub tree_id: i64,
    /// Whether a new tree replaces it now.
    pub replace: bool,
    /// What happened and what follows, for the condition and the Event.
    pub message: String,
}

fn log_name(log: Log) -> &'static str {
    match log {
        Log::Rekor => "Rekor's log",
        Log::Ctlog => "the CT log",
    }
}

/// [`log_name`] at the start of a sentence.
fn log_title(log: Log) -> &'static str {
    match log {
        Log::Rekor => "Rekor's log",
        Log::Ctlog => "The CT log",
    }
}

/// The losses among `probes`, and what to do about each.
pub fn losses(
    owner: &Owner,
    spec: &SigstoreStackSpec,
    annotations: &BTreeMap<String, String>,
    observed: &Observed,
    probes: &BTreeMap<Log, Probe>,
) -> Vec<Loss> {
    let durability = durability(owner, spec);
    let asked: Vec<&str> = annotations
        .get(REPLACE_TREE_ANNOTATION)
        .map(|v| v.split([',', ' ']).map(str::trim).collect())
        .unwrap_or_default();
    recorded(owner, spec, observed)
        .into_iter()
        .filter_map(|(log, id)| {
            let Some(Probe::Missing(said)) = probes.get(&log) else {
                return None;
            };
            let cm = names::log_config(&owner.name, log);
            let what = log_name(log);
            let deliberate = asked.contains(&id.to_string().as_str());
            let (replace, message) = match (&durability, deliberate) {
                (Durability::Ephemeral, _) => (
                    true,
                    format!(
                        "Tree {id} of {what} no longer exists in Trillian ({said}): the embedded \
                         database keeps its data on an emptyDir, which starts empty when its Pod \
                         is replaced. A new tree is created with the same key; bundles signed \
                         before still verify. Set trillian.database.storage to keep the trees."
                    ),
                ),
                (_, true) => (
                    true,
                    format!(
                        "Tree {id} of {what} no longer exists in Trillian ({said}); replacing it \
                         with a new, empty tree as annotation {REPLACE_TREE_ANNOTATION} asks."
                    ),
                ),
                (Durability::Claim(claim), false) => (
                    false,
                    format!(
                        "Tree {id} of {what}, recorded in ConfigMap {cm}, does not exist in \
                         Trillian ({said}), although the embedded database keeps its data on \
                         PersistentVolumeClaim {claim}. Check that the claim still holds the \
                         database's data. To start a new, empty log on purpose: kubectl annotate \
                         sst/{stack} {REPLACE_TREE_ANNOTATION}={id}",
                        stack = owner.name
                    ),
                ),
                (Durability::External(host), false) => (
                    false,
                    format!(
                        "Tree {id} of {what}, recorded in ConfigMap {cm}, does not exist in \
                         Trillian ({said}), which uses the external database at {host}. Check \
                         that it is the right database and that its data is intact. To start a \
                         new, empty log on purpose: kubectl annotate sst/{stack} \
                         {REPLACE_TREE_ANNOTATION}={id}",
                        stack = owner.name
                    ),
                ),
            };
            Some(Loss {
                log,
                tree_id: id,
                replace,
                message,
            })
        })
        .collect()
}

/// Every tree the stack's logs replaced.
pub fn lost(owner: &Owner, observed: &Observed) -> Vec<i64> {
    let mut out: Vec<i64> = [Log::Rekor, Log::Ctlog]
        .into_iter()
        .flat_map(|log| observed.replaced_trees(&names::log_config(&owner.name, log)))
        .collect();
    out.sort_unstable();
    out
}

/// The ConfigMap data after replacing `loss`: no tree recorded, so
/// createtree makes a new one, and the lost one remembered.
pub fn forget(data: &mut BTreeMap<String, String>, loss: &Loss) {
    data.remove(names::TREE_ID_KEY);
    let mut history: Vec<String> = data
        .get(REPLACED_KEY)
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let old = loss.tree_id.to_string();
    if !history.contains(&old) {
        history.push(old);
    }
    data.insert(REPLACED_KEY.into(), history.join(" "));
}

/// The availability condition of `log` when its tree is lost or being
/// replaced: the reason and message that override its Deployments'.
pub fn unavailable(
    owner: &Owner,
    log: Log,
    observed: &Observed,
    health: &LogHealth,
) -> Option<(&'static str, String)> {
    if let Some(loss) = health.losses.iter().find(|l| l.log == log) {
        return Some((TREE_MISSING, loss.message.clone()));
    }
    if let Some(healing) = healing(owner, log, observed) {
        return Some((TREE_MISSING, healing));
    }
    match health.serving.get(&log) {
        Some(Serving::Refuses(said)) => Some((
            LOG_NOT_SERVING,
            format!("{} answers, but not with its log: {said}", log_title(log)),
        )),
        _ => None,
    }
}

/// While `log` moves onto a new tree: what it waits for.
fn healing(owner: &Owner, log: Log, observed: &Observed) -> Option<String> {
    let cm = names::log_config(&owner.name, log);
    let old = *observed.replaced_trees(&cm).last()?;
    let what = log_name(log);
    let Some(id) = observed.tree_id(&cm) else {
        return Some(format!(
            "Tree {old} of {what} was lost with its database; waiting for its new tree."
        ));
    };
    let Some(running) = healed_tree(owner, log, observed) else {
        return Some(format!(
            "{} has new tree {id}; waiting for its config to name it.",
            log_title(log)
        ));
    };
    let deployment = owner.name_of(match log {
        Log::Rekor => names::REKOR,
        Log::Ctlog => names::CTLOG,
    });
    let rolled = observed
        .deployments
        .get(&deployment)
        .is_some_and(|a| a.tree == Some(running) && a.is_available());
    (!rolled).then(|| {
        format!(
            "{} restarts onto its new tree {id} (it replaces tree {old}).",
            log_title(log)
        )
    })
}

/// What an available log that replaced a tree says of it.
pub fn healed_note(owner: &Owner, log: Log, observed: &Observed) -> Option<String> {
    let cm = names::log_config(&owner.name, log);
    let lost = observed.replaced_trees(&cm);
    let old = lost.last()?;
    let id = observed.tree_id(&cm)?;
    Some(format!(
        " {} runs on tree {id}, which replaced tree {old} when the database lost it.",
        log_title(log)
    ))
}

/// The tree a healed log's workload runs on (for [`TREE_ID_ANNOTATION`]):
/// set only once the log replaced a tree and its new one is recorded, and
/// for the CT log only once its config names it, so the Pod restarts onto
/// a config that has the new tree.
pub fn healed_tree(owner: &Owner, log: Log, observed: &Observed) -> Option<i64> {
    let cm = names::log_config(&owner.name, log);
    if observed.replaced_trees(&cm).is_empty() {
        return None;
    }
    let id = observed.tree_id(&cm)?;
    match log {
        Log::Rekor => Some(id),
        Log::Ctlog => {
            let config = observed
                .secrets
                .get(&names::ctlog_secret(&owner.name))?
                .config_log_id;
            (config == Some(id)).then_some(id)
        }
    }
}

/// How soon to ask again.
pub fn requeue(health: &LogHealth) -> Option<Duration> {
    let unknown = health
        .probes
        .values()
        .any(|p| matches!(p, Probe::Unknown(_)))
        || health
            .serving
            .values()
            .any(|s| matches!(s, Serving::Unknown(_)));
    if unknown {
        Some(UNKNOWN_REQUEUE)
    } else if health.probes.is_empty() && health.serving.is_empty() {
        None
    } else {
        Some(CHECK_EVERY)
    }
}

#[cfg(test)]
mod tests;
