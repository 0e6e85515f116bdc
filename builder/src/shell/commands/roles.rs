//! `role create|edit|list|add-member|remove-member`: the shell's face of
//! `crate::admin::roles`.

use clap::{Args, Subcommand, ValueHint};

use crate::admin::roles;

use super::{CommandError, Context, Flow, Run};

/// Create and list roles, and choose the machines that hold them.
///
/// `role create NAME --rank N [--parent P] [--description D]` makes a role
/// without members (a higher rank wins when a machine's roles each have a
/// version of a slot; a role also gets its parent's versions).
/// `role edit NAME [--rank N] [--parent P | --no-parent] [--description D]`
/// changes one (a parent that would make a cycle is refused; builds made
/// with the old rank are rebuilt before they are served again).
/// `role list` lists every role. `role add-member ROLE MACHINE` and
/// `role remove-member ROLE MACHINE` change who holds a role; the machine
/// is named as in /machines.
///
/// Example: role create developer --rank 10 --description "Software developers"
#[derive(Debug, Args)]
pub struct RoleCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: RoleAction,
}

/// The `role` actions.
#[derive(Debug, Subcommand)]
pub enum RoleAction {
    /// Create a role.
    Create {
        /// Its name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Its rank: higher wins.
        #[arg(long, value_name = "N")]
        rank: u32,
        /// The role it inherits versions from.
        #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
        parent: Option<String>,
        /// What it is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Change a role's rank, parent or description.
    Edit {
        /// Its name.
        #[arg(value_name = "NAME", value_hint = ValueHint::Other)]
        name: String,
        /// Its new rank.
        #[arg(long, value_name = "N")]
        rank: Option<u32>,
        /// Its new parent role.
        #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other, conflicts_with = "no_parent")]
        parent: Option<String>,
        /// Take its parent away.
        #[arg(long)]
        no_parent: bool,
        /// Its new description (empty removes it).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List every role.
    List,
    /// Make a machine a member of a role.
    AddMember {
        /// The role.
        #[arg(value_name = "ROLE", value_hint = ValueHint::Other)]
        role: String,
        /// The machine.
        #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
        machine: String,
    },
    /// Take a machine out of a role.
    RemoveMember {
        /// The role.
        #[arg(value_name = "ROLE", value_hint = ValueHint::Other)]
        role: String,
        /// The machine.
        #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
        machine: String,
    },
}

impl Run for RoleCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        let result = match &self.action {
            RoleAction::Create {
                name,
                rank,
                parent,
                description,
            } => connection.block_on(roles::create(
                directory,
                name,
                *rank,
                parent.as_deref(),
                description.as_deref(),
                output,
            )),
            RoleAction::Edit {
                name,
                rank,
                parent,
                no_parent,
                description,
            } => {
                let parent = match (parent, no_parent) {
                    (Some(parent), _) => roles::ParentChange::Set(parent),
                    (None, true) => roles::ParentChange::Remove,
                    (None, false) => roles::ParentChange::Keep,
                };
                connection.block_on(roles::edit(
                    directory,
                    name,
                    *rank,
                    parent,
                    description.as_deref(),
                    output,
                ))
            }
            RoleAction::List => connection.block_on(roles::list(directory, output)),
            RoleAction::AddMember { role, machine } => {
                connection.block_on(roles::add_member(directory, role, machine, output))
            }
            RoleAction::RemoveMember { role, machine } => {
                connection.block_on(roles::remove_member(directory, role, machine, output))
            }
        };
        if !matches!(self.action, RoleAction::List) {
            context.session.forget_names();
        }
        result?;
        Ok(Flow::Continue)
    }
}
