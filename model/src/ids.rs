//! Names with rules: product, suite, role, variable, capability and machine
//! names, and SHA-256 digests.
//!
//! Once one of these values exists it is valid, so code further in never
//! re-checks it (parse, don't validate). Names are deliberately narrow:
//! they become RDN values, file names in caches and keys in Tera contexts,
//! and a narrow alphabet keeps every one of those uses simple and safe.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid name or digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidName {
    /// Which kind of name was expected ("product id", "role name", ...).
    pub what: &'static str,
    /// The rejected input, truncated to 80 characters.
    pub value: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

fn check_name(what: &'static str, value: &str) -> Result<(), InvalidName> {
    let fail = |reason| InvalidName {
        what,
        value: value.chars().take(80).collect(),
        reason,
    };
    let first = value.chars().next().ok_or_else(|| fail("it is empty"))?;
    if value.len() > MAX_NAME_LEN {
        return Err(fail("it is longer than 64 characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(fail("it must start with a letter or a digit"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(fail(
            "only ASCII letters, digits, '-', '_' and '.' are allowed",
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidName> {
                let value = value.into();
                check_name($what, &value)?;
                Ok(Self(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(value: &str) -> Result<Self, InvalidName> {
                Self::new(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// Identifies a product (a software component) across the catalog.
    ProductId,
    "product id"
);
name_type!(
    /// Identifies a suite.
    SuiteId,
    "suite id"
);
name_type!(
    /// Names a role ("end-user", "developer", "administrator").
    RoleName,
    "role name"
);
name_type!(
    /// Names a variable of a product or a suite.
    VariableName,
    "variable name"
);
name_type!(
    /// Names a capability (a function a product provides, "mail-client").
    CapabilityName,
    "capability name"
);
name_type!(
    /// Names a machine (its host name, or the RDN value of its entry).
    MachineId,
    "machine name"
);
name_type!(
    /// Names a group of machines (Fig. 7 customization groups).
    GroupName,
    "group name"
);

/// A SHA-256 digest as 64 lowercase hexadecimal characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256(String);

impl Sha256 {
    /// Checks and wraps a hex digest; uppercase hex is accepted and lowered.
    pub fn new(value: impl AsRef<str>) -> Result<Self, InvalidName> {
        let value = value.as_ref();
        let fail = |reason| InvalidName {
            what: "SHA-256 digest",
            value: value.chars().take(80).collect(),
            reason,
        };
        if value.len() != 64 {
            return Err(fail("it must be exactly 64 hexadecimal characters"));
        }
        if !value.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(fail("it must contain only hexadecimal characters"));
        }
        Ok(Self(value.to_ascii_lowercase()))
    }

    /// Wraps 32 raw digest bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        // Digests are formatted on every signed response: a table, not
        // `write!` per byte.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in bytes {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// The SHA-256 of `bytes` (pure computation; every crate that
    /// digests bytes calls this rather than wrapping ring itself).
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_digest(&ring::digest::digest(&ring::digest::SHA256, bytes))
    }

    /// Wraps a finished ring SHA-256 digest (for streamed input).
    pub fn from_digest(digest: &ring::digest::Digest) -> Self {
        let mut bytes = [0u8; 32];
        // Any other algorithm's output is not a SHA-256; its first 32
        // bytes (or zeros) would be wrong, so callers only pass SHA-256.
        let source = digest.as_ref();
        let length = source.len().min(32);
        bytes[..length].copy_from_slice(&source[..length]);
        Self::from_bytes(&bytes)
    }

    /// The digest as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Sha256 {
    type Err = InvalidName;
    fn from_str(value: &str) -> Result<Self, InvalidName> {
        Self::new(value)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", &self.0)
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_usual_shapes() {
        for good in ["notes-client", "a", "jre_1.8", "X11", "9.0"] {
            assert!(ProductId::new(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn names_refuse_what_could_break_a_dn_or_a_path() {
        for bad in [
            "", "-x", ".hidden", "a b", "a,b", "a=b", "*)(cn=*", "a\0b", "../x", "é",
        ] {
            let error = RoleName::new(bad).unwrap_err();
            assert_eq!(error.what, "role name");
        }
        assert!(ProductId::new("a".repeat(65)).is_err());
        assert!(ProductId::new("a".repeat(64)).is_ok());
    }

    #[test]
    fn digests_are_64_hex_and_lowered() {
        let upper = "AB".repeat(32);
        assert_eq!(Sha256::new(&upper).unwrap().as_str(), "ab".repeat(32));
        assert!(Sha256::new("ab").is_err());
        assert!(Sha256::new("g".repeat(64)).is_err());
        assert_eq!(Sha256::from_bytes(&[0xff; 32]).as_str(), "ff".repeat(32));
    }

    #[test]
    fn digests_of_bytes_match_the_standard_vectors() {
        assert_eq!(
            Sha256::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Sha256::of(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn serde_refuses_invalid_names() {
        let parsed: Result<ProductId, _> = serde_json::from_str("\"a b\"");
        assert!(parsed.is_err());
        let parsed: ProductId = serde_json::from_str("\"ok\"").unwrap();
        assert_eq!(parsed.as_str(), "ok");
    }
}
