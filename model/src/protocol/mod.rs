//! The messages of Roleout's HTTP/JSON API (v1), shared by roleoutd, which
//! serves machines, and the agent `roleout`, which is its client.
//!
//! Both sides depend on this pure crate, so one definition of every body
//! serves both, and the JSON Schemas in `schemas/api` (embedded and checked
//! by [`validate`]) say the same as the Rust types.
//!
//! Wire conventions, the same in every body:
//! - keys are **kebab-case** (`build-digest`, `expires-at`), like the model
//!   objects the API carries (suites, plans, products), so a payload never
//!   mixes two conventions; enum values are kebab-case too;
//! - times are RFC 3339 in UTC ([`Timestamp`]);
//! - binary values are base64url without padding ([`Base64Bytes`]);
//! - digests are 64 lowercase hex characters ([`Sha256`]);
//! - request bodies refuse unknown fields (serde and schema alike);
//!   response types ignore them, so an agent keeps working against a
//!   roleoutd that has learnt new fields, while the response schemas stay
//!   strict so that roleoutd's own tests catch an unplanned field;
//! - every answer that is not 2xx carries an [`ErrorBody`].
//!
//! | route | request | answer |
//! |---|---|---|
//! | `POST /v1/enroll` | [`EnrollRequest`] | [`EnrollResponse`] |
//! | `POST /v1/challenge` | [`ChallengeRequest`] | [`ChallengeResponse`] |
//! | `POST /v1/session` | [`SessionRequest`] | [`SessionResponse`] |
//! | `GET /v1/suites` (bearer) | | [`SignedEnvelope`] of [`SuiteList`] |
//! | `GET /v1/suites/{id}` (bearer) | | [`SignedEnvelope`] of [`SuiteDelivery`] |
//! | `GET /v1/suites/{id}/components/{product}` (bearer) | | [`SignedEnvelope`] of [`ComponentDelivery`] |
//! | `GET /v1/payloads/{sha256}` (bearer) | | raw bytes, `Range` supported |
//! | `POST /v1/reports` (bearer) | [`StatusReport`] | [`ReportAck`] |
//! | `POST /v1/reports/complete` (bearer) | [`SuiteComplete`] | [`Close`] |
//! | `GET /v1/health` | | [`Health`] |
//! | `GET /v1/trust` | | [`TrustAnnouncement`] |

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::command::Phase;
use crate::ids::{GroupName, MachineId, ProductId, RoleName, Sha256, SuiteId, VariableName};
use crate::product::{InstallFileSet, ProductModel};
use crate::resolve::Plan;
use crate::suite::Suite;
use crate::version::Version;

mod bytes;
mod canonical;
mod envelope;
mod schema;
pub mod signing;
mod time;

pub use bytes::{Base64Bytes, InvalidBase64};
pub use canonical::{canonical_json, canonical_json_of, canonical_object};
pub use envelope::{
    ENVELOPE_CONTEXT, EnvelopeKind, EnvelopePayload, SignedContent, SignedEnvelope, canonical_field,
};
pub use schema::{
    Message, MessageKind, OPENAPI, SCHEMA_BASE, SCHEMA_FILES, SchemaViolation, validate,
};
pub use time::{InvalidTimestamp, Timestamp};

/// The API version prefix of every route.
pub const API_PREFIX: &str = "/v1";

/// Longest report log accepted, in characters (the schema's `maxLength`).
pub const MAX_LOG_CHARS: usize = 65_536;

/// Most evidence lines in one report.
pub const MAX_EVIDENCE_ITEMS: usize = 64;

/// Longest evidence line, in characters.
pub const MAX_EVIDENCE_CHARS: usize = 1024;

