//! When the operator runs the self-check: once the stack's status says
//! every component is available and the trust root is published, and
//! again whenever either changes (a rotated or extended trust root, a
//! server that went down and came back). Its condition, `SigningVerified`,
//! is part of `Ready`.

use super::record;
use crate::{
    api::SigstoreStackSpec,
    build::{Owner, Placeholder, component::Component},
    names,
    stage::table::{Rules, View},
    trust_root::{SIGNING_CONFIG_KEY, TRUSTED_ROOT_KEY},
};

/// Reason: a component the check needs is not available.
pub const COMPONENT_UNAVAILABLE: &str = "ComponentUnavailable";

/// Reason: the last round trip signed and verified.
pub const VERIFIED: &str = "Verified";

/// The self-check.
pub struct SelfCheck;

/// The wanted components with workloads whose availability conditions do
/// not hold, and the latest time one of them changed, once all hold: its
/// condition, or a Deployment becoming available again (a Pod replaced
/// between two passes leaves no trace in the stack's conditions).
fn availability(view: View<'_>) -> Result<k8s_openapi::jiff::Timestamp, Vec<String>> {
    let spec = view.spec;
    let mut down = Vec::new();
    let mut since = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
    for c in Component::ALL {
        let parts = c.deployments(spec);
        if !c.wanted(spec) || parts.is_empty() {
            continue;
        }
        match view.observed.conditions.get(c.condition()) {
            Some(v) if v.holds => since = since.max(v.since.unwrap_or(since)),
            Some(v) => down.push(format!("{} ({})", c.condition(), v.reason)),
            None => down.push(c.condition().to_owned()),
        }
        for part in parts {
            let deployment = view.observed.deployments.get(&view.owner.name_of(part));
            if let Some(at) = deployment.and_then(|d| d.since) {
                since = since.max(at);
            }
        }
    }
    if down.is_empty() {
        Ok(since)
    } else {
        Err(down)
    }
}

/// The inputs key a check must run for now, once it can run.
pub fn current_inputs(view: View<'_>) -> Option<String> {
    let trust = view
        .observed
        .config_maps
        .get(&view.owner.name_of(names::TRUST_ROOT))?;
    let fingerprint =
        record::fingerprint(trust.get(TRUSTED_ROOT_KEY)?, trust.get(SIGNING_CONFIG_KEY)?);
    let since = availability(view).ok()?;
    Some(record::inputs_key(&fingerprint, since))
}

fn current_record(view: View<'_>) -> Option<record::Record> {
    let data = view
        .observed
        .config_maps
        .get(&names::selfcheck(&view.owner.name))?;
    let record = record::read(data)?;
    (Some(&record.inputs) == current_inputs(view).as_ref()).then_some(record)
}

