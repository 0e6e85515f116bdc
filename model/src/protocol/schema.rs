//! The JSON Schemas of the API, compiled once, and the check of a body
//! against them.
//!
//! The schema files in `schemas/api` are the contract: they are embedded
//! here with `include_str!`, so the binary checks exactly what the
//! repository publishes. roleoutd checks every request body before it
//! deserializes it, so an oversized or malformed body is refused with the
//! JSON pointer of what is wrong instead of a serde message.

use std::fmt;
use std::sync::OnceLock;

use jsonschema::{Registry, Resource, ValidationError, Validator, error::ValidationErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::protocol::ProtocolError;

/// The base every schema `$id` starts with; message schemas refer to the
/// shared files by names relative to it.
pub const SCHEMA_BASE: &str = "https://example.org/roleout/schemas/api/";

/// Every schema file: (file name, contents). Messages first, in
/// [`MessageKind::ALL`] order, then the shared definitions.
pub const SCHEMA_FILES: [(&str, &str); 26] = [
    (
        "enroll-request.schema.json",
        include_str!("../../../schemas/api/enroll-request.schema.json"),
    ),
    (
        "enroll-response.schema.json",
        include_str!("../../../schemas/api/enroll-response.schema.json"),
    ),
    (
        "challenge-request.schema.json",
        include_str!("../../../schemas/api/challenge-request.schema.json"),
    ),
    (
        "challenge-response.schema.json",
        include_str!("../../../schemas/api/challenge-response.schema.json"),
    ),
    (
        "session-request.schema.json",
        include_str!("../../../schemas/api/session-request.schema.json"),
    ),
    (
        "session-response.schema.json",
        include_str!("../../../schemas/api/session-response.schema.json"),
    ),
    (
        "signed-envelope.schema.json",
        include_str!("../../../schemas/api/signed-envelope.schema.json"),
    ),
    (
        "suite-list.schema.json",
        include_str!("../../../schemas/api/suite-list.schema.json"),
    ),
    (
        "suite-delivery.schema.json",
        include_str!("../../../schemas/api/suite-delivery.schema.json"),
    ),
    (
        "component-delivery.schema.json",
        include_str!("../../../schemas/api/component-delivery.schema.json"),
    ),
    (
        "status-report.schema.json",
        include_str!("../../../schemas/api/status-report.schema.json"),
    ),
    (
        "report-ack.schema.json",
        include_str!("../../../schemas/api/report-ack.schema.json"),
    ),
    (
        "suite-complete.schema.json",
        include_str!("../../../schemas/api/suite-complete.schema.json"),
    ),
    (
        "close.schema.json",
        include_str!("../../../schemas/api/close.schema.json"),
    ),
    (
        "health.schema.json",
        include_str!("../../../schemas/api/health.schema.json"),
    ),
    (
        "trust-announcement.schema.json",
        include_str!("../../../schemas/api/trust-announcement.schema.json"),
    ),
    (
        "content-offer.schema.json",
        include_str!("../../../schemas/api/content-offer.schema.json"),
    ),
    (
        "content-want.schema.json",
        include_str!("../../../schemas/api/content-want.schema.json"),
    ),
    (
        "content-stored.schema.json",
        include_str!("../../../schemas/api/content-stored.schema.json"),
    ),
    (
        "image-upload.schema.json",
        include_str!("../../../schemas/api/image-upload.schema.json"),
    ),
    (
        "image-stored.schema.json",
        include_str!("../../../schemas/api/image-stored.schema.json"),
    ),
    (
        "image-job.schema.json",
        include_str!("../../../schemas/api/image-job.schema.json"),
    ),
    (
        "job-progress.schema.json",
        include_str!("../../../schemas/api/job-progress.schema.json"),
    ),
    (
        "error.schema.json",
        include_str!("../../../schemas/api/error.schema.json"),
    ),
    (
        "common.schema.json",
        include_str!("../../../schemas/api/common.schema.json"),
    ),
    (
        "model.schema.json",
        include_str!("../../../schemas/api/model.schema.json"),
    ),
];

/// The OpenAPI 3.1 document of the whole API.
pub const OPENAPI: &str = include_str!("../../../schemas/api/openapi.json");

/// Every body of the API that has a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `POST /v1/enroll` request.
    EnrollRequest,
    /// `POST /v1/enroll` answer.
    EnrollResponse,
    /// `POST /v1/challenge` request.
    ChallengeRequest,
    /// `POST /v1/challenge` answer.
    ChallengeResponse,
    /// `POST /v1/session` request.
    SessionRequest,
    /// `POST /v1/session` answer.
    SessionResponse,
    /// Answer of the `GET /v1/suites...` routes; its payload is checked by
    /// its kind.
    SignedEnvelope,
    /// Payload of a `suite-list` envelope.
    SuiteList,
    /// Payload of a `suite` envelope.
    SuiteDelivery,
    /// Payload of a `component` envelope.
    ComponentDelivery,
    /// `POST /v1/reports` request.
    StatusReport,
    /// `POST /v1/reports` answer.
    ReportAck,
    /// `POST /v1/reports/complete` request.
    SuiteComplete,
    /// `POST /v1/reports/complete` answer.
    Close,
    /// `GET /v1/health` answer.
    Health,
    /// `GET /v1/trust` answer.
    TrustAnnouncement,
    /// `POST /v1/content/missing` request.
    ContentOffer,
    /// `POST /v1/content/missing` answer.
    ContentWant,
    /// `PUT /v1/content/{sha256}` answer.
    ContentStored,
    /// `POST /v1/images` request.
    ImageUpload,
    /// `POST /v1/images` answer.
    ImageStored,
    /// Payload of an `image-job` envelope.
    ImageJob,
    /// `POST /v1/jobs/{job}/progress` request.
    JobProgress,
    /// The body of every answer that is not 2xx.
    ErrorBody,
}

