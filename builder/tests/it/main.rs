//! Integration tests of roleout-builder, one module per area.

mod auth;
mod catalog;
mod shell;
