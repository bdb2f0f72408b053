//! Checks of a spec the operator makes before acting on it.
//!
//! Most rules are also CEL rules in the CRD, so the API server refuses bad
//! input up front; they are checked here again because objects stored under
//! an older CRD never passed them, and some limits (how far a certificate's
//! validity may reach) are the operator's to judge.

use std::{fmt, time::Duration as StdDuration};

use crate::api::{DatabaseMode, Duration, SigstoreStackSpec};

/// The shortest validity accepted for a certificate or TUF role.
const MIN_VALIDITY: StdDuration = StdDuration::from_secs(3600);
/// The longest: beyond a century X.509 and TUF dates stop being useful.
const MAX_VALIDITY: StdDuration = StdDuration::from_secs(100 * 365 * 24 * 3600);

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.ctlog.prefix`.
    pub field: String,
    /// What is expected of it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a stack named `name`; empty when it can be
/// acted on.
pub fn validate_stack(name: &str, spec: &SigstoreStackSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if name.len() > crate::names::MAX_STACK_NAME {
        errors.push(FieldError {
            field: "metadata.name".into(),
            message: format!(
                "must be at most {} characters, so the names of the objects it owns stay valid \
                 DNS labels",
                crate::names::MAX_STACK_NAME
            ),
        });
    }
    errors.extend(validate(spec));
    errors
}

/// Every problem found in `spec`; empty when it can be acted on.
pub fn validate(spec: &SigstoreStackSpec) -> Vec<FieldError> {
    let mut errors = Errors::default();
    let db = &spec.trillian.database;
    match (db.mode, &db.external) {
        (DatabaseMode::External, None) => errors.push(
            "spec.trillian.database.external",
            "is required when mode is External",
        ),
        (DatabaseMode::Embedded, Some(_)) => errors.push(
            "spec.trillian.database.external",
            "is allowed only when mode is External",
        ),
        (DatabaseMode::External, Some(ext)) => {
            if ext.host.trim().is_empty() {
                errors.push(
                    "spec.trillian.database.external.host",
                    "must be a host name or IP address",
                );
            }
            if !is_object_name(&ext.credentials_secret) {
                errors.push(
                    "spec.trillian.database.external.credentialsSecret",
                    "must name a Secret with keys username and password: lowercase letters, \
                     digits, '-' and '.'",
                );
            }
        }
        (DatabaseMode::Embedded, None) => {}
    }
    if db.mode == DatabaseMode::External && db.storage.is_some() {
        errors.push(
            "spec.trillian.database.storage",
            "applies only to the Embedded database",
        );
    }

    let images = [
        ("spec.trillian.database.image", &db.image),
        (
            "spec.trillian.logServer.image",
            &spec.trillian.log_server.image,
        ),
        (
            "spec.trillian.logSigner.image",
            &spec.trillian.log_signer.image,
        ),
        ("spec.rekor.image", &spec.rekor.image),
        ("spec.rekor.redisImage", &spec.rekor.redis_image),
        ("spec.ctlog.image", &spec.ctlog.image),
        ("spec.fulcio.image", &spec.fulcio.image),
        ("spec.tsa.image", &spec.tsa.image),
        ("spec.tuf.image", &spec.tuf.image),
    ];
    for (field, image) in images {
        if let Some(image) = image
            && (image.is_empty() || image.chars().any(char::is_whitespace))
        {
            errors.push(field, "must be a non-empty image reference without spaces");
        }
    }

    for (field, pod) in [
        ("spec.trillian.database.pod", &spec.trillian.database.pod),
        ("spec.trillian.logServer.pod", &spec.trillian.log_server.pod),
        ("spec.trillian.logSigner.pod", &spec.trillian.log_signer.pod),
        ("spec.rekor.pod", &spec.rekor.pod),
        ("spec.rekor.redisPod", &spec.rekor.redis_pod),
        ("spec.rekor.v2.pod", &spec.rekor.v2.pod),
        ("spec.ctlog.pod", &spec.ctlog.pod),
        ("spec.ctlog.tesseract.pod", &spec.ctlog.tesseract.pod),
        ("spec.fulcio.pod", &spec.fulcio.pod),
        ("spec.tsa.pod", &spec.tsa.pod),
        ("spec.tuf.pod", &spec.tuf.pod),
        ("spec.stages.pod", &spec.stages.pod),
    ] {
        let Some(resources) = &pod.resources else {
            continue;
        };
        // The API server takes any string here and refuses it only when
        // the Deployment is applied: say so before, naming the field.
        for (kind, list) in [
            ("limits", &resources.limits),
            ("requests", &resources.requests),
        ] {
            for (name, value) in list.iter().flatten() {
                if !is_quantity(&value.0) {
                    errors.push(
                        format!("{field}.resources.{kind}.{name}"),
                        format!(
                            "must be a quantity such as 500m, 2 or 256Mi, not {:?}",
                            value.0
                        ),
                    );
                }
            }
        }
    }

    if spec.pod.resources.is_some() {
        errors.push(
            "spec.pod.resources",
            "resources are set per component (e.g. spec.fulcio.pod.resources): one size fits no \
             two of them",
        );
    }

    if spec.ctlog.enabled && !spec.fulcio.enabled {
        errors.push(
            "spec.ctlog.enabled",
            "requires spec.fulcio.enabled: the CT log trusts only Fulcio's root",
        );
    }
    if spec.rekor.enabled && spec.rekor.generation.v2() && spec.fulcio.enabled && !spec.tsa.enabled
    {
        errors.push(
            "spec.rekor.generation",
            "v2 and both need spec.tsa.enabled while Fulcio is on: Rekor v2 returns no signed \
             time, so a keyless signature is verified against the TSA's timestamp",
        );
    }
    if !is_path_segment(&spec.ctlog.prefix) {
        errors.push(
            "spec.ctlog.prefix",
            "must be a single URL path segment: letters, digits, '.', '_' or '-', starting with \
             a letter or digit",
        );
    }

    if spec.fulcio.ca.subject.common_name.trim().is_empty() {
        errors.push("spec.fulcio.ca.subject.commonName", "must not be blank");
    }
    if let Some(name) = &spec.fulcio.ca.existing_secret
        && !is_object_name(name)
    {
        errors.push(
            "spec.fulcio.ca.existingSecret",
            "must be a Secret name: lowercase letters, digits, '-' and '.'",
        );
    }
    check_validity(
        &mut errors,
        "spec.fulcio.ca.validity",
        spec.fulcio.ca.validity,
    );
    let mut seen = Vec::new();
    for (i, issuer) in spec.fulcio.oidc_issuers.iter().enumerate() {
        let field = format!("spec.fulcio.oidcIssuers[{i}].issuerURL");
        if !is_https_url(&issuer.issuer_url) {
            errors.push(&field, "must be an https:// URL");
        }
        if seen.contains(&issuer.issuer_url.as_str()) {
            errors.push(&field, "is listed twice");
        }
        seen.push(issuer.issuer_url.as_str());
        if issuer.client_id.trim().is_empty() {
            errors.push(
                format!("spec.fulcio.oidcIssuers[{i}].clientID"),
                "must not be blank",
            );
        }
    }

    let e = &spec.tuf.expiry;
    let roles = [
        ("root", e.root),
        ("targets", e.targets),
        ("snapshot", e.snapshot),
        ("timestamp", e.timestamp),
    ];
    for (role, d) in roles {
        check_validity(&mut errors, &format!("spec.tuf.expiry.{role}"), d);
    }
    for pair in roles.windows(2) {
        let ((longer, l), (shorter, s)) = (pair[0], pair[1]);
        if s > l {
            errors.push(
                format!("spec.tuf.expiry.{shorter}"),
                format!("must not exceed spec.tuf.expiry.{longer}"),
            );
        }
    }
    errors.0
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

fn check_validity(errors: &mut Errors, field: &str, d: Duration) {
    if d.as_std() < MIN_VALIDITY {
        errors.push(field, "must be at least 1h");
    } else if d.as_std() > MAX_VALIDITY {
        errors.push(field, "must be at most 876000h (100 years)");
    }
}

/// A Kubernetes quantity: a decimal number with an optional binary (Ki..Ei)
/// or decimal (n, u, m, k, M..E) suffix or exponent, e.g. `500m`, `1.5Gi`.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    let number_ok = parts.next().is_none()
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()))
        && whole
            .chars()
            .chain(fraction.unwrap_or_default().chars())
            .all(|c| c.is_ascii_digit());
    let suffix_ok = match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        e => e
            .strip_prefix(['e', 'E'])
            .map(|x| x.strip_prefix(['+', '-']).unwrap_or(x))
            .is_some_and(|x| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit())),
    };
    number_ok && suffix_ok
}

/// A Kubernetes object name (a DNS subdomain: lowercase alphanumerics,
/// '-' and '.', starting and ending alphanumeric, at most 253).
fn is_object_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.len() <= 253
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '.'))
}

fn is_path_segment(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.len() <= 63
}

fn is_https_url(s: &str) -> bool {
    s.strip_prefix("https://").is_some_and(|rest| {
        let host = rest.split('/').next().unwrap_or_default();
        !host.is_empty() && !rest.chars().any(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExternalDatabase, OidcIssuer};

    fn fields(spec: &SigstoreStackSpec) -> Vec<String> {
        validate(spec).into_iter().map(|e| e.field).collect()
    }

    fn dur(s: &str) -> Duration {
        s.parse().unwrap()
    }

    #[test]
    fn empty_spec_is_valid() {
        assert_eq!(validate(&SigstoreStackSpec::default()), vec![]);
    }

    #[test]
    fn empty_yaml_spec_is_the_default() {
        let spec: SigstoreStackSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, SigstoreStackSpec::default());
        assert_eq!(spec.ctlog.prefix, "sigstorescaffolding");
        assert!(spec.rekor.enabled && spec.fulcio.trust_cluster_issuer);
    }

    #[test]
    fn quantities_are_told_from_words() {
        for ok in [
            "1", "500m", "0.5", ".5", "1.5Gi", "256Mi", "2k", "1e3", "1E-2", "+1", "10n",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["lots", "", "1.2.3", "1GB", "Gi", "1 Gi", "e3", "1e", "5%"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn a_resource_that_is_not_a_quantity_names_its_field() {
        use k8s_openapi::{
            api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
        };
        let mut spec = SigstoreStackSpec::default();
        spec.stages.pod.resources = Some(ResourceRequirements {
            limits: Some([("cpu".to_owned(), Quantity("lots".into()))].into()),
            requests: Some([("memory".to_owned(), Quantity("64Mi".into()))].into()),
            ..ResourceRequirements::default()
        });
        spec.rekor.v2.pod.resources = Some(ResourceRequirements {
            requests: Some([("memory".to_owned(), Quantity("1 GB".into()))].into()),
            ..ResourceRequirements::default()
        });
        let errors = validate(&spec);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.rekor.v2.pod.resources.requests.memory",
                "spec.stages.pod.resources.limits.cpu"
            ]
        );
        assert!(errors[1].message.contains("not \"lots\""), "{}", errors[1]);
    }

    #[test]
    fn each_rule_names_its_field() {
        type Mutation = Box<dyn Fn(&mut SigstoreStackSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "spec.fulcio.ca.existingSecret",
                Box::new(|s| s.fulcio.ca.existing_secret = Some("My_CA".into())),
            ),
            (
                "spec.fulcio.ca.existingSecret",
                Box::new(|s| s.fulcio.ca.existing_secret = Some("ca-".into())),
            ),
            (
                "spec.ctlog.prefix",
                Box::new(|s| s.ctlog.prefix = "a/b".into()),
            ),
            (
                "spec.ctlog.prefix",
                Box::new(|s| s.ctlog.prefix = "-x".into()),
            ),
            ("spec.ctlog.enabled", Box::new(|s| s.fulcio.enabled = false)),
            (
                "spec.rekor.generation",
                Box::new(|s| {
                    s.rekor.generation = crate::api::RekorGeneration::V2;
                    s.tsa.enabled = false;
                }),
            ),
            (
                "spec.pod.resources",
                Box::new(|s| s.pod.resources = Some(Default::default())),
            ),
            (
                "spec.rekor.image",
                Box::new(|s| s.rekor.image = Some(String::new())),
            ),
            (
                "spec.fulcio.image",
                Box::new(|s| s.fulcio.image = Some("a b".into())),
            ),
            (
                "spec.fulcio.oidcIssuers[0].issuerURL",
                Box::new(|s| {
                    s.fulcio.oidc_issuers = vec![OidcIssuer {
                        issuer_url: "http://insecure.example".into(),
                        client_id: "sigstore".into(),
                        issuer_type: Default::default(),
                    }]
                }),
            ),
            (
                "spec.fulcio.ca.validity",
                Box::new(|s| s.fulcio.ca.validity = dur("30m")),
            ),
            (
                "spec.fulcio.ca.validity",
                Box::new(|s| s.fulcio.ca.validity = dur("1000000h")),
            ),
            (
                "spec.fulcio.ca.subject.commonName",
                Box::new(|s| s.fulcio.ca.subject.common_name = "  ".into()),
            ),
            (
                "spec.tuf.expiry.timestamp",
                Box::new(|s| s.tuf.expiry.timestamp = dur("9000h")),
            ),
            (
                "spec.trillian.database.external",
                Box::new(|s| s.trillian.database.mode = DatabaseMode::External),
            ),
            (
                "spec.trillian.database.external",
                Box::new(|s| {
                    s.trillian.database.external = Some(ExternalDatabase {
                        host: "db".into(),
                        port: 3306,
                        database: "trillian".into(),
                        credentials_secret: "creds".into(),
                    })
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut spec = SigstoreStackSpec::default();
            mutate(&mut spec);
            assert_eq!(fields(&spec), vec![field.to_string()], "{spec:?}");
        }
    }

    #[test]
    fn duplicate_issuers_are_refused() {
        let issuer = OidcIssuer {
            issuer_url: "https://issuer.example".into(),
            client_id: "sigstore".into(),
            issuer_type: Default::default(),
        };
        let mut spec = SigstoreStackSpec::default();
        spec.fulcio.oidc_issuers = vec![issuer.clone(), issuer];
        assert_eq!(fields(&spec), vec!["spec.fulcio.oidcIssuers[1].issuerURL"]);
    }

    #[test]
    fn messages_read_as_field_then_expectation() {
        let mut spec = SigstoreStackSpec::default();
        spec.ctlog.prefix = "a/b".into();
        let msg = validate(&spec)[0].to_string();
        assert!(msg.starts_with("spec.ctlog.prefix: must be a single URL path segment"));
    }
}
