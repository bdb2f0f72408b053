//! The components of a stack in one table: whether a spec wants each, the
//! field that says so, its condition and its workloads. Where there is a
//! choice of server, the backend is a field of the component, so a stack
//! that switches backend wants one component and no longer the other, and
//! what the other ran is pruned. Every `match` on [`Component`] and on a
//! backend is exhaustive: adding one makes the compiler list each place
//! that must handle it. The stages that make a component's keys name it
//! ([`crate::stage::Stage::of`]).

use crate::{
    api::{CtLogBackend, SigstoreStackSpec},
    names,
};

/// The server behind the transparency log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RekorBackend {
    /// Rekor v1 (rekor-server) on a Trillian tree, with its Redis.
    Trillian,
    /// Rekor v2 (rekor-tiles), its tiles on a volume.
    Tiles,
}

/// The server behind the certificate transparency log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtBackend {
    /// ct_server (certificate-transparency-go) on a Trillian tree.
    Trillian,
    /// TesseraCT, its tiles on a volume.
    Tesseract,
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
    /// The sign-and-verify round trip `Ready` waits for: a stage, no
    /// workload.
    SelfCheck,
}

impl RekorBackend {
    /// Every backend.
    pub const ALL: [Self; 2] = [Self::Trillian, Self::Tiles];

    /// The backends `spec` runs (none when the log is off).
    pub fn wanted(spec: &SigstoreStackSpec) -> Vec<Self> {
        let g = spec.rekor.generation;
        let mut out = Vec::new();
        if spec.rekor.enabled && g.v1() {
            out.push(Self::Trillian);
        }
        if spec.rekor.enabled && g.v2() {
            out.push(Self::Tiles);
        }
        out
    }

    /// Whether it keeps its log in a Trillian tree.
    pub fn on_trillian(self) -> bool {
        match self {
            Self::Trillian => true,
            Self::Tiles => false,
        }
    }
}

impl CtBackend {
    /// Every backend.
    pub const ALL: [Self; 2] = [Self::Trillian, Self::Tesseract];

    /// The backend `spec` runs, if the log is on.
    pub fn wanted(spec: &SigstoreStackSpec) -> Option<Self> {
        spec.ctlog.enabled.then_some(match spec.ctlog.backend {
            CtLogBackend::Ctfe => Self::Trillian,
            CtLogBackend::Tesseract => Self::Tesseract,
        })
    }

    /// Whether it keeps its log in a Trillian tree.
    pub fn on_trillian(self) -> bool {
        match self {
            Self::Trillian => true,
            Self::Tesseract => false,
        }
    }
}

