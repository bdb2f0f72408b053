//! Pure decisions about stages: is a stage's output there, may it start,
//! and which Job to create or delete. A failed Job is never the end: the
//! next attempt follows after a delay that grows with each failure.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::observe::{JobState, JobView, Observed};
use super::trust::{SIGNING_CONFIG_KEY, TRUSTED_ROOT_KEY};
use crate::{
    api::SigstoreStackSpec,
    build::{Owner, stages::Stage},
    conditions::{Desired, Status},
    names::{self, Log, TRILLIAN_LOG_SERVER},
    stage::{createcertchain, createcerts, createctconfig, rekorkey, secrets::Data},
    tuf,
};

/// Reason: the stage's output exists.
pub const CREATED: &str = "Created";
/// Reason: the stage waits for an input.
pub const WAITING: &str = "WaitingForInputs";
/// Reason: a Job runs the stage.
pub const RUNNING: &str = "Running";
/// Reason: the last attempt failed; another follows.
pub const FAILED: &str = "Failed";

/// Whether `stage`'s output is complete, with a sentence on what is there
/// or missing.
pub fn done(
    stage: Stage,
    owner: &Owner,
    spec: &SigstoreStackSpec,
    observed: &Observed,
) -> (bool, String) {
    let stack = &owner.name;
    let secret = |name: &str| observed.secrets.get(name);
    match stage {
        Stage::Tuf => {
            let name = names::tuf_repository(stack);
            let Some(repo) = observed.tuf.as_ref().filter(|r| r.has_root) else {
                return (false, format!("ConfigMap {name} holds no repository yet"));
            };
            match tuf_inputs(owner, spec, observed) {
                Some(digest) if repo.inputs.as_deref() == Some(digest.as_str()) => (
                    true,
                    format!("ConfigMap {name} holds the signed TUF repository"),
                ),
                _ => (
                    false,
                    format!("ConfigMap {name} does not list the current trust root yet"),
                ),
            }
        }
        Stage::RekorTree | Stage::CtlogTree => {
            let log = if stage == Stage::RekorTree {
                Log::Rekor
            } else {
                Log::Ctlog
            };
            let name = names::log_config(stack, log);
            let lost = super::trees::replaced(observed, &name);
            match (tree_id(observed, &name), lost.last()) {
                (Some(id), Some(old)) => (
                    true,
                    format!(
                        "ConfigMap {name} records tree {id}, which replaced tree {old} when the \
                         database lost it"
                    ),
                ),
                (Some(id), None) => (true, format!("ConfigMap {name} records tree {id}")),
                (None, _) => (false, format!("ConfigMap {name} has no treeID yet")),
            }
        }
        Stage::Certs => key_pair_done(
            observed,
            (&names::fulcio_ca(stack), createcerts::REQUIRED),
            (&names::fulcio_public(stack), "cert"),
            "Fulcio's CA",
        ),
        Stage::RekorKey => key_pair_done(
            observed,
            (&names::rekor_signer(stack), rekorkey::REQUIRED),
            (&names::rekor_public(stack), "public"),
            "Rekor's signing key",
        ),
        Stage::TsaChain => key_pair_done(
            observed,
            (&names::tsa_secret(stack), createcertchain::REQUIRED),
            (&names::tsa_public(stack), "cert-chain"),
            "the TSA's key and chain",
        ),
        Stage::CtConfig => {
            let name = names::ctlog_secret(stack);
            let public = names::ctlog_public(stack);
            let Some(ct) = secret(&name).filter(|s| s.has_all(&["private", "public", "config"]))
            else {
                return (false, format!("Secret {name} is not complete yet"));
            };
            if !secret(&public).is_some_and(|s| s.has_all(&["public"])) {
                return (false, format!("Secret {public} is not complete yet"));
            }
            let tree = tree_id(observed, &names::log_config(stack, Log::Ctlog));
            if tree.is_some() && ct.config_log_id != tree {
                return (
                    false,
                    format!("the config in Secret {name} names another tree"),
                );
            }
            if let Some(root) = fulcio_root(owner, observed) {
                let roots: Data = ct
                    .public
                    .iter()
                    .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.clone().into_bytes())))
                    .collect();
                if createctconfig::merge_roots(&roots, &root).1.is_some() {
                    return (
                        false,
                        format!("Secret {name} does not trust Fulcio's current root yet"),
                    );
                }
            }
            (
                true,
                format!("Secret {name} holds the CT log's key and config"),
            )
        }
    }
}

