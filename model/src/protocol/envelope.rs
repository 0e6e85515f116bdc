//! Signed envelopes: how the installer knows that what it is told to run as
//! root came from its builder, for it, and is current.
//!
//! roleoutd wraps every suite list, suite and component it serves in a
//! [`SignedEnvelope`]; the installer checks the signature against the
//! builder key it pinned at enrolment, then the machine, the expiry and the
//! serial (which only grows, so an old envelope cannot be replayed as new).
//! Signing and checking need a key and a clock, so they live in the crates
//! that have them; this module fixes the shape and the signed bytes
//! ([`SignedContent::signed_message`]), which both sides must agree on.
//!
//! The signature covers the payload through its SHA-256, not its bytes:
//! Ed25519 hashes what it signs twice with SHA-512, so signing a whole
//! suite for every request made signing most of roleoutd's work, while a
//! digest of the payload is computed once per request (or once per build)
//! with the much faster SHA-256. The payload still travels in the
//! envelope, in the same place, and the installer digests what it received.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{MachineId, Sha256};
use crate::protocol::ProtocolError;
use crate::protocol::bytes::Base64Bytes;
use crate::protocol::canonical::{canonical_json, canonical_json_of, canonical_object};
use crate::protocol::time::Timestamp;

/// The signature of an envelope covers this prefix followed by the
/// canonical JSON of `signed` with its payload replaced by the payload's
/// digest ([`SignedContent::signed_message`]), so that a signature made
/// with the builder key for an envelope can never pass for a signature over
/// anything else. Version 1 signed the payload's bytes themselves; the new
/// prefix keeps a version 1 signature from ever verifying as version 2.
pub const ENVELOPE_CONTEXT: &[u8] = b"roleout-envelope-v2\0";

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvelopeKind {
    /// A [`crate::protocol::SuiteList`] (`GET /v1/suites`).
    SuiteList,
    /// A [`crate::protocol::SuiteDelivery`] (`GET /v1/suites/{id}`).
    Suite,
    /// A [`crate::protocol::ComponentDelivery`]
    /// (`GET /v1/suites/{id}/components/{product}`).
    Component,
    /// A [`crate::protocol::ImageJob`] (`GET /v1/jobs/current`): what one
    /// target of a deployment is to become, naming the job and the
    /// machine.
    ImageJob,
}

impl EnvelopeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeKind::SuiteList => "suite-list",
            EnvelopeKind::Suite => "suite",
            EnvelopeKind::Component => "component",
            EnvelopeKind::ImageJob => "image-job",
        }
    }
}

/// A payload type and the envelope kind that carries it.
pub trait EnvelopePayload: Serialize + DeserializeOwned {
    /// The kind of envelope this payload travels in.
    const KIND: EnvelopeKind;
}

/// What an envelope's signature covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SignedContent {
    /// What the payload is.
    pub kind: EnvelopeKind,
    /// The machine this envelope is for; any other machine refuses it.
    pub machine: MachineId,
    /// The key of the role set the payload was built for
    /// ([`crate::role::EffectiveRoles::key`]).
    pub roles: String,
    /// The build the payload comes from (always present for suites and
    /// components; a suite list spans several builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_digest: Option<Sha256>,
    /// Grows with every new build; an installer refuses a serial lower than
    /// one it accepted.
    pub serial: u64,
    /// After this the envelope is refused (a stale mirror, a freeze attack).
    pub expires_at: Timestamp,
    /// The payload, kept as JSON so that the signed bytes are computed from
    /// exactly what was received.
    pub payload: serde_json::Value,
}

impl SignedContent {
    /// Wraps `payload` with the envelope fields.
    pub fn new<P: EnvelopePayload>(
        payload: &P,
        machine: MachineId,
        roles: impl Into<String>,
        build_digest: Option<Sha256>,
        serial: u64,
        expires_at: Timestamp,
    ) -> Result<Self, ProtocolError> {
        Ok(Self {
            kind: P::KIND,
            machine,
            roles: roles.into(),
            build_digest,
            serial,
            expires_at,
            payload: serde_json::to_value(payload).map_err(ProtocolError::Serialize)?,
        })
    }

