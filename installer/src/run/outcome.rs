//! The decision on how a command went, from its exit and its log.
//!
//! The rules, in order: a command stopped by the runner (timeout, failure
//! line seen while it ran) failed; a command killed by a signal failed;
//! then the exit-code table decides between success, success with a reboot
//! required, retry and failure; a success is then checked against the log:
//! a failure line fails it, and when success patterns are given one must
//! have matched. Every decision comes with its evidence in words, for the
//! person reading the report.

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;
use roleout_model::command::{ExitCodeTable, ExitMeaning};
use serde::{Deserialize, Serialize};

use crate::run::logwatch::LogFindings;

/// How the command's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(number) => match Signal::try_from(number) {
                Ok(signal) => write!(f, "signal {number} ({})", signal.as_str()),
                Err(_) => write!(f, "signal {number}"),
            },
        }
    }
}

/// Why the runner stopped a command before it exited by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// It ran past its timeout.
    Timeout,
    /// Its log showed a failure line while it ran.
    FailureInLog,
}

/// What a command's run means for the install.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It succeeded, and the machine must reboot before dependents run.
    SuccessRebootRequired,
    /// It failed in a way that asks to run it again. [`run`](crate::run::run)
    /// only returns this from an attempt it retried; once the retries are
    /// used up the outcome is [`Outcome::Failed`].
    Retry,
    /// It failed.
    Failed {
        /// Why, in one sentence.
        reason: String,
    },
}

impl Outcome {
    /// Whether the command succeeded (with or without a reboot required).
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success | Outcome::SuccessRebootRequired)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success => f.write_str("success"),
            Outcome::SuccessRebootRequired => f.write_str("success, reboot required"),
            Outcome::Retry => f.write_str("retry"),
            Outcome::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// An outcome and the facts it was decided from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) outcome: Outcome,
    pub(crate) evidence: Vec<String>,
}

/// What is known about one finished attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub(crate) exit: Exit,
    pub(crate) stopped: Option<StopReason>,
    pub(crate) timeout: Duration,
    pub(crate) exit_codes: &'a ExitCodeTable,
    pub(crate) log: Option<&'a LogFindings>,
}

/// Decides the outcome of one attempt.
pub(crate) fn decide(facts: Facts<'_>) -> Decision {
    let mut evidence = vec![describe_exit(&facts)];
    if let Some(log) = facts.log {
        evidence.extend(describe_log(log));
    }
    let outcome = match (facts.stopped, facts.exit) {
        (Some(StopReason::Timeout), _) => failed(format!(
            "it did not finish within its timeout of {}; its process group was killed",
            seconds(facts.timeout)
        )),
        (Some(StopReason::FailureInLog), _) => {
            let line = facts
                .log
                .and_then(|log| log.failure_lines.first().map(|line| (log, line)));
            match line {
                Some((log, line)) => failed(format!(
                    "{} says it failed while it ran: {line}; its process group was killed",
                    log.source()
                )),
                None => failed(
                    "the log said it failed while it ran; its process group was killed".to_owned(),
                ),
            }
        }
        (None, Exit::Signal(_)) => failed(format!("it was killed by {}", facts.exit)),
        (None, Exit::Code(code)) => match facts.exit_codes.meaning(code) {
            ExitMeaning::Failure => failed(format!(
                "exit code {code} is not a success code ({})",
                describe_table(facts.exit_codes)
            )),
            ExitMeaning::Retry => Outcome::Retry,
            ExitMeaning::Success => check_log(code, facts.log).unwrap_or(Outcome::Success),
            ExitMeaning::Reboot => {
                check_log(code, facts.log).unwrap_or(Outcome::SuccessRebootRequired)
            }
        },
    };
    Decision { outcome, evidence }
}

/// The failure the log shows after a successful exit code, if any.
fn check_log(code: i32, log: Option<&LogFindings>) -> Option<Outcome> {
    let log = log?;
    if let Some(error) = &log.read_error {
        return Some(failed(format!(
            "exit code {code} but the log {} could not be read: {error}",
            log.path
        )));
    }
    if !log.found {
        return Some(failed(format!(
            "exit code {code} but the log file {} does not exist",
            log.path
        )));
    }
    if let Some(line) = log.failure_lines.first() {
        return Some(failed(format!(
            "exit code {code} but {} says it failed: {line}",
            log.source()
        )));
    }
    if log.success_required && log.success_count == 0 {
        return Some(failed(format!(
            "exit code {code} but no success line found in {}",
            log.path
        )));
    }
    None
}

fn failed(reason: String) -> Outcome {
    Outcome::Failed { reason }
}

fn describe_exit(facts: &Facts<'_>) -> String {
    match (facts.stopped, facts.exit) {
        (Some(StopReason::Timeout), exit) => format!(
            "still running after {}, stopped by the runner (ended by {exit})",
            seconds(facts.timeout)
        ),
        (Some(StopReason::FailureInLog), exit) => {
            format!("stopped by the runner when its log showed a failure line (ended by {exit})")
        }
        (None, Exit::Signal(_)) => format!("ended by {}", facts.exit),
        (None, Exit::Code(code)) => {
            let meaning = match facts.exit_codes.meaning(code) {
                ExitMeaning::Success => "success",
                ExitMeaning::Reboot => "success with a reboot required",
                ExitMeaning::Retry => "try again",
                ExitMeaning::Failure => "failure",
            };
            format!(
                "exit code {code} means {meaning} ({})",
                describe_table(facts.exit_codes)
            )
        }
    }
}

