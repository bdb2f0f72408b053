//! Unit tests of `trees`.

use super::*;
use crate::{
    api::{DatabaseStorage, ExternalDatabase},
    controller::observe::{Availability, SecretView},
};

fn owner() -> Owner {
    Owner {
        name: "demo".into(),
        namespace: "ns1".into(),
        uid: "u".into(),
    }
}

fn failed(code: tonic::Code, message: &str) -> Result<(), TrillianError> {
    Err(TrillianError::Call {
        call: "GetLatestSignedLogRoot",
        code,
        message: message.into(),
    })
}

/// Rekor and the CT log with trees 11 and 22 recorded.
fn observed() -> Observed {
    let mut o = Observed::default();
    for (log, id) in [("rekor", "11"), ("ctlog", "22")] {
        o.config_maps.insert(
            format!("demo-{log}-config"),
            [(names::TREE_ID_KEY.to_owned(), id.to_owned())].into(),
        );
    }
    o
}

fn missing() -> BTreeMap<Log, Probe> {
    [(Log::Rekor, Probe::Missing("tree 11 not found".into()))].into()
}

#[test]
fn only_trillians_not_found_or_a_lost_schema_is_a_verdict() {
    assert_eq!(classify(&Ok::<(), TrillianError>(())), Probe::Present);
    assert!(matches!(
        classify(&failed(tonic::Code::NotFound, "tree 11 not found")),
        Probe::Missing(_)
    ));
    assert!(matches!(
        classify(&failed(
            tonic::Code::Unknown,
            "Error 1146: Table 'trillian.Trees' doesn't exist"
        )),
        Probe::Missing(_)
    ));
    for code in [tonic::Code::Unavailable, tonic::Code::Internal] {
        assert!(matches!(
            classify(&failed(code, "connection refused")),
            Probe::Unknown(_)
        ));
    }
}

#[test]
fn an_ephemeral_database_replaces_a_lost_tree_and_a_lasting_one_waits_for_the_user() {
    let o = observed();
    let none = BTreeMap::new();
    let mut spec = SigstoreStackSpec::default();
    let loss = &losses(&owner(), &spec, &none, &o, &missing())[0];
    assert!(loss.replace);
    assert_eq!((loss.log, loss.tree_id), (Log::Rekor, 11));
    assert!(loss.message.contains("emptyDir"), "{}", loss.message);

    spec.trillian.database.storage = Some(DatabaseStorage {
        size: "1Gi".into(),
        ..Default::default()
    });
    let loss = &losses(&owner(), &spec, &none, &o, &missing())[0];
    assert!(!loss.replace);
    assert!(
        loss.message
            .contains("PersistentVolumeClaim demo-trillian-db")
    );
    assert!(
        loss.message
            .contains("kubectl annotate sst/demo scaffolding.sigstore.dev/replace-tree=11"),
        "{}",
        loss.message
    );
    // The annotation replaces exactly the trees it names.
    let asked = |v: &str| BTreeMap::from([(REPLACE_TREE_ANNOTATION.to_owned(), v.to_owned())]);
    assert!(losses(&owner(), &spec, &asked("11,22"), &o, &missing())[0].replace);
    assert!(!losses(&owner(), &spec, &asked("12"), &o, &missing())[0].replace);

    spec.trillian.database.storage = None;
    spec.trillian.database.mode = DatabaseMode::External;
    spec.trillian.database.external = Some(ExternalDatabase {
        host: "mysql.example".into(),
        ..Default::default()
    });
    let loss = &losses(&owner(), &spec, &none, &o, &missing())[0];
    assert!(!loss.replace);
    assert!(loss.message.contains("external database at mysql.example"));

    // A tree that answers, or no answer at all, is no loss.
    for probe in [Probe::Present, Probe::Unknown("timeout".into())] {
        let probes = [(Log::Rekor, probe)].into();
        assert!(losses(&owner(), &spec, &none, &o, &probes).is_empty());
    }
}

