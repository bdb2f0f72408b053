//! What the API server refuses, each naming the field.

use super::*;

#[tokio::test]
async fn invalid_specs_are_refused_naming_the_field() {
    let client = control_plane().client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "invalid-specs").await;
    let cases = [
        (
            "storage-size",
            json!({"trillian": {"database": {"storage": {"size": "lots"}}}}),
            "spec.trillian.database.storage.size",
            "quantity",
        ),
        (
            "storage-external",
            json!({"trillian": {"database": {"mode": "External", "storage": {"size": "1Gi"},
                "external": {"host": "db", "credentialsSecret": "c"}}}}),
            "spec.trillian.database.storage",
            "only to the Embedded",
        ),
        (
            "prefix-slash",
            json!({"ctlog": {"prefix": "a/b"}}),
            "spec.ctlog.prefix",
            "URL path segment",
        ),
        (
            "prefix-empty",
            json!({"ctlog": {"prefix": ""}}),
            "spec.ctlog.prefix",
            "",
        ),
        (
            "issuer-http",
            json!({"fulcio": {"oidcIssuers": [{"issuerURL": "http://dex.example"}]}}),
            "spec.fulcio.oidcIssuers[0].issuerURL",
            "https://",
        ),
        (
            "issuer-dup",
            json!({"fulcio": {"oidcIssuers": [{"issuerURL": "https://a.example"},
                                                         {"issuerURL": "https://a.example"}]}}),
            "spec.fulcio.oidcIssuers[1]",
            "Duplicate",
        ),
        (
            "issuer-type",
            json!({"fulcio": {"oidcIssuers": [{"issuerURL": "https://a.example", "type": "carrier-pigeon"}]}}),
            "spec.fulcio.oidcIssuers[0].type",
            "Unsupported value",
        ),
        (
            "image-empty",
            json!({"rekor": {"image": ""}}),
            "spec.rekor.image",
            "non-empty image",
        ),
        (
            "image-space",
            json!({"trillian": {"logServer": {"image": "a b"}}}),
            "spec.trillian.logServer.image",
            "without spaces",
        ),
        (
            "stack-wide-resources",
            json!({"pod": {"resources": {"limits": {"memory": "1Gi"}}}}),
            "spec.pod.resources",
            "set per component",
        ),
        (
            "priority-class",
            json!({"tsa": {"pod": {"priorityClassName": "Not Valid"}}}),
            "spec.tsa.pod.priorityClassName",
            "PriorityClass",
        ),
        (
            "ctlog-no-fulcio",
            json!({"fulcio": {"enabled": false}}),
            "spec.ctlog.enabled",
            "requires fulcio.enabled",
        ),
        (
            "rekor-v2-no-tsa",
            json!({"rekor": {"generation": "v2"}, "tsa": {"enabled": false}}),
            "spec.rekor.generation",
            "need tsa.enabled",
        ),
        (
            "rekor-generation",
            json!({"rekor": {"generation": "v3"}}),
            "spec.rekor.generation",
            "Unsupported value",
        ),
        (
            "ctlog-backend",
            json!({"ctlog": {"backend": "trillian"}}),
            "spec.ctlog.backend",
            "Unsupported value",
        ),
        (
            "rekor-v2-key",
            json!({"rekor": {"v2": {"keyAlgorithm": "RSA-3072"}}}),
            "spec.rekor.v2.keyAlgorithm",
            "Unsupported value",
        ),
        (
            "db-external-missing",
            json!({"trillian": {"database": {"mode": "External"}}}),
            "spec.trillian.database.external",
            "external is required",
        ),
        (
            "db-embedded-with-external",
            json!({"trillian": {"database": {"external": {"host": "h", "credentialsSecret": "s"}}}}),
            "spec.trillian.database.external",
            "not allowed otherwise",
        ),
        (
            "validity-words",
            json!({"fulcio": {"ca": {"validity": "ten years"}}}),
            "spec.fulcio.ca.validity",
            "Go duration",
        ),
        (
            "validity-short",
            json!({"fulcio": {"ca": {"validity": "30m"}}}),
            "spec.fulcio.ca.validity",
            "at least 1h",
        ),
        (
            "key-algorithm",
            json!({"fulcio": {"ca": {"keyAlgorithm": "DSA"}}}),
            "spec.fulcio.ca.keyAlgorithm",
            "Unsupported value",
        ),
        (
            "tuf-order",
            json!({"tuf": {"expiry": {"timestamp": "9000h"}}}),
            "spec.tuf.expiry",
            "timestamp <= snapshot",
        ),
        (
            "db-port",
            json!({"trillian": {"database": {"mode": "External", "external": {"host": "h", "credentialsSecret": "s", "port": 0}}}}),
            "spec.trillian.database.external.port",
            "greater than or equal to 1",
        ),
        (
            "tuf-expiry-words",
            json!({"tuf": {"expiry": {"snapshot": "a week"}}}),
            "spec.tuf.expiry.snapshot",
            "Go duration",
        ),
        (
            "issuer-client-id",
            json!({"fulcio": {"oidcIssuers": [{"issuerURL": "https://a.example", "clientID": ""}]}}),
            "spec.fulcio.oidcIssuers[0].clientID",
            "",
        ),
        (
            "existing-secret-name",
            json!({"fulcio": {"ca": {"existingSecret": "My_CA"}}}),
            "spec.fulcio.ca.existingSecret",
            "must be a Secret name",
        ),
        (
            "db-host-empty",
            json!({"trillian": {"database": {"mode": "External", "external": {"host": "", "credentialsSecret": "s"}}}}),
            "spec.trillian.database.external.host",
            "",
        ),
        (
            "db-port-high",
            json!({"trillian": {"database": {"mode": "External", "external": {"host": "h", "credentialsSecret": "s", "port": 70000}}}}),
            "spec.trillian.database.external.port",
            "less than or equal to 65535",
        ),
        (
            "db-credentials-name",
            json!({"trillian": {"database": {"mode": "External", "external": {"host": "h", "credentialsSecret": "Not A Name"}}}}),
            "spec.trillian.database.external.credentialsSecret",
            "must be a Secret name",
        ),
        (
            "db-mode",
            json!({"trillian": {"database": {"mode": "Sqlite"}}}),
            "spec.trillian.database.mode",
            "Unsupported value",
        ),
        (
            "rekor-v2-storage",
            json!({"rekor": {"generation": "v2", "v2": {"storage": {"size": "big"}}}}),
            "spec.rekor.v2.storage.size",
            "quantity",
        ),
        (
            "toleration-operator",
            json!({"pod": {"tolerations": [{"key": "k", "operator": "Sometimes"}]}}),
            "spec.pod.tolerations",
            "Exists or Equal",
        ),
        (
            "toleration-effect",
            json!({"fulcio": {"pod": {"tolerations": [{"key": "k", "effect": "NoRun"}]}}}),
            "spec.fulcio.pod.tolerations",
            "NoSchedule",
        ),
        (
            "self-check-type",
            json!({"selfCheck": {"enabled": "yes"}}),
            "spec.selfCheck.enabled",
            "boolean",
        ),
        (
            "tsa-image-space",
            json!({"tsa": {"image": "ghcr.io/x y"}}),
            "spec.tsa.image",
            "without spaces",
        ),
        (
            "cn-blank",
            json!({"fulcio": {"ca": {"subject": {"commonName": "  "}}}}),
            "spec.fulcio.ca.subject.commonName",
            "blank",
        ),
    ];
    let mut failures = Vec::new();
    for (name, spec, field, expect) in cases {
        match create_raw(&client, &ns.name, stack(name, spec.clone())).await {
            Ok(_) => failures.push(format!("{name}: {spec} was accepted")),
            Err(kube::Error::Api(status)) => {
                let msg = status.message.clone();
                if status.code != 422 || !msg.contains(field) || !msg.contains(expect) {
                    failures.push(format!(
                        "{name}: want 422 naming {field} with {expect:?}, got {}: {msg}",
                        status.code
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: unexpected error {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
