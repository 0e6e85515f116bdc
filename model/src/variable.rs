//! VariableModel: configuration variables of products and suites, their
//! validation rules, and values that may be secret.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::ids::VariableName;
use crate::pattern::Pattern;
use crate::text::LocalizedText;

/// The type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VariableKind {
    /// Free text, checked by the rules.
    String,
    /// `true` or `false`.
    Boolean,
    /// A signed integer, optionally within `min`/`max`.
    Integer,
    /// A secret: never logged, never echoed, redacted in reports.
    Password,
    /// One of `choices`.
    Choice,
    /// A file-system path (absolute unless `relative` is allowed).
    Path,
}

impl VariableKind {
    /// Every kind.
    pub const ALL: [VariableKind; 6] = [
        VariableKind::String,
        VariableKind::Boolean,
        VariableKind::Integer,
        VariableKind::Password,
        VariableKind::Choice,
        VariableKind::Path,
    ];

    /// The element name used in descriptors.
    pub fn as_str(self) -> &'static str {
        match self {
            VariableKind::String => "string",
            VariableKind::Boolean => "boolean",
            VariableKind::Integer => "integer",
            VariableKind::Password => "password",
            VariableKind::Choice => "choice",
            VariableKind::Path => "path",
        }
    }
}

/// Rules a value must follow. Every field is optional; which ones make
/// sense depends on the kind (`check` refuses `min` on a string).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ValidationRules {
    /// Shortest accepted value, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// Longest accepted value, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// If set, every character must be one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_chars: Option<String>,
    /// No character may be one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbidden_chars: Option<String>,
    /// The whole value must match (anchored at both ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// Smallest accepted integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest accepted integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// The accepted values of a choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// A path may be relative.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relative: bool,
    /// Names of custom validators (registered by the program that
    /// validates) that must accept the value too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<String>,
}

/// One configuration variable (VariableModel of Figs. 3 and 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VariableModel {
    /// Its name, as templates use it.
    pub name: VariableName,
    /// Its type.
    pub kind: VariableKind,
    /// The default value; none for a password (a secret does not belong in
    /// a catalog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A value must be given (a default counts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Label shown when asking for it.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub label: LocalizedText,
    /// Validation rules.
    #[serde(default)]
    pub rules: ValidationRules,
}

/// Text shown in place of a secret.
pub const REDACTED: &str = "********";

/// A value of a variable. Secrets print, debug-print and serialize as
/// [`REDACTED`]; only [`Value::expose`] gives their text, and only code that
/// hands them to the command that needs them calls it.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A value that may be shown.
    Plain(String),
    /// A password's value.
    Secret(String),
}

impl Value {
    /// The real text, secret or not.
    pub fn expose(&self) -> &str {
        match self {
            Value::Plain(text) | Value::Secret(text) => text,
        }
    }

    /// True for a secret.
    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(text) => f.write_str(text),
            Value::Secret(_) => f.write_str(REDACTED),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(text) => write!(f, "Plain({text:?})"),
            Value::Secret(_) => write!(f, "Secret({REDACTED})"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Plain(text) => serializer.serialize_str(text),
            Value::Secret(_) => serializer.serialize_str(REDACTED),
        }
    }
}
