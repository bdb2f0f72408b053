//! The status a stack should have: a pure function of the stack, what it
//! owns, and the stage decisions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{
    observe::Observed,
    plan::{self, FAILED, StagePlan},
    trust::{NotPublished, Published, SIGNING_CONFIG_KEY, TRUST_CONFIG_KEY, TRUSTED_ROOT_KEY},
};
use crate::{
    api::{
        ConfigMapKeyReference, FulcioStatus, LogStatus, Phase, SigstoreStack, SigstoreStackSpec,
        SigstoreStackStatus, TrillianStatus, TsaStatus, TufStatus,
    },
    build::{self, Owner, Placeholder, stages::Stage, trillian},
    component::Component,
    conditions::{self, Desired, READY, Status},
    names::{self, Log},
    validate::FieldError,
};

/// Reason of `Ready=False` while the stack comes up.
pub const REASON_PROGRESSING: &str = "Progressing";
/// Reason of `Ready=True`.
pub const REASON_READY: &str = "Ready";
/// Reason of `Ready=False` when a stage's last attempt failed.
pub const REASON_STAGE_FAILED: &str = "StageFailed";
/// Reason of `Ready=False` when the spec cannot be acted on.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// What the reconciler learned about a valid stack.
pub struct Facts<'a> {
    /// The stack as owner.
    pub owner: &'a Owner,
    /// What it owns.
    pub observed: &'a Observed,
    /// The decision for each enabled stage.
    pub plans: &'a [StagePlan],
    /// The trust root, or why it is not published.
    pub trust: &'a Result<Published, NotPublished>,
    /// What the operator learnt of the logs' trees and servers.
    pub logs: &'a super::trees::LogHealth,
    /// Why Fulcio cannot verify the cluster's tokens, if it cannot.
    pub fulcio_problem: Option<&'a str>,
}

/// The condition saying whether the trust root is published.
pub const TRUST_ROOT_PUBLISHED: &str = "TrustRootPublished";

fn trust_condition(owner: &Owner, trust: &Result<Published, NotPublished>) -> Desired {
    let (status, reason, message) = match trust {
        Ok(_) => (
            Status::True,
            "Published",
            format!(
                "ConfigMap {} holds {TRUSTED_ROOT_KEY}, {SIGNING_CONFIG_KEY} and {TRUST_CONFIG_KEY}.",
                owner.name_of(names::TRUST_ROOT)
            ),
        ),
        Err(NotPublished::Waiting(what)) => {
            (Status::False, plan::WAITING, format!("Waiting for {what}."))
        }
        Err(NotPublished::Invalid(why)) => (Status::False, "InvalidMaterial", why.clone()),
    };
    Desired {
        type_: TRUST_ROOT_PUBLISHED,
        status,
        reason,
        message,
    }
}

/// Each wanted component's availability condition and the Deployments
/// behind it.
pub fn components(owner: &Owner, spec: &SigstoreStackSpec) -> Vec<(Component, Vec<String>)> {
    Component::ALL
        .into_iter()
        .filter(|c| c.wanted(spec))
        .map(|c| {
            let parts = c.deployments(spec).into_iter();
            (c, parts.map(|p| owner.name_of(p)).collect())
        })
        .collect()
}

fn component_condition(
    type_: &'static str,
    deployments: &[String],
    observed: &Observed,
) -> Desired {
    let down: Vec<&str> = deployments
        .iter()
        .filter(|d| !observed.available(d))
        .map(String::as_str)
        .collect();
    if down.is_empty() {
        Desired {
            type_,
            status: Status::True,
            reason: "Available",
            message: format!("Deployment {} available.", deployments.join(", ")),
        }
    } else {
        Desired {
            type_,
            status: Status::False,
            reason: "Unavailable",
            message: format!(
                "Waiting for Deployment {} to become available.",
                down.join(", ")
            ),
        }
    }
}

