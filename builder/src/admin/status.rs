//! What machines reported (Blocks 1070-1085), as admins read it:
//! `status [SUITE]` (a table of machines by component, the latest outcome
//! in each cell and the machine's run summary at the end of its row),
//! `status --machine M` (each component's latest step with its evidence,
//! and the last lines of each failed step's log from the content store)
//! and `machine list` (every machine with its roles, enrolment, last
//! contact and last reported outcome).
//!
//! Reports are read with the bounded searches the directory offers: one
//! per suite for the table and `machine list`, one per machine for its
//! details; logs are read from the content store by the digest the report
//! holds, never from the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use roleout_directory::Directory;
use roleout_directory::catalog::{StoredReport, SuiteStatus};
use roleout_model::ids::{MachineId, ProductId, SuiteId};
use roleout_model::protocol::{ReportOutcome, RunSummary};

use super::{CommandFailed, Output};
use crate::content::ContentStore;

/// How many lines of a failed log `status --machine` shows.
pub const LOG_TAIL_LINES: usize = 20;

/// The wire name of an outcome (`success-reboot-required`).
pub(crate) fn outcome_name(outcome: ReportOutcome) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{outcome:?}"))
}

/// `complete: 3 installed, 1 failed` for a run summary.
fn summary_text(summary: &RunSummary) -> String {
    let mut parts = vec![format!("{} installed", summary.installed)];
    for (count, word) in [
        (summary.skipped, "skipped"),
        (summary.failed, "failed"),
        (summary.blocked, "blocked"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {word}"));
        }
    }
    if summary.reboot_required {
        parts.push("reboot required".to_owned());
    }
    format!("complete: {}", parts.join(", "))
}

/// A GeneralizedTime (`20260101120000Z`) as `2026-01-01 12:00:00Z`; other
/// text as it is.
fn readable_time(text: &str) -> String {
    let digits = text.strip_suffix('Z').unwrap_or(text);
    if digits.len() == 14 && digits.chars().all(|c| c.is_ascii_digit()) {
        format!(
            "{}-{}-{} {}:{}:{}Z",
            &digits[0..4],
            &digits[4..6],
            &digits[6..8],
            &digits[8..10],
            &digits[10..12],
            &digits[12..14]
        )
    } else {
        text.to_owned()
    }
}

/// Rows of cells as a table with columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

async fn suite_list(
    directory: &Directory,
    suite: Option<&str>,
) -> Result<Vec<SuiteId>, CommandFailed> {
    match suite {
        Some(suite) => Ok(vec![
            SuiteId::new(suite).map_err(|error| CommandFailed(error.to_string()))?,
        ]),
        None => directory
            .suite_ids()
            .await
            .map_err(|error| CommandFailed(format!("cannot list the suites: {error}"))),
    }
}

async fn suite_status(
    directory: &Directory,
    suite: &SuiteId,
) -> Result<SuiteStatus, CommandFailed> {
    directory.suite_status(suite).await.map_err(|error| {
        CommandFailed(format!("cannot read the reports of suite {suite}: {error}"))
    })
}

/// `status [SUITE]`: per suite, a table of machines by component.
pub async fn status(
    directory: &Directory,
    suite: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let suites = suite_list(directory, suite).await?;
    if suites.is_empty() {
        let _ = writeln!(output.err, "the catalog holds no suite");
    }
    for suite in &suites {
        let status = suite_status(directory, suite).await?;
        let _ = write!(output.out, "{}", suite_table(suite, &status));
    }
    Ok(())
}

