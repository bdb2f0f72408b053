//! The components of a stack in one table: whether a spec wants each, the
//! field that says so, its condition, its workloads and the stages that
//! make its key material. Every `match` on [`Component`] is exhaustive, so
//! adding one makes the compiler list each place that must handle it.

use crate::{api::SigstoreStackSpec, build::stages::Stage, names};

/// A part of a stack that runs as workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Trillian (database, log server, log signer), for the logs.
    Trillian,
    /// Rekor v1 and its Redis.
    Rekor,
    /// The certificate transparency log (ct_server).
    Ctlog,
    /// Fulcio.
    Fulcio,
    /// The timestamp authority.
    Tsa,
    /// The TUF repository's server.
    Tuf,
}

impl Component {
    /// Every component, in the order they are built and reported.
    pub const ALL: [Self; 6] = [
        Self::Trillian,
        Self::Rekor,
        Self::Ctlog,
        Self::Fulcio,
        Self::Tsa,
        Self::Tuf,
    ];

    /// Whether `spec` wants it running.
    pub fn wanted(self, spec: &SigstoreStackSpec) -> bool {
        match self {
            Self::Trillian => spec.rekor.enabled || spec.ctlog.enabled,
            Self::Rekor => spec.rekor.enabled,
            Self::Ctlog => spec.ctlog.enabled,
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
            Self::Rekor => "spec.rekor.enabled is false",
            Self::Ctlog => "spec.ctlog.enabled is false",
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
            Self::Rekor => "RekorAvailable",
            Self::Ctlog => "CTLogAvailable",
            Self::Fulcio => "FulcioAvailable",
            Self::Tsa => "TSAAvailable",
            Self::Tuf => "TUFAvailable",
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
            Self::Rekor => vec![names::REKOR_REDIS, names::REKOR],
            Self::Ctlog => vec![names::CTLOG],
            Self::Fulcio => vec![names::FULCIO],
            Self::Tsa => vec![names::TSA],
            Self::Tuf => vec![names::TUF],
        }
    }

    /// The component whose key material and records `stage` makes.
    pub fn of(stage: Stage) -> Self {
        match stage {
            Stage::Certs => Self::Fulcio,
            Stage::RekorKey | Stage::RekorTree => Self::Rekor,
            Stage::CtlogTree | Stage::CtConfig => Self::Ctlog,
            Stage::TsaChain => Self::Tsa,
            Stage::Tuf => Self::Tuf,
        }
    }

    /// The stages that make its key material and records.
    pub fn stages(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| Self::of(*s) == self)
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
        for stage in Stage::ALL {
            assert!(!stage.enabled(&spec), "{stage:?}");
        }
    }
}