/// Why a body could not be read or an envelope's payload could not be
/// used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The body is not JSON at all.
    #[error("the {kind} body is not JSON (line {line}, column {column}): {reason}")]
    NotJson {
        /// The message expected.
        kind: MessageKind,
        /// Line of the syntax error.
        line: usize,
        /// Column of the syntax error.
        column: usize,
        /// serde_json's description.
        reason: String,
    },
    /// The body breaks its schema.
    #[error("the {kind} body does not match its schema: {}", list(violations))]
    Schema {
        /// The message expected.
        kind: MessageKind,
        /// Every violation, with its JSON pointer.
        violations: Vec<SchemaViolation>,
    },
    /// The body matches its schema but not the Rust type (a rule only the
    /// type knows, such as a day that does not exist).
    #[error("the {kind} body is not valid: {reason}")]
    Shape {
        /// The message expected.
        kind: MessageKind,
        /// serde's description.
        reason: String,
    },
    /// A value could not be turned into JSON.
    #[error("could not serialize a message: {0}")]
    Serialize(#[source] serde_json::Error),
    /// An envelope carries another kind of payload than the one asked for.
    #[error("the envelope carries a {} payload, not a {}", found.as_str(), expected.as_str())]
    WrongPayloadKind {
        /// The kind asked for.
        expected: EnvelopeKind,
        /// The kind the envelope says it carries.
        found: EnvelopeKind,
    },
    /// An envelope's payload does not have the shape of its kind.
    #[error("the {} payload of the envelope is not valid: {source}", kind.as_str())]
    Payload {
        /// The envelope's kind.
        kind: EnvelopeKind,
        /// serde's description.
        #[source]
        source: serde_json::Error,
    },
}

fn list(violations: &[SchemaViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

macro_rules! message {
    ($type:ty, $kind:ident) => {
        impl Message for $type {
            const KIND: MessageKind = MessageKind::$kind;
        }
    };
}

// ---------------------------------------------------------------------------
// Enrolment

/// Hardware and OS facts a machine reports about itself at enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MachineFacts {
    /// OS family (`linux`).
    pub os: String,
    /// Architecture (`x86_64`).
    pub arch: String,
    /// OS version (`12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Distribution id (`debian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Main IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Other facts (`memory-mb = 16384`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    /// The machine's hardware, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<crate::inventory::Inventory>,
}

/// `POST /v1/enroll`: a machine offers its certificate for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EnrollRequest {
    /// The machine's name (its directory entry).
    pub machine: MachineId,
    /// Its X.509 certificate, DER.
    pub certificate: Base64Bytes,
    /// A pre-approval token an admin handed out, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_token: Option<String>,
    /// What the machine says about itself.
    pub facts: MachineFacts,
    /// For a machine that already has a key: proof, made with that key,
    /// that this certificate replaces it (key rotation or renewal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<KeyProof>,
}
message!(EnrollRequest, EnrollRequest);

/// A machine's current key vouching for the certificate of an enrolment
/// request: a challenge from `POST /v1/challenge`, and the current key's
/// signature over the key-proof message of that challenge and the new
/// certificate's SHA-256 (the context `roleout-key-proof-v1`, then the
/// token, a zero byte and the digest in lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KeyProof {
    /// The challenge token.
    pub token: String,
    /// The current key's signature.
    pub signature: Base64Bytes,
}

/// Whether an enrolled machine may authenticate yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrolmentStatus {
    /// An admin must approve the key first.
    Pending,
    /// The machine may authenticate.
    Approved,
}

/// The signature algorithm of the builder key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuilderKeyAlgorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
}

/// The key roleoutd signs envelopes with; the installer pins it at
/// enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuilderPublicKey {
    /// Its algorithm.
    pub algorithm: BuilderKeyAlgorithm,
    /// The raw public key (32 bytes for Ed25519).
    pub public_key: Base64Bytes,
    /// SHA-256 of the raw public key.
    pub key_id: Sha256,
}

/// Answer to `POST /v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EnrollResponse {
    /// Approved or waiting for an admin.
    pub status: EnrolmentStatus,
    /// The key to pin.
    pub builder_key: BuilderPublicKey,
    /// One plain sentence for the person enrolling.
    pub message: String,
}
message!(EnrollResponse, EnrollResponse);

// ---------------------------------------------------------------------------
// Authentication (Fig. 10, blocks 1010-1020)

/// `POST /v1/challenge`: a machine asks for a challenge to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The machine.
    pub machine: MachineId,
}
message!(ChallengeRequest, ChallengeRequest);

/// Answer to `POST /v1/challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChallengeResponse {
    /// The challenge token (opaque to the machine, which signs its text).
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}
message!(ChallengeResponse, ChallengeResponse);

/// `POST /v1/session`: a machine proves who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SessionRequest {
    /// The machine.
    pub machine: MachineId,
    /// The challenge token it was given.
    pub token: String,
    /// Its signature over the challenge.
    pub signature: Base64Bytes,
}
message!(SessionRequest, SessionRequest);

/// Answer to `POST /v1/session`: a bearer session for the other routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SessionResponse {
    /// The session token, sent as `Authorization: Bearer SESSION`.
    pub session: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// The machine's roles, as the directory holds them.
    pub roles: Vec<RoleName>,
}
message!(SessionResponse, SessionResponse);

