//! Unit tests of `plan`.

use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn job(attempt: u32, hash: &str, state: JobState) -> JobView {
    JobView {
        name: format!("demo-certs-{hash}-{attempt}"),
        stage: "certs".into(),
        hash: hash.into(),
        attempt,
        state,
        message: Some("INFO starting\nstage failed: Trillian unavailable\n".into()),
    }
}

fn run(jobs: &[JobView], now: i64) -> StagePlan {
    let refs: Vec<&JobView> = jobs.iter().collect();
    plan(
        Stage::Certs,
        StageState {
            done: false,
            detail: "missing".into(),
            refresh: None,
            waiting: None,
            done_reason: None,
            waiting_reason: None,
            failure: None,
        },
        &refs,
        "h",
        at(now),
        Duration::from_secs(10),
    )
}

#[test]
fn first_attempt_starts_at_once() {
    let p = run(&[], 0);
    assert_eq!(p.create, Some(1));
    assert_eq!(p.condition.reason, RUNNING);
}

#[test]
fn running_job_is_left_alone() {
    let p = run(&[job(1, "h", JobState::Running)], 0);
    assert_eq!((p.create, p.delete.len()), (None, 0));
}

#[test]
fn failure_waits_then_retries_with_growing_delay() {
    let failed = |_attempt: u32| JobState::Failed {
        at: at(100),
        reason: "BackoffLimitExceeded".into(),
    };
    let p = run(&[job(1, "h", failed(1))], 105);
    assert_eq!(p.create, None);
    assert_eq!(p.condition.reason, FAILED);
    assert!(
        p.condition.message.contains("Trillian unavailable"),
        "{}",
        p.condition.message
    );
    assert_eq!(p.requeue, Some(Duration::from_secs(5)));
    assert!(p.failed);
    let p = run(&[job(1, "h", failed(1))], 110);
    assert_eq!(p.create, Some(2));
    // Third failure waits 40 s.
    let p = run(&[job(2, "h", failed(2)), job(3, "h", failed(3))], 130);
    assert_eq!(p.requeue, Some(Duration::from_secs(10)));
    let p = run(&[job(2, "h", failed(2)), job(3, "h", failed(3))], 140);
    assert_eq!(p.create, Some(4));
    assert_eq!(
        p.delete,
        ["demo-certs-h-2"],
        "only the last failure is kept"
    );
}

#[test]
fn spec_change_restarts_the_count() {
    let failed = JobState::Failed {
        at: at(0),
        reason: "x".into(),
    };
    let p = run(&[job(7, "old", failed)], 1);
    assert_eq!(p.create, Some(1));
    assert_eq!(p.delete, ["demo-certs-old-7"]);
}

#[test]
fn deleted_output_runs_the_stage_again() {
    let p = run(&[job(1, "h", JobState::Succeeded)], 0);
    assert_eq!(p.create, Some(2));
}

#[test]
fn done_stage_creates_nothing() {
    let j = job(1, "h", JobState::Succeeded);
    let p = plan(
        Stage::Certs,
        StageState {
            done: true,
            detail: "there".into(),
            refresh: None,
            waiting: None,
            done_reason: None,
            waiting_reason: None,
            failure: None,
        },
        &[&j],
        "h",
        at(0),
        Duration::from_secs(10),
    );
    assert_eq!((p.create, p.condition.status), (None, Status::True));
    assert!(p.delete.is_empty());
}

#[test]
fn a_due_refresh_runs_again_and_stays_true() {
    let j = job(1, "h", JobState::Succeeded);
    let refresh = |refresh_at: i64, now: i64| {
        plan(
            Stage::Tuf,
            StageState {
                done: true,
                detail: "signed".into(),
                refresh: Some(at(refresh_at)),
                waiting: None,
                done_reason: None,
                waiting_reason: None,
                failure: None,
            },
            &[&j],
            "h",
            at(now),
            Duration::from_secs(10),
        )
    };
    let early = refresh(100, 40);
    assert_eq!(early.create, None);
    assert_eq!(
        early.requeue,
        Some(Duration::from_secs(60)),
        "wakes when due"
    );
    let due = refresh(100, 100);
    assert_eq!(due.create, Some(2));
    assert_eq!(
        due.condition.status,
        Status::True,
        "the repository still serves"
    );
    assert!(
        due.condition.message.contains("refreshing"),
        "{}",
        due.condition.message
    );
}

#[test]
fn delay_is_capped() {
    assert_eq!(
        retry_delay(Duration::from_secs(10), 1),
        Duration::from_secs(10)
    );
    assert_eq!(
        retry_delay(Duration::from_secs(10), 3),
        Duration::from_secs(40)
    );
    assert_eq!(
        retry_delay(Duration::from_secs(10), 50),
        Duration::from_secs(300)
    );
}

#[test]
fn a_recorded_failure_names_the_reason_and_degrades_until_an_attempt_passes() {
    let failed = job(
        1,
        "h",
        JobState::Failed {
            at: at(0),
            reason: "BackoffLimitExceeded".into(),
        },
    );
    let state = |failure: Option<(&'static str, String)>| StageState {
        done: false,
        detail: "the last check failed".into(),
        refresh: None,
        waiting: None,
        done_reason: None,
        waiting_reason: None,
        failure,
    };
    let sct = Some((
        "SCTInvalid",
        "the SCT is not by a trusted CT log".to_owned(),
    ));
    for (jobs, now) in [(vec![&failed], 1), (vec![&failed], 100)] {
        let p = plan(
            Stage::SelfCheck,
            state(sct.clone()),
            &jobs,
            "h",
            at(now),
            Duration::from_secs(10),
        );
        assert_eq!(p.condition.reason, "SCTInvalid", "{now}");
        assert_eq!(p.condition.status, Status::False);
        assert!(p.failed);
        assert!(p.condition.message.contains("not by a trusted CT log"));
    }
    // Without a record, a failed Job says Failed, as any stage's.
    let p = plan(
        Stage::SelfCheck,
        state(None),
        &[&failed],
        "h",
        at(1),
        Duration::from_secs(10),
    );
    assert_eq!(p.condition.reason, FAILED);
    // Waiting on a component: the stage's own reason.
    let mut waiting = state(None);
    waiting.waiting = Some("every component to be available: RekorAvailable".into());
    waiting.waiting_reason = Some("ComponentUnavailable");
    let p = plan(
        Stage::SelfCheck,
        waiting,
        &[],
        "h",
        at(1),
        Duration::from_secs(10),
    );
    assert_eq!(p.condition.reason, "ComponentUnavailable");
    assert_eq!(p.create, None);
    // Passed: its own reason, not the stages' Created.
    let mut passed = state(None);
    passed.done = true;
    passed.done_reason = Some("Verified");
    let p = plan(
        Stage::SelfCheck,
        passed,
        &[],
        "h",
        at(1),
        Duration::from_secs(10),
    );
    assert_eq!(
        (p.condition.status, p.condition.reason),
        (Status::True, "Verified")
    );
}
