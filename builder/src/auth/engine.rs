//! Engine and peer tokens: how one roleoutd asks another of the same
//! installation for content it lacks. An installation engine shares the
//! token secret (and the builder key it signs its targets' jobs with) with
//! the roleoutd that images are captured to, so it can make a short-lived
//! token naming itself; the other checks the MAC, the expiry, and that the
//! name is a registered engine. A peer (another roleoutd behind the same
//! name, no engine) makes a token naming nobody: holding the token secret
//! is what makes it an instance of the installation, as it is what lets
//! any instance accept the others' sessions.

use std::time::{Duration, SystemTime};

use roleout_model::keys::unix_seconds;

use serde::{Deserialize, Serialize};

use crate::auth::token::{self, Purpose, ServerSecret, TokenError};

const PURPOSE: Purpose = Purpose {
    name: "engine",
    label: b"roleout-engine-v1\0",
};

/// How long an engine token is good for.
pub const ENGINE_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// What an engine token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineClaim {
    /// The engine's name (its entry under `ou=engines`).
    pub engine: String,
    /// Until when (Unix seconds).
    pub expires_at: u64,
}

/// A token for engine `engine`, good from `now` for
/// [`ENGINE_TOKEN_LIFETIME`].
pub fn issue_engine_token(
    secret: &ServerSecret,
    engine: &str,
    now: SystemTime,
) -> Result<String, TokenError> {
    token::seal(
        secret,
        PURPOSE,
        &EngineClaim {
            engine: engine.to_owned(),
            expires_at: unix_seconds(now) + ENGINE_TOKEN_LIFETIME.as_secs(),
        },
    )
}

const PEER_PURPOSE: Purpose = Purpose {
    name: "peer",
    label: b"roleout-peer-v1\0",
};

/// What a peer token says: only until when it is good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PeerClaim {
    expires_at: u64,
}

/// A token for a peer of the installation, good from `now` for
/// [`ENGINE_TOKEN_LIFETIME`].
pub fn issue_peer_token(secret: &ServerSecret, now: SystemTime) -> Result<String, TokenError> {
    token::seal(
        secret,
        PEER_PURPOSE,
        &PeerClaim {
            expires_at: unix_seconds(now) + ENGINE_TOKEN_LIFETIME.as_secs(),
        },
    )
}

/// Whether `token` is a genuine peer token, not expired.
pub fn verify_peer_token(secret: &ServerSecret, token: &str, now: SystemTime) -> bool {
    token::open::<PeerClaim>(secret, PEER_PURPOSE, token)
        .is_ok_and(|claim| claim.expires_at > unix_seconds(now))
}

/// The claim of an engine token that is genuine and not expired; `None`
/// otherwise.
pub fn verify_engine_token(
    secret: &ServerSecret,
    token: &str,
    now: SystemTime,
) -> Option<EngineClaim> {
    let claim: EngineClaim = token::open(secret, PURPOSE, token).ok()?;
    (claim.expires_at > unix_seconds(now)).then_some(claim)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn an_engine_token_names_its_engine_until_it_expires_and_only_with_the_secret() {
        let secret = ServerSecret::from_bytes(&[7; 32]).unwrap();
        let other = ServerSecret::from_bytes(&[8; 32]).unwrap();
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = issue_engine_token(&secret, "site-b", now).unwrap();
        assert_eq!(
            verify_engine_token(&secret, &token, now).map(|claim| claim.engine),
            Some("site-b".to_owned())
        );
        assert_eq!(verify_engine_token(&other, &token, now), None);
        assert_eq!(
            verify_engine_token(&secret, &token, now + ENGINE_TOKEN_LIFETIME),
            None
        );
        // A session token is not an engine token.
        let session = crate::auth::session::issue_session(
            &secret,
            &roleout_model::ids::MachineId::new("site-b").unwrap(),
            "default",
            now,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(verify_engine_token(&secret, &session.token, now), None);
    }

    #[test]
    fn a_peer_token_holds_until_it_expires_only_with_the_secret_and_is_no_engine_token() {
        let secret = ServerSecret::from_bytes(&[7; 32]).unwrap();
        let other = ServerSecret::from_bytes(&[8; 32]).unwrap();
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = issue_peer_token(&secret, now).unwrap();
        assert!(verify_peer_token(&secret, &token, now));
        assert!(!verify_peer_token(&other, &token, now));
        assert!(!verify_peer_token(
            &secret,
            &token,
            now + ENGINE_TOKEN_LIFETIME
        ));
        // Neither kind passes for the other.
        assert_eq!(verify_engine_token(&secret, &token, now), None);
        let engine = issue_engine_token(&secret, "site-b", now).unwrap();
        assert!(!verify_peer_token(&secret, &engine, now));
    }
}
