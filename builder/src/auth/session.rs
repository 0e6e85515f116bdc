//! Session tokens (block 1020): what a machine presents, after proving who
//! it is, on every later request of the same run.
//!
//! A session token is MAC'd like a challenge (under its own purpose label)
//! and carries the machine, the key of the role set its suite is built for,
//! and a short expiry. Any roleoutd of the site checks it without state.

use std::time::{Duration, SystemTime};

use roleout_model::ids::MachineId;
use roleout_model::keys::unix_seconds;
use serde::{Deserialize, Serialize};

use crate::auth::token::{self, Purpose, ServerSecret, TokenError};

/// How long a session lasts unless configured otherwise.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(10 * 60);

const PURPOSE: Purpose = Purpose {
    name: "session",
    label: b"roleout-session-token-v1\0",
};

/// Why a session token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The token is not a genuine session token (tampered, malformed,
    /// another secret or another kind of token).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The session has expired; the machine authenticates again.
    #[error("the session expired at {expires_at} (Unix seconds); it is now {now}")]
    Expired {
        /// Its expiry.
        expires_at: u64,
        /// The clock used.
        now: u64,
    },
}

/// What a session token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Session {
    /// The authenticated machine.
    pub machine: MachineId,
    /// The key of its role set (`EffectiveRoles::key`), which selects its
    /// build.
    pub role_key: String,
    /// Unix seconds when the session began.
    pub issued_at: u64,
    /// Unix seconds from which the token is refused.
    pub expires_at: u64,
}

/// A session and its token, as returned to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedSession {
    /// The contents.
    pub session: Session,
    /// The token text the machine presents.
    pub token: String,
}

/// Makes a session token for `machine` with role set `role_key`, valid from
/// `now` for `lifetime`.
pub fn issue_session(
    secret: &ServerSecret,
    machine: &MachineId,
    role_key: &str,
    now: SystemTime,
    lifetime: Duration,
) -> Result<IssuedSession, SessionError> {
    let issued_at = unix_seconds(now);
    let session = Session {
        machine: machine.clone(),
        role_key: role_key.to_owned(),
        issued_at,
        expires_at: issued_at.saturating_add(lifetime.as_secs()),
    };
    let token = token::seal(secret, PURPOSE, &session)?;
    Ok(IssuedSession { session, token })
}

/// Checks a session token and returns the session it carries.
///
/// Which machine a request may speak for is then the session's machine:
/// callers must not take a machine name from elsewhere in the request.
pub fn verify_session(
    secret: &ServerSecret,
    token: &str,
    now: SystemTime,
) -> Result<Session, SessionError> {
    let session: Session = token::open(secret, PURPOSE, token)?;
    let now = unix_seconds(now);
    if session.expires_at <= now {
        return Err(SessionError::Expired {
            expires_at: session.expires_at,
            now,
        });
    }
    Ok(session)
}
