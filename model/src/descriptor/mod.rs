//! The XML descriptor format: how package authors write products and
//! suites, and how Roleout reads and writes them.
//!
//! Descriptors come from outside (an author's editor, an import, a file
//! someone mailed), so reading one is built for hostile input: the text is
//! size-limited and must be UTF-8; a DOCTYPE is refused outright, so there
//! is no DTD, no entity expansion and no external reference (only the five
//! predefined entities and numeric character references exist); depth,
//! element count and attribute sizes are bounded; and nothing panics on any
//! bytes. Reading happens in three passes:
//!
//! 1. `dom` turns the bytes into a small tree of elements, each with its
//!    line and column, enforcing the limits as it goes (a syntax error stops
//!    here, since nothing after it can be trusted);
//! 2. `read` converts the tree into a [`ProductSource`] or
//!    [`SuiteSource`], collecting every problem it finds with its position
//!    and element path, then cross-checks the descriptor as a whole;
//! 3. `schema` validates the serde JSON form of the result against
//!    `schemas/descriptor.schema.json`, the contract of the parsed model.
//!
//! [`to_xml`] writes the canonical form back, so that
//! `parse(to_xml(d)) == d`. The element reference for authors is
//! `model/DESCRIPTOR.md`.

mod dom;
mod read;
mod schema;
mod write;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Sha256;
use crate::product::ProductSource;
use crate::suite::SuiteSource;

pub use read::roleout_arch;
pub use schema::descriptor_schema;

/// The XML namespace every descriptor's root element must declare.
pub const NAMESPACE: &str = "urn:roleout:descriptor:1";

/// Largest accepted descriptor, in bytes. A real one is a few kilobytes;
/// the bound keeps a hostile file from holding memory.
pub const MAX_SIZE: usize = 4 * 1024 * 1024;

/// Deepest accepted element nesting (conditions nest; nothing else goes
/// past six levels).
pub const MAX_DEPTH: usize = 32;

/// Most elements accepted in one descriptor.
pub const MAX_ELEMENTS: usize = 20_000;

/// Most attributes accepted on one element.
pub const MAX_ATTRIBUTES: usize = 32;

/// Longest accepted attribute value, in bytes (after entity replacement).
pub const MAX_ATTRIBUTE_LENGTH: usize = 8 * 1024;

/// A product or a suite, as a descriptor describes it. Serializes to JSON
/// as `{"product": {...}}` or `{"suite": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Descriptor {
    /// A `<product>` descriptor.
    Product(ProductSource),
    /// A `<suite>` descriptor.
    Suite(SuiteSource),
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The descriptor is refused.
    Error,
    /// The descriptor is accepted, but something in it deserves a look.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a descriptor, with where it is.
///
/// Displays as `FILE:LINE:COLUMN: error: MESSAGE (at PATH)`, where PATH is
/// the element path (`/product/install/outcome@success-codes`; an index in
/// brackets picks one of several elements of the same name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {severity}: {message} (at {path})")]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name the caller gave.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
    /// Element path, with `@attribute` when the problem is in one.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

/// The result of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The descriptor; `Some` only when there is no error diagnostic.
    pub descriptor: Option<Descriptor>,
    /// Every problem found, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|diagnostic| diagnostic.severity == Severity::Error)
    }

    /// The error diagnostics, in document order.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity == Severity::Error)
    }
}

/// Reads a descriptor. `file_name` only labels the diagnostics. Every
/// problem that can be found is reported, not just the first; a syntax
/// error or a broken limit stops reading, since nothing after it can be
/// trusted.
pub fn parse(file_name: &str, text: &[u8]) -> Parsed {
    parse_with(file_name, text, None)
}

/// The payload folder a descriptor is read with, as [`parse_with`] asks
/// about it. The program that reads files implements it; the model only
/// asks.
pub trait PayloadFolder {
    /// The SHA-256 and size of the file at `path` (relative, already
    /// checked to be a plain path) in the folder; `Err` says why it cannot
    /// be read (missing, not a file, an I/O error).
    fn digest_and_size(&self, path: &str) -> Result<(Sha256, u64), String>;
}

/// [`parse`], with the product's payload folder: a `<file>` that leaves
/// out `sha256` and `size` gets them from the file of that path in
/// `payloads`, and one that gives them must agree with the file there (a
/// stale digest after a new build of the payload is an error at its line,
/// not a failed download on a machine). Without a folder, leaving them out
/// is an error that says how to fill them.
pub fn parse_with(file_name: &str, text: &[u8], payloads: Option<&dyn PayloadFolder>) -> Parsed {
    let mut diagnostics = Vec::new();
    let descriptor = match dom::Document::parse(text) {
        Ok(document) => {
            let mut reader = read::Reader::new(file_name, &document, payloads);
            let descriptor = reader.descriptor();
            diagnostics = reader.into_diagnostics();
            let has_errors = diagnostics
                .iter()
                .any(|diagnostic| diagnostic.severity == Severity::Error);
            match descriptor {
                Some(descriptor) if !has_errors => {
                    let schema_errors = schema::check(&descriptor);
                    if schema_errors.is_empty() {
                        Some(descriptor)
                    } else {
                        let root = document.root();
                        for message in schema_errors {
                            diagnostics.push(Diagnostic {
                                severity: Severity::Error,
                                file: file_name.to_owned(),
                                line: root.line,
                                column: root.column,
                                path: format!("/{}", root.name),
                                message,
                            });
                        }
                        None
                    }
                }
                _ => None,
            }
        }
        Err(error) => {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                file: file_name.to_owned(),
                line: error.line,
                column: error.column,
                path: error.path,
                message: error.message,
            });
            None
        }
    };
    // Document order; the sort is stable, so problems found at one place
    // keep the order they were found in.
    diagnostics.sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
    let descriptor = if diagnostics
        .iter()
        .any(|diagnostic| diagnostic.severity == Severity::Error)
    {
        None
    } else {
        descriptor
    };
    Parsed {
        descriptor,
        diagnostics,
    }
}

/// Writes the canonical descriptor text: the namespace declared on the
/// root, slots in the order of [`crate::product::ProductSlot::ALL`] (or
/// [`crate::suite::SuiteSlot::ALL`]), two-space indentation, defaults left
/// out. `parse(to_xml(d))` gives back `d` for every descriptor that
/// [`parse`] can produce.
pub fn to_xml(descriptor: &Descriptor) -> String {
    write::descriptor(descriptor)
}
