//! Writing stage outputs to Secrets without ever replacing key material.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::StageError;

pub use crate::secret_data::{Data, data, text};

/// What [`create_once`] found or did.
pub enum Created {
    /// The Secret already held every required key; it was left alone.
    Existing(Data),
    /// The Secret was created with this data.
    New(Data),
}

impl Created {
    /// The data now in the Secret.
    pub fn data(&self) -> &Data {
        match self {
            Self::Existing(d) | Self::New(d) => d,
        }
    }
}

/// Returns the Secret `name` if it holds every key in `required`; creates
/// it from `make()` if it does not exist, or fills it if it exists empty. A Secret missing some keys is an
/// error: it is never completed with fresh key material that would not
/// match what it holds.
pub async fn create_once(
    api: &Api<Secret>,
    namespace: &str,
    name: &str,
    required: &[&'static str],
    labels: &BTreeMap<String, String>,
    make: impl FnOnce() -> Result<Data, StageError>,
) -> Result<Created, StageError> {
    if let Some(mut existing) = api.get_opt(name).await? {
        if existing.data.as_ref().is_none_or(|d| d.is_empty()) {
            // An empty placeholder the operator made: fill it, but only if
            // nobody filled it since we read it (the resourceVersion says).
            existing.data = Some(make()?);
            return match api.replace(name, &PostParams::default(), &existing).await {
                Ok(filled) => Ok(Created::New(filled.data.unwrap_or_default())),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let current = api.get(name).await?;
                    complete(namespace, name, required, current).map(Created::Existing)
                }
                Err(e) => Err(e.into()),
            };
        }
        return complete(namespace, name, required, existing).map(Created::Existing);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        data: Some(make()?),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(created) => Ok(Created::New(created.data.unwrap_or_default())),
        // Another run created it first: theirs stands.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(name).await?;
            complete(namespace, name, required, existing).map(Created::Existing)
        }
        Err(e) => Err(e.into()),
    }
}

fn complete(
    namespace: &str,
    name: &str,
    required: &[&'static str],
    secret: Secret,
) -> Result<Data, StageError> {
    let data = secret.data.unwrap_or_default();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| !data.contains_key(*k))
        .collect();
    if missing.is_empty() {
        Ok(data)
    } else {
        Err(StageError::Incomplete {
            object: format!("Secret {namespace}/{name}"),
            missing: missing.join(", "),
        })
    }
}

/// Server-side applies the public keys `keys` of `source` (never private
/// ones) as Secret `name` under `manager`, so the copy follows its source.
pub async fn apply_public(
    api: &Api<Secret>,
    name: &str,
    manager: &str,
    labels: &BTreeMap<String, String>,
    source: &Data,
    keys: &[&str],
) -> Result<(), StageError> {
    let data: Data = keys
        .iter()
        .filter_map(|k| source.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": "Opaque",
        "data": data,
    });
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// The labels every stage output carries.
pub fn labels(stack: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), component.into()),
        ("app.kubernetes.io/instance".into(), stack.into()),
        ("app.kubernetes.io/component".into(), component.into()),
        ("app.kubernetes.io/part-of".into(), "sigstore".into()),
        (
            "app.kubernetes.io/managed-by".into(),
            "sigstore-operator".into(),
        ),
    ])
}