/// Whether a stage's private Secret holds `required` and its public copy
/// holds `public_key`.
fn key_pair_done(
    observed: &Observed,
    (private, required): (&str, &[&str]),
    (public, public_key): (&str, &str),
    what: &str,
) -> (bool, String) {
    let has =
        |name: &str, keys: &[&str]| observed.secrets.get(name).is_some_and(|s| s.has_all(keys));
    if has(private, required) && has(public, &[public_key]) {
        (true, format!("Secret {private} holds {what}"))
    } else {
        (
            false,
            format!("Secret {private} or {public} is not complete yet"),
        )
    }
}

/// The tree ID a log's ConfigMap records.
pub fn tree_id(observed: &Observed, config_map: &str) -> Option<i64> {
    observed
        .config_maps
        .get(config_map)?
        .get(names::TREE_ID_KEY)?
        .trim()
        .parse()
        .ok()
        .filter(|id| *id > 0)
}

/// The digest of the TUF repository's inputs as published now: the trust
/// root ConfigMap and the spec's expiries.
pub fn tuf_inputs(owner: &Owner, spec: &SigstoreStackSpec, observed: &Observed) -> Option<String> {
    let trust = observed
        .config_maps
        .get(&owner.name_of(names::TRUST_ROOT))?;
    let root = trust.get(TRUSTED_ROOT_KEY)?;
    Some(tuf::inputs_digest(
        root,
        trust.get(SIGNING_CONFIG_KEY).map(String::as_str),
        &tuf::Expiry::from(&spec.tuf.expiry),
    ))
}

/// When a finished stage must run again although its output is complete:
/// the TUF repository when its first role comes due for re-signing.
pub fn refresh_at(stage: Stage, observed: &Observed) -> Option<Timestamp> {
    match stage {
        Stage::Tuf => observed.tuf.as_ref().and_then(|r| r.resign_at),
        _ => None,
    }
}

/// Fulcio's root certificate (the last of the public chain).
pub fn fulcio_root(owner: &Owner, observed: &Observed) -> Option<String> {
    let chain = observed
        .secrets
        .get(&names::fulcio_public(&owner.name))?
        .public
        .get("cert")?;
    createctconfig::root_of_chain(chain)
}

/// What `stage` still waits for before it can start, if anything.
pub fn waiting_for(
    stage: Stage,
    owner: &Owner,
    spec: &SigstoreStackSpec,
    observed: &Observed,
) -> Option<String> {
    match stage {
        Stage::Tuf => {
            let trust = owner.name_of(names::TRUST_ROOT);
            let published = observed
                .config_maps
                .get(&trust)
                .is_some_and(|d| d.contains_key(TRUSTED_ROOT_KEY));
            (!published).then(|| format!("the trust root (ConfigMap {trust})"))
        }
        Stage::Certs | Stage::RekorKey | Stage::TsaChain => None,
        Stage::RekorTree | Stage::CtlogTree => {
            let server = owner.name_of(TRILLIAN_LOG_SERVER);
            (!observed.available(&server))
                .then(|| format!("Trillian's log server (Deployment {server}) to become available"))
        }
        Stage::CtConfig => {
            let mut missing = Vec::new();
            if !done(Stage::CtlogTree, owner, spec, observed).0 {
                missing.push("the CT log's tree");
            }
            if !done(Stage::Certs, owner, spec, observed).0 {
                missing.push("Fulcio's CA");
            }
            (!missing.is_empty()).then(|| missing.join(" and "))
        }
    }
}

/// Where a stage stands, from what exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageState {
    /// Whether its output is complete.
    pub done: bool,
    /// What is there or missing.
    pub detail: String,
    /// When a complete output must be refreshed.
    pub refresh: Option<Timestamp>,
    /// What it still waits for.
    pub waiting: Option<String>,
}

/// `stage`'s state in the stack `owner` with `spec`.
pub fn state(
    stage: Stage,
    owner: &Owner,
    spec: &SigstoreStackSpec,
    observed: &Observed,
) -> StageState {
    let (done, detail) = done(stage, owner, spec, observed);
    StageState {
        done,
        detail,
        refresh: refresh_at(stage, observed),
        waiting: waiting_for(stage, owner, spec, observed),
    }
}

/// What to do about one stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagePlan {
    /// The stage.
    pub stage: Stage,
    /// Its condition.
    pub condition: Desired,
    /// Create this attempt's Job.
    pub create: Option<u32>,
    /// Delete these Jobs (stale or superseded).
    pub delete: Vec<String>,
    /// Look again after this long (a retry delay runs).
    pub requeue: Option<Duration>,
    /// Whether the last attempt failed.
    pub failed: bool,
}

