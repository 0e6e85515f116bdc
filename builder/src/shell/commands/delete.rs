//! `delete`: the shell's face of `crate::admin::lifecycle`.

use clap::{Args, ValueEnum, ValueHint};

use crate::admin::lifecycle::{self, Kind};

use super::{CommandError, Context, Flow, Run};

/// What kind of object `delete` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeleteKind {
    /// A product of the catalog.
    Product,
    /// A suite of the catalog.
    Suite,
    /// A role.
    Role,
    /// A machine.
    Machine,
    /// A group of machines.
    Group,
}

/// Delete a product, suite, role, machine or group.
///
/// Refused, with the list of what still uses it (suites listing a product,
/// products requiring it, groups that chose it, a role's children and
/// members, a machine's roles and group, a group's machines), unless
/// --force: then the references that would break are taken away and the
/// rest is listed. A suite's customizations and builds go with it, a
/// group's customizations with the group. Roleout deletes only machine
/// entries it made; an organisation's own entry is refused.
///
/// With --version, only that version of a product goes; the product's
/// other versions stay (the highest left becomes the one suites without
/// a version range get). Deleting its last version deletes the product.
///
/// Example: delete product mail-lite
#[derive(Debug, Args)]
pub struct Delete {
    /// What kind of object.
    #[arg(value_name = "KIND")]
    pub kind: DeleteKind,
    /// Its name.
    #[arg(value_name = "NAME", value_hint = ValueHint::Other)]
    pub name: String,
    /// Delete it although something still uses it.
    #[arg(long)]
    pub force: bool,
    /// Of a product, delete only this version.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
}

impl Run for Delete {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let kind = match self.kind {
            DeleteKind::Product => Kind::Product,
            DeleteKind::Suite => Kind::Suite,
            DeleteKind::Role => Kind::Role,
            DeleteKind::Machine => Kind::Machine,
            DeleteKind::Group => Kind::Group,
        };
        if self.version.is_some() && kind != Kind::Product {
            return Err(CommandError::Usage(
                "delete: --version applies to a product".to_owned(),
            ));
        }
        let connection = context.session.connection()?;
        let result = match &self.version {
            Some(version) => connection.block_on(lifecycle::delete_release(
                connection.directory(),
                &self.name,
                version,
                self.force,
                &mut context.output,
            )),
            None => connection.block_on(lifecycle::delete(
                connection.directory(),
                kind,
                &self.name,
                self.force,
                &mut context.output,
            )),
        };
        context.session.forget_names();
        result?;
        Ok(Flow::Continue)
    }
}
