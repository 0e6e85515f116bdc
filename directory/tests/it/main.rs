//! Integration tests of the directory crate, each against its own real
//! slapd (`LocalDirectory::temporary()`), so they run in parallel.

mod catalog;
mod injection;
mod machines;
mod outage;
mod roles;
mod schema;
mod slapd;
