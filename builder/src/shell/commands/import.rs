//! `import` and `export`: the shell's face of `crate::admin::catalog`.

use std::path::PathBuf;

use clap::{Args, ValueHint};

use crate::admin::catalog;

use super::{CommandError, Context, Flow, Run};

/// Store descriptors in the directory.
///
/// Reads every file (folders: every *.xml in them), checks them all, and
/// only then stores them: products first, then suites. Importing the
/// same files again changes nothing; a changed file updates only the
/// object versions that changed.
///
/// Example: import examples/
#[derive(Debug, Args)]
pub struct Import {
    /// Descriptor files or folders.
    #[arg(required = true, value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub paths: Vec<PathBuf>,
}

impl Run for Import {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        // Read and check before connecting, so a broken file costs nothing.
        let files = catalog::descriptor_files(&self.paths)?;
        let descriptors = catalog::read_descriptors(&files, &mut context.output)?;
        let connection = context.session.connection()?;
        connection.block_on(catalog::store(
            connection.directory(),
            &descriptors,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}

/// Write the catalog back out as descriptors.
///
/// Writes one ID.xml per product and suite-ID.xml per suite into FOLDER
/// (created if missing); with --ldif also catalog.ldif, which ldapadd
/// accepts.
///
/// Example: export --ldif /tmp/catalog
#[derive(Debug, Args)]
pub struct Export {
    /// The folder to write into.
    #[arg(value_name = "FOLDER", value_hint = ValueHint::DirPath)]
    pub folder: PathBuf,
    /// Also write the catalog as LDIF.
    #[arg(long)]
    pub ldif: bool,
}

impl Run for Export {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        connection.block_on(catalog::export(
            connection.directory(),
            &self.folder,
            self.ldif,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}
