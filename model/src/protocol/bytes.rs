//! Binary values in JSON bodies: certificates, public keys, signatures.
//!
//! Every binary field of the API is base64url without padding (RFC 4648
//! section 5), the form roleoutd's tokens and the installer's pinned key
//! already use, so that one alphabet is used everywhere and a value can sit
//! in a URL or a file name unchanged.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not base64url without padding: {reason}")]
pub struct InvalidBase64 {
    /// What the decoder found.
    pub reason: String,
}

/// Bytes carried as base64url text without padding.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Base64Bytes(Vec<u8>);

impl Base64Bytes {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Decodes base64url text without padding; padding, the standard
    /// alphabet's `+` and `/`, and white space are refused.
    pub fn decode(text: &str) -> Result<Self, InvalidBase64> {
        URL_SAFE_NO_PAD
            .decode(text)
            .map(Self)
            .map_err(|error| InvalidBase64 {
                reason: error.to_string(),
            })
    }

    /// The text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for Base64Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

// Only the length: these are certificates and signatures, and a debug print
// of a whole certificate helps nobody.
impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_url_safe_text() {
        let bytes = Base64Bytes::new(vec![0xfb, 0xff, 0x00, 0x10]);
        assert_eq!(bytes.encode(), "-_8AEA");
        assert_eq!(Base64Bytes::decode("-_8AEA").unwrap(), bytes);
    }

    #[test]
    fn other_base64_forms_are_refused() {
        for text in ["+/8AEA", "-_8AEA==", "-_8 AEA", "A"] {
            assert!(Base64Bytes::decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn debug_shows_only_the_length() {
        assert_eq!(
            format!("{:?}", Base64Bytes::new(vec![1, 2, 3])),
            "Base64Bytes(3 bytes)"
        );
    }
}
