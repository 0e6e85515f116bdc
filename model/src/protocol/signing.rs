//! Signed metadata envelopes: how the installer knows that what it is told to
//! run as root came from its builder, for it, and is current. Pure: both
//! roleoutd (which signs) and the agent (which verifies) use it from here.
//!
//! roleoutd signs every suite (and other metadata) it serves with the
//! builder's Ed25519 key; the installer pinned that key's public half at
//! enrolment and checks each envelope against it, so a mirror, a proxy or a
//! stolen TLS certificate cannot change what runs. Following TUF, an
//! envelope also carries what is needed to refuse the attacks a valid
//! signature alone does not stop:
//! - the machine it is for (an envelope made for another machine, perhaps of
//!   another role, is refused);
//! - a serial number that only grows for a suite (an older envelope, however
//!   well signed, is a rollback);
//! - an expiry (an attacker who replays a stale envelope forever, a freeze,
//!   is caught when it expires).
//!
//! roleoutd signs with [`sign_envelope`]; the installer verifies with
//! [`verify_envelope`]. The wire type and the signed bytes are the protocol's
//! ([`SignedEnvelope`], [`SignedContent::signed_message`]: a context prefix
//! and the canonical JSON of the signed content, its payload replaced by the
//! payload's SHA-256) so that roleoutd, the
//! installer and the API schemas share one definition; this module adds
//! what needs `ring` and a clock. The verifier rebuilds the bytes from the
//! parsed envelope, so a payload must survive a trip through JSON text
//! unchanged; that holds for strings, integers and (with `serde_json`'s
//! `float_roundtrip` feature, on in this workspace) floats. Were it ever not
//! to hold, verification would fail closed.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::ids::{MachineId, Sha256};
use crate::protocol::{Base64Bytes, ProtocolError, SignedContent, SignedEnvelope, canonical_json};

use crate::keys::unix_seconds;

/// Why an envelope could not be made or was refused.
///
/// Every refusal says which check failed; none carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The builder key bytes are not a PKCS#8 Ed25519 private key.
    #[error("the builder key is not a PKCS#8 Ed25519 private key: {reason}")]
    BadBuilderKey {
        /// Why `ring` refused it.
        reason: String,
    },
    /// A new builder key could not be generated.
    #[error("could not generate a builder key: no randomness available from the system")]
    Generate,
    /// The pinned public key text is not a base64url Ed25519 public key.
    #[error(
        "the pinned builder key is not a base64url-encoded 32-byte Ed25519 public key: {reason}"
    )]
    BadPinnedKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The signed content could not be turned into its canonical bytes.
    #[error("could not serialize the signed envelope contents: {0}")]
    Serialize(#[from] ProtocolError),
    /// The envelope names a signing key other than the pinned one.
    #[error(
        "the envelope is signed by key {envelope_key_id}, not by the pinned builder key \
         {pinned_key_id}"
    )]
    WrongKey {
        /// The key id the envelope claims.
        envelope_key_id: Sha256,
        /// The pinned key's id.
        pinned_key_id: Sha256,
    },
    /// The signature does not verify with the pinned key.
    #[error(
        "the envelope signature does not verify with the pinned builder key (contents changed or signed by another key)"
    )]
    BadSignature,
    /// The envelope was made for another machine.
    #[error("the envelope is for machine {found}, not for this machine ({expected})")]
    OtherMachine {
        /// This machine.
        expected: MachineId,
        /// The machine named in the envelope.
        found: MachineId,
    },
    /// The envelope's expiry has passed (a freeze attack, or a stale mirror).
    #[error("the envelope expired at {expires_at}; it is now {now} (Unix seconds)")]
    Expired {
        /// Its expiry.
        expires_at: crate::protocol::Timestamp,
        /// The clock used.
        now: u64,
    },
    /// The serial is lower than one already accepted for this suite.
    #[error(
        "rollback refused: the envelope has serial {serial}, older than serial {last_accepted} already accepted"
    )]
    Rollback {
        /// The envelope's serial.
        serial: u64,
        /// The last serial accepted.
        last_accepted: u64,
    },
    /// The serial was already accepted for different contents.
    #[error(
        "serial {serial} was already accepted for build {accepted_digest:?}; this envelope \
         claims build {build_digest:?} under the same serial"
    )]
    SerialReused {
        /// The serial both carry.
        serial: u64,
        /// The build accepted before.
        accepted_digest: Option<Sha256>,
        /// The build this envelope claims.
        build_digest: Option<Sha256>,
    },
}

/// The builder's signing key (Ed25519), held by roleoutd.
pub struct BuilderKey {
    key_pair: Ed25519KeyPair,
    /// [`PinnedKey::key_id`] of the public half, which every envelope
    /// carries: computed once.
    key_id: Sha256,
}