impl MessageKind {
    /// Every message kind, in the order of [`SCHEMA_FILES`].
    pub const ALL: [MessageKind; 24] = [
        MessageKind::EnrollRequest,
        MessageKind::EnrollResponse,
        MessageKind::ChallengeRequest,
        MessageKind::ChallengeResponse,
        MessageKind::SessionRequest,
        MessageKind::SessionResponse,
        MessageKind::SignedEnvelope,
        MessageKind::SuiteList,
        MessageKind::SuiteDelivery,
        MessageKind::ComponentDelivery,
        MessageKind::StatusReport,
        MessageKind::ReportAck,
        MessageKind::SuiteComplete,
        MessageKind::Close,
        MessageKind::Health,
        MessageKind::TrustAnnouncement,
        MessageKind::ContentOffer,
        MessageKind::ContentWant,
        MessageKind::ContentStored,
        MessageKind::ImageUpload,
        MessageKind::ImageStored,
        MessageKind::ImageJob,
        MessageKind::JobProgress,
        MessageKind::ErrorBody,
    ];

    fn index(self) -> usize {
        // `ALL` lists every variant once, in declaration order.
        self as usize
    }

    /// The schema file name in `schemas/api`.
    pub fn schema_file(self) -> &'static str {
        SCHEMA_FILES[self.index()].0
    }

    /// The schema text.
    pub fn schema_text(self) -> &'static str {
        SCHEMA_FILES[self.index()].1
    }

    /// The schema's `$id`.
    pub fn schema_id(self) -> String {
        format!("{SCHEMA_BASE}{}", self.schema_file())
    }

    /// Whether the body is sent by machines (requests, refused when they
    /// carry unknown fields) rather than by roleoutd.
    pub fn is_request(self) -> bool {
        matches!(
            self,
            MessageKind::EnrollRequest
                | MessageKind::ChallengeRequest
                | MessageKind::SessionRequest
                | MessageKind::StatusReport
                | MessageKind::SuiteComplete
                | MessageKind::ContentOffer
                | MessageKind::ImageUpload
                | MessageKind::JobProgress
        )
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "enroll-request.schema.json" -> "enroll-request".
        let file = self.schema_file();
        f.write_str(file.strip_suffix(".schema.json").unwrap_or(file))
    }
}

/// A body type and the schema it is checked against.
pub trait Message: Serialize + DeserializeOwned {
    /// Its kind.
    const KIND: MessageKind;

    /// Parses a body: JSON text, then the schema, then the Rust type. An
    /// error names what is wrong and where.
    fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let Strict(value) =
            serde_json::from_slice(body).map_err(|source| ProtocolError::NotJson {
                kind: Self::KIND,
                line: source.line(),
                column: source.column(),
                reason: source.to_string(),
            })?;
        Self::from_value(value)
    }

    /// Checks a parsed body against the schema and converts it.
    fn from_value(value: Value) -> Result<Self, ProtocolError> {
        validate(Self::KIND, &value).map_err(|violations| ProtocolError::Schema {
            kind: Self::KIND,
            violations,
        })?;
        serde_json::from_value(value).map_err(|source| ProtocolError::Shape {
            kind: Self::KIND,
            reason: source.to_string(),
        })
    }
}

