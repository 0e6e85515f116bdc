//! Integration tests of the roleout-builder crate, one module per area.

mod auth;
mod server;
mod support;
