//! Redaction of secret values (password variables and the like) from
//! everything the runner keeps: captured output, matched log lines, the
//! command line shown in a report and the reasons built from them.
//!
//! Redaction happens when text is stored, not when it is shown: a report
//! never holds a secret, so no later Debug, Display or serialization can
//! leak one.

use std::fmt;

/// What each occurrence of a secret is replaced with.
pub const MASK: &str = "********";

/// The secret values of one command. Its Debug output shows how many there
/// are, never what they are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Non-empty, distinct, longest first: where one secret contains
    /// another, the longer one is masked whole instead of leaving its rest
    /// visible around the shorter one's mask.
    values: Vec<Vec<u8>>,
}

impl Secrets {
    /// The secrets among `values`; empty strings are dropped (they would
    /// match everywhere and hide nothing).
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets = Self::default();
        for value in values {
            secrets.add(value);
        }
        secrets
    }

    /// Adds one secret value.
    pub fn add(&mut self, value: impl Into<String>) {
        let value = value.into().into_bytes();
        if value.is_empty() || self.values.contains(&value) {
            return;
        }
        self.values.push(value);
        self.values
            .sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    }

    /// The secret values, to hand to a process that masks them too.
    pub(crate) fn values(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect()
    }

    /// Whether there is no secret to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&self.redact_bytes(text.as_bytes())).into_owned()
    }

    /// `bytes` with every secret replaced by [`MASK`]. Works on bytes so
    /// that output which is not UTF-8 is still searched.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut redacted = Vec::with_capacity(bytes.len());
        let mut position = 0;
        'bytes: while position < bytes.len() {
            let rest = &bytes[position..];
            for secret in &self.values {
                if rest.starts_with(secret) {
                    redacted.extend_from_slice(MASK.as_bytes());
                    position += secret.len();
                    continue 'bytes;
                }
            }
            redacted.push(bytes[position]);
            position += 1;
        }
        redacted
    }

    /// Redacts a piece of a longer text that was cut off before its start
    /// (`cut_before`) and/or after its end (`cut_after`). Besides whole
    /// secrets, a piece of a secret that the cut left at an edge is masked
    /// too: a secret split by the cut is not a whole match on either side,
    /// yet its visible half would still leak.
    pub(crate) fn redact_piece(&self, bytes: &[u8], cut_before: bool, cut_after: bool) -> Vec<u8> {
        let mut start = 0;
        let mut end = bytes.len();
        if cut_before {
            // The longest proper suffix of a secret that the piece starts with.
            let longest = self
                .values
                .iter()
                .flat_map(|secret| (1..secret.len()).map(move |cut| &secret[cut..]))
                .filter(|suffix| bytes.starts_with(suffix))
                .map(<[u8]>::len)
                .max();
            start = longest.unwrap_or(0);
        }
        if cut_after {
            let longest = self
                .values
                .iter()
                .flat_map(|secret| (1..secret.len()).map(move |cut| &secret[..cut]))
                .filter(|prefix| bytes[start..].ends_with(prefix))
                .map(<[u8]>::len)
                .max();
            end = bytes.len() - longest.unwrap_or(0);
        }
        let mut redacted = Vec::with_capacity(bytes.len());
        if start > 0 {
            redacted.extend_from_slice(MASK.as_bytes());
        }
        redacted.extend(self.redact_bytes(&bytes[start..end]));
        if end < bytes.len() {
            redacted.extend_from_slice(MASK.as_bytes());
        }
        redacted
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.values.len())
    }
}

#[cfg(test)]
// Test inputs are literals; a panic on one is the test failing.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let secrets = Secrets::new(["hunter2", "hunter2-extra", ""]);
        assert_eq!(
            secrets.redact("a hunter2 b hunter2-extra c hunter"),
            "a ******** b ******** c hunter"
        );
        assert_eq!(format!("{secrets:?}"), "Secrets(2 hidden)");
    }

    #[test]
    fn no_secrets_changes_nothing() {
        let secrets = Secrets::default();
        assert!(secrets.is_empty());
        assert_eq!(secrets.redact("plain text"), "plain text");
    }

    #[test]
    fn masks_halves_of_a_secret_split_by_a_cut() {
        let secrets = Secrets::new(["s3cretpass"]);
        let head = secrets.redact_piece(b"log: s3cr", false, true);
        assert_eq!(head, b"log: ********");
        let tail = secrets.redact_piece(b"tpass done", true, false);
        assert_eq!(tail, b"******** done");
        // Without a cut nothing partial is masked.
        assert_eq!(
            secrets.redact_piece(b"log: s3cr", false, false),
            b"log: s3cr"
        );
    }

    #[test]
    fn works_on_bytes_that_are_not_utf8() {
        let secrets = Secrets::new(["key"]);
        assert_eq!(
            secrets.redact_bytes(b"\xff key \xfe"),
            b"\xff ******** \xfe"
        );
    }
}
