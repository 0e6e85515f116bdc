//! `new-product`: the shell's face of `crate::admin::scaffold`.

use std::path::PathBuf;

use clap::{Args, ValueHint};

use crate::admin::scaffold::new_products;

use super::{CommandError, Context, Flow, Run};

/// Write a starting descriptor for a .deb, a tarball or a script.
///
/// Writes ID.xml into --output-dir (default: the current folder) for each
/// file, with what the file says about itself: a Debian package its name,
/// version, architecture, maintainer, summary and dependencies; a tarball
/// or a script its name and version from the file name (or --version).
/// A dependency on a package given in the same command becomes a
/// <prerequisite>, so a program and its libraries are scaffolded together
/// and a suite that names the program pulls in the libraries; any other
/// dependency becomes a <requires-system> on the system's dpkg. File
/// digests are left out: check and import fill them in with --payloads.
/// Each descriptor is checked before it is written; review it, then check
/// and import it.
///
/// Example: new-product dist/viewer_3.1_amd64.deb dist/libview_2.4_amd64.deb --output-dir descriptors
#[derive(Debug, Args)]
pub struct NewProduct {
    /// Payload files: .deb, tarballs (.tar.gz, .tgz, .tar.xz, .tar.zst,
    /// .tar.bz2, .tar) or scripts (.sh).
    #[arg(required = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub files: Vec<PathBuf>,
    /// The product's version (one file only; required for a script whose
    /// name has none).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Where to write the descriptors.
    #[arg(long, value_name = "DIR", default_value = ".", value_hint = ValueHint::DirPath)]
    pub output_dir: PathBuf,
    /// Replace descriptors that exist.
    #[arg(long)]
    pub force: bool,
}

impl Run for NewProduct {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        new_products(
            &self.files,
            self.version.as_deref(),
            &self.output_dir,
            self.force,
            &mut context.output,
        )?;
        Ok(Flow::Continue)
    }
}
