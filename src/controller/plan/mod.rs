//! Pure decisions about a stage's Jobs: from its state (by its rules,
//! [`crate::stage::table::Rules`]) and its Jobs, which Job to create or
//! delete and what its condition says. A failed Job is never the end: the
//! next attempt follows after a delay that grows with each failure.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::{
    conditions::{Desired, Status},
    observed::{JobState, JobView},
    stage::{Stage, View},
};

/// Reason: the stage's output exists.
pub const CREATED: &str = "Created";
/// Reason: the stage waits for an input.
pub const WAITING: &str = "WaitingForInputs";
/// Reason: a Job runs the stage.
pub const RUNNING: &str = "Running";
/// Reason: the last attempt failed; another follows.
pub const FAILED: &str = "Failed";

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
    /// The reason once done, when not [`CREATED`].
    pub done_reason: Option<&'static str>,
    /// The reason while it waits, when not [`WAITING`].
    pub waiting_reason: Option<&'static str>,
    /// Why its last run for the current inputs failed, when its rules say.
    pub failure: Option<(&'static str, String)>,
}

/// `stage`'s state, by its rules.
pub fn state(stage: Stage, view: View<'_>) -> StageState {
    let (done, detail) = stage.done(view);
    StageState {
        done,
        detail,
        refresh: stage.refresh_at(view.observed),
        waiting: stage.waiting_for(view),
        done_reason: stage.rules().done_reason(),
        waiting_reason: stage.rules().waiting_reason(view),
        failure: stage.rules().failure(view),
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
        done_reason,
        waiting_reason,
        failure: recorded,
    } = state;
    let created = done_reason.unwrap_or(CREATED);
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
        condition: condition(Status::True, created, detail.clone()),
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
        out.condition = condition(
            Status::False,
            waiting_reason.unwrap_or(WAITING),
            format!("Waiting for {w}."),
        );
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
    if let Some((reason, message)) = recorded {
        // The stage said why it failed: that is the reason, and the stack
        // is degraded until an attempt passes.
        out.failed = true;
        out.condition.reason = reason;
        if !out.condition.message.contains(&message) {
            out.condition.message = format!("{message} ({})", out.condition.message);
        }
    }
    if refreshing {
        // The output serves meanwhile: the condition stays True and says
        // what runs (or failed).
        out.condition = condition(
            Status::True,
            created,
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

#[cfg(test)]
mod tests;