impl Component {
    /// Every component and backend, in the order they are built and
    /// reported.
    pub const ALL: [Self; 9] = [
        Self::Trillian,
        Self::Rekor(RekorBackend::Trillian),
        Self::Rekor(RekorBackend::Tiles),
        Self::Ctlog(CtBackend::Trillian),
        Self::Ctlog(CtBackend::Tesseract),
        Self::Fulcio,
        Self::Tsa,
        Self::Tuf,
        Self::SelfCheck,
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
            // It signs with the cluster's token, so Fulcio must trust the
            // cluster's issuer, and a log must take the entry.
            Self::SelfCheck => {
                spec.self_check.enabled
                    && spec.fulcio.enabled
                    && spec.fulcio.trust_cluster_issuer
                    && spec.rekor.enabled
            }
        }
    }

    /// Why it is not wanted, naming the fields, for a condition.
    pub fn switched_off(self, spec: &SigstoreStackSpec) -> &'static str {
        match self {
            Self::Trillian => {
                "no log runs on Trillian (Rekor v1 and ct_server are off: spec.rekor and \
                 spec.ctlog)"
            }
            Self::Rekor(_) if !spec.rekor.enabled => "spec.rekor.enabled is false",
            Self::Rekor(RekorBackend::Trillian) => "spec.rekor.generation is v2",
            Self::Rekor(RekorBackend::Tiles) => "spec.rekor.generation is v1",
            Self::Ctlog(_) if !spec.ctlog.enabled => "spec.ctlog.enabled is false",
            Self::Ctlog(CtBackend::Trillian) => "spec.ctlog.backend is tesseract",
            Self::Ctlog(CtBackend::Tesseract) => "spec.ctlog.backend is ctfe",
            Self::Fulcio => "spec.fulcio.enabled is false",
            Self::Tsa => "spec.tsa.enabled is false",
            Self::Tuf if !spec.tuf.enabled => "spec.tuf.enabled is false",
            Self::Tuf => "no component puts anything in the trust root for TUF to serve",
            Self::SelfCheck if !spec.self_check.enabled => "spec.selfCheck.enabled is false",
            Self::SelfCheck => {
                "it signs with the cluster's service-account token and writes to Rekor: it needs \
                 spec.fulcio.enabled, spec.fulcio.trustClusterIssuer and spec.rekor.enabled"
            }
        }
    }

    /// Its availability condition.
    pub fn condition(self) -> &'static str {
        match self {
            Self::Trillian => "TrillianAvailable",
            Self::Rekor(RekorBackend::Trillian) => "RekorAvailable",
            Self::Rekor(RekorBackend::Tiles) => "RekorV2Available",
            Self::Ctlog(CtBackend::Trillian) => "CTLogAvailable",
            Self::Ctlog(CtBackend::Tesseract) => "TesseraCTAvailable",
            Self::Fulcio => "FulcioAvailable",
            Self::Tsa => "TSAAvailable",
            Self::Tuf => "TUFAvailable",
            Self::SelfCheck => "SigningVerified",
        }
    }

    /// The `app.kubernetes.io/component` label of what it and its stages
    /// make.
    pub fn label(self) -> &'static str {
        match self {
            Self::Trillian => "trillian",
            Self::Rekor(RekorBackend::Trillian) => names::REKOR,
            Self::Rekor(RekorBackend::Tiles) => names::REKOR_V2,
            Self::Ctlog(CtBackend::Trillian) => names::CTLOG,
            Self::Ctlog(CtBackend::Tesseract) => names::TESSERACT,
            Self::Fulcio => names::FULCIO,
            Self::Tsa => names::TSA,
            Self::Tuf => names::TUF,
            Self::SelfCheck => names::SELFCHECK,
        }
    }

    /// The Trillian log it keeps its entries in, if any.
    pub fn trillian_log(self) -> Option<names::Log> {
        match self {
            Self::Rekor(RekorBackend::Trillian) => Some(names::Log::Rekor),
            Self::Ctlog(CtBackend::Trillian) => Some(names::Log::Ctlog),
            Self::Rekor(RekorBackend::Tiles)
            | Self::Ctlog(CtBackend::Tesseract)
            | Self::Trillian
            | Self::Fulcio
            | Self::Tsa
            | Self::Tuf
            | Self::SelfCheck => None,
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
            Self::Rekor(RekorBackend::Tiles) => vec![names::REKOR_V2],
            Self::Ctlog(CtBackend::Trillian) => vec![names::CTLOG],
            Self::Ctlog(CtBackend::Tesseract) => vec![names::TESSERACT],
            Self::Fulcio => vec![names::FULCIO],
            Self::Tsa => vec![names::TSA],
            Self::Tuf => vec![names::TUF],
            Self::SelfCheck => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_picks_each_log_s_backends_and_trillian_only_for_those_on_it() {
        use crate::api::RekorGeneration;
        let mut spec = SigstoreStackSpec::default();
        let wanted = |spec: &SigstoreStackSpec| -> Vec<Component> {
            Component::ALL
                .into_iter()
                .filter(|c| c.wanted(spec))
                .collect()
        };
        assert!(!wanted(&spec).contains(&Component::Rekor(RekorBackend::Tiles)));
        spec.rekor.generation = RekorGeneration::Both;
        assert!(wanted(&spec).contains(&Component::Rekor(RekorBackend::Tiles)));
        assert!(wanted(&spec).contains(&Component::Rekor(RekorBackend::Trillian)));
        spec.rekor.generation = RekorGeneration::V2;
        spec.ctlog.backend = CtLogBackend::Tesseract;
        assert_eq!(
            wanted(&spec),
            [
                Component::Rekor(RekorBackend::Tiles),
                Component::Ctlog(CtBackend::Tesseract),
                Component::Fulcio,
                Component::Tsa,
                Component::Tuf,
                Component::SelfCheck
            ],
            "no Trillian under tile-based logs"
        );
        assert_eq!(
            Component::Rekor(RekorBackend::Trillian).switched_off(&spec),
            "spec.rekor.generation is v2"
        );
        assert_eq!(
            Component::Ctlog(CtBackend::Trillian).switched_off(&spec),
            "spec.ctlog.backend is tesseract"
        );
    }

    #[test]
    fn trillian_follows_the_logs_and_tuf_needs_something_to_serve() {
        let mut spec = SigstoreStackSpec::default();
        let tiles = [
            Component::Rekor(RekorBackend::Tiles),
            Component::Ctlog(CtBackend::Tesseract),
        ];
        assert!(
            Component::ALL
                .iter()
                .filter(|c| !tiles.contains(c))
                .all(|c| c.wanted(&spec))
        );
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
