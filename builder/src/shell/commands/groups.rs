//! `group create|add-machine|choose|list|export|import`: the shell's face
//! of `crate::admin::groups`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueHint};

use crate::admin::groups;

use super::{CommandError, Context, Flow, Run};

/// Define machine groups and the products chosen for them (Fig. 7).
///
/// `group create NAME [--suite S]` makes an empty group drawing from suite
/// S. `group add-machine GROUP MACHINE` puts a machine (named as in
/// /machines) in it; a machine is in one group. `group choose GROUP
/// PRODUCT...` sets the products chosen for the group (members of its
/// suite). `group list` lists the groups. `group export FILE` writes every
/// group with its machines' facts as an .ini file; `group import FILE`
/// reads one back, all or nothing, creating machines that have no entry.
///
/// Example: group create developers --suite domino
#[derive(Debug, Args)]
pub struct GroupCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: GroupAction,
}

/// The `group` actions.
#[derive(Debug, Subcommand)]
pub enum GroupAction {
    /// Create a group.
    Create {
        /// Its name.
        #[arg(value_name = "NAME")]
        name: String,
        /// The suite its products come from.
        #[arg(long, value_name = "SUITE", value_hint = ValueHint::Other)]
        suite: Option<String>,
    },
    /// Put a machine in a group.
    AddMachine {
        /// The group.
        #[arg(value_name = "GROUP", value_hint = ValueHint::Other)]
        group: String,
        /// The machine.
        #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
        machine: String,
    },
    /// Choose the products of a group (replacing its earlier choice).
    Choose {
        /// The group.
        #[arg(value_name = "GROUP", value_hint = ValueHint::Other)]
        group: String,
        /// The products.
        #[arg(value_name = "PRODUCT", value_hint = ValueHint::Other, required = true)]
        products: Vec<String>,
    },
    /// List every group.
    List,
    /// Write every group to an .ini file.
    Export {
        /// The file to write.
        #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
        file: PathBuf,
    },
    /// Read groups from an .ini file, all or nothing.
    Import {
        /// The file to read.
        #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
        file: PathBuf,
    },
}

impl Run for GroupCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        let result = match &self.action {
            GroupAction::Create { name, suite } => {
                connection.block_on(groups::create(directory, name, suite.as_deref(), output))
            }
            GroupAction::AddMachine { group, machine } => {
                connection.block_on(groups::add_machine(directory, group, machine, output))
            }
            GroupAction::Choose { group, products } => {
                connection.block_on(groups::choose(directory, group, products, output))
            }
            GroupAction::List => connection.block_on(groups::list(directory, output)),
            GroupAction::Export { file } => {
                connection.block_on(groups::export(directory, file, output))
            }
            GroupAction::Import { file } => {
                connection.block_on(groups::import(directory, file, output))
            }
        };
        if matches!(self.action, GroupAction::Import { .. }) {
            // An import may create machine entries.
            context.session.forget_names();
        }
        result?;
        Ok(Flow::Continue)
    }
}
