//! When and how the operator runs createctconfig, and what it gives the
//! trust root.

use crate::{
    api::SigstoreStackSpec,
    build::{
        self, Owner, Placeholder,
        component::{Component, CtBackend},
        trillian,
    },
    names::{self, CTLOG_KEYS_DIR, Log},
    stage::{
        Stage,
        createcerts::rules::trusts_current_root,
        table::{Contribution, Rules, View},
    },
    trust_root::Slot,
};

/// The CT log's key and config.
pub struct CtConfig;

impl Rules for CtConfig {
    fn id(&self) -> &'static str {
        "ctconfig"
    }

    fn condition(&self) -> &'static str {
        "CTConfigCreated"
    }

    fn component(&self) -> Component {
        Component::Ctlog(CtBackend::Trillian)
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![
            Placeholder::Secret(names::ctlog_secret(stack)),
            Placeholder::Secret(names::ctlog_public(stack)),
        ]
    }

    fn args(&self, owner: &Owner, spec: &SigstoreStackSpec) -> Vec<String> {
        vec![
            "createctconfig".into(),
            format!("--prefix={}", spec.ctlog.prefix),
            format!("--trillian-address={}", trillian::address(owner)),
            format!("--keys-dir={CTLOG_KEYS_DIR}"),
        ]
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let stack = &view.owner.name;
        let observed = view.observed;
        let name = names::ctlog_secret(stack);
        let public = names::ctlog_public(stack);
        let Some(ct) = observed
            .secrets
            .get(&name)
            .filter(|s| s.has_all(&["private", "public", "config"]))
        else {
            return (false, format!("Secret {name} is not complete yet"));
        };
        if !observed
            .secrets
            .get(&public)
            .is_some_and(|s| s.has_all(&["public"]))
        {
            return (false, format!("Secret {public} is not complete yet"));
        }
        let tree = observed.tree_id(&names::log_config(stack, Log::Ctlog));
        if tree.is_some() && ct.config_log_id != tree {
            return (
                false,
                format!("the config in Secret {name} names another tree"),
            );
        }
        if !trusts_current_root(view.owner, observed, ct) {
            return (
                false,
                format!("Secret {name} does not trust Fulcio's current root yet"),
            );
        }
        (
            true,
            format!("Secret {name} holds the CT log's key and config"),
        )
    }

    fn waiting_for(&self, view: View<'_>) -> Option<String> {
        let mut missing = Vec::new();
        if !Stage::CtlogTree.done(view).0 {
            missing.push("the CT log's tree");
        }
        if !Stage::Certs.done(view).0 {
            missing.push("Fulcio's CA");
        }
        (!missing.is_empty()).then(|| missing.join(" and "))
    }

    fn contribution(&self, owner: &Owner, spec: &SigstoreStackSpec) -> Option<Contribution> {
        Some(Contribution {
            slot: Slot::Ctlog,
            secret: names::ctlog_public(&owner.name),
            key: "public",
            url: build::ctlog::url(owner, &spec.ctlog.prefix),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        build::tests::owner,
        observed::{Observed, SecretView},
    };

    fn rules_view<'a>(
        owner: &'a Owner,
        spec: &'a SigstoreStackSpec,
        observed: &'a Observed,
    ) -> View<'a> {
        View {
            owner,
            spec,
            observed,
        }
    }

    #[test]
    fn ct_config_waits_for_tree_and_ca_then_checks_the_root() {
        let o = owner();
        let spec = SigstoreStackSpec::default();
        let mut observed = Observed::default();
        assert_eq!(
            CtConfig
                .waiting_for(rules_view(&o, &spec, &observed))
                .as_deref(),
            Some("the CT log's tree and Fulcio's CA")
        );
        observed.config_maps.insert(
            "demo-ctlog-config".into(),
            [("treeID".to_owned(), "42".to_owned())].into(),
        );
        let view = |keys: &[&str], public: &[(&str, &str)]| SecretView {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            public: public
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            config_log_id: None,
        };
        let cert = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
        observed.secrets.insert(
            "demo-fulcio-ca".into(),
            view(&["cert", "private", "public", "password"], &[]),
        );
        observed
            .secrets
            .insert("demo-fulcio-pub".into(), view(&["cert"], &[("cert", cert)]));
        assert_eq!(CtConfig.waiting_for(rules_view(&o, &spec, &observed)), None);
        let mut ct = view(
            &["private", "public", "config", "fulcio-0"],
            &[("fulcio-0", cert)],
        );
        ct.config_log_id = Some(42);
        observed.secrets.insert("demo-ctlog".into(), ct.clone());
        observed
            .secrets
            .insert("demo-ctlog-pub".into(), view(&["public"], &[]));
        assert!(CtConfig.done(rules_view(&o, &spec, &observed)).0);
        // A new tree (the old one lost) makes the config stale.
        ct.config_log_id = Some(7);
        observed.secrets.insert("demo-ctlog".into(), ct);
        assert!(!CtConfig.done(rules_view(&o, &spec, &observed)).0);
    }
}
