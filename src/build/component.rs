//! The components of a stack in one table: whether a spec wants each, the
//! field that says so, its condition and its workloads. Where there is a
//! choice of server, the backend is a field of the component, so a stack
//! that switches backend wants one component and no longer the other, and
//! what the other ran is pruned. Every `match` on [`Component`] and on a
//! backend is exhaustive: adding one makes the compiler list each place
//! that must handle it. The stages that make a component's keys name it
//! ([`crate::stage::Stage::of`]).

use crate::{api::SigstoreStackSpec, names};

/// The server behind the transparency log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RekorBackend {
    /// Rekor v1 (rekor-server) on a Trillian tree, with its Redis.
    Trillian,
}

/// The server behind the certificate transparency log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtBackend {
    /// ct_server (certificate-transparency-go) on a Trillian tree.
    Trillian,
}

/// A part of a stack that runs as workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Trillian (database, log server, log signer), for the logs on it.
    Trillian,
    /// The transparency log.
    Rekor(RekorBackend),
    /// The certificate transparency log.
    Ctlog(CtBackend),
    /// Fulcio.
    Fulcio,
    /// The timestamp authority.
    Tsa,
    /// The TUF repository's server.
    Tuf,
}

impl RekorBackend {
    /// Every backend.
    pub const ALL: [Self; 1] = [Self::Trillian];

    /// The backends `spec` runs (none when the log is off).
    pub fn wanted(spec: &SigstoreStackSpec) -> Vec<Self> {
        if spec.rekor.enabled {
            vec![Self::Trillian]
        } else {
            Vec::new()
        }
    }

    /// Whether it keeps its log in a Trillian tree.
    pub fn on_trillian(self) -> bool {
        match self {
            Self::Trillian => true,
        }
    }
}

impl CtBackend {
    /// Every backend.
    pub const ALL: [Self; 1] = [Self::Trillian];

    /// The backend `spec` runs, if the log is on.
    pub fn wanted(spec: &SigstoreStackSpec) -> Option<Self> {
        spec.ctlog.enabled.then_some(Self::Trillian)
    }

    /// Whether it keeps its log in a Trillian tree.
    pub fn on_trillian(self) -> bool {
        match self {
            Self::Trillian => true,
        }
    }
}

impl Component {
    /// Every component and backend, in the order they are built and
    /// reported.
    pub const ALL: [Self; 6] = [
        Self::Trillian,
        Self::Rekor(RekorBackend::Trillian),
        Self::Ctlog(CtBackend::Trillian),
        Self::Fulcio,
        Self::Tsa,
        Self::Tuf,
    ];

    /// Whether `spec` wants it running.
    pub fn wanted(self, spec: &SigstoreStackSpec) -> bool {
        match self {
            Self::Trillian => {
                RekorBackend::wanted(spec)
                    .into_iter()
                    .any(RekorBackend::on_trillian)
                    || CtBackend::wanted(spec).is_some_and(CtBackend::on_trillian)
            }
            Self::Rekor(b) => RekorBackend::wanted(spec).contains(&b),
            Self::Ctlog(b) => CtBackend::wanted(spec) == Some(b),
            Self::Fulcio => spec.fulcio.enabled,
            Self::Tsa => spec.tsa.enabled,
            // A repository of nothing serves no one.
            Self::Tuf => spec.tuf.enabled && crate::trust_root::wanted(spec),
        }
    }