#[test]
fn a_log_is_unavailable_until_it_runs_on_its_new_tree() {
    let owner = owner();
    let mut o = observed();
    let spec = SigstoreStackSpec::default();
    let mut health = LogHealth {
        probes: missing(),
        ..Default::default()
    };
    health.losses = losses(&owner, &spec, &BTreeMap::new(), &o, &health.probes);
    let (reason, _) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
    assert_eq!(reason, TREE_MISSING);
    assert_eq!(unavailable(&owner, Log::Ctlog, &o, &health), None);

    // Replaced: nothing recorded, the old tree remembered once.
    let cm = o.config_maps.get_mut("demo-rekor-config").unwrap();
    forget(cm, &health.losses[0]);
    forget(cm, &health.losses[0]);
    assert_eq!(cm.get(names::TREE_ID_KEY), None);
    assert_eq!(cm[REPLACED_KEY], "11");
    let health = LogHealth::default();
    let (_, message) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
    assert!(message.contains("waiting for its new tree"), "{message}");
    assert_eq!(lost(&owner, &o), vec![11]);
    assert_eq!(healed_tree(&owner, Log::Rekor, &o), None);

    // The new tree is recorded: Rekor's template names it, and until
    // its Pod runs on it the log is not available.
    o.config_maps
        .get_mut("demo-rekor-config")
        .unwrap()
        .insert(names::TREE_ID_KEY.into(), "33".into());
    assert_eq!(healed_tree(&owner, Log::Rekor, &o), Some(33));
    let (_, message) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
    assert!(
        message.contains("restarts onto its new tree 33"),
        "{message}"
    );
    o.deployments.insert(
        "demo-rekor".into(),
        Availability {
            available: 1,
            current: true,
            tree: Some(33),
            since: None,
        },
    );
    assert_eq!(unavailable(&owner, Log::Rekor, &o, &health), None);
    let note = healed_note(&owner, Log::Rekor, &o).unwrap();
    assert!(
        note.contains("tree 33") && note.contains("tree 11"),
        "{note}"
    );
}

#[test]
fn the_ct_log_restarts_only_once_its_config_names_the_new_tree() {
    let owner = owner();
    let mut o = observed();
    let cm = o.config_maps.get_mut("demo-ctlog-config").unwrap();
    cm.insert(names::TREE_ID_KEY.into(), "44".into());
    cm.insert(REPLACED_KEY.into(), "22".into());
    o.secrets.insert(
        "demo-ctlog".into(),
        SecretView {
            config_log_id: Some(22),
            ..Default::default()
        },
    );
    assert_eq!(healed_tree(&owner, Log::Ctlog, &o), None);
    let (_, message) = unavailable(&owner, Log::Ctlog, &o, &LogHealth::default()).unwrap();
    assert!(message.contains("waiting for its config"), "{message}");
    o.secrets.get_mut("demo-ctlog").unwrap().config_log_id = Some(44);
    assert_eq!(healed_tree(&owner, Log::Ctlog, &o), Some(44));
}

#[test]
fn a_server_that_answers_without_its_log_is_not_serving() {
    let owner = owner();
    let o = observed();
    assert_eq!(classify_serving(Ok((200, "{}".into()))), Serving::Serves);
    assert!(matches!(
        classify_serving(Err("refused".into())),
        Serving::Unknown(_)
    ));
    let refused = classify_serving(Ok((
        500,
        "unexpected error communicating with transparency log".into(),
    )));
    let health = LogHealth {
        serving: [(Log::Rekor, refused)].into(),
        ..Default::default()
    };
    let (reason, message) = unavailable(&owner, Log::Rekor, &o, &health).unwrap();
    assert_eq!(reason, LOG_NOT_SERVING);
    assert!(message.contains("HTTP 500"), "{message}");
    assert_eq!(requeue(&health), Some(CHECK_EVERY));
    assert_eq!(requeue(&LogHealth::default()), None);
    let unknown = LogHealth {
        serving: [(Log::Ctlog, Serving::Unknown("dns".into()))].into(),
        ..Default::default()
    };
    assert_eq!(requeue(&unknown), Some(UNKNOWN_REQUEUE));
    assert_eq!(
        serving_url(&owner, &SigstoreStackSpec::default(), Log::Ctlog),
        "http://demo-ctlog.ns1.svc/sigstorescaffolding/ct/v1/get-sth"
    );
}
