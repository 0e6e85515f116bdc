//! `roleout-admin check FILE...`: checks descriptors offline, as package
//! authors do before handing them over. Every problem of every file is
//! printed (file:line:column, element path, message), not just the first;
//! the command fails when any file has an error. Warnings do not fail it.
//!
//! When the files include a suite, the suite is also assembled from the
//! products given beside it and resolved, once with no role and once for
//! every role the descriptors name, so that a missing product, a conflict,
//! an unmet requirement, a cycle or an ambiguous role version shows up
//! before the catalog reaches the directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use roleout_model::assemble::assemble_suite;
use roleout_model::descriptor::{self, Descriptor, Severity};
use roleout_model::ids::RoleName;
use roleout_model::product::ProductSource;
use roleout_model::resolve::resolve_suite;
use roleout_model::role::EffectiveRoles;

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
    payloads: Option<&Path>,
    output: &mut Output<'_>,
) -> Result<CheckSummary, CommandFailed> {
    let folder = payloads.map(|payloads| crate::content::PayloadDir(payloads.to_owned()));
    if files.is_empty() {
        return Err(CommandFailed(
            "check: name at least one descriptor file (e.g. examples/*.xml)".to_owned(),
        ));
    }
    let mut summary = CheckSummary::default();
    let mut loaded = Vec::new();
    let report_error =
        |error: std::io::Error| CommandFailed(format!("check: cannot write the report: {error}"));
    for file in files {
        let folder = folder
            .as_ref()
            .map(|folder| folder as &dyn descriptor::PayloadFolder);
        if let Some(descriptor) =
            check_one(file, folder, output, &mut summary).map_err(report_error)?
        {
            loaded.push((file.display().to_string(), descriptor));
        }
    }
    check_suites(&loaded, output, &mut summary).map_err(report_error)?;
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

/// Checks one file; returns its descriptor when it has no error.
fn check_one(
    file: &Path,
    payloads: Option<&dyn descriptor::PayloadFolder>,
    output: &mut Output<'_>,
    summary: &mut CheckSummary,
) -> std::io::Result<Option<Descriptor>> {
    let name = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => {
            writeln!(output.err, "{name}: error: cannot read the file: {error}")?;
            summary.invalid += 1;
            summary.errors += 1;
            return Ok(None);
        }
    };
    let parsed = descriptor::parse_with(&name, &bytes, payloads);
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
            Ok(parsed.descriptor)
        }
        _ => {
            summary.invalid += 1;
            Ok(None)
        }
    }
}

/// Assembles and resolves every suite among the valid files for no role
/// and for each role named anywhere, reporting problems against the
/// suite's file. Roles are taken one at a time: how roles rank against
/// each other is the directory's business, not the descriptors'.
fn check_suites(
    loaded: &[(String, Descriptor)],
    output: &mut Output<'_>,
    summary: &mut CheckSummary,
) -> std::io::Result<()> {
    let products: Vec<ProductSource> = loaded
        .iter()
        .filter_map(|(_, descriptor)| match descriptor {
            Descriptor::Product(product) => Some(product.clone()),
            Descriptor::Suite(_) => None,
        })
        .collect();
    let mut roles: BTreeSet<RoleName> = BTreeSet::new();
    for (_, descriptor) in loaded {
        match descriptor {
            Descriptor::Product(product) => roles.extend(product.tagged_roles()),
            Descriptor::Suite(suite) => roles.extend(suite.tagged_roles()),
        }
    }
    for (name, descriptor) in loaded {
        let Descriptor::Suite(suite) = descriptor else {
            continue;
        };
        let mut failed = false;
        let role_sets = std::iter::once(None).chain(roles.iter().map(Some));
        for role in role_sets {
            let effective = match role {
                Some(role) => EffectiveRoles::from_ranks([(role.clone(), 1)]),
                None => EffectiveRoles::default(),
            };
            let label = match role {
                Some(role) => format!("for role {role}"),
                None => "for machines with no role".to_owned(),
            };
            let problems: Vec<String> = match assemble_suite(suite, &products, &effective) {
                Err(errors) => errors.iter().map(ToString::to_string).collect(),
                Ok(assembled) => match resolve_suite(&assembled.suite, None) {
                    Ok(_) => Vec::new(),
                    Err(errors) => errors.iter().map(ToString::to_string).collect(),
                },
            };
            for problem in &problems {
                writeln!(
                    output.err,
                    "{name}: error: suite {} {label}: {problem}",
                    suite.id
                )?;
            }
            summary.errors += problems.len();
            failed |= !problems.is_empty();
        }
        if failed {
            summary.valid -= 1;
            summary.invalid += 1;
        } else {
            let count = roles.len();
            writeln!(
                output.out,
                "{name}: ok: suite {} assembles and resolves for no role and for {count} role(s)",
                suite.id
            )?;
        }
    }
    Ok(())
}
