//! Signed metadata envelopes: how the installer knows that what it is told to
//! run as root came from its builder, for it, and is current.
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
//! [`verify_envelope`]. Both live here so that the installer does not depend
//! on the server crate and the two sides share one definition of the signed
//! bytes.
//!
//! The signed bytes are [`ENVELOPE_CONTEXT`] followed by the canonical JSON
//! of the `signed` object: object keys sorted by their UTF-8 bytes, no
//! insignificant white space, strings and numbers as `serde_json` writes
//! them. [`canonical_json`] sorts keys itself rather than trusting the map
//! order of `serde_json::Value`, which the `preserve_order` feature (pulled
//! in by any crate of the build) would change. The verifier rebuilds the
//! bytes from the parsed envelope, so a payload must survive a trip through
//! JSON text unchanged; that holds for strings, integers and (with
//! `serde_json`'s `float_roundtrip` feature, on in this workspace) floats.
//! Were it ever not to hold, verification would fail closed.

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use roleout_model::ids::{MachineId, Sha256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::unix_seconds;

/// The envelope signature covers this prefix followed by the canonical JSON
/// of the signed object, so that it can never be confused with a signature
/// over anything else made with the builder's key.
pub const ENVELOPE_CONTEXT: &[u8] = b"roleout-envelope-v1\0";

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
    /// The signed object could not be turned into JSON.
    #[error("could not serialize the signed envelope contents: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The envelope names a signing key other than the pinned one.
    #[error(
        "the envelope is signed by key {envelope_key_id}, not by the pinned builder key \
         {pinned_key_id}"
    )]
    WrongKey {
        /// The key id the envelope claims.
        envelope_key_id: String,
        /// The pinned key's id.
        pinned_key_id: Sha256,
    },
    /// The signature field is not base64url.
    #[error("the envelope signature is not valid base64url")]
    MalformedSignature,
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
    #[error("the envelope expired at {expires_at} (Unix seconds); it is now {now}")]
    Expired {
        /// Its expiry.
        expires_at: u64,
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
        "serial {serial} was already accepted for build {accepted_digest}; this envelope \
         claims build {build_digest} under the same serial"
    )]
    SerialReused {
        /// The serial both carry.
        serial: u64,
        /// The build accepted before.
        accepted_digest: Sha256,
        /// The build this envelope claims.
        build_digest: Sha256,
    },
}

/// The builder's signing key (Ed25519), held by roleoutd.
pub struct BuilderKey {
    key_pair: Ed25519KeyPair,
}

impl BuilderKey {
    /// Makes a new key and returns it as PKCS#8 DER, to be stored with
    /// [`crate::keys::write_private_key`].
    pub fn generate_pkcs8() -> Result<Vec<u8>, EnvelopeError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|document| document.as_ref().to_vec())
            .map_err(|_| EnvelopeError::Generate)
    }

    /// Loads a PKCS#8 Ed25519 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, EnvelopeError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|key_pair| Self { key_pair })
            .map_err(|rejected| EnvelopeError::BadBuilderKey {
                reason: rejected.to_string(),
            })
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
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.bytes);
        let mut bytes = [0_u8; 32];
        // A SHA-256 digest is always 32 bytes.
        bytes.copy_from_slice(digest.as_ref());
        Sha256::from_bytes(&bytes)
    }
}

impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinnedKey({})", self.to_base64())
    }
}

/// What an envelope's signature covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Signed {
    /// The metadata itself (a built suite, a Machine object, ...).
    pub payload: Value,
    /// The machine this envelope is for.
    pub machine: MachineId,
    /// The role-set key the payload was built for (`EffectiveRoles::key`).
    pub role_key: String,
    /// The digest of the build the payload comes from.
    pub build_digest: Sha256,
    /// Grows with every new build of the suite; never goes back.
    pub serial: u64,
    /// Unix seconds after which the envelope is refused.
    pub expires_at: u64,
}

impl Signed {
    /// What the installer records after accepting this envelope, to check
    /// the next one for the same suite against.
    pub fn accepted(&self) -> AcceptedSerial {
        AcceptedSerial {
            serial: self.serial,
            build_digest: self.build_digest.clone(),
        }
    }
}

/// A signed object, its signature and the id of the key that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Envelope {
    /// The signed contents.
    pub signed: Signed,
    /// Ed25519 signature over [`ENVELOPE_CONTEXT`] and the canonical JSON of
    /// `signed`, base64url without padding.
    pub signature: String,
    /// [`PinnedKey::key_id`] of the signing key, so that a mismatch is
    /// reported as such rather than as a bad signature.
    pub key_id: String,
}