/// The status of a stack whose spec cannot be acted on: `Ready` says why,
/// naming each field; every other condition stays as it was, so fixing the
/// spec loses nothing.
pub fn invalid(stack: &SigstoreStack, errors: &[FieldError], now: &Time) -> SigstoreStackStatus {
    let current = stack.status.as_ref();
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = stack.metadata.generation;
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let ready = Desired {
        type_: READY,
        status: Status::False,
        reason: REASON_INVALID_SPEC,
        message: format!("The spec cannot be acted on: {}", listed.join("; ")),
    };
    let mut kept: Vec<Condition> = existing
        .iter()
        .filter(|c| c.type_ != READY)
        .cloned()
        .collect();
    let mut conditions = conditions::merge(existing, &[ready], generation, now);
    conditions.append(&mut kept);
    SigstoreStackStatus {
        observed_generation: generation,
        phase: Some(Phase::Invalid),
        conditions,
        ..current.cloned().unwrap_or_default()
    }
}

/// Computes the status a valid `stack` should carry at `now`. Existing
/// transition times are kept, so an unchanged stack yields an identical
/// status and no write.
pub fn desired(stack: &SigstoreStack, facts: &Facts<'_>, now: &Time) -> SigstoreStackStatus {
    let current = stack.status.as_ref();
    let existing = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = stack.metadata.generation;
    let spec = &stack.spec;
    let mut wanted: Vec<Desired> = facts.plans.iter().map(|p| p.condition.clone()).collect();
    if super::trust::wanted(spec) {
        wanted.push(trust_condition(facts.owner, facts.trust));
    }
    for (component, deployments) in components(facts.owner, spec) {
        let type_ = component.condition();
        let log = match component {
            Component::Rekor => Some(Log::Rekor),
            Component::Ctlog => Some(Log::Ctlog),
            Component::Trillian | Component::Fulcio | Component::Tsa | Component::Tuf => None,
        };
        // A log whose tree is lost is unavailable, whatever its Pods say.
        let lost =
            log.and_then(|l| super::trees::unavailable(facts.owner, l, facts.observed, facts.logs));
        // Fulcio runs, but would refuse every cluster token.
        let lost = lost.or_else(|| {
            (component == Component::Fulcio)
                .then_some(facts.fulcio_problem)
                .flatten()
                .map(|p| (crate::fulcio_config::JWKS_HOST_MISMATCH, p.to_owned()))
        });
        wanted.push(match lost {
            Some((reason, message)) => Desired {
                type_,
                status: Status::False,
                reason,
                message,
            },
            None => {
                let mut d = component_condition(type_, &deployments, facts.observed);
                if let (Some(l), Status::True) = (log, &d.status) {
                    d.message
                        .extend(super::trees::healed_note(facts.owner, l, facts.observed));
                }
                d
            }
        });
    }
    let unmet: Vec<String> = wanted
        .iter()
        .filter(|d| d.status != Status::True)
        .map(|d| format!("{} ({})", d.type_, d.reason))
        .collect();
    let failed = facts
        .plans
        .iter()
        .any(|p| p.failed || p.condition.reason == FAILED);
    let ready = if unmet.is_empty() {
        Desired {
            type_: READY,
            status: Status::True,
            reason: REASON_READY,
            message: "Every enabled component is available.".into(),
        }
    } else {
        Desired {
            type_: READY,
            status: Status::False,
            reason: if failed {
                REASON_STAGE_FAILED
            } else {
                REASON_PROGRESSING
            },
            message: format!("Waiting for {}.", unmet.join(", ")),
        }
    };
    let phase = match (ready.status, failed) {
        (Status::True, _) => Phase::Ready,
        (_, true) => Phase::Degraded,
        _ => Phase::Progressing,
    };
    let mut all = vec![ready];
    all.append(&mut wanted);
    // Said after Ready is decided: a component that is off is not waited for.
    all.extend(disabled(facts.owner, spec, facts.observed));
    SigstoreStackStatus {
        observed_generation: generation,
        phase: Some(phase),
        conditions: conditions::merge(existing, &all, generation, now),
        trillian: trillian::needed(spec).then(|| TrillianStatus {
            address: Some(trillian::address(facts.owner)),
        }),
        rekor: spec
            .rekor
            .enabled
            .then(|| log_status(facts, Log::Rekor, build::rekor::url(facts.owner))),
        ctlog: spec.ctlog.enabled.then(|| {
            log_status(
                facts,
                Log::Ctlog,
                build::ctlog::url(facts.owner, &spec.ctlog.prefix),
            )
        }),
        fulcio: spec.fulcio.enabled.then(|| FulcioStatus {
            url: Some(build::fulcio::url(facts.owner)),
            root_certificate: plan::fulcio_root(facts.owner, facts.observed),
        }),
        trusted_root: published(facts, TRUSTED_ROOT_KEY),
        signing_config: published(facts, SIGNING_CONFIG_KEY),
        trust_config: published(facts, TRUST_CONFIG_KEY),
        tsa: spec.tsa.enabled.then(|| TsaStatus {
            url: Some(build::tsa::url(facts.owner)),
            certificate_chain: facts
                .observed
                .secrets
                .get(&names::tsa_public(&facts.owner.name))
                .and_then(|s| s.public.get("cert-chain"))
                .cloned(),
        }),
        tuf: Stage::Tuf.enabled(spec).then(|| TufStatus {
            url: Some(build::tuf::url(facts.owner)),
            root: facts.observed.tuf.as_ref().filter(|t| t.has_root).map(|_| {
                ConfigMapKeyReference {
                    name: names::tuf_repository(&facts.owner.name),
                    key: crate::tuf::ROOT_KEY.into(),
                }
            }),
        }),
    }
}

