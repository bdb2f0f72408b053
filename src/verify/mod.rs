//! The strict verifying half of the self-check: each piece of a Sigstore
//! bundle checked with nothing but the stack's published trust root.

pub mod bundle;
pub mod merkle;
pub mod note;

/// Standard base64, as bundles, trust roots and notes write it.
fn b64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}