/// The delay after `failures` failed attempts in a row: `base`, doubling,
/// at most five minutes.
pub fn retry_delay(base: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// Decides `stage`'s Jobs from its state and its Jobs (`jobs` holds only
/// this stage's). `hash` is the current Pod template's: Jobs of another
/// hash come from an older spec and are deleted, so a spec change starts
/// again from attempt 1.
pub fn plan(
    stage: Stage,
    state: StageState,
    jobs: &[&JobView],
    hash: &str,
    now: Timestamp,
    retry_base: Duration,
) -> StagePlan {
    let StageState {
        done: is_done,
        detail,
        refresh,
        waiting,
    } = state;
    let condition = |status, reason, message: String| Desired {
        type_: stage.condition(),
        status,
        reason,
        message,
    };
    let mut delete: Vec<String> = jobs
        .iter()
        .filter(|j| j.hash != hash)
        .map(|j| j.name.clone())
        .collect();
    let latest = jobs
        .iter()
        .filter(|j| j.hash == hash)
        .max_by_key(|j| j.attempt);
    let mut out = StagePlan {
        stage,
        condition: condition(Status::True, CREATED, detail.clone()),
        create: None,
        delete: Vec::new(),
        requeue: None,
        failed: false,
    };
    let refreshing = is_done && refresh.is_some_and(|at| now >= at);
    if is_done && !refreshing {
        // Finished Jobs of an earlier spec stay for their logs; nothing
        // runs again, until a refresh is due.
        out.requeue =
            refresh.map(|at| Duration::try_from(at.duration_since(now)).unwrap_or_default());
        return out;
    }
    if let Some(w) = waiting {
        out.condition = condition(Status::False, WAITING, format!("Waiting for {w}."));
        out.delete = delete;
        return out;
    }
    let superseded = |keep: &str| -> Vec<String> {
        jobs.iter()
            .filter(|j| j.hash == hash && j.name != keep)
            .map(|j| j.name.clone())
            .collect()
    };
    match latest {
        None => {
            out.create = Some(1);
            out.condition = condition(Status::False, RUNNING, "Starting the first attempt.".into());
        }
        Some(job) => match &job.state {
            JobState::Running => {
                out.condition = condition(
                    Status::False,
                    RUNNING,
                    format!("Job {} (attempt {}) is running.", job.name, job.attempt),
                );
            }
            JobState::Succeeded => {
                // It succeeded, yet the output is gone (deleted since):
                // run again at once; the stage keeps what still exists.
                out.create = Some(job.attempt + 1);
                delete.extend(superseded(&job.name));
                out.condition = condition(
                    Status::False,
                    RUNNING,
                    format!("{detail}; running the stage again."),
                );
            }
            JobState::Failed { at, reason } => {
                let failure = job
                    .message
                    .as_deref()
                    .map(last_line)
                    .filter(|m| !m.is_empty())
                    .unwrap_or(reason.as_str())
                    .to_owned();
                let delay = retry_delay(retry_base, job.attempt);
                let due = at
                    .checked_add(SignedDuration::try_from(delay).unwrap_or_default())
                    .unwrap_or(*at);
                out.failed = true;
                if now >= due {
                    out.create = Some(job.attempt + 1);
                    delete.extend(superseded(&job.name));
                    out.condition = condition(
                        Status::False,
                        RUNNING,
                        format!(
                            "Attempt {} is starting; attempt {} failed: {failure}",
                            job.attempt + 1,
                            job.attempt
                        ),
                    );
                } else {
                    let wait = Duration::try_from(due.duration_since(now)).unwrap_or_default();
                    out.requeue = Some(wait);
                    // A fixed time, not a countdown: the message must not
                    // change from one pass to the next, or every pass writes.
                    out.condition = condition(
                        Status::False,
                        FAILED,
                        format!(
                            "Job {} (attempt {}) failed: {failure}. The next attempt starts at {}.",
                            job.name,
                            job.attempt,
                            due.round(k8s_openapi::jiff::Unit::Second).unwrap_or(due)
                        ),
                    );
                }
            }
        },
    }
    out.delete = delete;
    if refreshing {
        // The output serves meanwhile: the condition stays True and says
        // what runs (or failed).
        out.condition = condition(
            Status::True,
            CREATED,
            format!("{detail}; refreshing: {}", out.condition.message),
        );
    }
    out
}

/// The last non-empty line of a Pod's log tail, bounded: the stage prints
/// its error there.
fn last_line(message: &str) -> &str {
    let line = message
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(500) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// The stages `spec` enables, with the stage decisions for each.
pub fn enabled_stages(spec: &SigstoreStackSpec) -> Vec<Stage> {
    Stage::ALL.into_iter().filter(|s| s.enabled(spec)).collect()
}

#[cfg(test)]
mod tests;
