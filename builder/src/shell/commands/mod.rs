//! The commands of `roleout-admin`, each a clap definition plus a [`Run`]
//! implementation.
//!
//! Adding a command takes three small steps:
//! 1. a file here with a `#[derive(Debug, clap::Args)]` struct whose doc
//!    comment is the command's help (first paragraph: the one-line summary
//!    that `help` lists; then details and an `Example:` line, which a test
//!    requires), and an `impl Run` that does the work through
//!    `crate::admin` and writes to `context.output`;
//! 2. a `mod` line and a variant in [`Command`] below;
//! 3. an arm in [`Command::runner`].
//!
//! Arguments that name files get completion by being `PathBuf`s (or with
//! `value_hint = ValueHint::FilePath`); arguments that name directory
//! objects say `value_hint = ValueHint::Other` and a `value_name` (see
//! `NameKind`).

mod bind;
mod browse;
mod check;
mod customize;
mod delete;
mod deploy;
mod groups;
mod help;
mod images;
mod import;
mod machines;
mod plan;
mod roles;
mod scaffold;
mod status;
mod versions;

use std::fmt;

use clap::Subcommand;

use crate::admin::{CommandFailed, Output};

use super::prompt::Prompter;
use super::session::Session;

pub use bind::Bind;
pub use browse::{Cd, Diff, Find, Kind, Ls, Show, Tree};
pub use check::Check;
pub use customize::Customize;
pub use delete::{Delete, DeleteKind};
pub use deploy::{Deploy, JobAction, JobCommand, Targets};
pub use groups::{GroupAction, GroupCommand};
pub use help::{Exit, Help};
pub use images::{
    EngineAction, EngineCommand, ImageAction, ImageCommand, SourceAction, SourceCommand,
};
pub use import::{Export, Import};
pub use machines::{Approve, Build, Disable, EnrollToken};
pub use plan::Plan;
pub use roles::{RoleAction, RoleCommand};
pub use scaffold::NewProduct;
pub use status::{MachineAction, MachineCommand, Status};
pub use versions::{Version, VersionAction};

/// Every command of `roleout-admin`; the variant's name in kebab case is the
/// command's name, and the doc comment of its struct is its help.
// The variants carry no doc comments on purpose: clap would take them
// over the structs' doc comments, which are the commands' help.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum Command {
    Approve(Approve),
    Bind(Bind),
    Build(Build),
    Cd(Cd),
    Check(Check),
    Customize(Customize),
    Delete(Delete),
    Deploy(Deploy),
    Diff(Diff),
    Disable(Disable),
    EnrollToken(EnrollToken),
    Engine(EngineCommand),
    #[command(visible_alias = "quit")]
    Exit(Exit),
    Export(Export),
    Find(Find),
    Group(GroupCommand),
    Help(Help),
    Image(ImageCommand),
    Import(Import),
    Job(JobCommand),
    Ls(Ls),
    Machine(MachineCommand),
    NewProduct(NewProduct),
    Plan(Plan),
    Role(RoleCommand),
    #[command(visible_alias = "cat")]
    Show(Show),
    Source(SourceCommand),
    Status(Status),
    Targets(Targets),
    Tree(Tree),
    Version(Version),
}

impl Command {
    /// The implementation of this command.
    pub fn runner(&self) -> &dyn Run {
        match self {
            Command::Approve(command) => command,
            Command::Bind(command) => command,
            Command::Build(command) => command,
            Command::Cd(command) => command,
            Command::Check(command) => command,
            Command::Customize(command) => command,
            Command::Delete(command) => command,
            Command::Deploy(command) => command,
            Command::Diff(command) => command,
            Command::Disable(command) => command,
            Command::EnrollToken(command) => command,
            Command::Engine(command) => command,
            Command::Exit(command) => command,
            Command::Export(command) => command,
            Command::Find(command) => command,
            Command::Group(command) => command,
            Command::Help(command) => command,
            Command::Image(command) => command,
            Command::Import(command) => command,
            Command::Job(command) => command,
            Command::Ls(command) => command,
            Command::Machine(command) => command,
            Command::NewProduct(command) => command,
            Command::Plan(command) => command,
            Command::Role(command) => command,
            Command::Show(command) => command,
            Command::Source(command) => command,
            Command::Status(command) => command,
            Command::Targets(command) => command,
            Command::Tree(command) => command,
            Command::Version(command) => command,
        }
    }
}

/// What a command does when it runs.
pub trait Run {
    /// Runs the command; what it has to say goes to `context.output`.
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError>;

    /// Whether the line that ran this command may be kept in the history.
    /// A command that takes a secret on its command line says no.
    fn keep_in_history(&self) -> bool {
        true
    }
}

/// What a running command can use.
pub struct Context<'a> {
    /// The session, which commands may change.
    pub session: &'a mut Session,
    /// Where to write results and diagnostics.
    pub output: Output<'a>,
    /// How to ask the admin questions.
    pub prompter: &'a mut dyn Prompter,
}

/// What happens after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next command.
    Continue,
    /// Leave the shell or the script with this exit status.
    Exit(u8),
}

/// Why a command did not do its work.
///
/// By convention the message starts with the command's name (`check: ...`),
/// as `crate::admin` writes them; the shell adds it when it is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The command ran and failed (exit status 1).
    #[error("{0}")]
    Failed(String),
    /// The command was not understood: unknown command, bad option,
    /// missing argument, broken quoting (exit status 2).
    #[error("{0}")]
    Usage(String),
}

impl CommandError {
    /// The exit status of a script that this error stops.
    pub fn exit_status(&self) -> u8 {
        match self {
            CommandError::Failed(_) => 1,
            CommandError::Usage(_) => 2,
        }
    }

    /// The message, starting with `command: ` (added when missing).
    pub fn message_for(&self, command: &str) -> String {
        let message = match self {
            CommandError::Failed(message) | CommandError::Usage(message) => message,
        };
        if command.is_empty() || message.starts_with(&format!("{command}: ")) {
            message.clone()
        } else {
            format!("{command}: {message}")
        }
    }
}

impl From<CommandFailed> for CommandError {
    fn from(failed: CommandFailed) -> CommandError {
        CommandError::Failed(failed.0)
    }
}

/// Writing to the admin's terminal or to a pipe failed; the command cannot
/// report, so it fails.
pub(crate) fn write_failed(command: &str, error: impl fmt::Display) -> CommandError {
    CommandError::Failed(format!("{command}: cannot write the output: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_command_once() {
        let failed = CommandError::Failed(String::from("check: 1 of 2 file(s) have errors"));
        assert_eq!(
            failed.message_for("check"),
            "check: 1 of 2 file(s) have errors"
        );
        let usage = CommandError::Usage(String::from("unexpected argument '--x'"));
        assert_eq!(
            usage.message_for("check"),
            "check: unexpected argument '--x'"
        );
        assert_eq!((failed.exit_status(), usage.exit_status()), (1, 2));
    }
}
