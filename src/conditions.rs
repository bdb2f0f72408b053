//! Pure helpers for `metav1.Condition` lists.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::{Timestamp, Unit},
};

/// The `Ready` condition type, the user's gate.
pub const READY: &str = "Ready";

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// A condition as the reconciler wants it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// Its status.
    pub status: Status,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// A human-readable message.
    pub message: String,
}

/// The current time, truncated to what the API server stores (seconds).
pub fn now() -> Time {
    let now = Timestamp::now();
    Time(now.round(Unit::Second).unwrap_or(now))
}

/// Builds the condition list for `desired`, keeping each existing
/// condition's `lastTransitionTime` when its status did not change, so an
/// unchanged stack yields an identical list and no write.
pub fn merge(
    existing: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let previous = existing.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == d.status.as_str() => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: d.type_.to_owned(),
                status: d.status.as_str().to_owned(),
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn ready(status: Status, reason: &'static str) -> Desired {
        Desired {
            type_: READY,
            status,
            reason,
            message: "m".into(),
        }
    }

    #[test]
    fn new_condition_gets_now() {
        let got = merge(&[], &[ready(Status::False, "Pending")], Some(1), &at(10));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].last_transition_time, at(10));
        assert_eq!(got[0].status, "False");
        assert_eq!(got[0].observed_generation, Some(1));
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(&[], &[ready(Status::False, "Pending")], Some(1), &at(10));
        let again = merge(&first, &[ready(Status::False, "Pending")], Some(1), &at(99));
        assert_eq!(first, again);
        // A new reason with the same status is not a transition.
        let reason = merge(&first, &[ready(Status::False, "Other")], Some(1), &at(99));
        assert_eq!(reason[0].last_transition_time, at(10));
    }

    #[test]
    fn changed_status_moves_transition_time() {
        let first = merge(&[], &[ready(Status::False, "Pending")], Some(1), &at(10));
        let flipped = merge(&first, &[ready(Status::True, "Ready")], Some(2), &at(20));
        assert_eq!(flipped[0].last_transition_time, at(20));
        assert_eq!(flipped[0].observed_generation, Some(2));
    }

    #[test]
    fn now_has_whole_seconds() {
        assert_eq!(now().0.subsec_nanosecond(), 0);
    }
}
