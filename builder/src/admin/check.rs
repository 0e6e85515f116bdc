//! `roleout-admin check FILE...`: checks descriptors offline, as package
//! authors do before handing them over. Every problem of every file is
//! printed (file:line:column, element path, message), not just the first;
//! the command fails when any file has an error. Warnings do not fail it.

use std::io::Write;
use std::path::{Path, PathBuf};

use roleout_model::descriptor::{self, Descriptor, Severity};

use super::{CommandFailed, Output};

/// What a check found, for callers that want more than the printout.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckSummary {
    /// Files that parsed without error.
    pub valid: usize,
    /// Files with at least one error.
    pub invalid: usize,
    /// Errors over all files.
    pub errors: usize,
    /// Warnings over all files.
    pub warnings: usize,
}

/// Reads and checks every file, printing each diagnostic to `output.err`
/// and one line per valid file to `output.out`.
pub fn check_files(
    files: &[PathBuf],
    output: &mut Output<'_>,
) -> Result<CheckSummary, CommandFailed> {
    if files.is_empty() {
        return Err(CommandFailed(
            "check: name at least one descriptor file (e.g. examples/*.xml)".to_owned(),
        ));
    }
    let mut summary = CheckSummary::default();
    for file in files {
        check_one(file, output, &mut summary).map_err(|error| {
            CommandFailed(format!("check: cannot write the report: {error}"))
        })?;
    }
    let _ = writeln!(
        output.out,
        "{} file(s) checked: {} valid, {} with errors ({} error(s), {} warning(s))",
        files.len(),
        summary.valid,
        summary.invalid,
        summary.errors,
        summary.warnings
    );
    if summary.invalid > 0 {
        return Err(CommandFailed(format!(
            "check: {} of {} file(s) have errors",
            summary.invalid,
            files.len()
        )));
    }
    Ok(summary)
}

fn check_one(
    file: &Path,
    output: &mut Output<'_>,
    summary: &mut CheckSummary,
) -> std::io::Result<()> {
    let name = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => {
            writeln!(output.err, "{name}: error: cannot read the file: {error}")?;
            summary.invalid += 1;
            summary.errors += 1;
            return Ok(());
        }
    };
    let parsed = descriptor::parse(&name, &bytes);
    let mut errors = 0;
    for diagnostic in &parsed.diagnostics {
        writeln!(output.err, "{diagnostic}")?;
        match diagnostic.severity {
            Severity::Error => errors += 1,
            Severity::Warning => summary.warnings += 1,
        }
    }
    summary.errors += errors;
    match (&parsed.descriptor, errors) {
        (Some(descriptor), 0) => {
            summary.valid += 1;
            let what = match descriptor {
                Descriptor::Product(product) => {
                    format!("product {} {}", product.id, product.version)
                }
                Descriptor::Suite(suite) => format!(
                    "suite {} {} ({} products)",
                    suite.id,
                    suite.version,
                    suite.members.len()
                ),
            };
            writeln!(output.out, "{name}: ok: {what}")?;
        }
        _ => summary.invalid += 1,
    }
    Ok(())
}
