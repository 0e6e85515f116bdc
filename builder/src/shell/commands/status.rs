//! `status` and `machine list`: the shell's face of
//! `crate::admin::status`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueHint};

use crate::admin::status::{self, Logs};
use crate::content::ContentStore;
use crate::shell::session::Target;

use super::{CommandError, Context, Flow, Run};

/// Show what machines reported: a table per suite, or one machine's detail.
///
/// Without --machine: for each suite (or SUITE), one row per machine that
/// reported, the latest outcome of each component, and its run summary.
/// With --machine M: each component's latest step with its exit code,
/// duration and evidence, and the last 20 lines of each failed step's log,
/// read from the content store (STATE/content of the state directory, or
/// --content-dir).
///
/// Example: status --machine ws-dev-01
#[derive(Debug, Args)]
pub struct Status {
    /// The suite (every suite when left out).
    #[arg(value_name = "SUITE", value_hint = ValueHint::Other)]
    pub suite: Option<String>,
    /// Show this machine's components instead of the table.
    #[arg(long, value_name = "MACHINE", value_hint = ValueHint::Other)]
    pub machine: Option<String>,
    /// The content store holding the logs (default: STATE/content).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub content_dir: Option<PathBuf>,
}

impl Run for Status {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let content_dir = match (&self.content_dir, context.session.target()) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Target::StateDirectory(state)) => Some(state.join("content")),
            (None, Target::Urls(_)) => None,
        };
        let connection = context.session.connection()?;
        let directory = connection.directory();
        match &self.machine {
            Some(machine) => {
                if self.suite.is_some() {
                    return Err(CommandError::Usage(
                        "status: give SUITE or --machine M, not both".to_owned(),
                    ));
                }
                let logs = match content_dir.filter(|dir| dir.is_dir()) {
                    Some(dir) => Logs::Store(ContentStore::new(dir).map_err(|error| {
                        CommandError::Failed(format!("status: content store: {error}"))
                    })?),
                    None => Logs::Unavailable,
                };
                connection.block_on(status::machine_status(
                    directory,
                    machine,
                    &logs,
                    &mut context.output,
                ))?;
            }
            None => {
                connection.block_on(status::status(
                    directory,
                    self.suite.as_deref(),
                    &mut context.output,
                ))?;
            }
        }
        Ok(Flow::Continue)
    }
}

/// List machines with their roles, enrolment and last report.
///
/// `machine list` shows every machine: the roles it holds directly, its
/// enrolment state (pending, approved, disabled), whether it is enabled,
/// when it last authenticated, and its latest reported outcome.
///
/// Example: machine list
#[derive(Debug, Args)]
pub struct MachineCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: MachineAction,
}

/// The `machine` actions.
#[derive(Debug, Subcommand)]
pub enum MachineAction {
    /// List every machine.
    List,
}

impl Run for MachineCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        match self.action {
            MachineAction::List => connection.block_on(status::machine_list(
                connection.directory(),
                &mut context.output,
            ))?,
        }
        Ok(Flow::Continue)
    }
}
