//! `import` and `export`: the shell's face of `crate::admin::catalog`.

use std::path::PathBuf;

use clap::{Args, ValueHint};

use crate::admin::catalog;
use crate::shell::session::Target;

use super::{CommandError, Context, Flow, Run};

/// Store descriptors in the directory.
///
/// Reads every file (folders: every *.xml in them), checks them all, and
/// only then stores them: products first, then suites. Importing the
/// same files again changes nothing; a changed file updates only the
/// object versions that changed.
///
/// With --payloads DIR, the files each product's file sets name are
/// taken from DIR: a <file> without sha256 and size gets them from its
/// file there, one with them must agree with it; every file is put in
/// the content store roleoutd serves them from (STATE/content of the
/// state directory, or --content-dir). Nothing is stored unless every
/// descriptor and every payload checks.
///
/// Example: import examples/ --payloads examples/payloads/out
#[derive(Debug, Args)]
pub struct Import {
    /// Descriptor files or folders.
    #[arg(required = true, value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub paths: Vec<PathBuf>,
    /// Folder holding the payload files the descriptors name.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub payloads: Option<PathBuf>,
    /// The content store (default: STATE/content of --state-dir).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub content_dir: Option<PathBuf>,
}

impl Run for Import {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        // Read and check before connecting, so a broken file costs nothing.
        let files = catalog::descriptor_files(&self.paths)?;
        let descriptors =
            catalog::read_descriptors(&files, self.payloads.as_deref(), &mut context.output)?;
        if let Some(payloads) = &self.payloads {
            let content_dir = match (&self.content_dir, context.session.target()) {
                (Some(dir), _) => dir.clone(),
                (None, Target::StateDirectory(state)) => state.join("content"),
                (None, Target::Urls(_)) => {
                    return Err(CommandError::Usage(
                        "import: with --url, say where the content store is (--content-dir)"
                            .to_owned(),
                    ));
                }
            };
            catalog::import_payloads(&descriptors, payloads, &content_dir, &mut context.output)?;
        }
        let connection = context.session.connection()?;
        connection.block_on(catalog::store(
            connection.directory(),
            &descriptors,
            &mut context.output,
        ))?;
        context.session.forget_names();
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
