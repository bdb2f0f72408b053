//! Unit tests of `status`.

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::controller::events::notices;
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
        cluster_oidc: Some(crate::cluster_oidc::ClusterOidc {
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
            since: None,
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

#[test]
fn a_tile_log_switched_off_says_its_claim_and_key_are_kept_and_its_status_goes() {
    let mut s = stack(1);
    s.spec.rekor.generation = crate::api::RekorGeneration::V1;
    let mut observed = Observed::default();
    observed.claims.insert("demo-rekor-v2".into());
    observed.secrets.insert(
        "demo-rekor-v2-signer".into(),
        crate::observed::SecretView::default(),
    );
    let status = status_of(&s, &observed, 5);
    let c = conditions::find(&status.conditions, "RekorV2Available").expect("RekorV2Available");
    assert_eq!(c.reason, REASON_DISABLED);
    assert!(
        c.message.contains("spec.rekor.generation is v1"),
        "{}",
        c.message
    );
    assert!(
        c.message
            .contains("PersistentVolumeClaim demo-rekor-v2 (the log's tiles)"),
        "{}",
        c.message
    );
    assert!(
        c.message.contains("Secret demo-rekor-v2-signer"),
        "{}",
        c.message
    );
    assert!(status.rekor_v2.is_none());
    // On v2, its status names the origin, the read path and the storage.
    s.spec.rekor.generation = crate::api::RekorGeneration::V2;
    let status = status_of(&s, &Observed::default(), 5);
    let v2 = status.rekor_v2.expect("rekorV2");
    assert_eq!(v2.origin.as_deref(), Some("demo-rekor-v2.ns1.svc"));
    assert_eq!(v2.read_url.as_deref(), Some("http://demo-rekor-v2.ns1.svc"));
    assert!(v2.storage.unwrap().starts_with("emptyDir"));
    assert!(status.rekor.is_none());
}
