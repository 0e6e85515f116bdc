//! Challenges (block 1010): a random nonce bound to one machine and a short
//! expiry, handed out as a MAC'd token that any roleoutd can check.
//!
//! The machine signs the token's text (see
//! `roleout_model::keys::challenge_message`); roleoutd checks the token
//! with [`verify_challenge`] before it looks at the signature.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use roleout_model::ids::MachineId;
use roleout_model::keys::unix_seconds;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::token::{self, Purpose, ServerSecret, TokenError};

/// How long a machine has to answer a challenge unless configured otherwise.
pub const DEFAULT_CHALLENGE_LIFETIME: Duration = Duration::from_secs(120);

const PURPOSE: Purpose = Purpose {
    name: "challenge",
    label: b"roleout-challenge-token-v1\0",
};

/// Why a challenge could not be made or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The token is not a genuine challenge token (tampered, malformed,
    /// another secret or another kind of token).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The challenge has expired.
    #[error("the challenge expired at {expires_at} (Unix seconds); it is now {now}")]
    Expired {
        /// Its expiry.
        expires_at: u64,
        /// The clock used.
        now: u64,
    },
    /// The challenge was issued to another machine.
    #[error("the challenge was issued to machine {issued_to}, not to {presented_by}")]
    OtherMachine {
        /// The machine it was issued to.
        issued_to: MachineId,
        /// The machine that presented it.
        presented_by: MachineId,
    },
    /// The system gave no randomness for the nonce.
    #[error("could not make a nonce: no randomness available from the system")]
    Random,
}

/// 32 random bytes that make a challenge unique; good once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nonce([u8; 32]);

impl Nonce {
    /// Draws a nonce from the system's random generator.
    pub fn generate() -> Result<Self, ChallengeError> {
        let mut bytes = [0_u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| ChallengeError::Random)?;
        Ok(Self(bytes))
    }

    /// Wraps nonce bytes (from a directory-backed nonce store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64url text form, as carried in tokens.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

// A nonce is no secret (it travels in the clear inside the token), so it is
// shown in full: that makes replays traceable in logs.
impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.to_base64())
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl Serialize for Nonce {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a nonce is 32 bytes"))?;
        Ok(Self(bytes))
    }
}

/// What a challenge token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Challenge {
    /// The machine it was issued to.
    pub machine: MachineId,
    /// Its nonce.
    pub nonce: Nonce,
    /// Unix seconds when it was issued.
    pub issued_at: u64,
    /// Unix seconds from which it is refused.
    pub expires_at: u64,
}

/// A challenge and the token that carries it, as sent to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    /// The contents.
    pub challenge: Challenge,
    /// The token text the machine signs and sends back.
    pub token: String,
}

/// Makes a challenge for `machine` valid from `now` for `lifetime`.
pub fn issue_challenge(
    secret: &ServerSecret,
    machine: &MachineId,
    now: SystemTime,
    lifetime: Duration,
) -> Result<IssuedChallenge, ChallengeError> {
    let issued_at = unix_seconds(now);
    let challenge = Challenge {
        machine: machine.clone(),
        nonce: Nonce::generate()?,
        issued_at,
        expires_at: issued_at.saturating_add(lifetime.as_secs()),
    };
    let token = token::seal(secret, PURPOSE, &challenge)?;
    Ok(IssuedChallenge { challenge, token })
}

/// Checks that `token` is a challenge roleoutd issued, to `machine`, and
/// that it has not expired (it is refused from its `expires_at` second on).
///
/// This does not check the nonce against replays: that is the nonce
/// store's job, once the signature has been verified.
pub fn verify_challenge(
    secret: &ServerSecret,
    token: &str,
    machine: &MachineId,
    now: SystemTime,
) -> Result<Challenge, ChallengeError> {
    let challenge: Challenge = token::open(secret, PURPOSE, token)?;
    let now = unix_seconds(now);
    if challenge.expires_at <= now {
        return Err(ChallengeError::Expired {
            expires_at: challenge.expires_at,
            now,
        });
    }
    if challenge.machine != *machine {
        return Err(ChallengeError::OtherMachine {
            issued_to: challenge.machine,
            presented_by: machine.clone(),
        });
    }
    Ok(challenge)
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_and_round_trip_through_json() {
        let first = Nonce::generate().unwrap();
        let second = Nonce::generate().unwrap();
        assert_ne!(first, second);
        let text = serde_json::to_string(&first).unwrap();
        assert_eq!(serde_json::from_str::<Nonce>(&text).unwrap(), first);
        assert!(serde_json::from_str::<Nonce>("\"AAAA\"").is_err());
    }

    #[test]
    fn the_expiry_second_itself_is_refused() {
        let secret = ServerSecret::from_bytes(&ServerSecret::generate_bytes().unwrap()).unwrap();
        let machine = MachineId::new("ws-1").unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let issued = issue_challenge(&secret, &machine, now, Duration::from_secs(60)).unwrap();
        let last_good = now + Duration::from_secs(59);
        assert!(verify_challenge(&secret, &issued.token, &machine, last_good).is_ok());
        let at_expiry = now + Duration::from_secs(60);
        assert!(matches!(
            verify_challenge(&secret, &issued.token, &machine, at_expiry),
            Err(ChallengeError::Expired { .. })
        ));
    }
}