impl BuilderKey {
    /// Makes a new key and returns it as PKCS#8 DER, to be stored with
    /// `roleout_store::keys::write_private_key`.
    pub fn generate_pkcs8() -> Result<Vec<u8>, EnvelopeError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|document| document.as_ref().to_vec())
            .map_err(|_| EnvelopeError::Generate)
    }

    /// Loads a PKCS#8 Ed25519 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, EnvelopeError> {
        let key_pair =
            Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|rejected| EnvelopeError::BadBuilderKey {
                reason: rejected.to_string(),
            })?;
        let key_id = Sha256::of(key_pair.public_key().as_ref());
        Ok(Self { key_pair, key_id })
    }

    /// The id of the public half ([`PinnedKey::key_id`]).
    pub fn key_id(&self) -> &Sha256 {
        &self.key_id
    }

    /// The public half, which installers pin.
    pub fn public_key(&self) -> PinnedKey {
        let mut bytes = [0_u8; 32];
        // An Ed25519 public key is always 32 bytes.
        bytes.copy_from_slice(self.key_pair.public_key().as_ref());
        PinnedKey { bytes }
    }
}

impl fmt::Debug for BuilderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuilderKey")
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

/// The builder's public key as an installer pins it at enrolment.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PinnedKey {
    bytes: [u8; 32],
}

impl PinnedKey {
    /// Wraps the 32 bytes of an Ed25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// Reads the base64url text form (as written by [`Self::to_base64`]);
    /// surrounding white space (a trailing newline in a file) is ignored.
    pub fn from_base64(text: &str) -> Result<Self, EnvelopeError> {
        let decoded =
            URL_SAFE_NO_PAD
                .decode(text.trim())
                .map_err(|error| EnvelopeError::BadPinnedKey {
                    reason: error.to_string(),
                })?;
        let bytes: [u8; 32] =
            decoded
                .try_into()
                .map_err(|wrong: Vec<u8>| EnvelopeError::BadPinnedKey {
                    reason: format!("it is {} bytes long", wrong.len()),
                })?;
        Ok(Self { bytes })
    }

    /// The base64url text form, for the installer's pin file.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }

    /// The raw public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key id: SHA-256 of the raw public key, in hex.
    pub fn key_id(&self) -> Sha256 {
        Sha256::of(&self.bytes)
    }
}

impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinnedKey({})", self.to_base64())
    }
}

/// The last envelope accepted for a suite: its serial, its build and the
/// digest of its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AcceptedSerial {
    /// The serial accepted.
    pub serial: u64,
    /// The build it carried (none for a suite list, which spans builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_digest: Option<Sha256>,
    /// [`SignedContent::payload_digest`] of its payload (none when recorded
    /// by an installer that did not keep it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_digest: Option<Sha256>,
}

impl AcceptedSerial {
    /// What the installer records after accepting `signed`, to check the
    /// next envelope for the same suite against.
    pub fn of(signed: &SignedContent) -> Self {
        Self {
            serial: signed.serial,
            build_digest: signed.build_digest.clone(),
            payload_digest: Some(payload_digest(signed)),
        }
    }
}

fn payload_digest(signed: &SignedContent) -> Sha256 {
    SignedContent::payload_digest(&canonical_json(&signed.payload))
}

/// Signs `content` (made with [`SignedContent::new`]).
pub fn sign_envelope(
    key: &BuilderKey,
    content: SignedContent,
) -> Result<SignedEnvelope, EnvelopeError> {
    let signature = sign_message(key, &content.signed_message()?);
    Ok(SignedEnvelope {
        signed: content,
        signature,
        key_id: key.key_id().clone(),
    })
}

/// The signature of `message` ([`SignedContent::signed_message`] or
/// [`SignedContent::signed_message_for`]), for a server that writes the
/// envelope's bytes itself.
pub fn sign_message(key: &BuilderKey, message: &[u8]) -> Base64Bytes {
    Base64Bytes::new(key.key_pair.sign(message).as_ref())
}

/// Checks an envelope and returns what it signs.
///
/// Refuses, in this order: a key id other than the pinned key's, a
/// signature that does not verify with the pinned key, another machine, an
/// expired envelope (expiry at or before `now`), and against
/// `last_accepted` (the last envelope accepted for the same suite, `None`
/// the first time): a lower serial (rollback) or the same serial with
/// another build digest (two different contents under one serial). The same
/// serial with the same digest is accepted: it is the same build fetched
/// again. So is a lower serial whose build and payload are exactly those
/// accepted: nothing goes back, and roleoutd serves an envelope it signed
/// earlier again while its contents are unchanged, so that behind a load
/// balancer one instance's earlier envelope may follow another's later
/// one. The payload's kind is checked when it is read
/// ([`SignedContent::payload`]).
///
/// A caller that records what it accepted uses [`verify_and_accept`],
/// which also gives the record.
pub fn verify_envelope<'envelope>(
    envelope: &'envelope SignedEnvelope,
    pinned: &PinnedKey,
    expected_machine: &MachineId,
    last_accepted: Option<&AcceptedSerial>,
    now: SystemTime,
) -> Result<&'envelope SignedContent, EnvelopeError> {
    verify_and_accept(envelope, pinned, expected_machine, last_accepted, now)
        .map(|(signed, _)| signed)
}