    /// The payload as `P`, after checking that the envelope is of `P`'s
    /// kind.
    pub fn payload<P: EnvelopePayload>(&self) -> Result<P, ProtocolError> {
        if self.kind != P::KIND {
            return Err(ProtocolError::WrongPayloadKind {
                expected: P::KIND,
                found: self.kind,
            });
        }
        P::deserialize(&self.payload).map_err(|source| ProtocolError::Payload {
            kind: self.kind,
            source,
        })
    }

    /// The canonical JSON of this content (see
    /// [`crate::protocol::canonical_json`]): what an envelope's `signed`
    /// member holds.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ProtocolError> {
        self.canonical_bytes_around(&canonical_json(&self.payload))
    }

    /// The canonical bytes of this content with `payload` (canonical JSON
    /// bytes) as its payload instead of [`Self::payload`]: the header
    /// fields are written around bytes the caller already has. The same
    /// bytes as [`Self::canonical_bytes`] when `payload` is the canonical
    /// JSON of `self.payload`.
    pub fn canonical_bytes_around(&self, payload: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        self.canonical_with("payload", payload)
    }

    /// The SHA-256 of a payload whose canonical JSON is `payload`: what the
    /// signature covers in its place.
    pub fn payload_digest(payload: &[u8]) -> Sha256 {
        Sha256::of(payload)
    }

    /// The bytes the signature covers: [`ENVELOPE_CONTEXT`] then the
    /// canonical JSON of this content with `payload` replaced by
    /// `payload-digest`, the SHA-256 of the payload's canonical JSON (as
    /// lowercase hex).
    pub fn signed_message(&self) -> Result<Vec<u8>, ProtocolError> {
        self.signed_message_for(&Self::payload_digest(&canonical_json(&self.payload)))
    }

    /// [`Self::signed_message`] for a payload whose digest the caller
    /// already has ([`Self::payload_digest`]); [`Self::payload`] is not
    /// read.
    pub fn signed_message_for(&self, payload_digest: &Sha256) -> Result<Vec<u8>, ProtocolError> {
        let digest = canonical_field(payload_digest)?;
        let header = self.canonical_with("payload-digest", &digest)?;
        let mut message = Vec::with_capacity(ENVELOPE_CONTEXT.len() + header.len());
        message.extend_from_slice(ENVELOPE_CONTEXT);
        message.extend_from_slice(&header);
        Ok(message)
    }

    /// The canonical JSON of the header fields and one more member, `name`,
    /// whose canonical bytes are `value`.
    fn canonical_with(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let kind = canonical_field(&self.kind)?;
        let machine = canonical_field(&self.machine)?;
        let roles = canonical_field(&self.roles)?;
        let serial = canonical_field(&self.serial)?;
        let expires_at = canonical_field(&self.expires_at)?;
        let build_digest = self
            .build_digest
            .as_ref()
            .map(canonical_field)
            .transpose()?;
        let mut members: Vec<(&str, &[u8])> = vec![
            ("kind", &kind),
            ("machine", &machine),
            ("roles", &roles),
            ("serial", &serial),
            ("expires-at", &expires_at),
            (name, value),
        ];
        if let Some(digest) = &build_digest {
            members.push(("build-digest", digest));
        }
        Ok(canonical_object(&mut members))
    }
}

/// The canonical JSON of one value.
pub fn canonical_field<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    canonical_json_of(value).map_err(ProtocolError::Serialize)
}

/// A signed content, its signature and the id of the key that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SignedEnvelope {
    /// The signed content.
    pub signed: SignedContent,
    /// Ed25519 signature over [`SignedContent::signed_message`] (which
    /// covers the payload by its digest).
    pub signature: Base64Bytes,
    /// SHA-256 of the signing key's raw public key, so that a key mismatch
    /// is reported as such rather than as a bad signature.
    pub key_id: Sha256,
}

impl SignedEnvelope {
    /// The JSON body of an envelope whose signed content has the canonical
    /// bytes `canonical` (written as they are: canonical JSON is JSON), so
    /// that a server that signed those bytes does not serialize the
    /// content a second time.
    pub fn body_around(
        canonical: &[u8],
        signature: &Base64Bytes,
        key_id: &Sha256,
    ) -> Result<Vec<u8>, ProtocolError> {
        let signature = canonical_field(signature)?;
        let key_id = canonical_field(key_id)?;
        Ok(canonical_object(&mut [
            ("signed", canonical),
            ("signature", &signature),
            ("key-id", &key_id),
        ]))
    }
}
