//! Integration tests of roleout-builder, one module per area.

// Test inputs are literals; a panic on one is the test failing.
#![allow(clippy::unwrap_used)]

mod admin_browse;
mod admin_more;
mod auth;
mod build;
mod cache;
mod catalog;
mod server;
mod shell;
mod shell_session;
mod support;
mod tmux;
