//! `ls`, `cd`, `show` (`cat`), `find`, `tree` and `diff`: the shell's face
//! of `crate::admin::browse` and of the comparisons in
//! `crate::admin::versions`.

use clap::{Args, ValueEnum, ValueHint};

use crate::admin::CommandFailed;
use crate::admin::browse::{self, FindQuery, Node};
use crate::admin::versions::{self, Tag};
use crate::shell::session::Location;

use super::{CommandError, Context, Flow, Run};

/// Where `path` (relative to where the admin stands) leads, and the node
/// there.
fn resolve(context: &Context<'_>, path: Option<&str>) -> Result<(Location, Node), CommandError> {
    let location = match path {
        Some(path) => context.session.location().join(path),
        None => context.session.location().clone(),
    };
    let node = Node::at(location.components())?;
    Ok((location, node))
}

/// List what is at a place of the Roleout tree.
///
/// At / the four folders with how many objects each holds; in a folder
/// its objects (products and suites with version, slot count and how many
/// slot versions each role has; roles with rank and members; machines with
/// their enrolment); at a product or suite its slots with their versions
/// (`fileset: default, developer`) and a suite's members.
///
/// Example: ls /products
#[derive(Debug, Args)]
pub struct Ls {
    /// The place (default: where you are); absolute or relative, `..` goes up.
    #[arg(value_name = "PATH", value_hint = ValueHint::Other)]
    pub path: Option<String>,
}

impl Run for Ls {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let (_, node) = resolve(context, self.path.as_deref())?;
        let connection = context.session.connection()?;
        connection.block_on(browse::list(
            connection.directory(),
            &node,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}

/// Go to a place of the Roleout tree; the prompt shows where you are.
///
/// The tree is /products/ID, /suites/ID, /roles/NAME and /machines/NAME.
/// Paths are absolute or relative to where you are; `..` goes up. Going to
/// an object that does not exist is refused.
///
/// Example: cd /products/notes-client
#[derive(Debug, Args)]
pub struct Cd {
    /// The place (default: /).
    #[arg(value_name = "PATH", value_hint = ValueHint::Other)]
    pub path: Option<String>,
}

impl Run for Cd {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let (location, node) = resolve(context, Some(self.path.as_deref().unwrap_or("/")))?;
        let connection = context.session.connection()?;
        connection.block_on(browse::require(connection.directory(), &node))?;
        context.session.set_location(location);
        Ok(Flow::Continue)
    }
}

/// Show an object: a product or suite as descriptor XML, a role, a machine.
///
/// A product or suite shows as its canonical descriptor with every role
/// version; a role with its rank, parent and member machines; a machine
/// with its enrolment state, roles and facts. With --ldif, the LDAP
/// entries of a product, suite or role instead. A folder is listed as ls
/// does.
///
/// Example: show --ldif /products/notes-client
#[derive(Debug, Args)]
pub struct Show {
    /// The place (default: where you are).
    #[arg(value_name = "PATH", value_hint = ValueHint::Other)]
    pub path: Option<String>,
    /// Show the LDAP entries as LDIF.
    #[arg(long)]
    pub ldif: bool,
}

impl Run for Show {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let (_, node) = resolve(context, self.path.as_deref())?;
        let connection = context.session.connection()?;
        let directory = connection.directory();
        if self.ldif {
            connection.block_on(browse::show_ldif(directory, &node, &mut context.output))?;
        } else {
            connection.block_on(browse::show(directory, &node, &mut context.output))?;
        }
        Ok(Flow::Continue)
    }
}

/// The kinds of objects `find` can look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Products.
    Product,
    /// Suites.
    Suite,
    /// Roles.
    Role,
    /// Machines.
    Machine,
}

/// Find objects by kind, role and name pattern; prints their paths.
///
/// The pattern matches whole names, with `*` for any run of characters.
/// --role keeps products and suites with a version for that role (and
/// suites with members limited to it), the role and its child roles, and
/// the machines that are its members.
///
/// Example: find --kind product --role developer 'notes-*'
#[derive(Debug, Args)]
pub struct Find {
    /// Only objects of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// Only objects that concern this role.
    #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
    pub role: Option<String>,
    /// A name pattern, `*` matching any run of characters.
    #[arg(value_name = "NAME-PATTERN")]
    pub pattern: Option<String>,
}

impl Run for Find {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let query = FindQuery {
            kind: self.kind.map(|kind| {
                match kind {
                    Kind::Product => "product",
                    Kind::Suite => "suite",
                    Kind::Role => "role",
                    Kind::Machine => "machine",
                }
                .to_owned()
            }),
            role: self.role.clone(),
            pattern: self.pattern.clone(),
        };
        let connection = context.session.connection()?;
        connection.block_on(browse::find(
            connection.directory(),
            &query,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}

/// Show a suite, its members and each member's slots with their versions.
///
/// Each slot line lists its versions: `fileset: default, developer` means a
/// default file set and one for developers.
///
/// Example: tree domino
#[derive(Debug, Args)]
pub struct Tree {
    /// The suite.
    #[arg(value_name = "SUITE", value_hint = ValueHint::Other)]
    pub suite: String,
}

impl Run for Tree {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        connection.block_on(browse::tree(
            connection.directory(),
            &self.suite,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}

/// Compare two role versions of a slot, or a product as two roles get it.
///
/// With --slot: the canonical XML of the slot's version for --role against
/// its version for --against (default: the default version). Without
/// --slot, give --role twice: the whole product as the first role gets it
/// against the product as the second role gets it (roles are expanded
/// with their parents as the directory defines them; `default` stands for
/// a requester without roles). The output is a unified diff.
///
/// Example: diff notes-client --slot fileset --role developer
#[derive(Debug, Args)]
pub struct Diff {
    /// The product (or, with --slot, the suite).
    #[arg(value_name = "PRODUCT", value_hint = ValueHint::Other)]
    pub product: String,
    /// The slot to compare (fileset, install, variables...).
    #[arg(long, value_name = "SLOT")]
    pub slot: Option<String>,
    /// The role (or `default`); twice without --slot.
    #[arg(long = "role", value_name = "ROLE", value_hint = ValueHint::Other, required = true)]
    pub roles: Vec<String>,
    /// With --slot: the version to compare against (default: `default`).
    #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
    pub against: Option<String>,
}

impl Run for Diff {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let tags = self
            .roles
            .iter()
            .map(|role| Tag::parse(role))
            .collect::<Result<Vec<_>, CommandFailed>>()?;
        let connection = context.session.connection()?;
        let directory = connection.directory();
        match (&self.slot, tags.as_slice()) {
            (Some(slot), [role]) => {
                let against = Tag::parse(self.against.as_deref().unwrap_or("default"))?;
                connection.block_on(versions::diff_slot(
                    directory,
                    &self.product,
                    slot,
                    role,
                    &against,
                    &mut context.output,
                ))?;
            }
            (None, [first, second]) if self.against.is_none() => {
                connection.block_on(versions::diff_roles(
                    directory,
                    &self.product,
                    first,
                    second,
                    &mut context.output,
                ))?;
            }
            _ => {
                return Err(CommandError::Usage(
                    "diff: give --slot SLOT --role R [--against R2], or --role A --role B"
                        .to_owned(),
                ));
            }
        }
        Ok(Flow::Continue)
    }
}
