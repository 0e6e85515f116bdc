//! Self-authenticating tokens: a JSON payload and its HMAC-SHA256, so that
//! roleoutd keeps no state for challenges and sessions.
//!
//! A token is `base64url(payload JSON) "." base64url(MAC)`. The MAC is keyed
//! with the server secret every roleoutd of a site shares, and covers a
//! purpose label followed by the payload bytes: a session token can never be
//! presented as a challenge or the other way round, even though both are
//! made with the same secret. Any roleoutd holding the secret checks a
//! token without asking anyone.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use roleout_store::keys::{KeyFileError, read_private_key, write_private_key};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The shortest server secret accepted, in bytes (the HMAC-SHA256 key size).
pub const MIN_SECRET_LEN: usize = 32;

/// Longest token text accepted; anything longer is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token was refused, or a secret could not be made or loaded.
///
/// No variant carries the token, its MAC or the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token text is longer than [`MAX_TOKEN_LEN`].
    #[error("the {purpose} token is too long ({length} bytes, at most {MAX_TOKEN_LEN})")]
    TooLong {
        /// What the token was presented as.
        purpose: &'static str,
        /// Its length.
        length: usize,
    },
    /// The token does not have the `payload.mac` shape, or a part is not
    /// base64url.
    #[error("the {purpose} token is malformed: {reason}")]
    Malformed {
        /// What the token was presented as.
        purpose: &'static str,
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// The MAC does not match: the token was changed, made with another
    /// secret, or made for another purpose.
    #[error(
        "the {purpose} token was not issued by roleoutd (its MAC does not match: changed, \
         made with another secret, or not a {purpose} token)"
    )]
    BadMac {
        /// What the token was presented as.
        purpose: &'static str,
    },
    /// The MAC matched but the payload is not what a token of this purpose
    /// holds (a secret shared with an incompatible version of roleoutd).
    #[error("the {purpose} token's contents are not understood: {reason}")]
    Payload {
        /// What the token was presented as.
        purpose: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// The payload could not be serialized.
    #[error("could not serialize a {purpose} token: {reason}")]
    Serialize {
        /// The token being made.
        purpose: &'static str,
        /// What the JSON serializer said.
        reason: String,
    },
    /// The server secret is too short.
    #[error("the server secret is {length} bytes long; it must be at least {MIN_SECRET_LEN}")]
    ShortSecret {
        /// Its length.
        length: usize,
    },
    /// The system gave no randomness.
    #[error("no randomness available from the system")]
    Random,
    /// The server secret file could not be read or written.
    #[error(transparent)]
    SecretFile(#[from] KeyFileError),
}

/// The secret every roleoutd of a site shares to make and check tokens.
pub struct ServerSecret {
    key: hmac::Key,
}

impl ServerSecret {
    /// Makes a new random secret and returns its bytes, to be stored with
    /// [`Self::write`] (or distributed to every roleoutd of the site).
    pub fn generate_bytes() -> Result<Vec<u8>, TokenError> {
        let mut bytes = vec![0_u8; MIN_SECRET_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| TokenError::Random)?;
        Ok(bytes)
    }

    /// Uses `bytes` (at least [`MIN_SECRET_LEN`] long) as the secret.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(TokenError::ShortSecret {
                length: bytes.len(),
            });
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// Writes secret bytes to a file of mode 0600, atomically.
    pub fn write(path: &Path, bytes: &[u8]) -> Result<(), TokenError> {
        Ok(write_private_key(path, bytes)?)
    }

    /// Reads the secret from a file written by [`Self::write`]; a file that
    /// group or others may read is refused.
    pub fn read(path: &Path) -> Result<Self, TokenError> {
        Self::from_bytes(&read_private_key(path)?)
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// What a token is for; its label goes into the MAC input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Purpose {
    /// Short name for messages ("challenge", "session").
    pub(crate) name: &'static str,
    /// Label prefixed to the payload under the MAC.
    pub(crate) label: &'static [u8],
}

fn mac_input(purpose: Purpose, payload: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(purpose.label.len() + payload.len());
    input.extend_from_slice(purpose.label);
    input.extend_from_slice(payload);
    input
}

/// Makes a token of `purpose` carrying `payload`.
pub(crate) fn seal<T: Serialize>(
    secret: &ServerSecret,
    purpose: Purpose,
    payload: &T,
) -> Result<String, TokenError> {
    let json = serde_json::to_vec(payload).map_err(|error| TokenError::Serialize {
        purpose: purpose.name,
        reason: error.to_string(),
    })?;
    let tag = hmac::sign(&secret.key, &mac_input(purpose, &json));
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    ))
}

/// Checks a token of `purpose` and returns its payload.
///
/// The MAC is checked (in constant time, by `ring`) before the payload is
/// parsed, so nothing an attacker writes reaches the JSON parser.
pub(crate) fn open<T: DeserializeOwned>(
    secret: &ServerSecret,
    purpose: Purpose,
    token: &str,
) -> Result<T, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong {
            purpose: purpose.name,
            length: token.len(),
        });
    }
    let malformed = |reason| TokenError::Malformed {
        purpose: purpose.name,
        reason,
    };
    let (payload_text, mac_text) = token
        .split_once('.')
        .ok_or_else(|| malformed("it has no '.' between payload and MAC"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_text)
        .map_err(|_| malformed("the payload is not base64url"))?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_text)
        .map_err(|_| malformed("the MAC is not base64url"))?;
    hmac::verify(&secret.key, &mac_input(purpose, &payload), &mac).map_err(|_| {
        TokenError::BadMac {
            purpose: purpose.name,
        }
    })?;
    serde_json::from_slice(&payload).map_err(|error| TokenError::Payload {
        purpose: purpose.name,
        reason: error.to_string(),
    })
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIRST: Purpose = Purpose {
        name: "first",
        label: b"first\0",
    };
    const SECOND: Purpose = Purpose {
        name: "second",
        label: b"second\0",
    };

    fn secret() -> ServerSecret {
        ServerSecret::from_bytes(&ServerSecret::generate_bytes().unwrap()).unwrap()
    }

    #[test]
    fn a_token_opens_with_its_secret_and_purpose_only() {
        let secret = secret();
        let token = seal(&secret, FIRST, &vec![1, 2, 3]).unwrap();
        let opened: Vec<u32> = open(&secret, FIRST, &token).unwrap();
        assert_eq!(opened, vec![1, 2, 3]);

        let error = open::<Vec<u32>>(&secret, SECOND, &token).unwrap_err();
        assert!(
            matches!(error, TokenError::BadMac { purpose: "second" }),
            "{error}"
        );
        let other_secret = self::secret();
        let error = open::<Vec<u32>>(&other_secret, FIRST, &token).unwrap_err();
        assert!(matches!(error, TokenError::BadMac { .. }), "{error}");
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let secret = secret();
        for (token, expected) in [
            ("no-dot", "no '.'"),
            ("!!!.AAAA", "payload is not base64url"),
            ("AAAA.!!!", "MAC is not base64url"),
        ] {
            let error = open::<Vec<u32>>(&secret, FIRST, token).unwrap_err();
            assert!(error.to_string().contains(expected), "{token}: {error}");
        }
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            open::<Vec<u32>>(&secret, FIRST, &long),
            Err(TokenError::TooLong { .. })
        ));
    }

    #[test]
    fn short_secrets_are_refused_and_never_shown() {
        assert!(matches!(
            ServerSecret::from_bytes(&[7; 31]),
            Err(TokenError::ShortSecret { length: 31 })
        ));
        assert_eq!(format!("{:?}", secret()), "ServerSecret(<redacted>)");
    }
}
