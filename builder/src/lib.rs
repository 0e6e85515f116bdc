//! Roleout's server side: building role suites (Figs. 8-9), serving them
//! to machines that prove who they are (Fig. 10), taking their reports, and
//! the admin shell `roleout-admin`.

pub mod admin;
pub mod auth;
pub mod build;
pub mod content;
pub mod delivery;
pub mod server;
pub mod shell;
pub mod ui;

/// What `roleoutd --version` and `roleout-admin --version` print after
/// the program's name: the package version and the commit it was built
/// from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROLEOUT_BUILD_COMMIT"),
    ")"
);
