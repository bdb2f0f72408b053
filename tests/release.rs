//! The release path, without a cluster: one place names the published image
//! (hack/release.env) and the chart's default is it; the Action's choice of
//! image (hack/operator-image.sh, run here as action.yml runs it); and the
//! workflows pin every third-party action by commit.

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// hack/release.env's IMAGE_REPOSITORY.
fn published_repository() -> String {
    read("hack/release.env")
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE_REPOSITORY="))
        .expect("IMAGE_REPOSITORY in hack/release.env")
        .to_owned()
}

#[test]
fn release_env_names_a_ghcr_repository() {
    let repository = published_repository();
    let parts: Vec<&str> = repository.split('/').collect();
    assert!(
        parts.len() == 3 && parts[0] == "ghcr.io" && parts.iter().all(|p| !p.is_empty()),
        "IMAGE_REPOSITORY must be ghcr.io/<owner>/<name>: {repository}"
    );
    assert_eq!(
        repository,
        repository.to_lowercase(),
        "image references are lowercase"
    );
}

/// The chart's default image is the published one: values.yaml cannot read
/// release.env, so this keeps the two equal.
#[test]
fn chart_default_repository_is_release_env() {
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("config/helm/sigstore-operator/values.yaml")).unwrap();
    assert_eq!(
        values["image"]["repository"].as_str(),
        Some(published_repository().as_str()),
        "config/helm/sigstore-operator/values.yaml image.repository must equal \
         IMAGE_REPOSITORY in hack/release.env"
    );
    assert_eq!(
        values["image"]["tag"].as_str(),
        Some(""),
        "the tag defaults to appVersion"
    );
}

/// Everything else that names the published image reads release.env.
#[test]
fn release_env_is_read_where_the_image_is_named() {
    for file in [
        "hack/kind-up.sh",
        "hack/operator-image.sh",
        ".github/workflows/release.yml",
    ] {
        assert!(read(file).contains("hack/release.env"), "{file}");
        assert!(
            !read(file).contains(&published_repository()),
            "{file} names the repository itself instead of reading hack/release.env"
        );
    }
    let action = read("action.yml");
    assert!(action.contains("hack/operator-image.sh"));
}

fn operator_image(input: &str, reference: &str, repository: &str) -> String {
    let out = Command::new("bash")
        .arg(root().join("hack/operator-image.sh"))
        .args([input, reference, repository])
        .output()
        .expect("run hack/operator-image.sh");
    assert!(
        out.status.success(),
        "hack/operator-image.sh {input:?} {reference:?} {repository:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

/// The Action runs the published image of the version it is used at, the
/// image it is given, or builds from its own source.
#[test]
fn the_action_picks_the_release_image_of_its_tag() {
    let name = published_repository();
    let name = name.rsplit('/').next().unwrap();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let repo = "acme/sigstore-operator";
    for (input, reference, repository, want) in [
        // A release tag, with or without the v; the owner lowercased.
        (
            "",
            "v1.2.3",
            "Acme/Sigstore-Operator",
            "ghcr.io/acme/NAME:1.2.3",
        ),
        ("", "1.2.3", "acme/fork", "ghcr.io/acme/NAME:1.2.3"),
        ("", "v0.2.0-rc.1", repo, "ghcr.io/acme/NAME:0.2.0-rc.1"),
        // Refs that name no published image: build.
        ("", "main", repo, "build"),
        ("", sha, repo, "build"),
        ("", "v1", repo, "build"),
        ("", "v1.2", repo, "build"),
        ("", "v1.2.3+meta", repo, "build"),
        ("", "release/v1.2.3", repo, "build"),
        // `uses: ./`: no repository, no ref.
        ("", "", "", "build"),
        ("", "v1.2.3", "", "build"),
        // The input wins.
        ("build", "v1.2.3", repo, "build"),
        (
            "registry.example.com/op:dev",
            "v1.2.3",
            repo,
            "registry.example.com/op:dev",
        ),
        (
            "registry.example.com/op:dev",
            "",
            "",
            "registry.example.com/op:dev",
        ),
    ] {
        assert_eq!(
            operator_image(input, reference, repository),
            want.replace("NAME", name),
            "input {input:?}, ref {reference:?}, repository {repository:?}"
        );
    }
}

#[test]
fn operator_image_script_wants_its_three_arguments() {
    let out = Command::new("bash")
        .arg(root().join("hack/operator-image.sh"))
        .arg("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

/// Every `uses:` of a third-party action in the workflows is pinned by a
/// full commit SHA, with the version it is in a comment.
#[test]
fn workflows_pin_actions_by_commit() {
    let dir = root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "ci.yml and release.yml: {files:?}");
    let mut pinned = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            let Some(rest) = line
                .trim_start()
                .trim_start_matches("- ")
                .strip_prefix("uses:")
            else {
                continue;
            };
            let rest = rest.trim();
            if rest.starts_with("./") {
                continue;
            }
            let (action, after) = rest.split_once('@').unwrap_or((rest, ""));
            let (sha, comment) = after.split_once('#').unwrap_or((after, ""));
            let sha = sha.trim();
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: {action} is not pinned by a commit SHA: {line}",
                file.display()
            );
            assert!(
                comment.trim().starts_with('v'),
                "{}: {action}@{sha} has no `# vX.Y.Z` comment",
                file.display()
            );
            pinned += 1;
        }
    }
    assert!(pinned > 0);
}
