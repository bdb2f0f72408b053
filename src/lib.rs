#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

//! sigstore-operator: brings up a private Sigstore stack from one
//! `SigstoreStack` resource.

pub mod api;
pub mod build;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod error;
pub mod fulcio_config;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod names;
pub mod retry;
pub mod shutdown;
pub mod stage;
pub mod telemetry;
pub mod trillian;
pub mod trust_root;
pub mod validate;

pub use error::{Error, Result};

/// The field manager for every server-side apply this operator makes, so
/// ownership of fields stays stable across restarts and versions.
pub const FIELD_MANAGER: &str = "sigstore-operator";
