//! The catalog part of Roleout's schema (products, suites, builds,
//! reports): attribute types numbered 100 and up, object classes 50 and up.
//! `schema.rs` concatenates these tables after the roles and machines ones.

use crate::schema::{AttributeType, ObjectClass};

/// The catalog's attribute types (numbers 100+).
pub(crate) const CATALOG_ATTRIBUTES: &[AttributeType] = &[];

/// The catalog's object classes (numbers 50+).
pub(crate) const CATALOG_CLASSES: &[ObjectClass] = &[];