/// One thing wrong with a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer (RFC 6901) to the offending value; for a missing
    /// property, to where it should be; for an unknown property, to it.
    pub pointer: String,
    /// The schema keyword that refused it (`required`,
    /// `additionalProperties`, `maxLength`, `type`, `enum`, ...).
    pub keyword: String,
    /// What is wrong, in words; never quotes the offending value (it may be
    /// a secret or megabytes long).
    pub problem: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "(the body)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.problem)
    }
}

/// Longest problem text kept: unknown property names are quoted, and they
/// come from the client.
const MAX_PROBLEM_CHARS: usize = 300;

/// Checks `value` against the schema of `message`; on failure every
/// violation found, each with its JSON pointer.
pub fn validate(message: MessageKind, value: &Value) -> Result<(), Vec<SchemaViolation>> {
    let validators = match compiled() {
        Ok(validators) => validators,
        // The schemas are embedded and compiled by the tests; this is
        // reported rather than panicked on all the same.
        Err(reason) => {
            return Err(vec![SchemaViolation {
                pointer: String::new(),
                keyword: "$schema".to_owned(),
                problem: format!("the built-in API schemas do not compile: {reason}"),
            }]);
        }
    };
    let violations: Vec<SchemaViolation> = validators[message.index()]
        .iter_errors(value)
        .flat_map(violations_of)
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// The compiled validator of every message kind, in [`MessageKind::ALL`]
/// order, or why they could not be compiled.
fn compiled() -> Result<&'static [Validator], &'static str> {
    static VALIDATORS: OnceLock<Result<Vec<Validator>, String>> = OnceLock::new();
    VALIDATORS
        .get_or_init(compile)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(String::as_str)
}

fn compile() -> Result<Vec<Validator>, String> {
    static REGISTRY: OnceLock<Result<Registry<'static>, String>> = OnceLock::new();
    let registry = REGISTRY
        .get_or_init(|| {
            let mut resources = Vec::with_capacity(SCHEMA_FILES.len());
            for (file, text) in SCHEMA_FILES {
                let contents: Value = serde_json::from_str(text)
                    .map_err(|error| format!("{file} is not JSON: {error}"))?;
                resources.push((
                    format!("{SCHEMA_BASE}{file}"),
                    Resource::from_contents(contents),
                ));
            }
            Registry::new()
                .extend(resources)
                .and_then(|builder| builder.prepare())
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)?;
    MessageKind::ALL
        .iter()
        .map(|&kind| {
            let schema: Value = serde_json::from_str(kind.schema_text())
                .map_err(|error| format!("{} is not JSON: {error}", kind.schema_file()))?;
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(registry)
                .offline()
                .build(&schema)
                .map_err(|error| format!("{}: {error}", kind.schema_file()))
        })
        .collect()
}

/// Turns one validator error into violations: one per missing or unknown
/// property, so that each points at the property itself.
fn violations_of(error: ValidationError<'_>) -> Vec<SchemaViolation> {
    let pointer = error.instance_path().as_str().to_owned();
    let keyword = error
        .schema_path()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![SchemaViolation {
                pointer: format!("{pointer}/{}", escape_pointer(name)),
                keyword,
                problem: format!("required property {} is missing", quoted(name)),
            }]
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| SchemaViolation {
                pointer: format!("{pointer}/{}", escape_pointer(name)),
                keyword: keyword.clone(),
                problem: format!("unknown property {} is not allowed", quoted(name)),
            })
            .collect(),
        _ => {
            let problem: String = error
                .masked_with("the value")
                .to_string()
                .chars()
                .take(MAX_PROBLEM_CHARS)
                .collect();
            vec![SchemaViolation {
                pointer,
                keyword,
                problem,
            }]
        }
    }
}

/// RFC 6901 escaping of one pointer segment.
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A property name in quotes, cut to a readable length.
fn quoted(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    if short.len() < name.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// A JSON value read with every object key at most once: a body that says
/// the same key twice is refused, rather than one of the two silently
/// winning (which one differs between parsers, and so between what a
/// proxy checked and what roleoutd acts on).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_once() {
        let first = compiled().unwrap();
        assert_eq!(first.len(), MessageKind::ALL.len());
        assert!(std::ptr::eq(first, compiled().unwrap()));
    }

    #[test]
    fn kinds_and_files_line_up() {
        for (index, kind) in MessageKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), index);
            let schema: Value = serde_json::from_str(kind.schema_text()).unwrap();
            assert_eq!(schema["$id"], kind.schema_id(), "{kind}");
        }
    }

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(escape_pointer("a/b~c"), "a~1b~0c");
    }
}
