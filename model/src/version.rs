//! Product versions as vendors write them, and version ranges.
//!
//! # The comparison rule
//!
//! Roleout compares versions with the Debian policy algorithm (the one
//! `dpkg --compare-versions` uses), extended to the shapes other vendors use:
//!
//! 1. An optional epoch `N:` in front is compared first, numerically
//!    (absent means 0).
//! 2. The rest is split into alternating runs of non-digits and digits.
//!    Non-digit runs are compared character by character where `~` sorts
//!    before everything (even the end of the string, so `1.0~rc1 < 1.0`),
//!    then the end of the run, then letters, then every other character.
//!    Letters compare case-insensitively (`10.0 FP3` equals `10.0 fp3`).
//!    Digit runs compare as numbers (`9.10 > 9.9`, leading zeros ignored).
//! 3. Spaces are separators like `.` or `-`: `10.0 FP3` is `10.0`, then
//!    the fix pack `FP3`, so `10.0 < 10.0 FP3 < 10.0 FP10 < 10.1`.
//!
//! Unlike dpkg, the revision (`-1+deb12u1`) is not split off: it is just
//! more runs, which orders every real Debian version the same way dpkg does
//! as long as upstream versions do not themselves contain `-`. Two versions
//! that compare equal but are written differently (`1.0` and `1.00`) are
//! equal for every range check; the written form is kept for display.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a version or a range could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {value:?}: {reason}")]
pub struct InvalidVersion {
    /// The rejected text (truncated to 80 characters).
    pub value: String,
    /// The rule it breaks.
    pub reason: String,
}

/// A product version, ordered by the rule in the module documentation.
#[derive(Clone)]
pub struct Version {
    text: String,
}

/// Longest accepted version text, in bytes.
pub const MAX_VERSION_LEN: usize = 128;

impl Version {
    /// Checks and wraps a version. It must start with a digit (after an
    /// optional epoch), hold only printable ASCII without `,<>=!*`, and be at
    /// most 128 bytes long.
    pub fn new(text: impl Into<String>) -> Result<Self, InvalidVersion> {
        let text: String = text.into();
        let fail = |reason: &str| InvalidVersion {
            value: text.chars().take(80).collect(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if trimmed.len() > MAX_VERSION_LEN {
            return Err(fail("it is longer than 128 characters"));
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_graphic() || *c == ' ') || ",<>=!*".contains(*c))
        {
            return Err(fail(&format!("the character {bad:?} is not allowed")));
        }
        let (epoch, rest) = split_epoch(trimmed);
        if let Some(epoch) = epoch {
            if epoch.is_empty() || !epoch.chars().all(|c| c.is_ascii_digit()) {
                return Err(fail("the epoch before ':' must be a number"));
            }
        }
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(fail("it must start with a digit"));
        }
        Ok(Self {
            text: collapse_spaces(trimmed),
        })
    }

