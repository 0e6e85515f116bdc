//! Roleout's server side: building role suites, serving them, and the admin shell.

pub mod auth;
