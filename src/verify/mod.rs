//! The strict verifying half of the self-check: each piece of a Sigstore
//! bundle checked with nothing but the stack's published trust root.

pub mod bundle;
pub mod merkle;
pub mod note;
