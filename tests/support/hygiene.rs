//! Secret hygiene: a namespace's private keys and passwords, sought in
//! everything a user or another tenant can read without Secret access:
//! the operator's log, every Pod's log, the Events, the stacks' status and
//! the ConfigMaps.

use std::path::Path;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::{Api, Client, api::ListParams};
use sigstore_operator::api::SigstoreStack;

/// What was sought where, and what was found.
pub struct Report {
    /// Private keys sought (each in several encodings).
    pub keys: usize,
    /// Passwords sought.
    pub passwords: usize,
    /// Bytes read.
    pub bytes: usize,
    /// Files, Events, status and ConfigMaps read.
    pub sources: usize,
    /// Each find: the source, the Secret and key it came from.
    pub found: Vec<String>,
}

/// The base64 bodies of the PEM blocks in `text` whose label says
/// PRIVATE KEY.
fn private_pem_bodies(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(end_label) = after.find("-----") else {
            break;
        };
        let label = &after[..end_label];
        let body_start = &after[end_label + 5..];
        let Some(end) = body_start.find("-----END ") else {
            break;
        };
        if label.contains("PRIVATE KEY") {
            let body: String = body_start[..end]
                .lines()
                .filter(|l| !l.contains(':'))
                .map(str::trim)
                .collect();
            if !body.is_empty() {
                out.push(body);
            }
        }
        rest = &body_start[end..];
    }
    out
}

/// The strings that would give away a Secret's `key` = `value`, and
/// whether it is a private key and a password.
pub fn needles(key: &str, value: &[u8]) -> (Vec<String>, bool, bool) {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let text = String::from_utf8_lossy(value);
    let mut out = Vec::new();
    let bodies = private_pem_bodies(&text);
    let is_key = !bodies.is_empty();
    for body in bodies {
        // The DER, and any of its PEM lines printed on its own.
        out.extend(
            body.as_bytes()
                .chunks(64)
                .filter(|c| c.len() >= 40)
                .map(|c| String::from_utf8_lossy(c).into_owned()),
        );
        out.push(body);
    }
    if is_key {
        // The whole value as a Secret's data carries it.
        out.push(b64(value));
    }
    let is_password = key.to_ascii_lowercase().contains("password") && value.len() >= 8;
    if is_password {
        out.push(text.trim().to_owned());
        out.push(b64(value));
    }
    (out, is_key, is_password)
}

/// Seeks every private key and password of the Secrets in `ns` in the
/// operator's log `operator_log`, the Pod logs under `pod_logs` named for
/// `ns`, the Events, the stacks' status and the ConfigMaps of `ns`.
pub async fn check(client: &Client, ns: &str, operator_log: &Path, pod_logs: &Path) -> Report {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let mut sought: Vec<(String, String)> = Vec::new();
    let (mut keys, mut passwords) = (0, 0);
    for s in &secrets {
        let name = s.metadata.name.clone().unwrap_or_default();
        for (key, value) in s.data.iter().flatten() {
            let (found, is_key, is_password) = needles(key, &value.0);
            keys += usize::from(is_key);
            passwords += usize::from(is_password);
            sought.extend(
                found
                    .into_iter()
                    .map(|n| (format!("Secret {name} key {key}"), n)),
            );
        }
    }
    let mut haystacks: Vec<(String, String)> = Vec::new();
    haystacks.push((
        operator_log.display().to_string(),
        std::fs::read_to_string(operator_log).unwrap_or_default(),
    ));
    for entry in std::fs::read_dir(pod_logs).into_iter().flatten().flatten() {
        let path = entry.path();
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        if file.starts_with(&format!("{ns}-")) && file.ends_with(".log") {
            let bytes = std::fs::read(&path).unwrap_or_default();
            haystacks.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    for e in Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let name = format!("Event {}", e.metadata.name.clone().unwrap_or_default());
        haystacks.push((name, serde_json::to_string(&e).unwrap()));
    }
    for s in Api::<SigstoreStack>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let name = format!(
            "SigstoreStack {} status",
            s.metadata.name.clone().unwrap_or_default()
        );
        haystacks.push((name, serde_json::to_string(&s.status).unwrap()));
    }
    for c in Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let name = format!("ConfigMap {}", c.metadata.name.clone().unwrap_or_default());
        haystacks.push((name, serde_json::to_string(&c).unwrap()));
    }
    let mut found = Vec::new();
    for (source, text) in &haystacks {
        // JSON escapes the PEM's newlines; base64 has no character JSON
        // escapes but '/', which serde_json leaves alone.
        for (origin, needle) in &sought {
            if text.contains(needle.as_str()) {
                found.push(format!("{source} holds a value of {origin}"));
            }
        }
    }
    found.sort();
    found.dedup();
    Report {
        keys,
        passwords,
        bytes: haystacks.iter().map(|(_, t)| t.len()).sum(),
        sources: haystacks.len(),
        found,
    }
}