/// The table of one suite.
fn suite_table(suite: &SuiteId, status: &SuiteStatus) -> String {
    let components: BTreeSet<&ProductId> = status
        .components
        .keys()
        .map(|(_, component)| component)
        .collect();
    let machines: BTreeSet<&MachineId> = status
        .components
        .keys()
        .map(|(machine, _)| machine)
        .chain(status.completions.keys())
        .collect();
    if machines.is_empty() {
        return format!("suite {suite}: no machine has reported yet\n");
    }
    let mut header = vec!["machine".to_owned()];
    header.extend(components.iter().map(|component| component.to_string()));
    header.push("run".to_owned());
    let mut rows = vec![header];
    let mut complete = 0;
    for machine in &machines {
        let mut row = vec![machine.to_string()];
        for component in &components {
            let cell = status
                .components
                .get(&((*machine).clone(), (*component).clone()))
                .map(|report| outcome_name(report.outcome))
                .unwrap_or_else(|| "-".to_owned());
            row.push(cell);
        }
        let run = match status.completions.get(*machine) {
            Some(completion) => {
                complete += 1;
                summary_text(&completion.summary)
            }
            None => "not complete".to_owned(),
        };
        row.push(run);
        rows.push(row);
    }
    format!(
        "suite {suite}: {} machine(s), {complete} with a complete run\n{}",
        machines.len(),
        table(&rows)
    )
}

/// Where `status --machine` reads logs from.
pub enum Logs {
    /// This content store.
    Store(ContentStore),
    /// No content store was given; logs are named by digest only.
    Unavailable,
}

