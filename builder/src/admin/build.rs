//! `build`: build one suite or all, for one role or for every role and the
//! set of no role, and say per role set what happened.
//!
//! One plain line per role set on `out` (`domino developer+end-user: built
//! 3f9a1c0b22de serial 2, 4 product(s)`), and one plain line per problem
//! on `err` (`domino administrator+end-user: conflict: product ...`), so a
//! script can grep either. Any failed role set makes the command fail.

use roleout_directory::Directory;
use roleout_model::ids::{RoleName, SuiteId};

use super::{CommandFailed, Output};
use crate::build::{Builder, RoleSetResult};

/// Counts of a `build` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSummary {
    /// Role sets whose content was built (new or changed).
    pub built: usize,
    /// Role sets whose build was already current.
    pub unchanged: usize,
    /// Role sets that failed.
    pub failed: usize,
}

/// Builds `suite` (all suites when `None`) for `role` with its ancestors
/// (every role alone and the set of no role when `None`).
pub async fn build(
    directory: &Directory,
    suite: Option<SuiteId>,
    role: Option<RoleName>,
    output: &mut Output<'_>,
) -> Result<BuildSummary, CommandFailed> {
    let builder = Builder::new();
    let results = match role {
        Some(role) => {
            let hierarchy = directory
                .roles()
                .await
                .map_err(|error| CommandFailed(format!("build: {error}")))?;
            let roles = hierarchy
                .effective([role])
                .map_err(|error| CommandFailed(format!("build: {error}")))?;
            builder
                .build_role_sets(directory, suite.as_ref(), &[roles])
                .await
        }
        None => builder.build_all(directory, suite.as_ref()).await,
    }
    .map_err(|error| CommandFailed(format!("build: {error}")))?;
    if results.is_empty() {
        return Err(CommandFailed(
            "build: the catalog holds no suite to build".to_owned(),
        ));
    }
    let mut summary = BuildSummary::default();
    for result in &results {
        let _ = writeln!(output.out, "{result}");
        match &result.result {
            Ok(outcome) if outcome.content_changed() => summary.built += 1,
            Ok(_) => summary.unchanged += 1,
            Err(error) => {
                summary.failed += 1;
                report_problems(result, error, output);
            }
        }
    }
    let _ = writeln!(
        output.out,
        "{} role set(s): {} built, {} unchanged, {} failed",
        results.len(),
        summary.built,
        summary.unchanged,
        summary.failed
    );
    if summary.failed > 0 {
        return Err(CommandFailed(format!(
            "build: {} of {} role set(s) failed",
            summary.failed,
            results.len()
        )));
    }
    Ok(summary)
}

fn report_problems(
    result: &RoleSetResult,
    error: &crate::build::BuildError,
    output: &mut Output<'_>,
) {
    let problems = error.problems();
    if problems.is_empty() {
        let _ = writeln!(
            output.err,
            "{} {}: error: {}",
            result.suite,
            result.role_set,
            one_line(&error.to_string())
        );
    }
    for problem in problems {
        let _ = writeln!(
            output.err,
            "{} {}: {}: {}",
            result.suite,
            result.role_set,
            problem.kind(),
            one_line(&problem.to_string())
        );
    }
}

/// Keeps a message on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