/// Reason of a component's condition while the spec turns it off.
pub const REASON_DISABLED: &str = "Disabled";

/// A condition for each component the spec turns off that left something
/// behind: what was removed and what is kept for when it comes back. A
/// component never enabled has nothing to say.
fn disabled(owner: &Owner, spec: &SigstoreStackSpec, observed: &Observed) -> Vec<Desired> {
    let stack = &owner.name;
    Component::ALL
        .into_iter()
        .filter(|c| !c.wanted(spec))
        .filter_map(|c| {
            let outputs = c.stages().flat_map(|s| s.outputs(stack));
            let mut kept: Vec<String> = outputs
                .filter_map(|o| match o {
                    Placeholder::Secret(n) => observed
                        .secrets
                        .contains_key(&n)
                        .then(|| format!("Secret {n}")),
                    Placeholder::ConfigMap(n) => (observed.config_maps.contains_key(&n)
                        || (n == names::tuf_repository(stack) && observed.tuf.is_some()))
                    .then(|| format!("ConfigMap {n}")),
                })
                .collect();
            if c == Component::Trillian {
                let db = owner.name_of(names::TRILLIAN_DB);
                if observed.secrets.contains_key(&db) {
                    kept.push(format!("Secret {db} (the database's credentials)"));
                }
                if observed.claims.contains(&db) {
                    kept.push(format!("PersistentVolumeClaim {db} (the trees)"));
                }
            }
            let parts: Vec<String> = c
                .deployments(spec)
                .into_iter()
                .map(|p| owner.name_of(p))
                .collect();
            let running: Vec<&String> = parts
                .iter()
                .filter(|d| observed.deployments.contains_key(*d))
                .collect();
            if kept.is_empty() && running.is_empty() {
                return None;
            }
            let mut message = if running.is_empty() {
                format!(
                    "Off: {}. Its Deployments and Services are removed.",
                    c.switched_off(spec)
                )
            } else {
                format!(
                    "Off: {}. Removing Deployment {} and its Services.",
                    c.switched_off(spec),
                    running
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            if !kept.is_empty() {
                message.push_str(&format!(
                    " Kept for when it is enabled again: {}.",
                    kept.join(", ")
                ));
            }
            Some(Desired {
                type_: c.condition(),
                status: Status::False,
                reason: REASON_DISABLED,
                message,
            })
        })
        .collect()
}

/// Where `key` of the trust root ConfigMap is, once it is published.
fn published(facts: &Facts<'_>, key: &str) -> Option<ConfigMapKeyReference> {
    facts.trust.as_ref().ok().map(|_| ConfigMapKeyReference {
        name: facts.owner.name_of(names::TRUST_ROOT),
        key: key.into(),
    })
}

fn log_status(facts: &Facts<'_>, log: Log, url: String) -> LogStatus {
    let stack = &facts.owner.name;
    let public = match log {
        Log::Rekor => names::rekor_public(stack),
        Log::Ctlog => names::ctlog_public(stack),
    };
    LogStatus {
        url: Some(url),
        tree_id: plan::tree_id(facts.observed, &names::log_config(stack, log)),
        public_key: facts
            .observed
            .secrets
            .get(&public)
            .and_then(|s| s.public.get("public"))
            .cloned(),
    }
}

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
                    crate::fulcio_config::JWKS_HOST_MISMATCH,
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

/// Whether `desired` differs from what the stack already carries.
pub fn needs_write(stack: &SigstoreStack, desired: &SigstoreStackStatus) -> bool {
    stack.status.as_ref() != Some(desired)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::{api::SigstoreStackSpec, build::tests::owner, controller::observe::Availability};

    fn stack(generation: i64) -> SigstoreStack {
        let mut s = SigstoreStack::new("demo", SigstoreStackSpec::default());
        s.metadata.namespace = Some(owner().namespace);
        s.metadata.uid = Some(owner().uid);
        s.metadata.generation = Some(generation);
        s
    }

    /// The status one whole pass decides for `stack` at `now`.
    fn status_of(stack: &SigstoreStack, observed: &Observed, now: i64) -> SigstoreStackStatus {
        let seen = crate::controller::decide::Seen {
            observed: observed.clone(),
            cluster_oidc: Some(crate::fulcio_config::ClusterOidc {
                issuer: "https://issuer".into(),
                jwks_uri: None,
            }),
            ..Default::default()
        };
        let options = crate::controller::decide::tests::options();
        let at = Timestamp::from_second(now).unwrap();
        let decision = crate::controller::decide::decide(stack, &seen, &options, at).unwrap();
        decision
            .status
            .or_else(|| stack.status.clone())
            .expect("a status")
    }

    #[test]
    fn new_stack_progresses_and_lists_what_it_waits_for() {
        let s = stack(1);
        let status = status_of(&s, &Observed::default(), 5);
        assert_eq!(status.phase, Some(Phase::Progressing));
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", REASON_PROGRESSING)
        );
        assert!(
            ready.message.contains("CertsCreated (Running)"),
            "{}",
            ready.message
        );
        assert!(
            ready
                .message
                .contains("RekorTreeCreated (WaitingForInputs)"),
            "{}",
            ready.message
        );
        assert!(
            ready
                .message
                .contains("TUFRepositoryCreated (WaitingForInputs)"),
            "{}",
            ready.message
        );
        assert!(ready.message.contains("TUFAvailable (Unavailable)"));
        assert!(
            ready.message.contains("TSAChainCreated (Running)"),
            "{}",
            ready.message
        );
        assert_eq!(
            status.fulcio.as_ref().unwrap().url.as_deref(),
            Some("http://demo-fulcio.ns1.svc")
        );
        assert_eq!(
            status.ctlog.as_ref().unwrap().url.as_deref(),
            Some("http://demo-ctlog.ns1.svc/sigstorescaffolding")
        );
    }

    #[test]
    fn settled_stack_needs_no_write() {
        let mut s = stack(1);
        let observed = Observed::default();
        s.status = Some(status_of(&s, &observed, 5));
        assert!(!needs_write(&s, &status_of(&s, &observed, 500)));
    }

    #[test]
    fn ready_needs_every_component() {
        let mut s = stack(1);
        s.spec.rekor.enabled = false;
        s.spec.ctlog.enabled = false;
        s.spec.tsa.enabled = false;
        s.spec.tuf.enabled = false;
        let mut observed = Observed::default();
        let view = |keys: &[&str]| crate::controller::observe::SecretView {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..Default::default()
        };
        observed.secrets.insert(
            "demo-fulcio-ca".into(),
            view(&["cert", "private", "public", "password"]),
        );
        let ca = crate::stage::createcerts::generate(
            &crate::stage::createcerts::CaSpec {
                common_name: "CA".into(),
                organization: "O".into(),
                validity: std::time::Duration::from_secs(3600),
                algorithm: crate::api::KeyAlgorithm::EcdsaP256,
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let mut public = view(&["cert"]);
        public.public.insert("cert".into(), ca.cert);
        observed.secrets.insert("demo-fulcio-pub".into(), public);
        let status = status_of(&s, &observed, 5);
        assert_eq!(
            status.phase,
            Some(Phase::Progressing),
            "Fulcio is not up yet"
        );
        observed.deployments.insert(
            "demo-fulcio".into(),
            Availability {
                available: 1,
                current: true,
                tree: None,
            },
        );
        let status = status_of(&s, &observed, 6);
        assert_eq!(status.phase, Some(Phase::Ready));
        assert!(status.rekor.is_none() && status.trillian.is_none());
        assert_eq!(
            status.trusted_root.as_ref().map(|r| r.name.as_str()),
            Some("demo-trust-root")
        );
    }

    #[test]
    fn invalid_spec_names_the_field_and_keeps_other_conditions() {
        let mut s = stack(3);
        s.status = Some(status_of(&s, &Observed::default(), 1));
        s.spec.ctlog.prefix = "no/slashes".into();
        let status = status_of(&s, &Observed::default(), 5);
        assert_eq!(status.phase, Some(Phase::Invalid));
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(ready.reason, REASON_INVALID_SPEC);
        assert!(
            ready.message.contains("spec.ctlog.prefix"),
            "{}",
            ready.message
        );
        assert!(conditions::find(&status.conditions, "CertsCreated").is_some());
    }

    #[test]
    fn notices_follow_transitions() {
        let s = stack(1);
        let first = status_of(&s, &Observed::default(), 1);
        let reasons: Vec<String> = notices(None, &first)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(
            reasons,
            ["CertsRunning", "RekorKeyRunning", "TSAChainRunning"],
            "waiting is quiet"
        );
        assert!(notices(Some(&first), &first).is_empty(), "no repeats");
        let mut failed = first.clone();
        let certs = failed
            .conditions
            .iter_mut()
            .find(|c| c.type_ == "CertsCreated")
            .unwrap();
        certs.reason = FAILED.into();
        let n = notices(Some(&first), &failed);
        assert_eq!(n.len(), 1);
        assert!(n[0].warning);
        assert_eq!(n[0].reason, "CertsFailed");
        assert_eq!(n[0].action, "CertsCreated", "each condition's Events apart");
    }

    #[test]
    fn a_lost_tree_is_said_once_and_its_replacement_names_both() {
        let with = |reason: &str, status: &str, message: &str| SigstoreStackStatus {
            conditions: vec![Condition {
                type_: "RekorAvailable".into(),
                status: status.into(),
                reason: reason.into(),
                message: message.into(),
                last_transition_time: Time(Timestamp::from_second(0).unwrap()),
                observed_generation: None,
            }],
            ..SigstoreStackStatus::default()
        };
        let serving = with("LogNotServing", "False", "HTTP 500");
        let lost = with(super::super::trees::TREE_MISSING, "False", "tree 11 lost");
        let waiting = with(super::super::trees::TREE_MISSING, "False", "waiting for 33");
        let back = with(
            "Available",
            "True",
            "runs on tree 33, which replaced tree 11",
        );
        // After a log that did not serve, too: the loss is said.
        let n = notices(Some(&serving), &lost);
        assert_eq!((n[0].reason.as_str(), n[0].warning), ("TreeMissing", true));
        assert!(notices(Some(&lost), &waiting).is_empty(), "said once");
        let n = notices(Some(&waiting), &back);
        assert_eq!(
            (n[0].reason.as_str(), n[0].warning),
            ("TreeReplaced", false)
        );
        assert!(n[0].note.contains("tree 11"));
    }
}