    /// The version as written (surrounding spaces trimmed, inner runs of
    /// spaces collapsed to one).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn collapse_spaces(text: &str) -> String {
    text.split(' ')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_epoch(text: &str) -> (Option<&str>, &str) {
    match text.split_once(':') {
        Some((epoch, rest)) => (Some(epoch), rest),
        None => (None, text),
    }
}

fn trim_epoch(epoch: Option<&str>) -> &str {
    epoch.map(|e| e.trim_start_matches('0')).unwrap_or("")
}

/// Sort weight of one character of a non-digit run (dpkg's `order`).
fn weight(c: Option<char>) -> i32 {
    match c {
        None => 0,
        Some('~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c.to_ascii_lowercase() as i32,
        Some(c) => c as i32 + 256,
    }
}

fn compare_fragments(mut a: &str, mut b: &str) -> Ordering {
    loop {
        if a.is_empty() && b.is_empty() {
            return Ordering::Equal;
        }
        // Non-digit runs.
        let a_end = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let b_end = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        let (mut a_chars, mut b_chars) = (a[..a_end].chars(), b[..b_end].chars());
        loop {
            let (x, y) = (a_chars.next(), b_chars.next());
            if x.is_none() && y.is_none() {
                break;
            }
            match weight(x).cmp(&weight(y)) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        a = &a[a_end..];
        b = &b[b_end..];
        // Digit runs, compared as numbers without overflow.
        let a_end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let b_end = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
        let a_digits = a[..a_end].trim_start_matches('0');
        let b_digits = b[..b_end].trim_start_matches('0');
        match a_digits
            .len()
            .cmp(&b_digits.len())
            .then_with(|| a_digits.cmp(b_digits))
        {
            Ordering::Equal => {}
            other => return other,
        }
        a = &a[a_end..];
        b = &b[b_end..];
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a_epoch, a_rest) = split_epoch(&self.text);
        let (b_epoch, b_rest) = split_epoch(&other.text);
        let (a_epoch, b_epoch) = (trim_epoch(a_epoch), trim_epoch(b_epoch));
        a_epoch
            .len()
            .cmp(&b_epoch.len())
            .then_with(|| a_epoch.cmp(b_epoch))
            .then_with(|| compare_fragments(a_rest, b_rest))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl FromStr for Version {
    type Err = InvalidVersion;
    fn from_str(text: &str) -> Result<Self, InvalidVersion> {
        Self::new(text)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.text)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// One comparison of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `=`: equal under the comparison rule.
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::NotEqual => "!=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// A version range: comparisons separated by commas, all of which must
/// hold (`>=1.8`, `>=1.0, <2.0`, `=9.0.1`). A bare version means `=`; `*`
/// or an empty text means any version.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct VersionReq {
    comparisons: Vec<(Comparison, Version)>,
}

impl VersionReq {
    /// The range that every version satisfies.
    pub fn any() -> Self {
        Self::default()
    }

    /// True for the range that every version satisfies.
    pub fn is_any(&self) -> bool {
        self.comparisons.is_empty()
    }

    /// Reads a range (see the type documentation).
    pub fn parse(text: &str) -> Result<Self, InvalidVersion> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(Self::any());
        }
        let mut comparisons = Vec::new();
        for part in trimmed.split(',') {
            let part = part.trim();
            let (comparison, rest) = [
                (">=", Comparison::GreaterOrEqual),
                ("<=", Comparison::LessOrEqual),
                ("!=", Comparison::NotEqual),
                ("==", Comparison::Equal),
                (">", Comparison::Greater),
                ("<", Comparison::Less),
                ("=", Comparison::Equal),
            ]
            .iter()
            .find_map(|(prefix, comparison)| {
                part.strip_prefix(prefix).map(|rest| (*comparison, rest))
            })
            .unwrap_or((Comparison::Equal, part));
            let version = Version::new(rest.trim()).map_err(|error| InvalidVersion {
                value: text.chars().take(80).collect(),
                reason: format!("in range part {part:?}: {}", error.reason),
            })?;
            comparisons.push((comparison, version));
        }
        Ok(Self { comparisons })
    }

    /// The comparisons, in the order written.
    pub fn comparisons(&self) -> &[(Comparison, Version)] {
        &self.comparisons
    }

    /// Whether `version` lies in the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.comparisons.iter().all(|(comparison, bound)| {
            let ordering = version.cmp(bound);
            match comparison {
                Comparison::Equal => ordering == Ordering::Equal,
                Comparison::NotEqual => ordering != Ordering::Equal,
                Comparison::Less => ordering == Ordering::Less,
                Comparison::LessOrEqual => ordering != Ordering::Greater,
                Comparison::Greater => ordering == Ordering::Greater,
                Comparison::GreaterOrEqual => ordering != Ordering::Less,
            }
        })
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.comparisons.is_empty() {
            return f.write_str("*");
        }
        for (index, (comparison, version)) in self.comparisons.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}", comparison.symbol(), version)?;
        }
        Ok(())
    }
}

impl fmt::Debug for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionReq({self})")
    }
}

impl FromStr for VersionReq {
    type Err = InvalidVersion;
    fn from_str(text: &str) -> Result<Self, InvalidVersion> {
        Self::parse(text)
    }
}

impl Serialize for VersionReq {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VersionReq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::new(text).unwrap()
    }

    #[test]
    fn ascending_sequences_as_vendors_write_them() {
        let ordered = [
            "1.0~rc1",
            "1.0",
            "1.0-1",
            "1.0.1",
            "1.2",
            "1.10",
            "2.4.57-1",
            "2.4.57-1+deb12u1",
            "2.4.57-2",
            "9.0",
            "9.0.1",
            "10.0",
            "10.0 FP3",
            "10.0 FP10",
            "10.0.1",
            "1:0.5",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]), "{} > {}", pair[1], pair[0]);
        }
    }

    #[test]
    fn equal_versions_written_differently() {
        assert_eq!(v("1.0"), v("1.00"));
        assert_eq!(v("10.0 FP3"), v("10.0  fp3"));
        assert_eq!(v("0:1.0"), v("1.0"));
        assert_eq!(v(" 1.2 ").as_str(), "1.2");
    }

    #[test]
    fn bad_versions_say_why() {
        assert!(Version::new("").unwrap_err().reason.contains("empty"));
        assert!(Version::new("beta").unwrap_err().reason.contains("digit"));
        assert!(Version::new("1,2").unwrap_err().reason.contains("','"));
        assert!(Version::new("x:1").unwrap_err().reason.contains("epoch"));
        assert!(Version::new("1".repeat(200)).is_err());
        assert!(Version::new("1\n2").is_err());
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        assert!(v("99999999999999999999999999.1") > v("99999999999999999999999998.9"));
    }

    #[test]
    fn ranges() {
        let range = VersionReq::parse(">=1.8, <2.0").unwrap();
        assert!(range.matches(&v("1.8")));
        assert!(range.matches(&v("1.8.0_291")));
        assert!(!range.matches(&v("2.0")));
        assert!(!range.matches(&v("1.7")));
        assert!(VersionReq::parse("9.0.1").unwrap().matches(&v("9.0.1")));
        assert!(VersionReq::parse("*").unwrap().matches(&v("0")));
        assert!(VersionReq::parse("!=1.0").unwrap().matches(&v("1.1")));
        assert_eq!(range.to_string(), ">=1.8, <2.0");
        assert!(VersionReq::parse(">=").is_err());
        assert!(VersionReq::parse(">=1.0,,<2").is_err());
    }
}