// ---------------------------------------------------------------------------
// Serving (blocks 1025-1050)

message!(SignedEnvelope, SignedEnvelope);

/// One suite a machine may install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SuiteListEntry {
    /// The suite.
    pub id: SuiteId,
    /// Its version.
    pub version: Version,
    /// The build serving it to this machine's role set.
    pub build_digest: Sha256,
}

/// Payload of `GET /v1/suites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SuiteList {
    /// The suites.
    pub suites: Vec<SuiteListEntry>,
}
message!(SuiteList, SuiteList);
impl EnvelopePayload for SuiteList {
    const KIND: EnvelopeKind = EnvelopeKind::SuiteList;
}

/// The Machine object of Block 1035: the components that apply to this
/// device, in install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MachineObject {
    /// The machine.
    pub name: MachineId,
    /// Its OS family, as the plan was made for.
    pub os: String,
    /// Its architecture.
    pub arch: String,
    /// Product ids that apply to it, in install order.
    pub components: Vec<ProductId>,
}

/// What admins chose for one machine with `customize` and `group` (Fig. 7),
/// as roleoutd serves it with the suite.
///
/// `values` are the customized values of the suite's variables: suite-wide,
/// overridden by those of the machine's group. Only variables the served
/// suite has, and never a password: secrets stay in the response file of
/// the machine that holds them. The agent takes them after its own
/// response file and before the suite's linkage and defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Customization {
    /// The machine's group, when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupName>,
    /// Customized values of suite variables, by name.
    #[serde(default)]
    pub values: BTreeMap<VariableName, String>,
}

/// Payload of `GET /v1/suites/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SuiteDelivery {
    /// The suite assembled for the machine's role set.
    pub suite: Suite,
    /// The install plan for this machine: the products its group and the
    /// machine itself chose, when they chose some, else the whole suite.
    pub plan: Plan,
    /// The Machine object.
    pub machine: MachineObject,
    /// The build it comes from.
    pub build_digest: Sha256,
    /// The values and choices admins made for this machine.
    #[serde(default)]
    pub customization: Customization,
}
message!(SuiteDelivery, SuiteDelivery);
impl EnvelopePayload for SuiteDelivery {
    const KIND: EnvelopeKind = EnvelopeKind::Suite;
}

/// Payload of `GET /v1/suites/{id}/components/{product}` (Block 1050).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComponentDelivery {
    /// The component's model.
    pub product: ProductModel,
    /// Its file manifest; payloads come from `GET /v1/payloads/{sha256}`.
    pub files: InstallFileSet,
}
message!(ComponentDelivery, ComponentDelivery);
impl EnvelopePayload for ComponentDelivery {
    const KIND: EnvelopeKind = EnvelopeKind::Component;
}

// ---------------------------------------------------------------------------
// Status (blocks 1070-1085)

/// The step a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStep {
    /// The pre-install command.
    PreInstall,
    /// The install command.
    Install,
    /// The post-install command.
    PostInstall,
    /// The uninstall command.
    Uninstall,
    /// The version checker and conditions deciding whether to install.
    Check,
}

impl From<Phase> for ReportStep {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::PreInstall => ReportStep::PreInstall,
            Phase::Install => ReportStep::Install,
            Phase::PostInstall => ReportStep::PostInstall,
            Phase::Uninstall => ReportStep::Uninstall,
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportOutcome {
    /// It worked.
    Success,
    /// It worked; the machine must restart before dependents run.
    SuccessRebootRequired,
    /// It was not run (already installed, condition false).
    Skipped,
    /// It failed.
    Failed,
    /// It was not run because something it depends on failed.
    Blocked,
    /// It asked to be run again.
    Retry,
}

/// `POST /v1/reports`: the status and log of one step of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StatusReport {
    /// Stable id, so that a resent report is recognised as a duplicate.
    pub id: String,
    /// The suite being installed.
    pub suite: SuiteId,
    /// Its build.
    pub build_digest: Sha256,
    /// The component.
    pub component: ProductId,
    /// The step.
    pub step: ReportStep,
    /// How it ended.
    pub outcome: ReportOutcome,
    /// The command's exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// How long it ran.
    pub duration_ms: u64,
    /// Matched log lines and reasons behind the outcome.
    pub evidence: Vec<String>,
    /// The log, secrets redacted, at most [`MAX_LOG_CHARS`] characters
    /// (see [`cap_log`]).
    pub log: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Timestamp,
}
message!(StatusReport, StatusReport);