/// The last `lines` lines of the content `digest`, read as (lossy) UTF-8.
fn log_tail(
    store: &ContentStore,
    report: &StoredReport,
    lines: usize,
) -> Result<Option<Vec<String>>, String> {
    let Some(digest) = &report.log_digest else {
        return Ok(None);
    };
    let Some((mut file, _)) = store.open(digest).map_err(|error| error.to_string())? else {
        return Err(format!(
            "log {} is not in the content store {}",
            digest,
            store.root().display()
        ));
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read log {digest}: {error}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    Ok(Some(
        all[start..].iter().map(|line| (*line).to_owned()).collect(),
    ))
}

/// `status --machine M`: each component's latest step, with evidence and
/// the tail of each failed log.
pub async fn machine_status(
    directory: &Directory,
    machine: &str,
    logs: &Logs,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let missing = || CommandFailed(format!("no machine {machine:?} in the directory"));
    let name = MachineId::new(machine).map_err(|_| missing())?;
    directory
        .machine(&name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read machine {name}: {error}")))?
        .ok_or_else(missing)?;
    let reports = directory
        .reports_for_machine(&name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read the reports of {name}: {error}")))?;
    if reports.is_empty() {
        let _ = writeln!(output.out, "machine {name}: no reports yet");
        return Ok(());
    }
    // Oldest first, so the last one kept per component is its latest.
    let mut latest: BTreeMap<(SuiteId, ProductId), &StoredReport> = BTreeMap::new();
    for report in &reports {
        latest.insert((report.suite.clone(), report.component.clone()), report);
    }
    let _ = writeln!(
        output.out,
        "machine {name}: {} component(s) reported",
        latest.len()
    );
    for ((suite, component), report) in &latest {
        let ended = match (report.exit_code, report.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "no exit code".to_owned(),
        };
        let _ = writeln!(
            output.out,
            "{suite}/{component}: {} {}, {ended}, {} ms, finished {}",
            step_name(report),
            outcome_name(report.outcome),
            report.duration_ms,
            report.finished_at
        );
        // Evidence and logs are the machine's words: shown escaped, so
        // they can neither drive the terminal nor fake a line of ours.
        for line in &report.evidence {
            let _ = writeln!(output.out, "  evidence: {}", super::shown(line));
        }
        let failed = matches!(
            report.outcome,
            ReportOutcome::Failed | ReportOutcome::Blocked
        );
        if !failed {
            continue;
        }
        match (logs, &report.log_digest) {
            (_, None) => {
                let _ = writeln!(output.out, "  no log was reported");
            }
            (Logs::Unavailable, Some(digest)) => {
                let _ = writeln!(
                    output.out,
                    "  log {digest}: give --content-dir (or --state-dir) to read it"
                );
            }
            (Logs::Store(store), Some(digest)) => match log_tail(store, report, LOG_TAIL_LINES) {
                Ok(Some(tail)) => {
                    let _ = writeln!(
                        output.out,
                        "  log {} (last {} line(s)):",
                        &digest.as_str()[..12],
                        tail.len()
                    );
                    for line in tail {
                        let _ = writeln!(output.out, "  | {}", super::shown(&line));
                    }
                }
                Ok(None) => {}
                Err(problem) => {
                    let _ = writeln!(output.err, "warning: {name} {component}: {problem}");
                }
            },
        }
    }
    Ok(())
}

/// The wire name of a report's step (`post-install`).
pub(crate) fn step_name(report: &StoredReport) -> String {
    serde_json::to_value(report.step)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", report.step))
}

/// `machine list`: every machine with its roles, enrolment, whether it is
/// enabled, when it was last seen and its last reported outcome.
pub async fn machine_list(
    directory: &Directory,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let machines = directory
        .machines()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the machines: {error}")))?;
    let roles = directory
        .role_entries()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the roles: {error}")))?;
    // The latest report per machine across every suite: one search per
    // suite, not one per machine.
    let mut last: BTreeMap<MachineId, StoredReport> = BTreeMap::new();
    for suite in suite_list(directory, None).await? {
        let status = suite_status(directory, &suite).await?;
        for ((machine, _), report) in status.components {
            let later = last.get(&machine).is_none_or(|current| {
                (report.finished_at, report.started_at) > (current.finished_at, current.started_at)
            });
            if later {
                last.insert(machine, report);
            }
        }
    }
    let mut rows = vec![vec![
        "machine".to_owned(),
        "roles".to_owned(),
        "enrolment".to_owned(),
        "enabled".to_owned(),
        "last seen".to_owned(),
        "last report".to_owned(),
    ]];
    let mut sorted = machines;
    sorted.sort_by(|a, b| a.machine.name.cmp(&b.machine.name));
    for entry in &sorted {
        let mut held: Vec<&str> = roles
            .iter()
            .filter(|role| {
                role.members
                    .iter()
                    .any(|member| member.eq_ignore_ascii_case(&entry.dn))
            })
            .map(|role| role.role.name.as_str())
            .collect();
        held.sort_unstable();
        let report = last
            .get(&entry.machine.name)
            .map(|report| {
                format!(
                    "{} {}/{} {}",
                    outcome_name(report.outcome),
                    report.suite,
                    report.component,
                    report.finished_at
                )
            })
            .unwrap_or_else(|| "-".to_owned());
        rows.push(vec![
            entry.machine.name.to_string(),
            if held.is_empty() {
                "-".to_owned()
            } else {
                held.join(",")
            },
            entry
                .enrolment
                .map(|state| state.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            if entry.enabled { "yes" } else { "no" }.to_owned(),
            entry
                .last_seen
                .as_deref()
                .map(readable_time)
                .unwrap_or_else(|| "never".to_owned()),
            report,
        ]);
    }
    if sorted.is_empty() {
        let _ = writeln!(output.err, "no machines in the directory");
        return Ok(());
    }
    let _ = write!(output.out, "{}", table(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = vec![
            vec!["machine".to_owned(), "jre".to_owned(), "run".to_owned()],
            vec![
                "ws-1".to_owned(),
                "success".to_owned(),
                "complete".to_owned(),
            ],
        ];
        assert_eq!(
            table(&rows),
            "machine  jre      run\nws-1     success  complete\n"
        );
    }

    #[test]
    fn times_and_summaries_read_plainly() {
        assert_eq!(readable_time("20260102030405Z"), "2026-01-02 03:04:05Z");
        assert_eq!(readable_time("soon"), "soon");
        let summary = RunSummary {
            installed: 2,
            failed: 1,
            ..RunSummary::default()
        };
        assert_eq!(summary_text(&summary), "complete: 2 installed, 1 failed");
        assert_eq!(
            outcome_name(ReportOutcome::SuccessRebootRequired),
            "success-reboot-required"
        );
    }
}
