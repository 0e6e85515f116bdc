//! Roleout's object model.
//!
//! The classes of Figs. 3 and 4 of the design (ProductModel, Suite and
//! everything they contain), role versions and their selection, the XML
//! descriptor format, variable validation and command-line rendering, and
//! resolution of dependencies into an install plan.
//!
//! This crate is pure: it parses text it is handed and computes; it opens
//! no file, socket or process. Higher crates feed it what they read.

pub mod assemble;
pub mod command;
pub mod condition;
pub mod descriptor;
pub mod disk;
pub mod ids;
pub mod image;
pub mod inventory;
pub mod job;
pub mod keys;
pub mod lease;
pub mod machine;
pub mod pattern;
pub mod product;
pub mod protocol;
pub mod render;
pub mod resolve;
pub mod role;
pub mod suite;
pub mod text;
pub mod tree;
pub mod validate;
pub mod variable;
pub mod version;
