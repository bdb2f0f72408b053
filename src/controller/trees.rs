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

use super::observe::Observed;
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
/// In a log's ConfigMap: the trees it replaced, oldest first, space
/// separated.
pub const REPLACED_KEY: &str = "replacedTreeIDs";
pub use crate::build::meta::TREE_ID_ANNOTATION;
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
    [
        (Log::Rekor, spec.rekor.enabled),
        (Log::Ctlog, spec.ctlog.enabled),
    ]
    .into_iter()
    .filter(|(_, enabled)| *enabled)
    .filter_map(|(log, _)| {
        let id = super::plan::tree_id(observed, &names::log_config(&owner.name, log))?;
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

/// The trees `log`'s ConfigMap says it replaced.
pub fn replaced(observed: &Observed, config_map: &str) -> Vec<i64> {
    observed
        .config_maps
        .get(config_map)
        .and_then(|d| d.get(REPLACED_KEY))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every tree the stack's logs replaced.
pub fn lost(owner: &Owner, observed: &Observed) -> Vec<i64> {
    let mut out: Vec<i64> = [Log::Rekor, Log::Ctlog]
        .into_iter()
        .flat_map(|log| replaced(observed, &names::log_config(&owner.name, log)))
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
    let old = *replaced(observed, &cm).last()?;
    let what = log_name(log);
    let Some(id) = super::plan::tree_id(observed, &cm) else {
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
    let lost = replaced(observed, &cm);
    let old = lost.last()?;
    let id = super::plan::tree_id(observed, &cm)?;
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
    if replaced(observed, &cm).is_empty() {
        return None;
    }
    let id = super::plan::tree_id(observed, &cm)?;
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
mod tests {
    use super::*;
    use crate::{
        api::{DatabaseStorage, ExternalDatabase},
        controller::observe::{Availability, SecretView},
    };

    fn owner() -> Owner {
        Owner {
            name: "demo".into(),
            namespace: "ns1".into(),
            uid: "u".into(),
        }
    }

    fn failed(code: tonic::Code, message: &str) -> Result<(), TrillianError> {
        Err(TrillianError::Call {
            call: "GetLatestSignedLogRoot",
            code,
            message: message.into(),
        })
    }

    /// Rekor and the CT log with trees 11 and 22 recorded.
    fn observed() -> Observed {
        let mut o = Observed::default();
        for (log, id) in [("rekor", "11"), ("ctlog", "22")] {
            o.config_maps.insert(
                format!("demo-{log}-config"),
                [(names::TREE_ID_KEY.to_owned(), id.to_owned())].into(),
            );
        }
        o
    }

    fn missing() -> BTreeMap<Log, Probe> {
        [(Log::Rekor, Probe::Missing("tree 11 not found".into()))].into()
    }

    #[test]
    fn only_trillians_not_found_or_a_lost_schema_is_a_verdict() {
        assert_eq!(classify(&Ok::<(), TrillianError>(())), Probe::Present);
        assert!(matches!(
            classify(&failed(tonic::Code::NotFound, "tree 11 not found")),
            Probe::Missing(_)
        ));
        assert!(matches!(
            classify(&failed(
                tonic::Code::Unknown,
                "Error 1146: Table 'trillian.Trees' doesn't exist"
            )),
            Probe::Missing(_)
        ));
        for code in [tonic::Code::Unavailable, tonic::Code::Internal] {
            assert!(matches!(
                classify(&failed(code, "connection refused")),
                Probe::Unknown(_)
            ));
        }
    }

    #[test]
    fn an_ephemeral_database_replaces_a_lost_tree_and_a_lasting_one_waits_for_the_user() {
        let o = observed();
        let none = BTreeMap::new();
        let mut spec = SigstoreStackSpec::default();
        let loss = &losses(&owner(), &spec, &none, &o, &missing())[0];
        assert!(loss.replace);
        assert_eq!((loss.log, loss.tree_id), (Log::Rekor, 11));
        assert!(loss.message.contains("emptyDir"), "{}", loss.message);

        spec.trillian.database.storage = Some(DatabaseStorage {
            size: "1Gi".into(),
            ..Default::default()
        });
        let loss = &losses(&owner(), &spec, &none, &o, &missing())[0];
        assert!(!loss.replace);
        assert!(
            loss.message
                .contains("PersistentVolumeClaim demo-trillian-db")
        );
        assert!(
            loss.message
                .contains("kubectl annotate sst/demo scaffolding.sigstore.dev/replace-tree=11"),
            "{}",
            loss.message
        );
        // The annotation replaces exactly the trees it names.
        let asked = |v: &str| BTreeMap::from([(REPLACE_TREE_ANNOTATION.to_owned(), v.to_owned())]);
        assert!(losses(&owner(), &spec, &asked("11,22"), &o, &missing())[0].replace);
        assert!(!losses(&owner(), &spec, &asked("12"), &o, &missing())[0].replace);

        spec.trillian.database.storage = None;
        spec.trillian.database.mode = DatabaseMode::External;
        spec.trillian.database.external = Some(ExternalDatabase {
            host: "mysql.example".into(),
            ..Default::default()
        });
        let loss = &losses(&owner(), &spec, &none, &o, &missing())[0];
        assert!(!loss.replace);
        assert!(loss.message.contains("external database at mysql.example"));

        // A tree that answers, or no answer at all, is no loss.
        for probe in [Probe::Present, Probe::Unknown("timeout".into())] {
            let probes = [(Log::Rekor, probe)].into();
            assert!(losses(&owner(), &spec, &none, &o, &probes).is_empty());
        }
    }

    #[test]
    fn a_log_is_unavailable_until_it_runs_on_its_new_tree() {
        let owner = owner();
        let mut o = observed();
        let spec = SigstoreStackSpec::default();
        let mut health = LogHealth {
            probes: missing(),
            ..Default::default()
        };
        health.losses = losses(&owner, &spec, &BTreeMap::new(), &o, &health.probes);
        let (reason, _) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
        assert_eq!(reason, TREE_MISSING);
        assert_eq!(unavailable(&owner, Log::Ctlog, &o, &health), None);

        // Replaced: nothing recorded, the old tree remembered once.
        let cm = o.config_maps.get_mut("demo-rekor-config").unwrap();
        forget(cm, &health.losses[0]);
        forget(cm, &health.losses[0]);
        assert_eq!(cm.get(names::TREE_ID_KEY), None);
        assert_eq!(cm[REPLACED_KEY], "11");
        let health = LogHealth::default();
        let (_, message) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
        assert!(message.contains("waiting for its new tree"), "{message}");
        assert_eq!(lost(&owner, &o), vec![11]);
        assert_eq!(healed_tree(&owner, Log::Rekor, &o), None);

        // The new tree is recorded: Rekor's template names it, and until
        // its Pod runs on it the log is not available.
        o.config_maps
            .get_mut("demo-rekor-config")
            .unwrap()
            .insert(names::TREE_ID_KEY.into(), "33".into());
        assert_eq!(healed_tree(&owner, Log::Rekor, &o), Some(33));
        let (_, message) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
        assert!(
            message.contains("restarts onto its new tree 33"),
            "{message}"
        );
        o.deployments.insert(
            "demo-rekor".into(),
            Availability {
                available: 1,
                current: true,
                tree: Some(33),
            },
        );
        assert_eq!(unavailable(&owner, Log::Rekor, &o, &health), None);
        let note = healed_note(&owner, Log::Rekor, &o).unwrap();
        assert!(
            note.contains("tree 33") && note.contains("tree 11"),
            "{note}"
        );
    }

    #[test]
    fn the_ct_log_restarts_only_once_its_config_names_the_new_tree() {
        let owner = owner();
        let mut o = observed();
        let cm = o.config_maps.get_mut("demo-ctlog-config").unwrap();
        cm.insert(names::TREE_ID_KEY.into(), "44".into());
        cm.insert(REPLACED_KEY.into(), "22".into());
        o.secrets.insert(
            "demo-ctlog".into(),
            SecretView {
                config_log_id: Some(22),
                ..Default::default()
            },
        );
        assert_eq!(healed_tree(&owner, Log::Ctlog, &o), None);
        let (_, message) = unavailable(&owner, Log::Ctlog, &o, &LogHealth::default()).unwrap();
        assert!(message.contains("waiting for its config"), "{message}");
        o.secrets.get_mut("demo-ctlog").unwrap().config_log_id = Some(44);
        assert_eq!(healed_tree(&owner, Log::Ctlog, &o), Some(44));
    }

    #[test]
    fn a_server_that_answers_without_its_log_is_not_serving() {
        let owner = owner();
        let o = observed();
        assert_eq!(classify_serving(Ok((200, "{}".into()))), Serving::Serves);
        assert!(matches!(
            classify_serving(Err("refused".into())),
            Serving::Unknown(_)
        ));
        let refused = classify_serving(Ok((
            500,
            "unexpected error communicating with transparency log".into(),
        )));
        let health = LogHealth {
            serving: [(Log::Rekor, refused)].into(),
            ..Default::default()
        };
        let (reason, message) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
        assert_eq!(reason, LOG_NOT_SERVING);
        assert!(message.contains("HTTP 500"), "{message}");
        assert_eq!(requeue(&health), Some(CHECK_EVERY));
        assert_eq!(requeue(&LogHealth::default()), None);
        let unknown = LogHealth {
            serving: [(Log::Ctlog, Serving::Unknown("dns".into()))].into(),
            ..Default::default()
        };
        assert_eq!(requeue(&unknown), Some(UNKNOWN_REQUEUE));
        assert_eq!(
            serving_url(&owner, &SigstoreStackSpec::default(), Log::Ctlog),
            "http://demo-ctlog.ns1.svc/sigstorescaffolding/ct/v1/get-sth"
        );
    }
}
