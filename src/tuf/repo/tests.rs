//! Unit tests of `repo`.

use super::*;
use crate::tuf::keys;

fn expiry() -> Expiry {
    let h = |n: u64| Duration::from_secs(n * 3600);
    Expiry {
        root: h(1000),
        targets: h(500),
        snapshot: h(100),
        timestamp: h(10),
    }
}

fn target(name: &str, content: &str) -> TargetFile {
    TargetFile {
        name: name.into(),
        content: content.into(),
        custom: Some(serde_json::json!({"sigstore": {"usage": "Rekor", "status": "Active"}})),
    }
}

fn at(hours: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + hours * 3600).unwrap()
}

/// Loads the repository with tough's client, as a TUF client would
/// from a mirror; returns target `name`'s content.
async fn load(files: &Files, name: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("targets")).unwrap();
    for (k, v) in files {
        let path = match k.strip_prefix("targets.") {
            Some(rest) => dir.path().join("targets").join(rest),
            None => dir.path().join(k),
        };
        std::fs::write(path, v).unwrap();
    }
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    let repo = tough::RepositoryLoader::new(
        &files["1.root.json"].as_bytes(),
        base.clone(),
        base.join("targets/").unwrap(),
    )
    .load()
    .await
    .map_err(|e| e.to_string())?;
    let name = TargetName::new(name).unwrap();
    let stream = repo.read_target(&name).await.map_err(|e| e.to_string())?;
    let bytes = stream.ok_or("no such target")?;
    use futures::TryStreamExt;
    let data: Vec<u8> = bytes
        .map_ok(|b| b.to_vec())
        .try_concat()
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8(data).unwrap())
}

#[tokio::test]
async fn a_new_repository_verifies_and_a_rerun_changes_nothing() {
    let keys = KeySet::from_data(&keys::generate().unwrap()).unwrap();
    let targets = [
        target("rekor.pub", "KEY 1"),
        target("trusted_root.json", "{}"),
    ];
    let now = Timestamp::now();
    let built = build(&Files::new(), &targets, &keys, &expiry(), now)
        .await
        .unwrap();
    assert_eq!(built.versions, [1, 1, 1, 1]);
    assert_eq!(built.files["root.json"], built.files["1.root.json"]);
    assert_eq!(load(&built.files, "rekor.pub").await.unwrap(), "KEY 1");
    // The timestamp, shortest-lived, is the first due: half its life on.
    let expected = now.round(Unit::Second).unwrap() + SignedDuration::from_hours(5);
    assert_eq!(built.resign_at, expected);
    let again = build(
        &built.files,
        &targets,
        &keys,
        &expiry(),
        now + SignedDuration::from_hours(1),
    )
    .await
    .unwrap();
    assert_eq!(again.files, built.files, "nothing new, nothing due");
}

#[tokio::test]
async fn changed_targets_are_signed_and_the_root_stays() {
    let keys = KeySet::from_data(&keys::generate().unwrap()).unwrap();
    let v1 = build(
        &Files::new(),
        &[target("rekor.pub", "KEY 1")],
        &keys,
        &expiry(),
        at(0),
    )
    .await
    .unwrap();
    let v2 = build(
        &v1.files,
        &[target("rekor.pub", "KEY 2")],
        &keys,
        &expiry(),
        at(1),
    )
    .await
    .unwrap();
    assert_eq!(v2.versions, [1, 2, 2, 2]);
    let again = build(
        &v2.files,
        &[target("rekor.pub", "KEY 2")],
        &keys,
        &expiry(),
        at(2),
    )
    .await
    .unwrap();
    assert_eq!(again.files, v2.files, "the kept versions stay kept");
    assert_eq!(v2.files["root.json"], v1.files["root.json"]);
    // The previous targets and snapshot stay one round.
    for key in [
        "1.targets.json",
        "1.snapshot.json",
        "2.targets.json",
        "2.snapshot.json",
    ] {
        assert!(v2.files.contains_key(key), "{key}");
    }
    let old_target = v1.files.keys().find(|k| k.starts_with("targets.")).unwrap();
    assert!(v2.files.contains_key(old_target));
}

#[test]
fn due_in_the_second_half_of_a_lifetime() {
    let life = Duration::from_secs(10 * 3600);
    let expires = at(10);
    assert!(!due(expires, life, at(0)));
    assert!(!due(expires, life, at(4)));
    assert!(due(expires, life, at(5)), "half-way");
    assert!(due(expires, life, at(11)), "expired");
    // A shortened lifetime re-signs at once.
    assert!(due(expires, Duration::from_secs(3600), at(0)));
    // A clock 29 minutes behind still re-signs (margin: 1/20 of 10h,
    // at most 5 minutes... so 4 minutes behind does, 29 does not).
    assert!(due(expires, life, at(5) - SignedDuration::from_mins(4)));
    assert!(!due(expires, life, at(5) - SignedDuration::from_mins(29)));
}

#[tokio::test]
async fn roles_are_re_signed_as_they_come_due() {
    let keys = KeySet::from_data(&keys::generate().unwrap()).unwrap();
    let targets = [target("rekor.pub", "KEY 1")];
    let v1 = build(&Files::new(), &targets, &keys, &expiry(), at(0))
        .await
        .unwrap();
    let v2 = build(&v1.files, &targets, &keys, &expiry(), at(6))
        .await
        .unwrap();
    assert_eq!(v2.versions, [1, 1, 1, 2], "only the timestamp is due");
    assert_eq!(v2.resign_at, at(11));
    let v3 = build(&v2.files, &targets, &keys, &expiry(), at(60))
        .await
        .unwrap();
    assert_eq!(v3.versions, [1, 1, 2, 3], "then the snapshot");
    let v4 = build(&v3.files, &targets, &keys, &expiry(), at(600))
        .await
        .unwrap();
    assert_eq!(v4.versions, [2, 2, 3, 4], "root and targets, late");
    assert_eq!(v4.files["root.json"], v4.files["2.root.json"]);
    assert!(v4.files.contains_key("1.root.json"), "old roots stay");
    assert_eq!(load(&v4.files, "rekor.pub").await.unwrap(), "KEY 1");
}

#[tokio::test]
async fn expired_metadata_is_refused_and_a_re_sign_restores_it() {
    let keys = KeySet::from_data(&keys::generate().unwrap()).unwrap();
    let targets = [target("rekor.pub", "KEY 1")];
    let then = Timestamp::now() - SignedDuration::from_hours(11);
    let old = build(&Files::new(), &targets, &keys, &expiry(), then)
        .await
        .unwrap();
    let e = load(&old.files, "rekor.pub").await.unwrap_err();
    assert!(
        e.contains("xpired"),
        "tough's client refuses an expired timestamp: {e}"
    );
    let new = build(&old.files, &targets, &keys, &expiry(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(new.versions, [1, 1, 1, 2]);
    assert_eq!(load(&new.files, "rekor.pub").await.unwrap(), "KEY 1");
}

#[tokio::test]
async fn other_keys_are_refused() {
    let keys = KeySet::from_data(&keys::generate().unwrap()).unwrap();
    let other = KeySet::from_data(&keys::generate().unwrap()).unwrap();
    let v1 = build(&Files::new(), &[], &keys, &expiry(), at(0))
        .await
        .unwrap();
    let e = build(&v1.files, &[], &other, &expiry(), at(0))
        .await
        .unwrap_err();
    assert!(matches!(e, TufError::KeysChanged), "{e}");
}