/// [`verify_envelope`], also giving what to record as accepted for the
/// suite: this envelope's serial, build and payload digest, or `last`
/// itself when this is an older envelope of the same contents (the serial
/// recorded never goes down). The payload is digested once, for the
/// signature, the rollback check and the record.
pub fn verify_and_accept<'envelope>(
    envelope: &'envelope SignedEnvelope,
    pinned: &PinnedKey,
    expected_machine: &MachineId,
    last_accepted: Option<&AcceptedSerial>,
    now: SystemTime,
) -> Result<(&'envelope SignedContent, AcceptedSerial), EnvelopeError> {
    let pinned_key_id = pinned.key_id();
    if envelope.key_id != pinned_key_id {
        return Err(EnvelopeError::WrongKey {
            envelope_key_id: envelope.key_id.clone(),
            pinned_key_id,
        });
    }
    let signed = &envelope.signed;
    let payload_digest = payload_digest(signed);
    UnparsedPublicKey::new(&ED25519, pinned.as_bytes())
        .verify(
            &signed.signed_message_for(&payload_digest)?,
            envelope.signature.as_bytes(),
        )
        .map_err(|_| EnvelopeError::BadSignature)?;

    if signed.machine != *expected_machine {
        return Err(EnvelopeError::OtherMachine {
            expected: expected_machine.clone(),
            found: signed.machine.clone(),
        });
    }
    let now_seconds = unix_seconds(now);
    if signed.expires_at.unix_seconds() <= now_seconds {
        return Err(EnvelopeError::Expired {
            expires_at: signed.expires_at,
            now: now_seconds,
        });
    }
    let accepted = AcceptedSerial {
        serial: signed.serial,
        build_digest: signed.build_digest.clone(),
        payload_digest: Some(payload_digest),
    };
    if let Some(last) = last_accepted {
        let same_contents = last.build_digest == accepted.build_digest
            && last.payload_digest == accepted.payload_digest;
        if signed.serial < last.serial && !same_contents {
            return Err(EnvelopeError::Rollback {
                serial: signed.serial,
                last_accepted: last.serial,
            });
        }
        if signed.serial == last.serial && signed.build_digest != last.build_digest {
            return Err(EnvelopeError::SerialReused {
                serial: signed.serial,
                accepted_digest: last.build_digest.clone(),
                build_digest: signed.build_digest.clone(),
            });
        }
        if signed.serial < last.serial {
            // The same contents under an older serial: the record keeps
            // the higher one.
            return Ok((signed, last.clone()));
        }
    }
    Ok((signed, accepted))
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use crate::protocol::{SuiteList, SuiteListEntry, Timestamp};

    use super::*;

    fn machine(name: &str) -> MachineId {
        MachineId::new(name).unwrap()
    }

    fn digest(byte: u8) -> Sha256 {
        Sha256::from_bytes(&[byte; 32])
    }

    #[test]
    fn an_envelope_survives_a_trip_through_json_text() {
        let key = BuilderKey::from_pkcs8(&BuilderKey::generate_pkcs8().unwrap()).unwrap();
        let now = SystemTime::now();
        let list = SuiteList {
            suites: vec![SuiteListEntry {
                id: "office".parse().unwrap(),
                version: "1.0".parse().unwrap(),
                build_digest: digest(1),
            }],
        };
        let expires_at = Timestamp::from_system_time(now + Duration::from_secs(3600)).unwrap();
        let content =
            SignedContent::new(&list, machine("ws-1"), "end-user", None, 7, expires_at).unwrap();
        let envelope = sign_envelope(&key, content).unwrap();
        let text = serde_json::to_string_pretty(&envelope).unwrap();
        let parsed: SignedEnvelope = serde_json::from_str(&text).unwrap();
        let signed =
            verify_envelope(&parsed, &key.public_key(), &machine("ws-1"), None, now).unwrap();
        assert_eq!(signed.serial, 7);
        assert_eq!(signed.payload::<SuiteList>().unwrap(), list);
        assert_eq!(AcceptedSerial::of(signed).serial, 7);
    }

    #[test]
    fn pinned_keys_round_trip_through_text() {
        let key = BuilderKey::from_pkcs8(&BuilderKey::generate_pkcs8().unwrap()).unwrap();
        let text = format!("{}\n", key.public_key().to_base64());
        assert_eq!(PinnedKey::from_base64(&text).unwrap(), key.public_key());
        assert!(matches!(
            PinnedKey::from_base64("AAAA"),
            Err(EnvelopeError::BadPinnedKey { .. })
        ));
    }
}
