//! helm, built by `make tools`, and the project's chart.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

/// The chart's directory.
pub fn chart() -> String {
    let path = super::repo_root().join("config/helm/sigstore-operator");
    path.to_string_lossy().into_owned()
}

/// Values that set every value of the chart.
pub fn full_values() -> String {
    format!("{}/ci/full-values.yaml", chart())
}

/// Runs helm; a missing helm fails the test, since `make test` must not
/// silently skip what needs a binary.
pub fn helm(args: &[&str]) -> Output {
    let helm: PathBuf = super::tool("helm").unwrap_or_else(|e| panic!("{e:#}"));
    std::process::Command::new(helm)
        .args(args)
        .output()
        .expect("run helm")
}

/// Fails the test with helm's output unless it succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs helm against `kubeconfig`, asserting success; its stdout.
pub fn helm_on(kubeconfig: &Path, args: &[&str]) -> String {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap_or_default()];
    all.extend(args);
    let out = helm(&all);
    assert_ok(&out, &format!("helm {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The image the tests install the chart with (their own build, as a user
/// names theirs); the node agent maps `sigstore-operator` to the operator's binary.
pub const IMAGE: &str = "image.repository=sigstore-operator";
