//! Machine authentication (design, "Authentication"; Fig. 10, blocks
//! 1010-1020): a machine proves who it is by signing a challenge with its
//! private key, and gets a short-lived session token.
//!
//! The flow, and where each step lives:
//! 1. The machine asks for a challenge; roleoutd answers with a random nonce
//!    bound to the machine and a short expiry, inside a MAC'd token
//!    ([`challenge`], on top of [`token`]). roleoutd keeps nothing.
//! 2. The machine signs `roleout-challenge-v1\0` + the token text
//!    (`roleout_model::keys`, shared with the agent so both sides
//!    build the same bytes) and sends back machine name, token, signature.
//! 3. roleoutd checks the token (MAC, expiry, machine), then the machine's
//!    directory entry (enabled, key approved) and the signature against the
//!    certificate registered there ([`certificate`]), then claims the nonce
//!    so the same answer is never accepted twice ([`nonce`]).
//! 4. roleoutd issues a session token carrying machine and role set
//!    ([`session`]).
//!
//! [`Authenticator`] runs steps 1, 3 and 4 in the right order. It takes the
//! directory's answers (certificate, flags, role-set key) as inputs; looking
//! them up is the caller's business.
//!
//! Every refusal is an error that says which check failed. The messages go
//! to logs and HTTP responses, so none carries a secret, a key or a MAC.

pub mod certificate;
pub mod challenge;
pub mod engine;
pub mod nonce;
pub mod session;
pub mod token;

use std::time::{Duration, SystemTime};

use roleout_model::ids::{MachineId, Sha256};
use roleout_model::keys::{challenge_message, key_proof_message};

use crate::auth::certificate::{CertificateError, RegisteredMachine, verify_machine_signature};
use crate::auth::challenge::{
    ChallengeError, DEFAULT_CHALLENGE_LIFETIME, IssuedChallenge, issue_challenge, verify_challenge,
};
use crate::auth::nonce::{NonceCache, NonceStore, ReplayError, SharedNonces};
use crate::auth::session::{
    DEFAULT_SESSION_LIFETIME, IssuedSession, Session, SessionError, issue_session, verify_session,
};
use crate::auth::token::ServerSecret;

/// Why an authentication step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The challenge token was refused or could not be made.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// The machine or its signature was refused.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The nonce was refused (replay, or the store is full or unreachable).
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The session token was refused or could not be made.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Issues challenges, checks their answers and issues and checks sessions.
///
/// Shared by all request handlers of one roleoutd (it is `Sync` when its
/// nonce store is).
#[derive(Debug)]
pub struct Authenticator<Store = NonceCache> {
    secret: ServerSecret,
    nonces: Store,
    challenge_lifetime: Duration,
    session_lifetime: Duration,
}

