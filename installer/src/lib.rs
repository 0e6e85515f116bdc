//! Roleout's agent on managed machines.

pub mod cli;
pub mod client;
pub mod engine;
pub mod facts;
pub mod image;
pub mod inventory;
mod mounts;
pub mod progress;
pub mod rotation;
pub mod run;
pub mod state;

/// What `roleout --version` prints after the program's name: the package
/// version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROLEOUT_BUILD_COMMIT"),
    ")"
);
