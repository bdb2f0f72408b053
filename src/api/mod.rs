//! The `SigstoreStack` API (`scaffolding.sigstore.dev/v1alpha1`).
//!
//! The Rust types are the source of truth: the CRD in `crds/` is printed from
//! them (`sigstore-operator crd`) and a test fails when the two drift.

mod duration;
mod fulcio;
mod logs;
mod pod;
mod spec;
mod status;
mod trillian;

pub use duration::{Duration, ParseDurationError};
pub use fulcio::*;
pub use logs::*;
pub use pod::PodSettings;
pub use spec::*;
pub use status::*;
pub use trillian::*;

/// API group of every resource this operator defines.
pub const GROUP: &str = "scaffolding.sigstore.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