fn describe_log(log: &LogFindings) -> Vec<String> {
    let source = log.source();
    if let Some(error) = &log.read_error {
        return vec![format!("{source} could not be read: {error}")];
    }
    if !log.found {
        return vec![format!("{source} does not exist")];
    }
    let mut facts = Vec::new();
    if let Some(line) = log.failure_lines.first() {
        facts.push(format!("{source}: failure {line}"));
        if log.failure_count > 1 {
            facts.push(format!(
                "{source}: {} more failure lines",
                log.failure_count - 1
            ));
        }
    }
    if let Some(line) = log.success_lines.first() {
        facts.push(format!("{source}: success {line}"));
    }
    if facts.is_empty() {
        facts.push(format!(
            "{source}: none of the {} lines the command wrote matched",
            log.lines_read
        ));
    }
    facts
}

fn describe_table(table: &ExitCodeTable) -> String {
    let list = |codes: &[i32]| {
        codes
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = vec![format!("success codes: {}", list(&table.success))];
    if !table.reboot.is_empty() {
        parts.push(format!("reboot codes: {}", list(&table.reboot)));
    }
    if !table.retry.is_empty() {
        parts.push(format!("retry codes: {}", list(&table.retry)));
    }
    parts.join("; ")
}

/// A duration in seconds, as a person reads it.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
// Test inputs are literals; a panic on one is the test failing.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::run::logwatch::LogLine;

    fn log() -> LogFindings {
        LogFindings {
            path: "/var/log/setup.log".to_owned(),
            found: true,
            read_error: None,
            lines_read: 3,
            success_required: false,
            failure_lines: Vec::new(),
            failure_count: 0,
            success_lines: Vec::new(),
            success_count: 0,
            stream: false,
        }
    }

    fn facts<'a>(exit: Exit, table: &'a ExitCodeTable, log: Option<&'a LogFindings>) -> Facts<'a> {
        Facts {
            exit,
            stopped: None,
            timeout: Duration::from_secs(60),
            exit_codes: table,
            log,
        }
    }

    fn reason(decision: &Decision) -> &str {
        match &decision.outcome {
            Outcome::Failed { reason } => reason,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_exit_code_table_decides_first() {
        let table = ExitCodeTable {
            success: vec![0],
            reboot: vec![194],
            retry: vec![75],
        };
        assert_eq!(
            decide(facts(Exit::Code(0), &table, None)).outcome,
            Outcome::Success
        );
        assert_eq!(
            decide(facts(Exit::Code(194), &table, None)).outcome,
            Outcome::SuccessRebootRequired
        );
        assert_eq!(
            decide(facts(Exit::Code(75), &table, None)).outcome,
            Outcome::Retry
        );
        let decision = decide(facts(Exit::Code(2), &table, None));
        assert_eq!(
            reason(&decision),
            "exit code 2 is not a success code (success codes: 0; reboot codes: 194; retry codes: 75)"
        );
        let decision = decide(facts(Exit::Signal(9), &table, None));
        assert_eq!(reason(&decision), "it was killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn a_failure_line_fails_a_success_exit() {
        let table = ExitCodeTable::default();
        let mut findings = log();
        findings.failure_lines.push(LogLine {
            number: 12,
            text: "ERROR: disk full".to_owned(),
        });
        findings.failure_count = 1;
        let decision = decide(facts(Exit::Code(0), &table, Some(&findings)));
        assert_eq!(
            reason(&decision),
            "exit code 0 but the log /var/log/setup.log says it failed: line 12: ERROR: disk full"
        );
        assert!(
            decision
                .evidence
                .iter()
                .any(|fact| fact.contains("failure line 12"))
        );
    }

    #[test]
    fn a_required_success_line_must_be_there() {
        let table = ExitCodeTable::default();
        let mut findings = log();
        findings.success_required = true;
        let decision = decide(facts(Exit::Code(0), &table, Some(&findings)));
        assert_eq!(
            reason(&decision),
            "exit code 0 but no success line found in /var/log/setup.log"
        );
        findings.success_lines.push(LogLine {
            number: 3,
            text: "Installation complete".to_owned(),
        });
        findings.success_count = 1;
        let decision = decide(facts(Exit::Code(0), &table, Some(&findings)));
        assert_eq!(decision.outcome, Outcome::Success);
        assert_eq!(
            decision.evidence,
            vec![
                "exit code 0 means success (success codes: 0)".to_owned(),
                "the log /var/log/setup.log: success line 3: Installation complete".to_owned(),
            ]
        );
    }

    #[test]
    fn a_missing_log_fails() {
        let table = ExitCodeTable::default();
        let mut findings = log();
        findings.found = false;
        let decision = decide(facts(Exit::Code(0), &table, Some(&findings)));
        assert_eq!(
            reason(&decision),
            "exit code 0 but the log file /var/log/setup.log does not exist"
        );
    }

    #[test]
    fn a_stop_by_the_runner_fails_whatever_the_exit() {
        let table = ExitCodeTable::default();
        let mut timed_out = facts(Exit::Code(0), &table, None);
        timed_out.stopped = Some(StopReason::Timeout);
        assert_eq!(
            reason(&decide(timed_out)),
            "it did not finish within its timeout of 60.0 s; its process group was killed"
        );
    }
}
