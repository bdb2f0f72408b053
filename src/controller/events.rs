//! The Events a status change is worth: stage transitions, components
//! becoming (un)available or turned off, named problems, and changes of
//! the Ready reason.

use crate::{
    api::SigstoreStackStatus,
    conditions::{self, READY},
    stage::Stage,
};

use super::{
    plan::{self, FAILED},
    status::{REASON_DISABLED, REASON_INVALID_SPEC, REASON_PROGRESSING, REASON_STAGE_FAILED},
};

/// An Event worth publishing for a status change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning (something needs a person) or normal.
    pub warning: bool,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened.
    pub note: String,
    /// The condition it reports, as the Event's action: Events of one
    /// action and reason are folded into one series, so two conditions
    /// must not share one.
    pub action: String,
}

fn is_stage(type_: &str) -> bool {
    Stage::ALL.iter().any(|s| s.condition() == type_)
}

/// The Events for going from `old` to `new`: stage transitions (started,
/// failed, done), components becoming (un)available, and changes of the
/// Ready reason. A new stack's first waiting states say nothing.
pub fn notices(old: Option<&SigstoreStackStatus>, new: &SigstoreStackStatus) -> Vec<Notice> {
    let before = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut out = Vec::new();
    for c in &new.conditions {
        let prev = conditions::find(before, &c.type_);
        if prev.is_some_and(|p| p.reason == c.reason && p.status == c.status) {
            continue;
        }
        let note: String = c.message.chars().take(1000).collect();
        let notice = if c.type_ == READY {
            let quiet = prev.is_none() && c.reason == REASON_PROGRESSING;
            (!quiet).then(|| Notice {
                warning: [REASON_INVALID_SPEC, REASON_STAGE_FAILED].contains(&c.reason.as_str()),
                reason: c.reason.clone(),
                note,
                action: c.type_.clone(),
            })
        } else if is_stage(&c.type_) {
            let stage = c.type_.trim_end_matches("Created");
            match c.reason.as_str() {
                plan::CREATED => Some(format!("{stage}Created")),
                plan::RUNNING => Some(format!("{stage}Running")),
                FAILED => Some(format!("{stage}Failed")),
                _ => None,
            }
            .map(|reason| Notice {
                warning: c.reason == FAILED,
                reason,
                note,
                action: c.type_.clone(),
            })
        } else if c.type_.ends_with("Available") && c.status != "Unknown" {
            let component = c.type_.trim_end_matches("Available");
            match (prev.map(|p| p.status.as_str()), c.status.as_str()) {
                (_, "True") => Some(Notice {
                    warning: false,
                    // Back from a lost tree: say so, naming both trees.
                    reason: if prev.is_some_and(|p| p.reason == super::trees::TREE_MISSING) {
                        "TreeReplaced".into()
                    } else {
                        format!("{component}Available")
                    },
                    note,
                    action: c.type_.clone(),
                }),
                // A named problem is said once, whatever came before.
                _ if [
                    super::trees::TREE_MISSING,
                    crate::cluster_oidc::JWKS_HOST_MISMATCH,
                ]
                .contains(&c.reason.as_str()) =>
                {
                    Some(Notice {
                        warning: true,
                        reason: c.reason.clone(),
                        note,
                        action: c.type_.clone(),
                    })
                }
                // Turned off on purpose: said once, with what is kept.
                _ if c.reason == REASON_DISABLED => Some(Notice {
                    warning: false,
                    reason: format!("{component}Disabled"),
                    note,
                    action: c.type_.clone(),
                }),
                (Some("True"), _) => Some(Notice {
                    warning: true,
                    reason: format!("{component}Unavailable"),
                    note,
                    action: c.type_.clone(),
                }),
                _ => None,
            }
        } else {
            None
        };
        out.extend(notice);
    }
    out
}
