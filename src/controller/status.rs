//! The status a stack should have: a pure function of the stack.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{Phase, SigstoreStack, SigstoreStackStatus},
    conditions::{self, Desired, READY, Status},
    validate::validate,
};

/// Reason of `Ready=False` while the stack waits to be brought up.
pub const REASON_PENDING: &str = "Pending";
/// Reason of `Ready=False` when the spec cannot be acted on.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// Computes the status `stack` should carry at `now`. Existing transition
/// times are kept, so calling it again on its own output changes nothing.
pub fn desired(stack: &SigstoreStack, now: &Time) -> SigstoreStackStatus {
    let current = stack.status.as_ref();
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let errors = validate(&stack.spec);
    let (phase, ready) = if errors.is_empty() {
        (
            Phase::Pending,
            Desired {
                type_: READY,
                status: Status::False,
                reason: REASON_PENDING,
                message: "The stack is accepted and waits to be brought up; this operator \
                          version records stacks but does not deploy them yet."
                    .into(),
            },
        )
    } else {
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        (
            Phase::Invalid,
            Desired {
                type_: READY,
                status: Status::False,
                reason: REASON_INVALID_SPEC,
                message: format!("The spec cannot be acted on: {}", listed.join("; ")),
            },
        )
    };
    let generation = stack.metadata.generation;
    SigstoreStackStatus {
        observed_generation: generation,
        phase: Some(phase),
        conditions: conditions::merge(existing, &[ready], generation, now),
        // Stage results and URLs arrive with the reconciler that produces them;
        // whatever is recorded is kept rather than dropped.
        ..current.cloned().unwrap_or_default()
    }
}

/// An Event worth publishing for a status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning (something needs a person) or normal.
    pub warning: bool,
    /// The Ready condition's new reason.
    pub reason: String,
    /// Its message.
    pub note: String,
}

/// Reasons that call for a person.
const WARNING_REASONS: &[&str] = &[REASON_INVALID_SPEC];

/// The Event for going from `old` to `new`: one when the `Ready` reason
/// changes, except for a new stack's first `Pending`, which says nothing.
pub fn notice(old: Option<&SigstoreStackStatus>, new: &SigstoreStackStatus) -> Option<Notice> {
    let reason_of =
        |s: &SigstoreStackStatus| conditions::find(&s.conditions, READY).map(|c| c.reason.clone());
    let before = old.and_then(reason_of);
    let ready = conditions::find(&new.conditions, READY)?;
    if before.as_deref() == Some(ready.reason.as_str())
        || (before.is_none() && ready.reason == REASON_PENDING)
    {
        return None;
    }
    Some(Notice {
        warning: WARNING_REASONS.contains(&ready.reason.as_str()),
        reason: ready.reason.clone(),
        // Events carry at most 1 kB of note.
        note: ready.message.chars().take(1000).collect(),
    })
}

/// Whether `desired` differs from what the stack already carries.
pub fn needs_write(stack: &SigstoreStack, desired: &SigstoreStackStatus) -> bool {
    stack.status.as_ref() != Some(desired)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::SigstoreStackSpec;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn stack(generation: i64) -> SigstoreStack {
        let mut s = SigstoreStack::new("demo", SigstoreStackSpec::default());
        s.metadata.generation = Some(generation);
        s
    }

    #[test]
    fn new_stack_is_pending() {
        let status = desired(&stack(1), &at(5));
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(status.phase, Some(Phase::Pending));
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Pending")
        );
        assert_eq!(ready.observed_generation, Some(1));
    }

    #[test]
    fn settled_stack_needs_no_write() {
        let mut s = stack(1);
        s.status = Some(desired(&s, &at(5)));
        let again = desired(&s, &at(500));
        assert!(!needs_write(&s, &again));
    }

    #[test]
    fn new_generation_needs_a_write() {
        let mut s = stack(1);
        s.status = Some(desired(&s, &at(5)));
        s.metadata.generation = Some(2);
        let next = desired(&s, &at(6));
        assert!(needs_write(&s, &next));
        assert_eq!(next.observed_generation, Some(2));
        // Same Ready status: the transition time stays.
        assert_eq!(next.conditions[0].last_transition_time, at(5));
    }

    #[test]
    fn notices_only_on_reason_changes() {
        let mut s = stack(1);
        let pending = desired(&s, &at(5));
        assert_eq!(
            notice(None, &pending),
            None,
            "a new stack's Pending is quiet"
        );
        s.status = Some(pending.clone());
        s.spec.ctlog.prefix = "a/b".into();
        let invalid = desired(&s, &at(6));
        let n = notice(Some(&pending), &invalid).unwrap();
        assert!(n.warning);
        assert_eq!(n.reason, REASON_INVALID_SPEC);
        assert!(n.note.contains("spec.ctlog.prefix"));
        assert_eq!(notice(Some(&invalid), &invalid), None, "no repeat");
        let fixed = notice(Some(&invalid), &pending).unwrap();
        assert!(!fixed.warning);
        assert_eq!(fixed.reason, REASON_PENDING);
    }

    #[test]
    fn invalid_spec_names_the_field() {
        let mut s = stack(3);
        s.spec.ctlog.prefix = "no/slashes".into();
        let status = desired(&s, &at(5));
        assert_eq!(status.phase, Some(Phase::Invalid));
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(ready.reason, REASON_INVALID_SPEC);
        assert!(
            ready.message.contains("spec.ctlog.prefix"),
            "{}",
            ready.message
        );
    }
}
