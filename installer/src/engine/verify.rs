//! Checking a signed envelope from roleoutd (or a mirror) before anything
//! in it is believed.
//!
//! The checks run on the wire type [`SignedEnvelope`], in this order: the
//! key id must be the pinned builder key's, the Ed25519 signature over
//! [`SignedContent::signed_message`] must verify with that key, the
//! envelope must be for this machine and of the kind asked for, and it
//! must not have expired. The serial is checked by the caller against the
//! journal ([`crate::state::journal::Journal::accept_serial`]), which is
//! where the last accepted serial lives. Any failure refuses the whole
//! envelope: the install loop runs nothing from it.

use std::time::SystemTime;

use ring::signature::{ED25519, UnparsedPublicKey};
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::protocol::{EnvelopeKind, SignedContent, SignedEnvelope, Timestamp};

use crate::envelope::PinnedKey;

/// Why an envelope was refused. No variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The envelope names another signing key.
    #[error(
        "the envelope is signed by key {envelope_key_id}, not by the pinned builder key {pinned_key_id}"
    )]
    WrongKey {
        /// The key id in the envelope.
        envelope_key_id: Sha256,
        /// The pinned key's id.
        pinned_key_id: Sha256,
    },
    /// The signature does not verify.
    #[error(
        "the envelope signature does not verify with the pinned builder key (its contents were changed, or another key signed it)"
    )]
    BadSignature,
    /// The signed bytes could not be rebuilt.
    #[error("the envelope contents cannot be put in canonical form: {reason}")]
    Canonical {
        /// Why.
        reason: String,
    },
    /// Made for another machine.
    #[error("the envelope is for machine {found}, not for this machine ({expected})")]
    OtherMachine {
        /// This machine.
        expected: MachineId,
        /// The machine it names.
        found: MachineId,
    },
    /// Another kind of payload than the one asked for.
    #[error("the envelope carries a {} payload where a {} was expected", found.as_str(), expected.as_str())]
    WrongKind {
        /// What was asked for.
        expected: EnvelopeKind,
        /// What it carries.
        found: EnvelopeKind,
    },
    /// Past its expiry (a stale mirror, or a freeze attack).
    #[error("the envelope expired at {expires_at}; it is now {now}")]
    Expired {
        /// Its expiry.
        expires_at: String,
        /// The clock used.
        now: String,
    },
}

/// Checks `envelope` for this machine against the pinned key at `now`,
/// and returns its signed content.
pub fn verify<'envelope>(
    envelope: &'envelope SignedEnvelope,
    pinned: &PinnedKey,
    machine: &MachineId,
    kind: EnvelopeKind,
    now: SystemTime,
) -> Result<&'envelope SignedContent, VerifyError> {
    let pinned_key_id = pinned.key_id();
    if envelope.key_id != pinned_key_id {
        return Err(VerifyError::WrongKey {
            envelope_key_id: envelope.key_id.clone(),
            pinned_key_id,
        });
    }
    let message = envelope
        .signed
        .signed_message()
        .map_err(|error| VerifyError::Canonical {
            reason: error.to_string(),
        })?;
    UnparsedPublicKey::new(&ED25519, pinned.as_bytes())
        .verify(&message, envelope.signature.as_bytes())
        .map_err(|_| VerifyError::BadSignature)?;
    let signed = &envelope.signed;
    if signed.machine != *machine {
        return Err(VerifyError::OtherMachine {
            expected: machine.clone(),
            found: signed.machine.clone(),
        });
    }
    if signed.kind != kind {
        return Err(VerifyError::WrongKind {
            expected: kind,
            found: signed.kind,
        });
    }
    let now_stamp = Timestamp::from_system_time(now);
    let expired = match now_stamp {
        Some(now) => signed.expires_at.unix_millis() <= now.unix_millis(),
        // A clock before 1970 or past 9999: nothing can be shown current.
        None => true,
    };
    if expired {
        return Err(VerifyError::Expired {
            expires_at: signed.expires_at.to_string(),
            now: now_stamp.map_or_else(|| "unknown".to_owned(), |now| now.to_string()),
        });
    }
    Ok(signed)
}