impl<Store: NonceStore> Authenticator<Store> {
    /// An authenticator with the default lifetimes
    /// ([`DEFAULT_CHALLENGE_LIFETIME`], [`DEFAULT_SESSION_LIFETIME`]).
    pub fn new(secret: ServerSecret, nonces: Store) -> Self {
        Self {
            secret,
            nonces,
            challenge_lifetime: DEFAULT_CHALLENGE_LIFETIME,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }

    /// Sets how long a machine has to answer a challenge.
    pub fn with_challenge_lifetime(mut self, lifetime: Duration) -> Self {
        self.challenge_lifetime = lifetime;
        self
    }

    /// Sets how long a session lasts.
    pub fn with_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// Block 1010: a new challenge for `machine`.
    pub fn issue_challenge(
        &self,
        machine: &MachineId,
        now: SystemTime,
    ) -> Result<IssuedChallenge, AuthError> {
        Ok(issue_challenge(
            &self.secret,
            machine,
            now,
            self.challenge_lifetime,
        )?)
    }

    /// Blocks 1015-1020: checks `machine`'s answer to a challenge and, if
    /// every check passes, opens a session for the role set `role_key`.
    ///
    /// `registered` and `role_key` come from `machine`'s directory entry.
    /// The nonce is claimed last, after the signature is verified: a party
    /// without the machine's key cannot use up the machine's challenge.
    pub fn authenticate(
        &self,
        machine: &MachineId,
        token: &str,
        signature: &[u8],
        registered: &RegisteredMachine,
        role_key: &str,
        now: SystemTime,
    ) -> Result<IssuedSession, AuthError> {
        self.answered(
            machine,
            token,
            &challenge_message(token),
            signature,
            registered,
            now,
        )?;
        self.session_for(machine, role_key, now)
    }

    /// Checks the challenge `token` for `machine` and `signature` over
    /// `message` with the registered certificate, then claims the nonce in
    /// this instance's store; the challenge.
    fn answered(
        &self,
        machine: &MachineId,
        token: &str,
        message: &[u8],
        signature: &[u8],
        registered: &RegisteredMachine,
        now: SystemTime,
    ) -> Result<challenge::Challenge, AuthError> {
        let challenge = verify_challenge(&self.secret, token, machine, now)?;
        verify_machine_signature(registered, message, signature, now)?;
        self.nonces
            .claim(machine, &challenge.nonce, challenge.expires_at, now)?;
        Ok(challenge)
    }

    fn session_for(
        &self,
        machine: &MachineId,
        role_key: &str,
        now: SystemTime,
    ) -> Result<IssuedSession, AuthError> {
        Ok(issue_session(
            &self.secret,
            machine,
            role_key,
            now,
            self.session_lifetime,
        )?)
    }

    /// [`Authenticator::authenticate`] for one of several roleoutd: the
    /// nonce is claimed in this instance's store, then in `shared`, the
    /// store of every instance, so an answer accepted by one is refused by
    /// all the others.
    #[allow(clippy::too_many_arguments, reason = "the checks' inputs, each named")]
    pub async fn authenticate_across(
        &self,
        shared: &impl SharedNonces,
        machine: &MachineId,
        token: &str,
        signature: &[u8],
        registered: &RegisteredMachine,
        role_key: &str,
        now: SystemTime,
    ) -> Result<IssuedSession, AuthError> {
        let challenge = self.answered(
            machine,
            token,
            &challenge_message(token),
            signature,
            registered,
            now,
        )?;
        shared
            .claim_shared(machine, &challenge.nonce, challenge.expires_at)
            .await?;
        self.session_for(machine, role_key, now)
    }

    /// [`Authenticator::verify_key_proof`] for one of several roleoutd
    /// (see [`Authenticator::authenticate_across`]).
    #[allow(clippy::too_many_arguments, reason = "the checks' inputs, each named")]
    pub async fn verify_key_proof_across(
        &self,
        shared: &impl SharedNonces,
        machine: &MachineId,
        token: &str,
        signature: &[u8],
        registered: &RegisteredMachine,
        certificate: &Sha256,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let challenge = self.answered(
            machine,
            token,
            &key_proof_message(token, certificate),
            signature,
            registered,
            now,
        )?;
        shared
            .claim_shared(machine, &challenge.nonce, challenge.expires_at)
            .await?;
        Ok(())
    }

    /// Checks that the machine's current key vouches for the certificate
    /// whose SHA-256 is `certificate` (key rotation or renewal): the
    /// challenge `token` is valid for `machine`, and `signature` over the
    /// key-proof message of that token and digest verifies with the
    /// certificate registered in its entry, which must be enabled, approved
    /// and within its dates. The nonce is claimed last, so one proof is
    /// good once.
    pub fn verify_key_proof(
        &self,
        machine: &MachineId,
        token: &str,
        signature: &[u8],
        registered: &RegisteredMachine,
        certificate: &Sha256,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        self.answered(
            machine,
            token,
            &key_proof_message(token, certificate),
            signature,
            registered,
            now,
        )?;
        Ok(())
    }

    /// Checks a session token presented with a later request.
    pub fn verify_session(&self, token: &str, now: SystemTime) -> Result<Session, AuthError> {
        Ok(verify_session(&self.secret, token, now)?)
    }

    /// A token for this installation's engine `engine` (see
    /// [`engine`](crate::auth::engine)).
    pub fn issue_engine_token(
        &self,
        engine: &str,
        now: SystemTime,
    ) -> Result<String, token::TokenError> {
        engine::issue_engine_token(&self.secret, engine, now)
    }

    /// The engine an engine token names, when it is genuine and current.
    pub fn verify_engine_token(&self, token: &str, now: SystemTime) -> Option<String> {
        engine::verify_engine_token(&self.secret, token, now).map(|claim| claim.engine)
    }

    /// A token for this instance as a peer of the installation.
    pub fn issue_peer_token(&self, now: SystemTime) -> Result<String, token::TokenError> {
        engine::issue_peer_token(&self.secret, now)
    }

    /// Whether a peer token is genuine and current.
    pub fn verify_peer_token(&self, token: &str, now: SystemTime) -> bool {
        engine::verify_peer_token(&self.secret, token, now)
    }
}
