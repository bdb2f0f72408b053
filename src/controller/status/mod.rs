//! The status a stack should have: a pure function of the stack, what it
//! owns, and the stage decisions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{
    plan::{self, FAILED, StagePlan},
    trust::{NotPublished, Published, SIGNING_CONFIG_KEY, TRUST_CONFIG_KEY, TRUSTED_ROOT_KEY},
};
use crate::{
    api::{
        ConfigMapKeyReference, FulcioStatus, LogStatus, Phase, SelfCheckStatus, SigstoreStack,
        SigstoreStackSpec, SigstoreStackStatus, TrillianStatus, TsaStatus, TufStatus,
    },
    build::component::{Component, CtBackend, RekorBackend},
    build::{self, Owner, Placeholder, trillian},
    conditions::{self, Desired, READY, Status},
    names,
    observed::Observed,
    stage::{Stage, createcerts::rules::fulcio_root},
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
        .filter(|c| c.wanted(spec) && !c.deployments(spec).is_empty())
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
            message: {
                let mut m = format!(
                    "Waiting for Deployment {} to become available.",
                    down.join(", ")
                );
                for why in down.iter().filter_map(|d| observed.pod_problems.get(*d)) {
                    m.push(' ');
                    m.push_str(why);
                }
                m
            },
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
        let log = component.trillian_log();
        // A log whose tree is lost is unavailable, whatever its Pods say.
        let lost =
            log.and_then(|l| super::trees::unavailable(facts.owner, l, facts.observed, facts.logs));
        // Fulcio runs, but would refuse every cluster token.
        let lost = lost.or_else(|| {
            (component == Component::Fulcio)
                .then_some(facts.fulcio_problem)
                .flatten()
                .map(|p| (crate::cluster_oidc::JWKS_HOST_MISMATCH, p.to_owned()))
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
        rekor: log_status(facts, spec, Component::Rekor(RekorBackend::Trillian)),
        rekor_v2: log_status(facts, spec, Component::Rekor(RekorBackend::Tiles)),
        ctlog: CtBackend::wanted(spec).and_then(|b| log_status(facts, spec, Component::Ctlog(b))),
        fulcio: spec.fulcio.enabled.then(|| FulcioStatus {
            url: Some(build::fulcio::url(facts.owner)),
            root_certificate: fulcio_root(facts.owner, facts.observed),
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
        self_check: Stage::SelfCheck
            .enabled(spec)
            .then(|| self_check(facts.owner, facts.observed))
            .flatten(),
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
            let outputs = Stage::of(c).flat_map(|s| s.outputs(stack));
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
            // A tile-based log's claim holds its tiles.
            let tiles = owner.name_of(c.label());
            if c.trillian_log().is_none() && observed.claims.contains(&tiles) {
                kept.push(format!("PersistentVolumeClaim {tiles} (the log's tiles)"));
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

/// A log component's public facts, when `spec` runs it.
fn log_status(
    facts: &Facts<'_>,
    spec: &SigstoreStackSpec,
    component: Component,
) -> Option<LogStatus> {
    if !component.wanted(spec) {
        return None;
    }
    let owner = facts.owner;
    let observed = facts.observed;
    let part = Stage::of(component).find_map(|s| s.contribution(owner, spec))?;
    let public_key = observed
        .secrets
        .get(&part.secret)
        .and_then(|s| s.public.get(part.key))
        .cloned();
    let origin = crate::trust_root::origin_of(&part.url).to_owned();
    let storage = build::tiles::storage(component, spec).map(|s| s.is_some());
    Some(LogStatus {
        url: Some(part.url.clone()),
        log_id: public_key
            .as_deref()
            .and_then(|pem| crate::trust_root::log_id_hex(&origin, pem)),
        origin: Some(origin),
        tree_id: component
            .trillian_log()
            .and_then(|log| observed.tree_id(&names::log_config(&owner.name, log))),
        // The front serves the read path at the log's own URL.
        read_url: storage.map(|_| part.url.clone()),
        storage: storage.map(|claim| {
            if claim {
                format!("PersistentVolumeClaim {}", owner.name_of(component.label()))
            } else {
                "emptyDir: the log starts again empty when its Pod is replaced; its key and \
                 origin stay"
                    .to_owned()
            }
        }),
        public_key,
    })
}

/// Where the last passing self-check's proof is, while it is published.
fn self_check(owner: &Owner, observed: &Observed) -> Option<SelfCheckStatus> {
    use crate::stage::selfcheck::record;
    let name = names::selfcheck(&owner.name);
    let data = observed.config_maps.get(&name)?;
    if !record::read(data)?.passed {
        return None;
    }
    let key = |key: &str| ConfigMapKeyReference {
        name: name.clone(),
        key: key.to_owned(),
    };
    Some(SelfCheckStatus {
        artifact: data
            .contains_key(record::ARTIFACT_KEY)
            .then(|| key(record::ARTIFACT_KEY)),
        bundles: data
            .keys()
            .filter(|k| k.ends_with(".sigstore.json"))
            .map(|k| key(k))
            .collect(),
        identity: data.get(record::IDENTITY_KEY).cloned(),
        issuer: data.get(record::ISSUER_KEY).cloned(),
        checked_at: data.get(record::CHECKED_AT_KEY).cloned(),
        duration: data.get(record::DURATION_KEY).cloned(),
    })
}

/// Whether `desired` differs from what the stack already carries.
pub fn needs_write(stack: &SigstoreStack, desired: &SigstoreStackStatus) -> bool {
    stack.status.as_ref() != Some(desired)
}

#[cfg(test)]
mod tests;
