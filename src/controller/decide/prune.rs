//! Pruning: what the stack owns that this pass did not build is deleted (key material, claims and the trust root are never in the list), and one Event says what and why.

use super::*;

/// An object the operator applied before that the spec no longer wants.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Removal {
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// What the operator applied before (it carries the applied hash) that
/// `objects` no longer holds. Stage outputs carry no hash and are never
/// removed: they are key material and records, and re-enabling a component
/// brings them back unchanged. The trust root is kept too: while it cannot
/// be rebuilt it is still what clients verify against.
pub(super) fn removals(owner: &Owner, objects: &[Object], observed: &Observed) -> Vec<Removal> {
    let wanted: BTreeSet<(&str, &str)> = objects.iter().map(|o| (o.kind(), o.name())).collect();
    let trust_root = owner.name_of(names::TRUST_ROOT);
    observed
        .applied
        .iter()
        .filter(|((kind, name), hash)| {
            hash.is_some()
                && !wanted.contains(&(kind.as_str(), name.as_str()))
                && !(kind == "ConfigMap" && *name == trust_root)
        })
        .map(|((kind, name), _)| Removal {
            kind: kind.clone(),
            name: name.clone(),
        })
        .collect()
}

/// The Event saying what was removed, and why.
pub(super) fn removal_notice(spec: &SigstoreStackSpec, removed: &[Removal]) -> Option<Notice> {
    if removed.is_empty() {
        return None;
    }
    let listed: Vec<String> = removed
        .iter()
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    let off: Vec<&str> = Component::ALL
        .into_iter()
        // Only what runs workloads can have left any to remove.
        .filter(|c| !c.wanted(spec) && !c.deployments(spec).is_empty())
        .map(|c| c.switched_off(spec))
        .collect();
    let why = if off.is_empty() {
        "the spec no longer asks for them".to_owned()
    } else {
        off.join("; ")
    };
    Some(Notice {
        warning: false,
        reason: "Removed".into(),
        note: format!(
            "Deleted {} ({why}); key material is kept.",
            listed.join(", ")
        ),
        // Events of one action and reason fold into one series that keeps
        // the first note: each set of removals gets its own.
        action: format!("Remove {}", listed.join(","))
            .chars()
            .take(128)
            .collect(),
    })
}
