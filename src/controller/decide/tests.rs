//! `decide` on whole passes: each stage's gating and each component's
//! pruning, from hand-made observations.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::SigstoreStackSpec,
    controller::observe::{Availability, SecretView},
    stage::{Stage, job::JobSettings},
    stage::{createcertchain, createcerts, rekorkey},
};

pub(crate) fn options() -> Options {
    Options {
        namespace: None,
        concurrency: 1,
        jobs: JobSettings {
            image: "sigstore-operator:dev".into(),
            timeout: "5m".parse().unwrap(),
            backoff_limit: 3,
            source: Default::default(),
        },
        stage_retry_base: Duration::from_secs(10),
    }
}

fn stack(spec: SigstoreStackSpec) -> SigstoreStack {
    let mut s = SigstoreStack::new("demo", spec);
    s.metadata.namespace = Some("ns1".into());
    s.metadata.uid = Some("uid-1".into());
    s.metadata.generation = Some(1);
    s
}

fn at() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn pass(spec: &SigstoreStackSpec, observed: &Observed) -> Decision {
    let seen = Seen {
        observed: observed.clone(),
        ..Seen::default()
    };
    decide(&stack(spec.clone()), &seen, &options(), at()).unwrap()
}

fn started(d: &Decision) -> BTreeSet<String> {
    d.create_jobs
        .iter()
        .map(|j| j.metadata.labels.as_ref().unwrap()[crate::build::meta::STAGE_LABEL].clone())
        .collect()
}

fn ids(stages: &[Stage]) -> BTreeSet<String> {
    stages.iter().map(|s| s.id().to_owned()).collect()
}

fn secret(keys: &[&str]) -> SecretView {
    SecretView {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        public: keys
            .iter()
            .map(|k| ((*k).to_owned(), "PEM".to_owned()))
            .collect(),
        config_log_id: None,
    }
}

/// Fulcio's CA made, as createcerts leaves it.
fn with_fulcio_ca(observed: &mut Observed) {
    observed
        .secrets
        .insert("demo-fulcio-ca".into(), secret(createcerts::REQUIRED));
    observed
        .secrets
        .insert("demo-fulcio-pub".into(), secret(&["cert", "public"]));
}

fn available() -> Availability {
    Availability {
        available: 1,
        current: true,
        tree: None,
        since: None,
    }
}

/// What a settled stack's operator applied: every object of `spec`, with
/// its hash, as the first pass would have left them.
fn settled(spec: &SigstoreStackSpec, mut observed: Observed) -> Observed {
    for (object, hash) in pass(spec, &observed).apply {
        observed.applied.insert(
            (object.kind().to_owned(), object.name().to_owned()),
            Some(hash),
        );
    }
    observed
}