impl Rules for SelfCheck {
    fn id(&self) -> &'static str {
        names::SELFCHECK
    }

    fn condition(&self) -> &'static str {
        Component::SelfCheck.condition()
    }

    fn component(&self) -> Component {
        Component::SelfCheck
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![Placeholder::ConfigMap(names::selfcheck(stack))]
    }

    fn args(&self, _owner: &Owner, _spec: &SigstoreStackSpec) -> Vec<String> {
        vec![names::SELFCHECK.into()]
    }

    fn token_audience(&self) -> Option<&'static str> {
        Some(crate::fulcio_config::CLUSTER_CLIENT_ID)
    }

    fn inputs(&self, view: View<'_>) -> Option<String> {
        current_inputs(view)
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let name = names::selfcheck(&view.owner.name);
        match current_record(view) {
            Some(r) if r.passed => (
                true,
                format!(
                    "Signed and verified against the published trust root; the bundles are in \
                     ConfigMap {name}"
                ),
            ),
            Some(_) => (false, "The last check failed".to_owned()),
            None => (
                false,
                "No check has passed against the current trust root and servers yet".to_owned(),
            ),
        }
    }

    fn waiting_for(&self, view: View<'_>) -> Option<String> {
        let trust = view.owner.name_of(names::TRUST_ROOT);
        let published = view.observed.config_maps.get(&trust).is_some_and(|d| {
            d.contains_key(TRUSTED_ROOT_KEY) && d.contains_key(SIGNING_CONFIG_KEY)
        });
        if !published {
            return Some(format!("the trust root (ConfigMap {trust})"));
        }
        availability(view)
            .err()
            .map(|down| format!("every component to be available: {}", down.join(", ")))
    }

    fn done_reason(&self) -> Option<&'static str> {
        Some(VERIFIED)
    }

    fn waiting_reason(&self, view: View<'_>) -> Option<&'static str> {
        availability(view).is_err().then_some(COMPONENT_UNAVAILABLE)
    }

    fn failure(&self, view: View<'_>) -> Option<(&'static str, String)> {
        let (failure, message) = current_record(view)?.failure?;
        Some((failure.reason(), message))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        build::tests::owner,
        observed::{ConditionView, Observed},
        stage::Stage,
    };

    fn at(s: i64) -> k8s_openapi::jiff::Timestamp {
        k8s_openapi::jiff::Timestamp::from_second(s).unwrap()
    }

    /// A stack whose trust root is published and whose components became
    /// available at 100 s (Fulcio last, at 130 s).
    fn observed(spec: &SigstoreStackSpec) -> Observed {
        let mut o = Observed::default();
        o.config_maps.insert(
            "demo-trust-root".into(),
            BTreeMap::from([
                (TRUSTED_ROOT_KEY.to_owned(), "{root}".to_owned()),
                (SIGNING_CONFIG_KEY.to_owned(), "{config}".to_owned()),
            ]),
        );
        for c in Component::ALL {
            if c.wanted(spec) && !c.deployments(spec).is_empty() {
                let since = if c == Component::Fulcio { 130 } else { 100 };
                o.conditions.insert(
                    c.condition().into(),
                    ConditionView {
                        holds: true,
                        reason: "Available".into(),
                        since: Some(at(since)),
                    },
                );
            }
        }
        o
    }

    fn record(o: &mut Observed, data: &[(&str, &str)]) {
        o.config_maps.insert(
            "demo-selfcheck".into(),
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    }

    #[test]
    fn it_runs_once_all_is_available_for_the_trust_root_and_availability_it_saw() {
        let spec = SigstoreStackSpec::default();
        let owner = owner();
        let mut o = observed(&spec);
        fn view<'a>(owner: &'a Owner, spec: &'a SigstoreStackSpec, o: &'a Observed) -> View<'a> {
            View {
                owner,
                spec,
                observed: o,
            }
        }
        let key = format!("{}.130", record::fingerprint("{root}", "{config}"));
        assert_eq!(
            SelfCheck.inputs(view(&owner, &spec, &o)).as_deref(),
            Some(key.as_str())
        );
        assert_eq!(SelfCheck.waiting_for(view(&owner, &spec, &o)), None);
        assert!(!SelfCheck.done(view(&owner, &spec, &o)).0);

        record(&mut o, &[("result", "passed"), ("inputs", &key)]);
        assert!(SelfCheck.done(view(&owner, &spec, &o)).0);
        assert_eq!(SelfCheck.failure(view(&owner, &spec, &o)), None);

        // Rekor went down: not done, waiting, with the component named.
        let mut down = o.clone();
        let rekor = down.conditions.get_mut("RekorAvailable").unwrap();
        rekor.holds = false;
        rekor.reason = "Unavailable".into();
        rekor.since = Some(at(200));
        assert!(!SelfCheck.done(view(&owner, &spec, &down)).0);
        assert_eq!(SelfCheck.inputs(view(&owner, &spec, &down)), None);
        let waiting = SelfCheck.waiting_for(view(&owner, &spec, &down)).unwrap();
        assert!(
            waiting.contains("RekorAvailable (Unavailable)"),
            "{waiting}"
        );
        assert_eq!(
            SelfCheck.waiting_reason(view(&owner, &spec, &down)),
            Some(COMPONENT_UNAVAILABLE)
        );

        // ...and came back: a new check, for the new availability.
        let mut back = down.clone();
        let rekor = back.conditions.get_mut("RekorAvailable").unwrap();
        rekor.holds = true;
        rekor.since = Some(at(260));
        assert!(!SelfCheck.done(view(&owner, &spec, &back)).0);
        assert!(
            SelfCheck
                .inputs(view(&owner, &spec, &back))
                .unwrap()
                .ends_with(".260")
        );

        // Fulcio's Pod replaced between two passes: the stack's condition
        // never moved, its Deployment's did, and a new check is due.
        let mut replaced = o.clone();
        replaced.deployments.insert(
            "demo-fulcio".into(),
            crate::observed::Availability {
                available: 1,
                current: true,
                tree: None,
                since: Some(at(300)),
            },
        );
        assert!(!SelfCheck.done(view(&owner, &spec, &replaced)).0);
        assert!(
            SelfCheck
                .inputs(view(&owner, &spec, &replaced))
                .unwrap()
                .ends_with(".300")
        );

        // A new trust root calls for a new check too.
        let mut rotated = o.clone();
        rotated
            .config_maps
            .get_mut("demo-trust-root")
            .unwrap()
            .insert(TRUSTED_ROOT_KEY.into(), "{root2}".into());
        assert!(!SelfCheck.done(view(&owner, &spec, &rotated)).0);

        // A failure for these inputs names its step; one for others is old.
        record(
            &mut o,
            &[
                ("result", "failed"),
                ("inputs", &key),
                ("reason", "CheckpointInvalid"),
                ("message", "signed under another origin"),
            ],
        );
        assert!(!SelfCheck.done(view(&owner, &spec, &o)).0);
        assert_eq!(
            SelfCheck.failure(view(&owner, &spec, &o)),
            Some(("CheckpointInvalid", "signed under another origin".into()))
        );
        assert_eq!(SelfCheck.failure(view(&owner, &spec, &rotated)), None);

        // Nothing runs before the trust root is published.
        let mut unpublished = o.clone();
        unpublished.config_maps.remove("demo-trust-root");
        assert!(
            SelfCheck
                .waiting_for(view(&owner, &spec, &unpublished))
                .unwrap()
                .contains("trust root")
        );
    }

    #[test]
    fn it_runs_only_where_it_can_sign_and_can_be_turned_off() {
        let mut spec = SigstoreStackSpec::default();
        assert!(Stage::SelfCheck.enabled(&spec));
        spec.rekor.generation = crate::api::RekorGeneration::V2;
        assert!(Stage::SelfCheck.enabled(&spec), "Rekor v2 too");
        for off in [
            |s: &mut SigstoreStackSpec| s.self_check.enabled = false,
            |s: &mut SigstoreStackSpec| s.fulcio.trust_cluster_issuer = false,
            |s: &mut SigstoreStackSpec| s.fulcio.enabled = false,
            |s: &mut SigstoreStackSpec| s.rekor.enabled = false,
        ] {
            let mut spec = SigstoreStackSpec::default();
            off(&mut spec);
            assert!(!Stage::SelfCheck.enabled(&spec));
            assert!(Component::SelfCheck.switched_off(&spec).contains("spec."));
        }
    }
}
