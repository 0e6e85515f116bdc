//! Integration tests of roleout-builder, one module per area.

mod admin_browse;
mod auth;
mod catalog;
mod shell;