/// The last envelope accepted for a suite: its serial and its build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AcceptedSerial {
    /// The serial accepted.
    pub serial: u64,
    /// The build it carried.
    pub build_digest: Sha256,
}

/// Signs `payload` for `for_machine`.
pub fn sign_envelope(
    key: &BuilderKey,
    payload: Value,
    for_machine: &MachineId,
    role_key: &str,
    build_digest: &Sha256,
    serial: u64,
    expires_at: SystemTime,
) -> Result<Envelope, EnvelopeError> {
    let signed = Signed {
        payload,
        machine: for_machine.clone(),
        role_key: role_key.to_owned(),
        build_digest: build_digest.clone(),
        serial,
        expires_at: unix_seconds(expires_at),
    };
    let message = signed_message(&signed)?;
    let signature = key.key_pair.sign(&message);
    Ok(Envelope {
        signed,
        signature: URL_SAFE_NO_PAD.encode(signature.as_ref()),
        key_id: key.public_key().key_id().to_string(),
    })
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
/// again.
///
/// On success the caller records [`Signed::accepted`] for the suite.
pub fn verify_envelope<'envelope>(
    envelope: &'envelope Envelope,
    pinned: &PinnedKey,
    expected_machine: &MachineId,
    last_accepted: Option<&AcceptedSerial>,
    now: SystemTime,
) -> Result<&'envelope Signed, EnvelopeError> {
    let pinned_key_id = pinned.key_id();
    if envelope.key_id != pinned_key_id.as_str() {
        return Err(EnvelopeError::WrongKey {
            envelope_key_id: envelope.key_id.chars().take(80).collect(),
            pinned_key_id,
        });
    }
    let signature = URL_SAFE_NO_PAD
        .decode(&envelope.signature)
        .map_err(|_| EnvelopeError::MalformedSignature)?;
    let signed = &envelope.signed;
    UnparsedPublicKey::new(&ED25519, pinned.as_bytes())
        .verify(&signed_message(signed)?, &signature)
        .map_err(|_| EnvelopeError::BadSignature)?;

    if signed.machine != *expected_machine {
        return Err(EnvelopeError::OtherMachine {
            expected: expected_machine.clone(),
            found: signed.machine.clone(),
        });
    }
    let now = unix_seconds(now);
    if signed.expires_at <= now {
        return Err(EnvelopeError::Expired {
            expires_at: signed.expires_at,
            now,
        });
    }
    if let Some(last) = last_accepted {
        if signed.serial < last.serial {
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
    }
    Ok(signed)
}

/// The bytes an envelope signature covers.
fn signed_message(signed: &Signed) -> Result<Vec<u8>, EnvelopeError> {
    let mut message = ENVELOPE_CONTEXT.to_vec();
    canonical_json(&serde_json::to_value(signed)?, &mut message)?;
    Ok(message)
}

/// Appends the canonical JSON form of `value` to `out`: object keys sorted
/// by their UTF-8 bytes, no white space. Strings and numbers are written by
/// `serde_json`, so one value always gives the same bytes.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            out.push(b'{');
            for (index, (key, member)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                canonical_json(member, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                canonical_json(item, out)?;
            }
            out.push(b']');
        }
        leaf => serde_json::to_writer(&mut *out, leaf)?,
    }
    Ok(())
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn machine(name: &str) -> MachineId {
        MachineId::new(name).unwrap()
    }

    fn digest(byte: u8) -> Sha256 {
        Sha256::from_bytes(&[byte; 32])
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({"b": 1, "a": {"z": [true, null, "x\"y"], "m": 1.5}});
        let mut out = Vec::new();
        canonical_json(&value, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"m":1.5,"z":[true,null,"x\"y"]},"b":1}"#
        );
    }

    #[test]
    fn an_envelope_survives_a_trip_through_json_text() {
        let key = BuilderKey::from_pkcs8(&BuilderKey::generate_pkcs8().unwrap()).unwrap();
        let now = SystemTime::now();
        let envelope = sign_envelope(
            &key,
            json!({"suite": "office", "weights": [0.1, 2.5e10], "é": "ü"}),
            &machine("ws-1"),
            "end-user",
            &digest(1),
            7,
            now + Duration::from_secs(3600),
        )
        .unwrap();
        let text = serde_json::to_string_pretty(&envelope).unwrap();
        let parsed: Envelope = serde_json::from_str(&text).unwrap();
        let signed =
            verify_envelope(&parsed, &key.public_key(), &machine("ws-1"), None, now).unwrap();
        assert_eq!(signed.serial, 7);
        assert_eq!(signed.payload["suite"], "office");
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
