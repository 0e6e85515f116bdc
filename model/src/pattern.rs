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

/// Whether `text` matches the shell pattern `pattern`: `*` stands for any
/// run of characters, `?` for one byte, everything else for itself (as
/// `find -name` and kernel module aliases use them).
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Iterative, with one backtrack point: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((at, from)) => {
                    p = at + 1;
                    t = from + 1;
                    star = Some((at, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
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
    fn globs_match_module_aliases_and_names() {
        assert!(glob_matches(
            "pci:v00001AF4d00001001sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(!glob_matches(
            "pci:v00001AF4d00001002sv*",
            "pci:v00001AF4d00001001sv00001AF4"
        ));
        assert!(glob_matches("a?c*", "abcdef"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("a*b", "acc"));
    }

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
