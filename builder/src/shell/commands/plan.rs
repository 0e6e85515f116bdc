//! `plan`: the shell's face of `crate::admin::plan`.

use clap::{Args, ValueHint};

use crate::admin::plan;

use super::{CommandError, Context, Flow, Run};

/// Show what a machine would get, in install order, and why.
///
/// Takes the machine's roles (with the roles they inherit from), the
/// current build of the suite for that role set (building it first when
/// it is stale), and resolves it for the machine's OS and architecture,
/// or for the products chosen for its group. Prints one line per
/// component: its place, product and version, why it is in the plan, and
/// which role's version of each object it gets (`fileset: developer,
/// install: default`).
///
/// Example: plan ws-dev-01 domino
#[derive(Debug, Args)]
pub struct Plan {
    /// The machine.
    #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
    pub machine: String,
    /// The suite (every suite when left out).
    #[arg(value_name = "SUITE", value_hint = ValueHint::Other)]
    pub suite: Option<String>,
}

impl Run for Plan {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        connection.block_on(plan::plan(
            connection.directory(),
            &self.machine,
            self.suite.as_deref(),
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}
