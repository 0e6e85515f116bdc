//! `source add|remove|list`, `image list|show|remove` and `engine list`:
//! the shell's face of `crate::admin::images`.

use clap::{Args, Subcommand, ValueHint};

use crate::admin::images;

use super::{CommandError, Context, Flow, Run};

/// Choose the machines that may upload images of themselves.
///
/// `source add MACHINE` makes an enrolled machine an imaging source: from
/// its next request, `roleout image capture --name NAME` on it uploads an
/// image of its system (only the files roleoutd lacks travel).
/// `source remove MACHINE` takes that away (its images stay).
/// `source list` lists the sources.
///
/// Example: source add web-1
#[derive(Debug, Args)]
pub struct SourceCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: SourceAction,
}

/// The `source` actions.
#[derive(Debug, Subcommand)]
pub enum SourceAction {
    /// Make a machine an imaging source.
    Add {
        /// The machine.
        #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
        machine: String,
    },
    /// Make a machine no longer an imaging source.
    Remove {
        /// The machine.
        #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
        machine: String,
    },
    /// List the imaging sources.
    List,
}

impl Run for SourceCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        let result = match &self.action {
            SourceAction::Add { machine } => {
                connection.block_on(images::set_source(directory, machine, true, output))
            }
            SourceAction::Remove { machine } => {
                connection.block_on(images::set_source(directory, machine, false, output))
            }
            SourceAction::List => connection.block_on(images::list_sources(directory, output)),
        };
        result?;
        Ok(Flow::Continue)
    }
}

/// List, show and remove the images captured from imaging sources.
///
/// `image list` lists every image: its source, size, OS and manifest.
/// `image show NAME` shows what it holds: the source's hardware, its OS
/// with packages, network flavour and kernels, its file systems, and the
/// rule a target's hardware must meet. `image rule NAME strict` keeps the
/// source document's rule (the same hardware key); `image rule NAME
/// arch,firmware` asks only those facts to be equal, and leaves the rest
/// to the disk and driver checks. `image remove NAME` removes it (its
/// files leave roleoutd's store at the next collection, unless another
/// image names them).
///
/// Example: image show web-2026.12
#[derive(Debug, Args)]
pub struct ImageCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: ImageAction,
}

/// The `image` actions.
#[derive(Debug, Subcommand)]
pub enum ImageAction {
    /// List every image.
    List,
    /// Show one image.
    Show {
        /// The image.
        #[arg(value_name = "IMAGE", value_hint = ValueHint::Other)]
        name: String,
    },
    /// Set the rule a target's hardware must meet: `strict`, or facts (`arch,firmware`).
    Rule {
        /// The image.
        #[arg(value_name = "IMAGE", value_hint = ValueHint::Other)]
        name: String,
        /// `strict`, or the hardware facts a target must share, comma-separated.
        #[arg(value_name = "RULE")]
        rule: String,
    },
    /// Remove an image.
    Remove {
        /// The image.
        #[arg(value_name = "IMAGE", value_hint = ValueHint::Other)]
        name: String,
    },
}

impl Run for ImageCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        let result = match &self.action {
            ImageAction::List => connection.block_on(images::list(directory, output)),
            ImageAction::Show { name } => {
                connection.block_on(images::show(directory, name, output))
            }
            ImageAction::Rule { name, rule } => {
                connection.block_on(images::set_rule(directory, name, rule, output))
            }
            ImageAction::Remove { name } => {
                connection.block_on(images::remove(directory, name, output))
            }
        };
        result?;
        Ok(Flow::Continue)
    }
}

/// List the installation engines.
///
/// Each roleoutd started with --engine NAME registers itself under
/// ou=engines: its name, URL and when it last started. Machines that
/// authenticate with an engine are recorded as reached through it.
///
/// Example: engine list
#[derive(Debug, Args)]
pub struct EngineCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: EngineAction,
}

/// The `engine` actions.
#[derive(Debug, Subcommand)]
pub enum EngineAction {
    /// List every installation engine.
    List,
}

impl Run for EngineCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        match &self.action {
            EngineAction::List => connection.block_on(images::list_engines(directory, output))?,
        }
        Ok(Flow::Continue)
    }
}
