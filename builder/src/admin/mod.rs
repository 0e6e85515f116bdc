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
pub mod deploy;
pub mod groups;
pub mod images;
pub mod lifecycle;
pub mod machines;
pub mod plan;
pub mod roles;
pub mod scaffold;
pub mod status;
pub mod versions;

use std::fmt;

/// `text` that came from a machine (facts, evidence, log lines), made safe
/// to print on one line of an admin's terminal: control characters (an
/// escape sequence, a carriage return or a newline that would fake a line
/// of Roleout's own), C1 controls, DEL and the bidirectional overrides are
/// shown as `\u{..}` escapes, and a backslash as `\\`, so what is shown
/// reads back unambiguously.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        let code = u32::from(character);
        let dangerous = character.is_control()
            || (0x202a..=0x202e).contains(&code)
            || (0x2066..=0x2069).contains(&code)
            || code == 0x200e
            || code == 0x200f;
        if character == '\\' {
            out.push_str("\\\\");
        } else if dangerous {
            out.push_str(&format!("\\u{{{code:x}}}"));
        } else {
            out.push(character);
        }
    }
    out
}

/// The languages the admin asked for through the locale (`LANGUAGE`,
/// `LC_ALL`, `LC_MESSAGES`, `LANG`), most wanted first: what localized
/// labels and help are shown in.
pub fn admin_languages() -> Vec<String> {
    roleout_model::text::languages_from(|name| std::env::var(name).ok())
}

/// Where a command writes what it has to say: results on `out`,
/// diagnostics and warnings on `err`. Both may cross threads, so a
/// command may run on roleoutd's runtime (the dashboard's approvals) as
/// well as in the shell.
pub struct Output<'a> {
    /// Results.
    pub out: &'a mut (dyn std::io::Write + Send),
    /// Diagnostics.
    pub err: &'a mut (dyn std::io::Write + Send),
}

impl Output<'_> {
    /// Writes `text` to the results.
    pub fn write_text(&mut self, text: &str) -> Result<(), CommandFailed> {
        self.out
            .write_all(text.as_bytes())
            .map_err(|error| CommandFailed(format!("cannot write the answer: {error}")))
    }
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