/// What roleoutd did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckStatus {
    /// Stored.
    Recorded,
    /// Already stored before (same id); nothing changed.
    Duplicate,
}

/// Answer to `POST /v1/reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReportAck {
    /// What happened.
    pub status: AckStatus,
}
message!(ReportAck, ReportAck);

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunSummary {
    /// Components installed.
    pub installed: u32,
    /// Components skipped.
    pub skipped: u32,
    /// Components that failed.
    pub failed: u32,
    /// Components blocked by a failure.
    pub blocked: u32,
    /// Whether the machine must restart.
    pub reboot_required: bool,
}

/// `POST /v1/reports/complete`: the end of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuiteComplete {
    /// Stable id, so that a resent message is recognised.
    pub id: String,
    /// The suite.
    pub suite: SuiteId,
    /// Its build.
    pub build_digest: Sha256,
    /// The counts.
    pub summary: RunSummary,
}
message!(SuiteComplete, SuiteComplete);

/// The only status of [`Close`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloseStatus {
    /// The run is closed.
    #[default]
    Close,
}

/// Answer to `POST /v1/reports/complete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Close {
    /// Always `close`.
    pub status: CloseStatus,
}
message!(Close, Close);

/// The only status of [`Health`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthStatus {
    /// roleoutd is serving.
    #[default]
    Ok,
}

/// What a builder key signs to vouch for the next builder key: this
/// context, then the new key's 32 bytes.
pub const KEY_ENDORSEMENT_CONTEXT: &[u8] = b"roleout-builder-key-v1\0";

/// What a builder key signs to vouch for a TLS certificate of roleoutd:
/// this context, then the certificate's SHA-256 in lowercase hex.
pub const CERTIFICATE_ENDORSEMENT_CONTEXT: &[u8] = b"roleout-server-certificate-v1\0";

/// The bytes a builder key signs to endorse the builder key `public_key`.
pub fn key_endorsement_message(public_key: &[u8]) -> Vec<u8> {
    [KEY_ENDORSEMENT_CONTEXT, public_key].concat()
}

/// The bytes a builder key signs to endorse the TLS certificate `der`.
pub fn certificate_endorsement_message(der: &[u8]) -> Vec<u8> {
    [
        CERTIFICATE_ENDORSEMENT_CONTEXT,
        Sha256::of(der).as_str().as_bytes(),
    ]
    .concat()
}

/// A builder key vouching for another: machines that pin `endorsed-by`
/// accept envelopes signed by `public-key` too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KeyEndorsement {
    /// The new Ed25519 public key (32 bytes).
    pub public_key: Base64Bytes,
    /// The key id of the builder key that signed.
    pub endorsed_by: Sha256,
    /// Its signature over [`key_endorsement_message`].
    pub signature: Base64Bytes,
}

/// A builder key vouching for a TLS certificate of roleoutd: machines that
/// trust `endorsed-by` add it to the certificates they accept from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CertificateEndorsement {
    /// The certificate, DER.
    pub certificate: Base64Bytes,
    /// The key id of the builder key that signed.
    pub endorsed_by: Sha256,
    /// Its signature over [`certificate_endorsement_message`].
    pub signature: Base64Bytes,
}

/// Answer to `GET /v1/trust` (no session needed: every item carries its
/// own signature): the keys and certificates roleoutd's keys vouched for,
/// so machines follow a rotation of either (see README, "Rotating keys
/// and certificates").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TrustAnnouncement {
    /// Builder keys, each endorsed by an earlier one.
    #[serde(default)]
    pub builder_keys: Vec<KeyEndorsement>,
    /// TLS certificates, each endorsed by a builder key.
    #[serde(default)]
    pub server_certificates: Vec<CertificateEndorsement>,
}
message!(TrustAnnouncement, TrustAnnouncement);

/// Answer to `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Health {
    /// Always `ok`.
    pub status: HealthStatus,
    /// roleoutd's version.
    pub version: String,
}
message!(Health, Health);

// ---------------------------------------------------------------------------
// Images

/// The most digests one [`ContentOffer`] may list; a larger set is offered
/// in batches.
pub const MAX_OFFERED_DIGESTS: usize = 10_000;

