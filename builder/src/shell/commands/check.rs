//! `check FILE...`: the shell's face of `crate::admin::check`.

use std::path::PathBuf;

use clap::{Args, ValueHint};

use crate::admin::check::check_files;

use super::{CommandError, Context, Flow, Run};

/// Check descriptor files offline and print every problem.
///
/// Reads each file, prints every error and warning with its file, line,
/// column and element, and one line per valid file. Fails when any
/// file has an error; warnings do not fail it.
///
/// With --payloads DIR, each <file> of a file set is checked against
/// the file of its path in DIR, and one without sha256 and size gets
/// them from it (as import --payloads does).
///
/// Example: check examples/*.xml
#[derive(Debug, Args)]
pub struct Check {
    /// Descriptor files (XML).
    #[arg(required = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub files: Vec<PathBuf>,
    /// Folder holding the payload files the descriptors name.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub payloads: Option<PathBuf>,
}

impl Run for Check {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        check_files(&self.files, self.payloads.as_deref(), &mut context.output)?;
        Ok(Flow::Continue)
    }
}
