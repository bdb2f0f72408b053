//! createctconfig: the CT log's key and ct_server's `LogMultiConfig`.
//!
//! Waits for the CT tree ID (`<stack>-ctlog-config`) and Fulcio's CA
//! (`<stack>-fulcio-pub` key `cert`, read from the Secret, never fetched
//! from Fulcio), then writes Secret `<stack>-ctlog`: `private` (PKCS#8 PEM),
//! `public`, `config` (text-format LogMultiConfig) and one `fulcio-N` per
//! trusted root; and `<stack>-ctlog-pub` (`public`). The config carries the
//! key inline (`keyspb.PrivateKey`): ct_server's PEM-file loader demands a
//! password and decrypts only the legacy MD5-based PEM scheme, so the Secret
//! itself is the protection. A Fulcio root seen once
//! stays trusted; the CT key is never regenerated.

pub mod rules;

use std::{collections::BTreeMap, fmt::Write as _};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::time::Instant;
use x509_parser::pem::Pem;

use super::{
    StageContext, StageError, createtree,
    secrets::{self, Created, Data},
    wait_for,
};
use crate::{api::KeyAlgorithm, keys::PrivateKey, names};

/// Keys the CT Secret must hold once it exists.
pub const REQUIRED: &[&str] = &["private", "public"];

/// What goes into the config.
#[derive(Clone, Debug)]
pub struct ConfigInputs<'a> {
    /// The CT log's Trillian tree.
    pub tree_id: i64,
    /// URL path segment of the log.
    pub prefix: &'a str,
    /// Trillian log server, `host:port`.
    pub trillian: &'a str,
    /// Where the Secret's keys appear as files.
    pub keys_dir: &'a str,
    /// The `fulcio-N` keys to trust, in order.
    pub roots: &'a [String],
    /// The log's private key, PKCS#8 DER.
    pub private_der: &'a [u8],
    /// The log's public key, SPKI DER.
    pub public_der: &'a [u8],
}

/// The text-format `LogMultiConfig` for ct_server. Deterministic: the same
/// inputs give the same bytes, so re-runs write nothing.
pub fn render_config(i: &ConfigInputs<'_>) -> String {
    let dir = i.keys_dir.trim_end_matches('/');
    let mut out = String::new();
    out.push_str("backends {\n  backend {\n    name: \"trillian\"\n");
    let _ = writeln!(out, "    backend_spec: {}", quote(i.trillian.as_bytes()));
    out.push_str("  }\n}\nlog_configs {\n  config {\n");
    let _ = writeln!(out, "    log_id: {}", i.tree_id);
    let _ = writeln!(out, "    prefix: {}", quote(i.prefix.as_bytes()));
    for root in i.roots {
        let _ = writeln!(
            out,
            "    roots_pem_file: {}",
            quote(format!("{dir}/{root}").as_bytes())
        );
    }
    out.push_str("    private_key {\n      [type.googleapis.com/keyspb.PrivateKey] {\n");
    let _ = writeln!(out, "        der: {}", quote(i.private_der));
    out.push_str("      }\n    }\n    public_key {\n");
    let _ = writeln!(out, "      der: {}", quote(i.public_der));
    out.push_str(
        "    }\n    ext_key_usages: \"CodeSigning\"\n    log_backend_name: \"trillian\"\n  }\n}\n",
    );
    out
}

/// A protobuf text-format string literal: printable ASCII as is, `"` and
/// `\` escaped, every other byte as a three-digit octal escape.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\{b:03o}");
            }
        }
    }
    s.push('"');
    s
}

