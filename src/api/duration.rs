//! A Go-style duration that prints the way people write it (`87600h`).

use std::{fmt, str::FromStr, time::Duration as StdDuration};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration written as Go's `time.ParseDuration` reads it (`8760h`,
/// `90m`, `1h30m`). Parsing is kube's; printing picks the largest whole
/// unit so defaults read as `87600h` rather than `315360000s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(StdDuration);

impl Duration {
    /// A duration of `hours` hours.
    pub const fn from_hours(hours: u64) -> Self {
        Self(StdDuration::from_secs(hours * 3600))
    }

    /// The standard-library duration.
    pub fn as_std(self) -> StdDuration {
        self.0
    }
}

/// Why a string is not a duration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseDurationError {
    /// Not in Go's duration syntax.
    #[error("{0}")]
    Syntax(#[from] kube::core::duration::ParseError),
    /// Negative durations make no sense for validity periods.
    #[error("must not be negative")]
    Negative,
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed: kube::core::Duration = s.parse()?;
        if parsed.is_negative() {
            return Err(ParseDurationError::Negative);
        }
        Ok(Self(parsed.into()))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 {
            return write!(f, "{}ns", d.as_nanos());
        }
        let secs = d.as_secs();
        match secs {
            0 => f.write_str("0s"),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse()
            .map_err(|e| de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_largest_whole_unit() {
        for (input, printed) in [
            ("87600h", "87600h"),
            ("1h30m", "90m"),
            ("90s", "90s"),
            ("0s", "0s"),
            ("1.5s", "1500000000ns"),
        ] {
            let d: Duration = input.parse().unwrap();
            assert_eq!(d.to_string(), printed);
            assert_eq!(
                printed.parse::<Duration>().unwrap(),
                d,
                "round trip of {input}"
            );
        }
    }

    #[test]
    fn rejects_negative_and_garbage() {
        assert_eq!("-1h".parse::<Duration>(), Err(ParseDurationError::Negative));
        assert!("ten years".parse::<Duration>().is_err());
        assert!("10".parse::<Duration>().is_err());
    }

    #[test]
    fn serde_round_trip() {
        let d = Duration::from_hours(8760);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"8760h\"");
        assert_eq!(serde_json::from_str::<Duration>(&json).unwrap(), d);
        let err = serde_json::from_str::<Duration>("\"soon\"").unwrap_err();
        assert!(
            err.to_string().contains("invalid duration \"soon\""),
            "{err}"
        );
    }
}