    /// Why it is not wanted, naming the fields, for a condition.
    pub fn switched_off(self, spec: &SigstoreStackSpec) -> &'static str {
        match self {
            Self::Trillian => {
                "no log needs Trillian (spec.rekor.enabled and spec.ctlog.enabled are false)"
            }
            Self::Rekor(RekorBackend::Trillian) => "spec.rekor.enabled is false",
            Self::Ctlog(CtBackend::Trillian) => "spec.ctlog.enabled is false",
            Self::Fulcio => "spec.fulcio.enabled is false",
            Self::Tsa => "spec.tsa.enabled is false",
            Self::Tuf if !spec.tuf.enabled => "spec.tuf.enabled is false",
            Self::Tuf => "no component puts anything in the trust root for TUF to serve",
        }
    }

    /// Its availability condition.
    pub fn condition(self) -> &'static str {
        match self {
            Self::Trillian => "TrillianAvailable",
            Self::Rekor(RekorBackend::Trillian) => "RekorAvailable",
            Self::Ctlog(CtBackend::Trillian) => "CTLogAvailable",
            Self::Fulcio => "FulcioAvailable",
            Self::Tsa => "TSAAvailable",
            Self::Tuf => "TUFAvailable",
        }
    }

    /// The `app.kubernetes.io/component` label of what it and its stages
    /// make.
    pub fn label(self) -> &'static str {
        match self {
            Self::Trillian => "trillian",
            Self::Rekor(RekorBackend::Trillian) => names::REKOR,
            Self::Ctlog(CtBackend::Trillian) => names::CTLOG,
            Self::Fulcio => names::FULCIO,
            Self::Tsa => names::TSA,
            Self::Tuf => names::TUF,
        }
    }

    /// The Trillian log it keeps its entries in, if any.
    pub fn trillian_log(self) -> Option<names::Log> {
        match self {
            Self::Rekor(RekorBackend::Trillian) => Some(names::Log::Rekor),
            Self::Ctlog(CtBackend::Trillian) => Some(names::Log::Ctlog),
            Self::Trillian | Self::Fulcio | Self::Tsa | Self::Tuf => None,
        }
    }

    /// The parts (`<stack>-<part>`) of its Deployments under `spec`.
    pub fn deployments(self, spec: &SigstoreStackSpec) -> Vec<&'static str> {
        match self {
            Self::Trillian => {
                let mut parts = Vec::new();
                if crate::build::trillian::embedded(spec) {
                    parts.push(names::TRILLIAN_DB);
                }
                parts.extend([names::TRILLIAN_LOG_SERVER, names::TRILLIAN_LOG_SIGNER]);
                parts
            }
            Self::Rekor(RekorBackend::Trillian) => vec![names::REKOR_REDIS, names::REKOR],
            Self::Ctlog(CtBackend::Trillian) => vec![names::CTLOG],
            Self::Fulcio => vec![names::FULCIO],
            Self::Tsa => vec![names::TSA],
            Self::Tuf => vec![names::TUF],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trillian_follows_the_logs_and_tuf_needs_something_to_serve() {
        let mut spec = SigstoreStackSpec::default();
        assert!(Component::ALL.iter().all(|c| c.wanted(&spec)));
        spec.rekor.enabled = false;
        assert!(Component::Trillian.wanted(&spec), "the CT log needs it");
        spec.ctlog.enabled = false;
        assert!(!Component::Trillian.wanted(&spec));
        assert!(Component::Tuf.wanted(&spec), "Fulcio and the TSA are on");
        spec.fulcio.enabled = false;
        spec.tsa.enabled = false;
        assert!(!Component::Tuf.wanted(&spec));
        assert!(Component::Tuf.switched_off(&spec).contains("trust root"));
        spec.tuf.enabled = false;
        assert_eq!(
            Component::Tuf.switched_off(&spec),
            "spec.tuf.enabled is false"
        );
        assert!(Component::ALL.iter().all(|c| !c.wanted(&spec)));
    }

    #[test]
    fn every_backend_is_in_the_table_and_logs_on_trillian_name_their_log() {
        for b in RekorBackend::ALL {
            assert!(Component::ALL.contains(&Component::Rekor(b)));
        }
        for b in CtBackend::ALL {
            assert!(Component::ALL.contains(&Component::Ctlog(b)));
        }
        let logs: Vec<_> = Component::ALL
            .iter()
            .filter_map(|c| c.trillian_log())
            .collect();
        assert_eq!(logs, [names::Log::Rekor, names::Log::Ctlog]);
    }
}