/// The root (last certificate) of a PEM chain, re-encoded alone.
pub fn root_of_chain(chain_pem: &str) -> Option<String> {
    let last = Pem::iter_from_buffer(chain_pem.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .last()?;
    Some(crate::keys::pem_encode("CERTIFICATE", &last.contents))
}

/// The `fulcio-N` keys after trusting `root`: existing ones in order, plus
/// `root` as the next number unless an existing one holds the same
/// certificate. Returns the keys and the new entry, if any.
pub fn merge_roots(existing: &Data, root: &str) -> (Vec<String>, Option<(String, String)>) {
    let mut keys: Vec<(u32, String)> = existing
        .keys()
        .filter_map(|k| Some((k.strip_prefix("fulcio-")?.parse::<u32>().ok()?, k.clone())))
        .collect();
    keys.sort();
    let der_of = |pem: &str| -> Vec<Vec<u8>> {
        Pem::iter_from_buffer(pem.as_bytes())
            .filter_map(Result::ok)
            .map(|p| p.contents)
            .collect()
    };
    let wanted = der_of(root);
    let known = keys
        .iter()
        .any(|(_, k)| secrets::text(existing, k).map(der_of).as_ref() == Some(&wanted));
    let mut names: Vec<String> = keys.iter().map(|(_, k)| k.clone()).collect();
    if known {
        return (names, None);
    }
    let next = keys.last().map_or(0, |(n, _)| n + 1);
    let key = format!("fulcio-{next}");
    names.push(key.clone());
    (names, Some((key, root.to_owned())))
}

/// Waits for Fulcio's public chain (`<stack>-fulcio-pub` key `cert`, read
/// from the Secret, never fetched from Fulcio) and returns its root: what
/// a CT log must trust.
pub async fn wait_for_fulcio_root(
    ctx: &StageContext,
    api: &Api<Secret>,
    deadline: Instant,
) -> Result<String, StageError> {
    let fulcio = names::fulcio_public(&ctx.stack);
    let fulcio_object = format!("Secret {}/{fulcio} key cert", ctx.namespace);
    let chain = wait_for(ctx, deadline, &fulcio_object, || async {
        let s = api.get_opt(&fulcio).await?;
        Ok(s.and_then(|s| s.data)
            .and_then(|d| secrets::text(&d, "cert").map(str::to_owned)))
    })
    .await?;
    root_of_chain(&chain).ok_or_else(|| StageError::BadExisting {
        object: format!("Secret {}/{fulcio}", ctx.namespace),
        key: "cert",
        value: "no PEM certificate".into(),
        expected: "Fulcio's PEM certificate chain",
    })
}

/// Inputs of one run.
#[derive(Clone, Debug)]
pub struct Args {
    /// The CT log's URL path segment.
    pub prefix: String,
    /// Trillian log server, `host:port`.
    pub trillian: String,
    /// Where ct_server's pod mounts the Secret.
    pub keys_dir: String,
}

/// Runs createctconfig; `true` when anything was written.
pub async fn run(ctx: &StageContext, args: &Args) -> Result<bool, StageError> {
    let deadline = Instant::now() + ctx.timeout;
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let tree_cm = names::log_config(&ctx.stack, names::Log::Ctlog);
    let tree_object = format!("ConfigMap {}/{tree_cm}", ctx.namespace);
    let tree_id = wait_for(
        ctx,
        deadline,
        &format!("{tree_object} key treeID"),
        || async {
            let cm = cms.get_opt(&tree_cm).await?;
            createtree::recorded_tree_id(&tree_object, cm.as_ref().and_then(|c| c.data.as_ref()))
        },
    )
    .await?;
    let root = wait_for_fulcio_root(ctx, &secrets_api, deadline).await?;

    let name = names::ctlog_secret(&ctx.stack);
    let labels = secrets::labels(&ctx.stack, "ctlog");
    let render = |key: &PrivateKey, roots: &[String]| {
        render_config(&ConfigInputs {
            tree_id,
            prefix: &args.prefix,
            trillian: &args.trillian,
            keys_dir: &args.keys_dir,
            roots,
            private_der: key.pkcs8_der(),
            public_der: &key.public_der,
        })
    };
    let created = secrets::create_once(
        &secrets_api,
        &ctx.namespace,
        &name,
        REQUIRED,
        &labels,
        || {
            let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
            let (roots, added) = merge_roots(&Data::new(), &root);
            let config = render(&key, &roots);
            let private = key.pkcs8_pem();
            let public = key.public_pem();
            let mut data = secrets::data([
                ("private", private.as_str()),
                ("public", public.as_str()),
                ("config", config.as_str()),
            ]);
            if let Some((k, v)) = added {
                data.insert(k, ByteString(v.into_bytes()));
            }
            Ok(data)
        },
    )
    .await?;
    let mut wrote = matches!(created, Created::New(_));
    let data = created.data().clone();
    if let Created::Existing(existing) = &created {
        let key =
            PrivateKey::from_pem(secrets::text(existing, "private").unwrap_or_default(), None)
                .map_err(|_| StageError::BadExisting {
                    object: format!("Secret {}/{name}", ctx.namespace),
                    key: "private",
                    value: "(not shown)".into(),
                    expected: "the CT log's PKCS#8 PEM private key",
                })?;
        let (roots, added) = merge_roots(existing, &root);
        let config = render(&key, &roots);
        let mut changes: BTreeMap<String, String> = BTreeMap::new();
        if secrets::text(existing, "config") != Some(config.as_str()) {
            changes.insert("config".into(), config);
        }
        if let Some((k, v)) = added {
            tracing::info!(key = %k, "trusting a new Fulcio root; earlier roots stay trusted");
            changes.insert(k, v);
        }
        if !changes.is_empty() {
            // A merge patch of only these keys: private and public are never sent.
            let body = json!({"stringData": changes});
            secrets_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            wrote = true;
        }
    }
    secrets::apply_public(
        &secrets_api,
        &names::ctlog_public(&ctx.stack),
        "sigstore-operator-createctconfig",
        &labels,
        &data,
        &["public"],
    )
    .await?;
    tracing::info!(secret = %name, tree_id, wrote, "CT log config ready");
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unquote(lit: &str) -> Vec<u8> {
        let inner = lit
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap();
        let b = inner.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' {
                if b[i + 1].is_ascii_digit() {
                    let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap();
                    out.push(u8::from_str_radix(oct, 8).unwrap());
                    i += 4;
                } else {
                    out.push(b[i + 1]);
                    i += 2;
                }
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn quoting_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let q = quote(&all);
        assert!(q.is_ascii());
        assert_eq!(unquote(&q), all);
        assert_eq!(quote(b"a\"b\\c"), r#""a\"b\\c""#);
    }

    #[test]
    fn config_has_every_field_ct_server_needs() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let roots = vec!["fulcio-0".to_string(), "fulcio-1".to_string()];
        let cfg = render_config(&ConfigInputs {
            tree_id: 8474918493285744124,
            prefix: "sigstorescaffolding",
            trillian: "demo-trillian.ns.svc:8090",
            keys_dir: "/ctfe-keys/",
            roots: &roots,
            private_der: key.pkcs8_der(),
            public_der: &key.public_der,
        });
        for want in [
            "backend_spec: \"demo-trillian.ns.svc:8090\"",
            "log_id: 8474918493285744124",
            "prefix: \"sigstorescaffolding\"",
            "roots_pem_file: \"/ctfe-keys/fulcio-0\"",
            "roots_pem_file: \"/ctfe-keys/fulcio-1\"",
            "[type.googleapis.com/keyspb.PrivateKey]",
            "ext_key_usages: \"CodeSigning\"",
            "log_backend_name: \"trillian\"",
        ] {
            assert!(cfg.contains(want), "missing {want} in\n{cfg}");
        }
        let ders: Vec<Vec<u8>> = cfg
            .lines()
            .filter_map(|l| l.trim().strip_prefix("der: "))
            .map(unquote)
            .collect();
        assert_eq!(ders, [key.pkcs8_der().to_vec(), key.public_der.clone()]);
        assert!(!cfg.contains("password:"));
        // Braces balance outside the key bytes, which may hold any character.
        let structure: String = cfg.lines().filter(|l| !l.contains("der: ")).collect();
        assert_eq!(
            structure.matches('{').count(),
            structure.matches('}').count()
        );
    }

    fn cert(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn root_is_the_last_certificate() {
        let (a, b) = (cert("issuing"), cert("root"));
        assert_eq!(root_of_chain(&format!("{a}{b}")).unwrap(), b);
        assert_eq!(root_of_chain(&a).unwrap(), a);
        assert_eq!(root_of_chain("nothing"), None);
    }

    #[test]
    fn roots_accumulate_and_never_repeat() {
        let (old, new) = (cert("old"), cert("new"));
        let (keys, added) = merge_roots(&Data::new(), &old);
        assert_eq!(keys, ["fulcio-0"]);
        let mut data = secrets::data([("fulcio-0", old.as_str()), ("private", "x")]);
        assert_eq!(added.as_ref().map(|a| a.0.as_str()), Some("fulcio-0"));
        // The same root again: nothing added.
        assert_eq!(
            merge_roots(&data, &old),
            (vec!["fulcio-0".to_string()], None)
        );
        // A rotated root: added after the old one, which stays.
        let (keys, added) = merge_roots(&data, &new);
        assert_eq!(keys, ["fulcio-0", "fulcio-1"]);
        assert_eq!(added, Some(("fulcio-1".to_string(), new.clone())));
        data.insert("fulcio-1".into(), ByteString(new.clone().into_bytes()));
        data.insert("fulcio-10".into(), ByteString(cert("x").into_bytes()));
        let (keys, _) = merge_roots(&data, &cert("y"));
        assert_eq!(
            keys,
            ["fulcio-0", "fulcio-1", "fulcio-10", "fulcio-11"],
            "numeric order"
        );
    }
}
