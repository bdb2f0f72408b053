//! Secret data as the stages and the TUF keys read and write it: keys to
//! bytes, with text helpers. Pure, so any layer may use it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

/// Secret data, by key.
pub type Data = BTreeMap<String, ByteString>;

/// A Secret's key as UTF-8 text.
pub fn text<'a>(data: &'a Data, key: &str) -> Option<&'a str> {
    data.get(key).and_then(|v| std::str::from_utf8(&v.0).ok())
}

/// Builds Secret data from text values.
pub fn data<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Data {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}
