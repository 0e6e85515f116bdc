//! The commands of `roleout-admin`, shared by its one-shot command line,
//! its scripts (`-c`, standard input) and its interactive shell.
//!
//! Each command writes what the admin sees to the `Output` it is given
//! and returns an error for the binary to print; nothing here prints
//! directly, so the shell and the tests can capture everything.

pub mod browse;
pub mod build;
pub mod catalog;
pub mod check;
pub mod customize;
pub mod groups;
pub mod lifecycle;
pub mod machines;
pub mod plan;
pub mod roles;
pub mod status;
pub mod versions;

use std::fmt;

/// The languages the admin asked for through the locale (`LANGUAGE`,
/// `LC_ALL`, `LC_MESSAGES`, `LANG`), most wanted first: what localized
/// labels and help are shown in.
pub fn admin_languages() -> Vec<String> {
    roleout_model::text::languages_from(|name| std::env::var(name).ok())
}

/// Where a command writes what it has to say: results on `out`,
/// diagnostics and warnings on `err`.
pub struct Output<'a> {
    /// Results.
    pub out: &'a mut dyn std::io::Write,
    /// Diagnostics.
    pub err: &'a mut dyn std::io::Write,
}

/// A command failed; the message is one plain line for the admin.
#[derive(Debug)]
pub struct CommandFailed(pub String);

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandFailed {}
