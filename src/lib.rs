#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

//! sigstore-operator: brings up a private Sigstore stack from one
//! `SigstoreStack` resource.

pub mod api;
pub mod build;
pub mod cli;
pub mod cluster_oidc;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod error;
pub mod files;
pub mod fulcio_config;
pub mod health;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod observed;
pub mod retry;
pub mod secret_data;
pub mod serve_tiles;
pub mod shutdown;
pub mod stage;
pub mod telemetry;
pub mod trillian;
pub mod trust_root;
pub mod tuf;
pub mod validate;
pub mod verify;

pub use error::{Error, Result};

/// Selects rustls's crypto provider for the process (ring, as kube's TLS
/// is built with). Two providers are compiled in (tough brings aws-lc-rs),
/// so rustls cannot pick one itself. Call before the first TLS client.
pub fn install_crypto_provider() {
    // An error means one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The field manager for every server-side apply this operator makes, so
/// ownership of fields stays stable across restarts and versions.
pub const FIELD_MANAGER: &str = "sigstore-operator";
