//! `check FILE...`: the shell's face of `crate::admin::check`.

use std::path::PathBuf;

use clap::{Args, ValueHint};

use crate::admin::check::check_files;

use super::{CommandError, Context, Flow, Run};

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct Check {
    /// Descriptor files (XML).
    #[arg(required = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub files: Vec<PathBuf>,
}

impl Run for Check {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        check_files(&self.files, &mut context.output)?;
        Ok(Flow::Continue)
    }
}
