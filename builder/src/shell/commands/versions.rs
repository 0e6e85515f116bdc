//! `version create|edit|delete`: the shell's face of
//! `crate::admin::versions`. Each stores the object again (idempotent,
//! atomic) and refreshes the names completion offers.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueHint};
use roleout_model::ids::RoleName;

use crate::admin::CommandFailed;
use crate::admin::versions::{self, Tag};

use super::{CommandError, Context, Flow, Run};

/// Create, edit or delete the role version of a product or suite slot.
///
/// `version create ID SLOT --role R [--from default|ROLE]` copies a version
/// and tags the copy for R. `version edit ID SLOT --role R` opens the whole
/// descriptor, in which SLOT shows only R's version, in $VISUAL or $EDITOR
/// (default vi); on save the text is parsed and validated and only that
/// element may have changed. A refused edit stores nothing and stays in
/// its file, whose path is printed: `--resume FILE` continues from it.
/// `version delete ID SLOT --role R` takes R off its version; the only
/// version of a slot is never deleted (that would remove the slot; edit
/// the descriptor instead).
///
/// Example: version create notes-client install --role developer --from default
#[derive(Debug, Args)]
pub struct Version {
    /// What to do.
    #[command(subcommand)]
    pub action: VersionAction,
}

/// The `version` actions.
#[derive(Debug, Subcommand)]
pub enum VersionAction {
    /// Copy a version of a slot and tag the copy for a role.
    Create {
        /// The product or suite.
        #[arg(value_name = "PRODUCT", value_hint = ValueHint::Other)]
        object: String,
        /// The slot (fileset, install, variables, ...).
        #[arg(value_name = "SLOT")]
        slot: String,
        /// The role the new version is for.
        #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
        role: String,
        /// The version to copy: `default` or a role.
        #[arg(long, value_name = "ROLE", default_value = "default")]
        from: String,
    },
    /// Edit the version of a slot for a role in your editor.
    Edit {
        /// The product or suite.
        #[arg(value_name = "PRODUCT", value_hint = ValueHint::Other)]
        object: String,
        /// The slot.
        #[arg(value_name = "SLOT")]
        slot: String,
        /// The role whose version to edit (`default` for the default).
        #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
        role: String,
        /// Continue from an edit that was refused, kept in this file.
        #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        resume: Option<PathBuf>,
    },
    /// Delete the version of a slot for a role.
    Delete {
        /// The product or suite.
        #[arg(value_name = "PRODUCT", value_hint = ValueHint::Other)]
        object: String,
        /// The slot.
        #[arg(value_name = "SLOT")]
        slot: String,
        /// The role whose version to delete.
        #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
        role: String,
    },
}

fn role(name: &str) -> Result<RoleName, CommandFailed> {
    RoleName::new(name)
        .map_err(|error| CommandFailed(format!("{name:?} is not a role name: {error}")))
}

impl Run for Version {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        let result = match &self.action {
            VersionAction::Create {
                object,
                slot,
                role: name,
                from,
            } => connection.block_on(versions::create(
                directory,
                object,
                slot,
                &role(name)?,
                &Tag::parse(from)?,
                output,
            )),
            VersionAction::Edit {
                object,
                slot,
                role: name,
                resume,
            } => connection.block_on(versions::edit(
                directory,
                object,
                slot,
                &Tag::parse(name)?,
                resume.as_deref(),
                output,
            )),
            VersionAction::Delete {
                object,
                slot,
                role: name,
            } => connection.block_on(versions::delete(
                directory,
                object,
                slot,
                &role(name)?,
                output,
            )),
        };
        context.session.forget_names();
        result?;
        Ok(Flow::Continue)
    }
}
