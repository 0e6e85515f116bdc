//! Integration tests of roleout-installer: real child processes, real
//! files, one module per area.

// Test inputs are literals; a panic on one is the test failing.
#![allow(clippy::unwrap_used)]

mod cli;
mod engine;
mod runner;
mod server;
mod state;