#[test]
fn a_new_stack_makes_its_outputs_and_starts_what_needs_nothing() {
    let spec = SigstoreStackSpec::default();
    let d = pass(&spec, &Observed::default());
    assert_eq!(
        started(&d),
        ids(&[Stage::Certs, Stage::RekorKey, Stage::TsaChain])
    );
    let secrets: BTreeSet<String> = d
        .create
        .iter()
        .filter_map(|c| match c {
            Create::Secret(s) => s.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert!(secrets.contains("demo-fulcio-ca") && secrets.contains("demo-tuf-keys"));
    assert!(
        d.create
            .iter()
            .any(|c| matches!(c, Create::DatabaseCredentials(o) if o.name == "demo"))
    );
    assert!(d.delete.is_empty() && d.delete_jobs.is_empty());
    let status = d.status.expect("a first status");
    assert_eq!(status.phase, Some(crate::api::Phase::Progressing));
    // Nothing is held in the decision that a log could leak.
    assert!(!format!("{:?}", d.create).contains("password"));
}

#[test]
fn the_trees_wait_for_trillian_and_the_ct_config_for_its_tree_and_ca() {
    let spec = SigstoreStackSpec::default();
    let mut observed = Observed::default();
    let d = pass(&spec, &observed);
    assert!(!started(&d).contains("rekor-tree"));
    observed
        .deployments
        .insert("demo-trillian-log-server".into(), available());
    let d = pass(&spec, &observed);
    assert!(started(&d).is_superset(&ids(&[Stage::RekorTree, Stage::CtlogTree])));
    assert!(!started(&d).contains("ctconfig"));

    observed.config_maps.insert(
        "demo-ctlog-config".into(),
        [("treeID".to_owned(), "42".to_owned())].into(),
    );
    assert!(
        !started(&pass(&spec, &observed)).contains("ctconfig"),
        "no CA yet"
    );
    with_fulcio_ca(&mut observed);
    let d = pass(&spec, &observed);
    assert!(started(&d).contains("ctconfig"));
    assert!(!started(&d).contains("certs"), "Fulcio's CA is done");
}

#[test]
fn a_tile_stack_runs_no_trillian_and_tesseract_waits_for_fulcio_s_ca() {
    let mut spec = SigstoreStackSpec::default();
    spec.rekor.generation = crate::api::RekorGeneration::V2;
    spec.ctlog.backend = crate::api::CtLogBackend::Tesseract;
    spec.ctlog.tesseract.storage = Some(crate::api::DatabaseStorage {
        size: "1Gi".into(),
        storage_class_name: None,
    });
    let mut observed = Observed::default();
    let d = pass(&spec, &observed);
    assert_eq!(
        started(&d),
        ids(&[Stage::Certs, Stage::RekorV2Key, Stage::TsaChain])
    );
    let applied: Vec<String> = d.apply.iter().map(|(o, _)| o.name().to_owned()).collect();
    assert!(
        !applied
            .iter()
            .any(|n| n.contains("trillian") || n == "demo-rekor"),
        "{applied:?}"
    );
    assert!(applied.contains(&"demo-rekor-v2".to_owned()));
    assert!(
        !d.create
            .iter()
            .any(|c| matches!(c, Create::DatabaseCredentials(_))),
        "no database"
    );
    let claims: Vec<&str> = d
        .create
        .iter()
        .filter_map(|c| match c {
            Create::Claim(p) => p.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(claims, ["demo-tesseract"], "TesseraCT's tiles on its claim");
    with_fulcio_ca(&mut observed);
    assert!(started(&pass(&spec, &observed)).contains("tesseract"));
}

#[test]
fn tuf_waits_for_the_published_trust_root() {
    let mut spec = SigstoreStackSpec::default();
    spec.rekor.enabled = false;
    spec.ctlog.enabled = false;
    spec.tsa.enabled = false;
    let mut observed = Observed::default();
    assert!(!started(&pass(&spec, &observed)).contains("tuf"));
    observed.config_maps.insert(
        "demo-trust-root".into(),
        [("trusted_root.json".to_owned(), "{}".to_owned())].into(),
    );
    assert!(started(&pass(&spec, &observed)).contains("tuf"));
}

#[test]
fn a_settled_stack_applies_and_removes_nothing() {
    let spec = SigstoreStackSpec::default();
    let observed = settled(&spec, Observed::default());
    let d = pass(&spec, &observed);
    assert!(d.apply.is_empty(), "{:?}", d.apply);
    assert!(d.delete.is_empty(), "{:?}", d.delete);
}

/// A Ready-like observation: every stage output present, every workload
/// available, every object applied.
fn running(spec: &SigstoreStackSpec) -> Observed {
    let mut observed = Observed::default();
    for (name, keys) in [
        ("demo-fulcio-ca", createcerts::REQUIRED),
        ("demo-fulcio-pub", &["cert", "public"][..]),
        ("demo-rekor-signer", rekorkey::REQUIRED),
        ("demo-rekor-pub", &["public"][..]),
        ("demo-tsa", createcertchain::REQUIRED),
        ("demo-tsa-pub", &["cert-chain"][..]),
        ("demo-trillian-db", &["password", "root-password"][..]),
    ] {
        observed.secrets.insert(name.into(), secret(keys));
    }
    for log in ["rekor", "ctlog"] {
        observed.config_maps.insert(
            format!("demo-{log}-config"),
            [("treeID".to_owned(), "7".to_owned())].into(),
        );
    }
    for c in Component::ALL {
        for part in c.deployments(spec) {
            observed
                .deployments
                .insert(format!("demo-{part}"), available());
        }
    }
    settled(spec, observed)
}

#[test]
fn turning_a_component_off_removes_its_objects_and_nothing_else() {
    let spec = SigstoreStackSpec::default();
    let before = running(&spec);
    type Off = fn(&mut SigstoreStackSpec);
    let cases: [(&str, Off, &[&str]); 4] = [
        ("tsa", |s| s.tsa.enabled = false, &["demo-tsa"]),
        ("tuf", |s| s.tuf.enabled = false, &["demo-tuf"]),
        (
            "rekor",
            |s| s.rekor.enabled = false,
            &["demo-rekor", "demo-rekor-redis"],
        ),
        (
            "ctlog and fulcio",
            |s| {
                s.ctlog.enabled = false;
                s.fulcio.enabled = false;
            },
            &["demo-ctlog", "demo-fulcio", "demo-fulcio-config"],
        ),
    ];
    for (what, off, parts) in cases {
        let mut spec = SigstoreStackSpec::default();
        off(&mut spec);
        let d = pass(&spec, &before);
        let removed: BTreeSet<&str> = d.delete.iter().map(|r| r.name.as_str()).collect();
        for part in parts {
            assert!(removed.contains(part), "{what}: {part} not in {removed:?}");
        }
        for r in &d.delete {
            assert!(
                parts.iter().any(|p| r.name == *p
                    || r.name.starts_with(&format!("{p}-"))
                        && !before.secrets.contains_key(&r.name)),
                "{what}: removes {} {}",
                r.kind,
                r.name
            );
            assert_ne!(r.kind, "Secret", "{what}: key material is kept");
        }
        assert!(
            d.delete.iter().all(|r| r.name != "demo-trust-root"),
            "{what}: the trust root is history"
        );
        let event = d.events.iter().find(|e| e.reason == "Removed").expect(what);
        assert!(event.note.contains("is false"), "{what}: {}", event.note);
        // The next pass, with those gone, removes nothing more and says
        // what is kept.
        let mut after = before.clone();
        for r in &d.delete {
            after.applied.remove(&(r.kind.clone(), r.name.clone()));
            after.deployments.remove(&r.name);
        }
        let again = pass(&spec, &after);
        assert!(again.delete.is_empty(), "{what}: {:?}", again.delete);
    }
}

#[test]
fn both_logs_off_removes_trillian_but_keeps_its_credentials() {
    let spec = SigstoreStackSpec::default();
    let mut before = running(&spec);
    before.claims.insert("demo-trillian-db".into());
    let mut off = spec.clone();
    off.rekor.enabled = false;
    off.ctlog.enabled = false;
    let d = pass(&off, &before);
    let removed: BTreeSet<&str> = d.delete.iter().map(|r| r.name.as_str()).collect();
    for name in [
        "demo-trillian-db",
        "demo-trillian-log-server",
        "demo-trillian-log-signer",
        "demo-rekor",
        "demo-ctlog",
    ] {
        assert!(removed.contains(name), "{name} in {removed:?}");
    }
    assert!(d.delete.iter().all(|r| r.kind != "Secret"));
    let status = d.status.unwrap();
    let trillian = crate::conditions::find(&status.conditions, "TrillianAvailable").unwrap();
    assert_eq!(trillian.reason, status::REASON_DISABLED);
    assert!(
        trillian
            .message
            .contains("PersistentVolumeClaim demo-trillian-db"),
        "{}",
        trillian.message
    );
}

#[test]
fn a_disabled_stage_s_jobs_are_deleted() {
    let spec = SigstoreStackSpec::default();
    let mut observed = running(&spec);
    observed.jobs.push(JobView {
        name: "demo-tsa-chain-abc-1".into(),
        stage: Stage::TsaChain.id().into(),
        hash: "abc".into(),
        attempt: 1,
        state: super::super::observe::JobState::Succeeded,
        message: None,
    });
    assert!(
        pass(&spec, &observed).delete_jobs.is_empty(),
        "done Jobs stay"
    );
    let mut off = spec.clone();
    off.tsa.enabled = false;
    assert_eq!(pass(&off, &observed).delete_jobs, ["demo-tsa-chain-abc-1"]);
}

#[test]
fn an_invalid_spec_changes_nothing_but_its_status() {
    let mut spec = SigstoreStackSpec::default();
    spec.fulcio.enabled = false; // the CT log needs Fulcio
    let before = running(&SigstoreStackSpec::default());
    let d = pass(&spec, &before);
    assert!(d.create.is_empty() && d.apply.is_empty() && d.delete.is_empty());
    assert!(d.create_jobs.is_empty() && d.delete_jobs.is_empty());
    assert_eq!(d.requeue, None);
    let status = d.status.unwrap();
    assert_eq!(status.phase, Some(crate::api::Phase::Invalid));
    let ready = crate::conditions::find(&status.conditions, "Ready").unwrap();
    assert!(ready.message.contains("fulcio"), "{}", ready.message);
}

#[test]
fn a_refused_brought_ca_makes_the_spec_invalid_naming_the_field_and_looks_again() {
    let mut spec = SigstoreStackSpec::default();
    spec.fulcio.ca.existing_secret = Some("my-ca".into());
    let seen = Seen {
        brought_ca: Some("Secret ns/my-ca: key private does not match".into()),
        ..Seen::default()
    };
    let d = decide(&stack(spec), &seen, &options(), at()).unwrap();
    assert!(d.create.is_empty() && d.apply.is_empty() && d.delete.is_empty());
    assert!(d.create_jobs.is_empty() && d.delete_jobs.is_empty());
    assert_eq!(d.requeue, Some(super::BROUGHT_CA_RECHECK));
    let status = d.status.unwrap();
    assert_eq!(status.phase, Some(crate::api::Phase::Invalid));
    let ready = crate::conditions::find(&status.conditions, "Ready").unwrap();
    assert!(
        ready.message.contains("spec.fulcio.ca.existingSecret")
            && ready.message.contains("key private does not match"),
        "{}",
        ready.message
    );
}