/// `POST /v1/content/missing`: the contents an imaging source could send,
/// by digest (the have list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContentOffer {
    /// The digests, at most [`MAX_OFFERED_DIGESTS`].
    pub digests: Vec<Sha256>,
}
message!(ContentOffer, ContentOffer);

/// Answer to `POST /v1/content/missing`: those of the offered contents
/// roleoutd's content store lacks (the want list), in the offer's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContentWant {
    /// The digests wanted.
    pub missing: Vec<Sha256>,
}
message!(ContentWant, ContentWant);

/// What `PUT /v1/content/{sha256}` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentStatus {
    /// The content was stored.
    Stored,
    /// The store held it already; the body was not kept.
    Present,
}

/// Answer to `PUT /v1/content/{sha256}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContentStored {
    /// What happened.
    pub status: ContentStatus,
}
message!(ContentStored, ContentStored);

/// `POST /v1/images`: an image whose manifest and contents the sender
/// uploaded already (roleoutd checks each is in its store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageUpload {
    /// The image.
    pub description: crate::image::ImageDescription,
}
message!(ImageUpload, ImageUpload);

/// What `POST /v1/images` did with the image's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStatus {
    /// A new image.
    Created,
    /// An image of that name was there and is replaced.
    Replaced,
    /// The same image was there (only its capture time differed): nothing
    /// was written.
    Unchanged,
}

/// Answer to `POST /v1/images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageStored {
    /// What happened.
    pub status: ImageStatus,
    /// The image's manifest digest, as kept.
    pub manifest: Sha256,
}
message!(ImageStored, ImageStored);

/// The imaging archive a target unpacks: one zstd tar of the image's
/// tree, made once per manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ArchiveRef {
    /// Its SHA-256.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
}

/// The payload of an `image-job` envelope (`GET /v1/jobs/current`): what
/// one target of a deployment is to become. Signed by roleoutd for this
/// machine and this job only; its serial is the target's lease serial, so
/// an instruction of a lease that was taken over is older than the new
/// one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageJob {
    /// The job.
    pub job: crate::job::JobId,
    /// The image.
    pub image: crate::image::ImageDescription,
    /// What makes this target itself.
    pub configuration: crate::image::TargetConfiguration,
    /// The archive to unpack (`GET /v1/jobs/{job}/archive`).
    pub archive: ArchiveRef,
    /// Scripts the admin added, run once at the target's first start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<crate::job::JobScript>,
}
message!(ImageJob, ImageJob);

impl EnvelopePayload for ImageJob {
    const KIND: EnvelopeKind = EnvelopeKind::ImageJob;
}

/// `POST /v1/jobs/{job}/progress`: a target of a job reached a phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobProgress {
    /// The phase reached.
    pub phase: crate::job::Phase,
    /// What the step said (why, for `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
message!(JobProgress, JobProgress);

// ---------------------------------------------------------------------------
// Errors

