//! Regular expressions that are checked when read and compared by text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {reason}")]
pub struct InvalidPattern {
    /// The pattern (truncated to 80 characters).
    pub pattern: String,
    /// What the regex engine said, on one line.
    pub reason: String,
}

/// A compiled regular expression (Rust `regex` syntax: no backtracking, so
/// no pattern can take exponential time on a hostile log line). Equality
/// and serialization use the source text.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, refusing patterns over 1 KiB or whose compiled
    /// form would exceed 1 MiB.
    pub fn new(source: impl Into<String>) -> Result<Self, InvalidPattern> {
        let source = source.into();
        let fail = |reason: String| InvalidPattern {
            pattern: source.chars().take(80).collect(),
            reason,
        };
        if source.len() > MAX_PATTERN_LEN {
            return Err(fail("it is longer than 1024 bytes".to_owned()));
        }
        let regex = regex::RegexBuilder::new(&source)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|error| {
                fail(
                    error
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_owned(),
                )
            })?;
        Ok(Self { source, regex })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `line` contains a match.
    pub fn is_match(&self, line: &str) -> bool {
        self.regex.is_match(line)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_matches_and_refuses() {
        let pattern = Pattern::new("^ERROR").unwrap();
        assert!(pattern.is_match("ERROR: disk full"));
        assert!(!pattern.is_match("no ERROR here"));
        let error = Pattern::new("(unclosed").unwrap_err();
        assert!(!error.reason.is_empty());
        assert!(Pattern::new("a".repeat(2000)).is_err());
    }
}
