//! The committed CRD is exactly what the Rust types print, its copies match
//! it, and the Helm chart's appVersion is the crate's version.

#[test]
fn committed_crd_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/sigstorestack.yaml");
    let generated = sigstore_operator::crd::crd_yaml().expect("render CRD");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the Rust types: run `make crds` and commit the result",
        path.display()
    );
}

/// The API reference is generated from the same schema.
#[test]
fn api_reference_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sigstore_operator::crd::api_reference(),
        "{} is out of date with the Rust types: run `make crds` and commit the result",
        path.display()
    );
}

/// `make crds` copies the CRD to the kustomize base and into the Helm chart's
/// `files/`; a stale copy would install an old schema.
#[test]
fn crd_copies_match_the_committed_crd() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read(root.join("crds/sigstorestack.yaml")).expect("read CRD");
    for copy in [
        "config/crd/sigstorestack.yaml",
        "config/helm/sigstore-operator/files/sigstorestack.yaml",
    ] {
        let text = std::fs::read(root.join(copy)).unwrap_or_default();
        assert!(
            text == committed,
            "{copy} differs from crds/sigstorestack.yaml: run `make crds` and commit the result"
        );
    }
}

/// The chart's appVersion is the default image tag, so it must be the
/// operator's version.
#[test]
fn chart_app_version_is_the_crate_version() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/helm/sigstore-operator/Chart.yaml");
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read Chart.yaml"))
            .expect("parse Chart.yaml");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "appVersion in {} must equal Cargo.toml's version",
        path.display()
    );
}

#[test]
fn crd_names_and_columns() {
    let crd = sigstore_operator::crd::crd();
    assert_eq!(crd.spec.group, "scaffolding.sigstore.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sst".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Ready", "Age"]);
}

#[test]
fn every_schema_field_is_documented() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                // metadata and apiVersion/kind are Kubernetes' own.
                let own = !matches!(p.as_str(), ".apiVersion" | ".kind" | ".metadata");
                if own && sub.get("description").is_none() {
                    missing.push(p.clone());
                }
                // Kubernetes' own types in a `pod` are documented by
                // Kubernetes; the CRD drops their inner descriptions.
                let kubernetes = path.ends_with(".pod")
                    && matches!(name.as_str(), "affinity" | "tolerations" | "resources");
                if !kubernetes {
                    walk(&p, sub, missing);
                }
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let crd = serde_json::to_value(sigstore_operator::crd::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    walk("", schema, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}
