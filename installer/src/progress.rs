//! What the person (or the program) watching `roleout` sees.
//!
//! The install loop never draws anything itself: it tells a [`Reporter`]
//! what happens, as [`Event`]s, and the binary picks the reporter (uv's
//! installer works the same way). Three are provided: progress bars on a
//! terminal ([`TerminalReporter`], indicatif), one plain line per event
//! for logs and pipes ([`LineReporter`]), and one JSON object per line for
//! programs ([`JsonReporter`]). Events hold only redacted text: a command
//! line in an event has its secrets masked.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use roleout_model::command::Phase;
use roleout_model::ids::{ProductId, SuiteId};
use roleout_model::protocol::{ReportOutcome, RunSummary};
use roleout_model::version::Version;
use serde::Serialize;

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
#[non_exhaustive]
pub enum Event {
    /// A suite's run starts (or resumes).
    SuiteStarted {
        /// The suite.
        suite: SuiteId,
        /// How many components its plan has.
        components: usize,
        /// Whether an interrupted run is being resumed.
        resumed: bool,
    },
    /// A component is next.
    ComponentStarted {
        /// The product.
        product: ProductId,
        /// Its version.
        version: Version,
    },
    /// A step's command starts.
    StepStarted {
        /// The product.
        product: ProductId,
        /// The phase.
        phase: Phase,
        /// The command line, secrets masked.
        command: String,
    },
    /// A step ended, or a component was settled without running.
    ComponentOutcome {
        /// The product.
        product: ProductId,
        /// The phase, when a command ran.
        #[serde(skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
        /// How it ended.
        outcome: ReportOutcome,
        /// Why, in words.
        detail: String,
        /// For a failed command, the last lines it printed (standard
        /// error, else standard output; secrets masked), so whoever runs
        /// the agent sees why without asking the admin.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        output_tail: Vec<String>,
    },
    /// Something worth saying that is not a step (a refused envelope, an
    /// undelivered report).
    Note {
        /// The sentence.
        message: String,
    },
    /// A suite's run ended (for now).
    SuiteFinished {
        /// The suite.
        suite: SuiteId,
        /// The counts.
        summary: RunSummary,
    },
}

/// Receives the events of a run.
pub trait Reporter: Send {
    /// Shows one event.
    fn event(&self, event: &Event);
}

/// Shows nothing (`--quiet`).
#[derive(Debug, Default)]
pub struct QuietReporter;

impl Reporter for QuietReporter {
    fn event(&self, _event: &Event) {}
}

/// One line per event, for logs, pipes and the systemd journal.
pub struct LineReporter {
    out: Mutex<Box<dyn Write + Send>>,
}

impl LineReporter {
    /// Writes to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }
}

impl Reporter for LineReporter {
    fn event(&self, event: &Event) {
        if let Ok(mut out) = self.out.lock() {
            // A closed pipe must not stop an install that runs as root.
            let _ = writeln!(out, "{}", describe(event));
            let _ = out.flush();
        }
    }
}

/// One JSON object per line (`--json`).
pub struct JsonReporter {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonReporter {
    /// Writes to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }
}

impl Reporter for JsonReporter {
    fn event(&self, event: &Event) {
        if let (Ok(mut out), Ok(line)) = (self.out.lock(), serde_json::to_string(event)) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// A bar over the components of a suite and a spinner for the running
/// command, with finished steps printed above them.
pub struct TerminalReporter {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalReporter {
    /// A reporter drawing on standard error.
    pub fn new() -> Self {
        Self {
            bar: Mutex::new(None),
        }
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for TerminalReporter {
    fn event(&self, event: &Event) {
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        match event {
            Event::SuiteStarted {
                suite, components, ..
            } => {
                let bar = ProgressBar::new(*components as u64);
                let style = ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(suite.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                *slot = Some(bar);
            }
            Event::StepStarted { product, phase, .. } => {
                if let Some(bar) = slot.as_ref() {
                    bar.set_message(format!("{product}: {phase}"));
                }
            }
            Event::ComponentOutcome { phase, outcome, .. } => {
                if let Some(bar) = slot.as_ref() {
                    bar.println(describe(event));
                    // A component is settled when it did not run a command,
                    // or when its last command ended; a finished step that
                    // succeeded may have more steps to come, so only the
                    // post-install (or a non-success) moves the bar.
                    let settled = phase.is_none()
                        || *phase == Some(Phase::PostInstall)
                        || *outcome != ReportOutcome::Success;
                    if settled {
                        bar.inc(1);
                    }
                }
            }
            Event::SuiteFinished { .. } => {
                if let Some(bar) = slot.take() {
                    bar.finish_and_clear();
                }
                let stderr = std::io::stderr();
                let _ = writeln!(stderr.lock(), "{}", describe(event));
            }
            Event::ComponentStarted { .. } => {}
            Event::Note { .. } => match slot.as_ref() {
                Some(bar) => bar.println(describe(event)),
                None => {
                    let _ = writeln!(std::io::stderr().lock(), "{}", describe(event));
                }
            },
        }
    }
}

/// The plain-text line of an event.
pub fn describe(event: &Event) -> String {
    match event {
        Event::SuiteStarted {
            suite,
            components,
            resumed,
        } => format!(
            "suite {suite}: {} run of {components} component(s)",
            if *resumed {
                "resuming the"
            } else {
                "starting a"
            }
        ),
        Event::ComponentStarted { product, version } => format!("{product} {version}"),
        Event::StepStarted {
            product,
            phase,
            command,
        } => format!("{product}: {phase}: running {command}"),
        Event::ComponentOutcome {
            product,
            phase,
            outcome,
            detail,
            output_tail,
        } => {
            let outcome = match outcome {
                ReportOutcome::Success => "success",
                ReportOutcome::SuccessRebootRequired => "success, reboot required",
                ReportOutcome::Skipped => "skipped",
                ReportOutcome::Failed => "FAILED",
                ReportOutcome::Blocked => "blocked",
                ReportOutcome::Retry => "retry",
            };
            let mut line = match phase {
                Some(phase) => format!("{product}: {phase}: {outcome}: {detail}"),
                None => format!("{product}: {outcome}: {detail}"),
            };
            if !output_tail.is_empty() {
                line.push_str("\n  its last output:");
                for output in output_tail {
                    line.push_str("\n    ");
                    line.push_str(output);
                }
            }
            line
        }
        Event::Note { message } => message.clone(),
        Event::SuiteFinished { suite, summary } => format!(
            "suite {suite}: {} installed, {} skipped, {} failed, {} blocked{}",
            summary.installed,
            summary.skipped,
            summary.failed,
            summary.blocked,
            if summary.reboot_required {
                "; a reboot is required to continue"
            } else {
                ""
            }
        ),
    }
}
