//! When and how the operator runs createtree for each log.

use crate::{
    api::SigstoreStackSpec,
    build::{
        Owner, Placeholder,
        component::{Component, CtBackend, RekorBackend},
        trillian,
    },
    names::{self, Log, TRILLIAN_LOG_SERVER},
    stage::table::{Rules, View},
};

/// A log's Trillian tree.
pub struct Tree(pub Log);

/// Rekor's tree.
pub static REKOR: Tree = Tree(Log::Rekor);
/// The CT log's tree.
pub static CTLOG: Tree = Tree(Log::Ctlog);

impl Rules for Tree {
    fn id(&self) -> &'static str {
        match self.0 {
            Log::Rekor => "rekor-tree",
            Log::Ctlog => "ctlog-tree",
        }
    }

    fn condition(&self) -> &'static str {
        match self.0 {
            Log::Rekor => "RekorTreeCreated",
            Log::Ctlog => "CTLogTreeCreated",
        }
    }

    fn component(&self) -> Component {
        match self.0 {
            Log::Rekor => Component::Rekor(RekorBackend::Trillian),
            Log::Ctlog => Component::Ctlog(CtBackend::Trillian),
        }
    }

    fn outputs(&self, stack: &str) -> Vec<Placeholder> {
        vec![Placeholder::ConfigMap(names::log_config(stack, self.0))]
    }

    fn args(&self, owner: &Owner, _spec: &SigstoreStackSpec) -> Vec<String> {
        let log = match self.0 {
            Log::Rekor => "rekor",
            Log::Ctlog => "ctlog",
        };
        vec![
            "createtree".into(),
            format!("--log={log}"),
            format!("--trillian-address={}", trillian::address(owner)),
        ]
    }

    fn done(&self, view: View<'_>) -> (bool, String) {
        let name = names::log_config(&view.owner.name, self.0);
        let lost = view.observed.replaced_trees(&name);
        match (view.observed.tree_id(&name), lost.last()) {
            (Some(id), Some(old)) => (
                true,
                format!(
                    "ConfigMap {name} records tree {id}, which replaced tree {old} when the \
                     database lost it"
                ),
            ),
            (Some(id), None) => (true, format!("ConfigMap {name} records tree {id}")),
            (None, _) => (false, format!("ConfigMap {name} has no treeID yet")),
        }
    }

    fn waiting_for(&self, view: View<'_>) -> Option<String> {
        let server = view.owner.name_of(TRILLIAN_LOG_SERVER);
        (!view.observed.available(&server))
            .then(|| format!("Trillian's log server (Deployment {server}) to become available"))
    }
}