/// What went wrong, for programs: the `error` of an [`ErrorBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body breaks its schema or is not JSON.
    InvalidBody,
    /// The body is larger than the route accepts.
    BodyTooLarge,
    /// No session, or one roleoutd did not issue.
    Unauthorized,
    /// The session has expired; authenticate again.
    ExpiredSession,
    /// The challenge has expired; ask for a new one.
    ExpiredChallenge,
    /// No machine of that name in the directory.
    UnknownMachine,
    /// The signature does not verify with the machine's certificate.
    BadSignature,
    /// The challenge was already used.
    ReplayedNonce,
    /// The machine's key is not approved yet.
    NotApproved,
    /// The machine is disabled.
    Disabled,
    /// The machine's certificate is outside its validity dates.
    CertificateExpired,
    /// The suite is not for this machine's roles.
    ForbiddenSuite,
    /// The machine may not upload images: an admin has not made it an
    /// imaging source.
    NotImagingSource,
    /// An image names contents roleoutd's store does not hold (upload
    /// them first).
    MissingContent,
    /// The machine's lease for the job is gone: it expired and another job
    /// took the machine, or the job is over for it.
    LeaseLost,
    /// The machine already has a key: a new one needs a one-time token or
    /// proof made with the current key.
    KeyConflict,
    /// No such suite, component or payload.
    NotFound,
    /// Too many requests from this source or machine; try again after the
    /// `Retry-After` seconds.
    TooManyRequests,
    /// roleoutd cannot answer now (its directory is unreachable, or it is
    /// busy with callers that have not authenticated); try again after the
    /// `Retry-After` seconds.
    Unavailable,
    /// roleoutd failed; the message says no more than that.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidBody,
        ErrorCode::BodyTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::ExpiredSession,
        ErrorCode::ExpiredChallenge,
        ErrorCode::UnknownMachine,
        ErrorCode::BadSignature,
        ErrorCode::ReplayedNonce,
        ErrorCode::NotApproved,
        ErrorCode::Disabled,
        ErrorCode::CertificateExpired,
        ErrorCode::ForbiddenSuite,
        ErrorCode::NotImagingSource,
        ErrorCode::MissingContent,
        ErrorCode::LeaseLost,
        ErrorCode::KeyConflict,
        ErrorCode::NotFound,
        ErrorCode::TooManyRequests,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidBody => "invalid-body",
            ErrorCode::BodyTooLarge => "body-too-large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ExpiredSession => "expired-session",
            ErrorCode::ExpiredChallenge => "expired-challenge",
            ErrorCode::UnknownMachine => "unknown-machine",
            ErrorCode::BadSignature => "bad-signature",
            ErrorCode::ReplayedNonce => "replayed-nonce",
            ErrorCode::NotApproved => "not-approved",
            ErrorCode::Disabled => "disabled",
            ErrorCode::CertificateExpired => "certificate-expired",
            ErrorCode::ForbiddenSuite => "forbidden-suite",
            ErrorCode::NotImagingSource => "not-imaging-source",
            ErrorCode::MissingContent => "missing-content",
            ErrorCode::LeaseLost => "lease-lost",
            ErrorCode::KeyConflict => "key-conflict",
            ErrorCode::NotFound => "not-found",
            ErrorCode::TooManyRequests => "too-many-requests",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with it. Authentication failures are 401
    /// (authenticate again may help), refusals of a known, authenticated
    /// machine are 403 (it will not).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidBody => 400,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::Unauthorized
            | ErrorCode::ExpiredSession
            | ErrorCode::ExpiredChallenge
            | ErrorCode::UnknownMachine
            | ErrorCode::BadSignature
            | ErrorCode::ReplayedNonce => 401,
            ErrorCode::NotApproved
            | ErrorCode::Disabled
            | ErrorCode::CertificateExpired
            | ErrorCode::ForbiddenSuite
            | ErrorCode::NotImagingSource => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::KeyConflict | ErrorCode::MissingContent | ErrorCode::LeaseLost => 409,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every answer that is not 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub error: ErrorCode,
    /// One plain sentence for people.
    pub message: String,
}
message!(ErrorBody, ErrorBody);

impl ErrorBody {
    /// An error body.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }

    /// The body for a request body that broke its schema: the first
    /// violations, with their pointers, in one sentence.
    pub fn invalid_body(violations: &[SchemaViolation]) -> Self {
        // The schema caps the message at 1024 characters; a few violations
        // say enough, and the count says the rest.
        let shown: Vec<String> = violations.iter().take(3).map(ToString::to_string).collect();
        let mut message = format!("The request body is not valid: {}", shown.join("; "));
        if violations.len() > shown.len() {
            message.push_str(&format!(" (and {} more)", violations.len() - shown.len()));
        }
        message.push('.');
        let message = if message.chars().count() > 1024 {
            let mut cut: String = message.chars().take(1020).collect();
            cut.push_str("...");
            cut
        } else {
            message
        };
        Self::new(ErrorCode::InvalidBody, message)
    }
}

/// Caps a log at [`MAX_LOG_CHARS`] characters, keeping its end (where a
/// failure usually shows) behind a line saying how much was cut.
pub fn cap_log(log: &str) -> String {
    let total = log.chars().count();
    if total <= MAX_LOG_CHARS {
        return log.to_owned();
    }
    // The notice is ASCII and at most 60 characters with any count.
    const NOTICE_ROOM: usize = 60;
    let kept = MAX_LOG_CHARS - NOTICE_ROOM;
    let cut = total - kept;
    let tail: String = log.chars().skip(cut).collect();
    format!("[{cut} earlier characters cut]\n{tail}")
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_their_wire_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn long_logs_keep_their_end() {
        let log = format!("{}END", "é".repeat(MAX_LOG_CHARS));
        let capped = cap_log(&log);
        assert!(capped.chars().count() <= MAX_LOG_CHARS);
        assert!(capped.starts_with('['), "{}", &capped[..40]);
        assert!(capped.ends_with("éEND"));
        assert_eq!(cap_log("short"), "short");
    }
}
