//! Per-suite journal: the run in progress and what this machine has.
//!
//! The journal is what makes an install resumable and honest. It records each
//! step of each component *before* the step's command starts ("running",
//! with its attempt number) and *after* it ends (its outcome), each record
//! durable before the installer moves on (see [`atomic`](crate::state::atomic)).
//! So after a crash, a `kill -9`, a power cut or a reboot the installer knows:
//!
//! - which steps are done: they are never run again;
//! - which step was running when the process died: the caller resumes it
//!   according to its descriptor ([`Journal::resume_interrupted`]);
//! - which step asked for a reboot, in which boot ([`Journal::check_reboot`]);
//! - the highest serial of signed suite metadata accepted so far, so old
//!   metadata replayed by a mirror is refused ([`Journal::accept_serial`]);
//! - which product versions are installed, for `roleout status`.
//!
//! # Format
//!
//! One JSON file per suite, `STATE_DIR/journal/SUITE.json`, with
//! `"format": 1`. One file per suite rather than one overall: suites are
//! installed independently, each write is only as large as one suite, and a
//! damaged file stops one suite, not every one. A file that is not valid JSON
//! or not a journal is moved aside as `SUITE.json.corrupt-UNIXTIME` and
//! reported ([`StateError::CorruptJournal`]); it is never silently replaced by
//! an empty journal, because an empty journal would run finished steps again.
//! Starting over takes an explicit [`Journal::start_over`]. A file with a
//! format number from a newer Roleout is left in place and refused. Fields
//! unknown to this build make a format-1 file corrupt: a change that adds a
//! field raises the format number.
//!
//! The journal does not know dependencies between components; the install
//! loop does. The journal only keeps the planned order, and
//! [`Journal::next_step`] walks it conservatively (a reboot wait anywhere
//! holds back everything after it).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use roleout_model::command::Phase;
use roleout_model::ids::{ProductId, Sha256, SuiteId};
use roleout_model::version::Version;
use serde::{Deserialize, Serialize};

use crate::state::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use crate::state::{StateError, StateLock, now_unix};

/// The journal format this build writes and reads.
pub const JOURNAL_FORMAT: u64 = 1;

/// Name of the journal directory inside the state directory.
pub const JOURNAL_DIR_NAME: &str = "journal";

/// Identifies one run: 128 random bits as 32 lowercase hex characters.
///
/// Random, not a counter, so that two machines (or one machine after its
/// state directory was wiped) never produce the same run id, and report ids
/// built on it stay unique at the server.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A new random run id.
    pub fn generate() -> Result<RunId, StateError> {
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes).map_err(|_| {
            StateError::io(
                "read random bytes from",
                "the operating system's random source",
                std::io::Error::other("ring::rand::SystemRandom failed"),
            )
        })?;
        Ok(RunId(
            bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value.len() == 32
            && value
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        {
            Ok(RunId(value))
        } else {
            Err(format!(
                "invalid run id {value:?}: expected 32 lowercase hexadecimal characters"
            ))
        }
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "RunId({})", self.0)
    }
}

/// Everything the journal keeps for one suite (the content of its file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuiteRecord {
    /// Always [`JOURNAL_FORMAT`].
    pub format: u64,
    /// The suite.
    pub suite: SuiteId,
    /// The highest serial of signed suite metadata accepted (anti-rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accepted_serial: Option<u64>,
    /// The latest run: in progress while `end` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
    /// What this machine has, by product.
    #[serde(default)]
    pub installed: BTreeMap<ProductId, InstalledProduct>,
}

/// One run of the install loop over a built suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// Digest of the built suite being installed.
    pub build: Sha256,
    /// When the run started (Unix seconds).
    pub started_at: u64,
    /// How the run ended; `None` while it is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<RunEnd>,
    /// Counter behind [`Journal::next_sequence`] (report ids).
    #[serde(default)]
    pub sequence: u64,
    /// The components, in planned order.
    pub components: Vec<ComponentRecord>,
}

impl RunRecord {
    /// The component record of `product`.
    pub fn component(&self, product: &ProductId) -> Option<&ComponentRecord> {
        self.components
            .iter()
            .find(|component| &component.product == product)
    }

    /// The record of one step.
    pub fn step(&self, product: &ProductId, phase: Phase) -> Option<&StepRecord> {
        self.component(product)?
            .steps
            .iter()
            .find(|step| step.phase == phase)
    }

    /// Whether the run is still in progress.
    pub fn in_progress(&self) -> bool {
        self.end.is_none()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "how", deny_unknown_fields)]
pub enum RunEnd {
    /// The loop went through the plan (some steps may have failed or been blocked).
    Completed {
        /// When (Unix seconds).
        at: u64,
    },
    /// The loop gave the run up (a newer build arrived, an admin asked).
    Abandoned {
        /// When (Unix seconds).
        at: u64,
        /// Why, in words.
        reason: String,
    },
}

/// One component (product) of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ComponentRecord {
    /// The product.
    pub product: ProductId,
    /// Its version.
    pub version: Version,
    /// Digest of the product's built model.
    pub model: Sha256,
    /// Its steps, in the order they run.
    pub steps: Vec<StepRecord>,
}

impl ComponentRecord {
    /// Whether every step is done or skipped (and at least one ran), so the
    /// product counts as installed.
    fn completed_by_this_run(&self) -> bool {
        self.steps.iter().all(|step| {
            matches!(
                step.state,
                StepState::Done { .. } | StepState::Skipped { .. }
            )
        }) && self
            .steps
            .iter()
            .any(|step| matches!(step.state, StepState::Done { .. }))
    }
}

/// One step (a phase of one component).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StepRecord {
    /// The phase.
    pub phase: Phase,
    /// How many times the step's command was started (the current or last attempt's number).
    #[serde(default)]
    pub attempts: u32,
    /// Where the step is.
    pub state: StepState,
}

/// Where a step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "is", deny_unknown_fields)]
pub enum StepState {
    /// Not started.
    Pending,
    /// Its command was started and has not been recorded as ended. Found on
    /// opening the journal, this means the process died during the command.
    Running {
        /// When attempt number `attempts` started (Unix seconds).
        started_at: u64,
    },
    /// Finished with success.
    Done {
        /// When the last attempt started.
        started_at: u64,
        /// When it ended.
        finished_at: u64,
        /// Its exit code (`None` if killed by a signal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Whether it asked for a reboot, which has happened since.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        after_reboot: bool,
    },
    /// Finished with failure (or was interrupted and may not run again).
    Failed {
        /// When the last attempt started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<u64>,
        /// When it was recorded as failed.
        finished_at: u64,
        /// Its exit code, if it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Why, in words (never a secret: the caller redacts).
        reason: String,
    },
    /// Not run, on purpose.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// Not run because a component it depends on failed.
    Blocked {
        /// The component that failed.
        by: ProductId,
    },
    /// Succeeded and asked for a reboot; what follows waits for it.
    WaitingForReboot {
        /// When it started.
        started_at: u64,
        /// When it ended.
        finished_at: u64,
        /// Its exit code (3010 style).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// The boot id (`/proc/sys/kernel/random/boot_id`) of the boot that must end.
        boot_id: String,
    },
}

impl StepState {
    /// The state in words, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running { .. } => "running",
            StepState::Done { .. } => "done",
            StepState::Failed { .. } => "failed",
            StepState::Skipped { .. } => "skipped",
            StepState::Blocked { .. } => "blocked",
            StepState::WaitingForReboot { .. } => "waiting for a reboot",
        }
    }
}

/// Why a step was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "why", deny_unknown_fields)]
pub enum SkipReason {
    /// The version checker found the product already installed.
    AlreadyInstalled,
    /// An IncrementalInstall condition is false.
    ConditionFalse {
        /// The condition, as written in the descriptor.
        condition: String,
    },
}

/// What happened to a step's command, given to [`Journal::finish_step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// It succeeded.
    Success {
        /// Its exit code.
        exit_code: Option<i32>,
    },
    /// It succeeded and the machine must reboot before what follows runs.
    RebootRequired {
        /// Its exit code.
        exit_code: Option<i32>,
        /// The current boot id, read by the caller from
        /// `/proc/sys/kernel/random/boot_id`.
        boot_id: String,
    },
    /// It failed.
    Failure {
        /// Its exit code, if it exited.
        exit_code: Option<i32>,
        /// Why, in words (must hold no secret).
        reason: String,
    },
}

/// What this machine has of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstalledProduct {
    /// The installed version.
    pub version: Version,
    /// Digest of the product model it was installed from.
    pub model: Sha256,
    /// Digest of the built suite of that run.
    pub build: Sha256,
    /// The run that installed it.
    pub run: RunId,
    /// When its last step finished (Unix seconds).
    pub installed_at: u64,
}

/// One component of the planned order, given to [`Journal::start_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedComponent {
    /// The product.
    pub product: ProductId,
    /// Its version.
    pub version: Version,
    /// Digest of its built model.
    pub model: Sha256,
    /// The phases it has commands for, in the order they run.
    pub phases: Vec<Phase>,
}

/// A step named by product and phase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepRef {
    /// The product.
    pub product: ProductId,
    /// The phase.
    pub phase: Phase,
}

/// A step that was running when the process died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedStep {
    /// The step.
    pub step: StepRef,
    /// The attempt that was interrupted.
    pub attempt: u32,
    /// When it started (Unix seconds).
    pub started_at: u64,
}

/// What [`Journal::next_step`] says comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Run this step (it is pending).
    Run(StepRef),
    /// A step was running when the process died: decide with
    /// [`Journal::resume_interrupted`] first.
    Interrupted(InterruptedStep),
    /// A step waits for a reboot: nothing after it in the plan runs before
    /// [`Journal::check_reboot`] sees a new boot.
    WaitingForReboot {
        /// The step.
        step: StepRef,
        /// The boot that must end.
        boot_id: String,
    },
    /// Nothing is left to run in this run (or there is no run in progress).
    Settled,
}

/// What [`Journal::check_reboot`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootCheck {
    /// No step was waiting for a reboot.
    NothingWaiting,
    /// The machine rebooted: these steps are now done and the run goes on.
    Rebooted(Vec<StepRef>),
    /// This is still the boot in which the reboot was asked for.
    StillWaiting(StepRef),
}

/// How the caller resumes an interrupted step (from the step's descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The command may run again: the step goes back to pending, keeping its
    /// attempt count, and the next [`Journal::begin_step`] is the next attempt.
    RunAgain,
    /// The command must not run twice: the step is recorded as failed.
    MarkFailed,
}

/// The journal of one suite, open for changes.
///
/// Every change is written durably before the method returns; if the write
/// fails, the in-memory record is left as it was, so memory and disk agree.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: SuiteRecord,
}

impl Journal {
    /// Opens the journal of `suite`, or starts an empty one for a suite seen
    /// for the first time.
    ///
    /// A corrupt file is moved aside and reported; after that, `open` keeps
    /// refusing ([`StateError::JournalSetAside`]) until [`Journal::start_over`].
    pub fn open(lock: &StateLock, suite: &SuiteId) -> Result<Journal, StateError> {
        let directory = journal_directory(lock.state_dir());
        atomic::ensure_directory(&directory, PRIVATE_DIR_MODE)?;
        let path = journal_path(lock.state_dir(), suite);
        match atomic::read_optional(&path)? {
            Some(bytes) => match parse(&path, suite, &bytes) {
                Ok(record) => Ok(Journal { path, record }),
                Err(Parse::Unsupported(error)) => Err(error),
                Err(Parse::Corrupt(reason)) => {
                    let kept_as = set_aside(&path)?;
                    Err(StateError::CorruptJournal {
                        path,
                        kept_as,
                        reason,
                    })
                }
            },
            None => {
                if let Some(kept_as) = set_aside_copy(&directory, suite)? {
                    return Err(StateError::JournalSetAside {
                        suite: suite.clone(),
                        kept_as,
                    });
                }
                Ok(Journal {
                    path,
                    record: empty_record(suite),
                })
            }
        }
    }

    /// Writes an empty journal for `suite`, replacing any current one; the
    /// copies set aside as corrupt stay where they are.
    ///
    /// This forgets the run in progress, what is installed and the last
    /// accepted serial: it is for a person who has inspected a corrupt
    /// journal, never for the install loop to call on its own.
    pub fn start_over(lock: &StateLock, suite: &SuiteId) -> Result<Journal, StateError> {
        let directory = journal_directory(lock.state_dir());
        atomic::ensure_directory(&directory, PRIVATE_DIR_MODE)?;
        let journal = Journal {
            path: journal_path(lock.state_dir(), suite),
            record: empty_record(suite),
        };
        journal.write(&journal.record)?;
        Ok(journal)
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything recorded.
    pub fn record(&self) -> &SuiteRecord {
        &self.record
    }

    /// The suite.
    pub fn suite(&self) -> &SuiteId {
        &self.record.suite
    }

    /// The run in progress, if any.
    pub fn run_in_progress(&self) -> Option<&RunRecord> {
        self.record.run.as_ref().filter(|run| run.in_progress())
    }

    /// What this machine has, by product.
    pub fn installed(&self) -> &BTreeMap<ProductId, InstalledProduct> {
        &self.record.installed
    }

    /// Whether this machine has `planned` installed already: the same
    /// version from the same model digest (the install loop then skips the
    /// component with [`SkipReason::AlreadyInstalled`]).
    pub fn installed_matches(&self, planned: &PlannedComponent) -> bool {
        self.record
            .installed
            .get(&planned.product)
            .is_some_and(|installed| {
                installed.version == planned.version && installed.model == planned.model
            })
    }

    /// The highest metadata serial accepted so far.
    pub fn last_accepted_serial(&self) -> Option<u64> {
        self.record.last_accepted_serial
    }

    /// Accepts signed suite metadata with `serial`, refusing one older than
    /// a serial accepted before. The same serial again is accepted (the same
    /// metadata fetched twice). Call it after the signature checks out and
    /// before acting on the metadata.
    pub fn accept_serial(&mut self, serial: u64) -> Result<(), StateError> {
        match self.record.last_accepted_serial {
            Some(accepted) if serial < accepted => Err(StateError::Rollback {
                suite: self.record.suite.clone(),
                offered: serial,
                accepted,
            }),
            Some(accepted) if serial == accepted => Ok(()),
            _ => self.change(|record| {
                record.last_accepted_serial = Some(serial);
                Ok(())
            }),
        }
    }

    /// Starts a run of `build` over `plan` (in install order), every step pending.
    ///
    /// Refused while another run is in progress: resume it, or give it up
    /// with [`Journal::abandon_run`]. A finished run is replaced.
    pub fn start_run(
        &mut self,
        build: Sha256,
        plan: Vec<PlannedComponent>,
    ) -> Result<RunId, StateError> {
        if let Some(run) = self.run_in_progress() {
            return Err(StateError::RunInProgress {
                suite: self.record.suite.clone(),
                run: run.id.to_string(),
                build: run.build.clone(),
            });
        }
        let mut components: Vec<ComponentRecord> = Vec::with_capacity(plan.len());
        for planned in plan {
            if components
                .iter()
                .any(|component| component.product == planned.product)
            {
                return Err(StateError::DuplicateComponent {
                    suite: self.record.suite.clone(),
                    product: planned.product,
                });
            }
            let mut steps: Vec<StepRecord> = Vec::with_capacity(planned.phases.len());
            for phase in planned.phases {
                // A phase listed twice would make steps ambiguous; keep the first.
                if steps.iter().all(|step| step.phase != phase) {
                    steps.push(StepRecord {
                        phase,
                        attempts: 0,
                        state: StepState::Pending,
                    });
                }
            }
            components.push(ComponentRecord {
                product: planned.product,
                version: planned.version,
                model: planned.model,
                steps,
            });
        }
        let run = RunRecord {
            id: RunId::generate()?,
            build,
            started_at: now_unix(),
            end: None,
            sequence: 0,
            components,
        };
        let id = run.id.clone();
        self.change(|record| {
            record.run = Some(run);
            Ok(())
        })?;
        Ok(id)
    }

    /// Ends the run in progress as completed. Refused while a step is
    /// running or waiting for a reboot; pending steps stay pending (not run).
    pub fn finish_run(&mut self) -> Result<(), StateError> {
        self.change(|record| {
            let suite = record.suite.clone();
            let run = run_mut(record)?;
            for component in &run.components {
                for step in &component.steps {
                    if matches!(
                        step.state,
                        StepState::Running { .. } | StepState::WaitingForReboot { .. }
                    ) {
                        return Err(transition(
                            &suite,
                            &component.product,
                            step,
                            "finish the run with",
                        ));
                    }
                }
            }
            run.end = Some(RunEnd::Completed { at: now_unix() });
            Ok(())
        })
    }

    /// Gives up the run in progress (steps keep their records).
    pub fn abandon_run(&mut self, reason: impl Into<String>) -> Result<(), StateError> {
        let reason = reason.into();
        self.change(|record| {
            let run = run_mut(record)?;
            run.end = Some(RunEnd::Abandoned {
                at: now_unix(),
                reason,
            });
            Ok(())
        })
    }

    /// The next value of the run's counter, durable before it is returned,
    /// so ids built on it are never handed out twice (a crash can only skip one).
    pub fn next_sequence(&mut self) -> Result<(RunId, u64), StateError> {
        let mut taken = None;
        self.change(|record| {
            let run = run_mut(record)?;
            run.sequence += 1;
            taken = Some((run.id.clone(), run.sequence));
            Ok(())
        })?;
        // `change` ran the closure successfully, which set `taken`.
        taken.ok_or_else(|| StateError::NoRun {
            suite: self.record.suite.clone(),
        })
    }

    /// The step that was running when the process died, if any.
    ///
    /// Only one process writes the journal (the [`StateLock`]), and it
    /// records every end, so a step found running on open was interrupted.
    pub fn interrupted_step(&self) -> Option<InterruptedStep> {
        let run = self.run_in_progress()?;
        run.components.iter().find_map(|component| {
            component.steps.iter().find_map(|step| match step.state {
                StepState::Running { started_at } => Some(InterruptedStep {
                    step: StepRef {
                        product: component.product.clone(),
                        phase: step.phase,
                    },
                    attempt: step.attempts,
                    started_at,
                }),
                _ => None,
            })
        })
    }

    /// Settles the interrupted step, if any, as the step's descriptor says:
    /// pending again, to be run as its next attempt, or failed.
    pub fn resume_interrupted(
        &mut self,
        how: Resume,
    ) -> Result<Option<InterruptedStep>, StateError> {
        let Some(interrupted) = self.interrupted_step() else {
            return Ok(None);
        };
        let product = interrupted.step.product.clone();
        let phase = interrupted.step.phase;
        self.change(|record| {
            let suite = record.suite.clone();
            let step = step_mut(record, &suite, &product, phase)?;
            step.state = match how {
                Resume::RunAgain => StepState::Pending,
                Resume::MarkFailed => StepState::Failed {
                    started_at: Some(interrupted.started_at),
                    finished_at: now_unix(),
                    exit_code: None,
                    reason: format!(
                        "interrupted during attempt {} (the installer stopped while it ran) \
                         and its descriptor does not allow running it again",
                        interrupted.attempt
                    ),
                },
            };
            Ok(())
        })?;
        Ok(Some(interrupted))
    }

    /// Records that the step's command is about to start, and returns the
    /// attempt number. Call it *before* starting the command: if the process
    /// dies during the command, the journal says the step was running.
    ///
    /// Allowed from pending and from failed (a retry); refused from every
    /// other state: a done step is never run again, and an interrupted one
    /// must go through [`Journal::resume_interrupted`].
    pub fn begin_step(&mut self, product: &ProductId, phase: Phase) -> Result<u32, StateError> {
        let mut attempt = 0;
        self.change(|record| {
            let suite = record.suite.clone();
            let step = step_mut(record, &suite, product, phase)?;
            match step.state {
                StepState::Pending | StepState::Failed { .. } => {}
                _ => return Err(transition(&suite, product, step, "begin")),
            }
            step.attempts += 1;
            attempt = step.attempts;
            step.state = StepState::Running {
                started_at: now_unix(),
            };
            Ok(())
        })?;
        Ok(attempt)
    }

    /// Records how the step's command ended. Call it *after* the command
    /// ended and before anything else runs. A component whose steps are now
    /// all done or skipped is recorded as installed.
    pub fn finish_step(
        &mut self,
        product: &ProductId,
        phase: Phase,
        result: StepResult,
    ) -> Result<(), StateError> {
        self.change(|record| {
            let suite = record.suite.clone();
            let step = step_mut(record, &suite, product, phase)?;
            let StepState::Running { started_at } = step.state else {
                return Err(transition(&suite, product, step, "finish"));
            };
            let finished_at = now_unix();
            step.state = match result {
                StepResult::Success { exit_code } => StepState::Done {
                    started_at,
                    finished_at,
                    exit_code,
                    after_reboot: false,
                },
                StepResult::RebootRequired { exit_code, boot_id } => StepState::WaitingForReboot {
                    started_at,
                    finished_at,
                    exit_code,
                    boot_id,
                },
                StepResult::Failure { exit_code, reason } => StepState::Failed {
                    started_at: Some(started_at),
                    finished_at,
                    exit_code,
                    reason,
                },
            };
            note_installed(record, product, finished_at);
            Ok(())
        })
    }

    /// Skips one pending (or failed, to give up a retry) step.
    pub fn skip_step(
        &mut self,
        product: &ProductId,
        phase: Phase,
        reason: SkipReason,
    ) -> Result<(), StateError> {
        self.change(|record| {
            let suite = record.suite.clone();
            let step = step_mut(record, &suite, product, phase)?;
            match step.state {
                StepState::Pending | StepState::Failed { .. } => {}
                _ => return Err(transition(&suite, product, step, "skip")),
            }
            step.state = StepState::Skipped { reason };
            note_installed(record, product, now_unix());
            Ok(())
        })
    }

    /// Skips every pending step of a component (already installed, condition
    /// false). Steps already done keep their record.
    pub fn skip_component(
        &mut self,
        product: &ProductId,
        reason: SkipReason,
    ) -> Result<(), StateError> {
        self.change(|record| {
            let suite = record.suite.clone();
            let component = component_mut(record, &suite, product)?;
            for step in &mut component.steps {
                if step.state == StepState::Pending {
                    step.state = StepState::Skipped {
                        reason: reason.clone(),
                    };
                }
            }
            note_installed(record, product, now_unix());
            Ok(())
        })
    }

    /// Blocks every pending step of a component because `by` failed.
    pub fn block_component(
        &mut self,
        product: &ProductId,
        by: &ProductId,
    ) -> Result<(), StateError> {
        self.change(|record| {
            let suite = record.suite.clone();
            let component = component_mut(record, &suite, product)?;
            for step in &mut component.steps {
                if step.state == StepState::Pending {
                    step.state = StepState::Blocked { by: by.clone() };
                }
            }
            Ok(())
        })
    }

    /// Compares the boot id recorded by a step waiting for a reboot with the
    /// current one (read by the caller from `/proc/sys/kernel/random/boot_id`).
    /// After a reboot, the waiting steps become done and the run goes on.
    pub fn check_reboot(&mut self, current_boot_id: &str) -> Result<BootCheck, StateError> {
        let Some(run) = self.run_in_progress() else {
            return Ok(BootCheck::NothingWaiting);
        };
        let mut rebooted = Vec::new();
        for component in &run.components {
            for step in &component.steps {
                if let StepState::WaitingForReboot { boot_id, .. } = &step.state {
                    let step_ref = StepRef {
                        product: component.product.clone(),
                        phase: step.phase,
                    };
                    if boot_id.trim() == current_boot_id.trim() {
                        return Ok(BootCheck::StillWaiting(step_ref));
                    }
                    rebooted.push(step_ref);
                }
            }
        }
        if rebooted.is_empty() {
            return Ok(BootCheck::NothingWaiting);
        }
        self.change(|record| {
            let suite = record.suite.clone();
            for step_ref in &rebooted {
                let step = step_mut(record, &suite, &step_ref.product, step_ref.phase)?;
                if let StepState::WaitingForReboot {
                    started_at,
                    finished_at,
                    exit_code,
                    ..
                } = step.state
                {
                    step.state = StepState::Done {
                        started_at,
                        finished_at,
                        exit_code,
                        after_reboot: true,
                    };
                }
                note_installed(record, &step_ref.product, now_unix());
            }
            Ok(())
        })?;
        Ok(BootCheck::Rebooted(rebooted))
    }

    /// What comes next in the planned order.
    ///
    /// Within a component, steps run in order: a failed or blocked step ends
    /// that component (the install loop decides which dependents to block).
    /// An interrupted step or a reboot wait stops the walk, since the journal
    /// does not know which later components depend on it.
    pub fn next_step(&self) -> NextStep {
        let Some(run) = self.run_in_progress() else {
            return NextStep::Settled;
        };
        for component in &run.components {
            for step in &component.steps {
                let step_ref = || StepRef {
                    product: component.product.clone(),
                    phase: step.phase,
                };
                match &step.state {
                    StepState::Done { .. } | StepState::Skipped { .. } => continue,
                    StepState::Pending => return NextStep::Run(step_ref()),
                    StepState::Running { started_at } => {
                        return NextStep::Interrupted(InterruptedStep {
                            step: step_ref(),
                            attempt: step.attempts,
                            started_at: *started_at,
                        });
                    }
                    StepState::WaitingForReboot { boot_id, .. } => {
                        return NextStep::WaitingForReboot {
                            step: step_ref(),
                            boot_id: boot_id.clone(),
                        };
                    }
                    StepState::Failed { .. } | StepState::Blocked { .. } => break,
                }
            }
        }
        NextStep::Settled
    }

    /// Forgets that `product` is installed (after an uninstall).
    pub fn record_uninstalled(&mut self, product: &ProductId) -> Result<(), StateError> {
        if !self.record.installed.contains_key(product) {
            return Ok(());
        }
        self.change(|record| {
            record.installed.remove(product);
            Ok(())
        })
    }

    /// Applies `edit` to a copy of the record, writes the copy durably, and
    /// only then makes it the current record.
    fn change(
        &mut self,
        edit: impl FnOnce(&mut SuiteRecord) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut changed = self.record.clone();
        edit(&mut changed)?;
        self.write(&changed)?;
        self.record = changed;
        Ok(())
    }

    fn write(&self, record: &SuiteRecord) -> Result<(), StateError> {
        let mut bytes =
            serde_json::to_vec_pretty(record).map_err(|source| StateError::Serialize {
                what: "the journal",
                source,
            })?;
        bytes.push(b'\n');
        atomic::write_atomic(&self.path, &bytes, PRIVATE_FILE_MODE)
    }
}

/// Reads the journal of `suite` without a lock and without changing
/// anything (for `roleout status` while an install runs). `None` when the
/// suite has no journal. A corrupt file is reported, not moved.
pub fn read(state_dir: &Path, suite: &SuiteId) -> Result<Option<SuiteRecord>, StateError> {
    let path = journal_path(state_dir, suite);
    let Some(bytes) = atomic::read_optional(&path)? else {
        return Ok(None);
    };
    match parse(&path, suite, &bytes) {
        Ok(record) => Ok(Some(record)),
        Err(Parse::Unsupported(error)) => Err(error),
        Err(Parse::Corrupt(reason)) => Err(StateError::CorruptJournal {
            kept_as: path.clone(),
            path,
            reason,
        }),
    }
}

/// The suites that have a journal, sorted.
pub fn suites(state_dir: &Path) -> Result<Vec<SuiteId>, StateError> {
    let directory = journal_directory(state_dir);
    let entries = match fs::read_dir(&directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StateError::io("list", directory, error)),
    };
    let mut suites = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StateError::io("list", &directory, source))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if atomic::is_temporary_name(name) {
            continue;
        }
        if let Some(stem) = name.strip_suffix(".json")
            && let Ok(suite) = SuiteId::new(stem)
        {
            suites.push(suite);
        }
    }
    suites.sort();
    Ok(suites)
}

/// Why a journal file could not be used.
enum Parse {
    /// Written by a newer Roleout: leave it alone.
    Unsupported(StateError),
    /// Not a journal: set it aside.
    Corrupt(String),
}

fn parse(path: &Path, suite: &SuiteId, bytes: &[u8]) -> Result<SuiteRecord, Parse> {
    // Look at the format number first, so a newer file is refused as newer
    // rather than as corrupt because of fields this build does not know.
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| Parse::Corrupt(error.to_string()))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(JOURNAL_FORMAT) => {}
        Some(found) => {
            return Err(Parse::Unsupported(StateError::UnsupportedFormat {
                path: path.to_path_buf(),
                found,
                supported: JOURNAL_FORMAT,
            }));
        }
        None => {
            return Err(Parse::Corrupt(
                "it has no numeric \"format\" field".to_owned(),
            ));
        }
    }
    let record: SuiteRecord =
        serde_json::from_slice(bytes).map_err(|error| Parse::Corrupt(error.to_string()))?;
    if &record.suite != suite {
        return Err(Parse::Corrupt(format!(
            "it is the journal of suite {}, not of suite {suite}",
            record.suite
        )));
    }
    Ok(record)
}

fn journal_directory(state_dir: &Path) -> PathBuf {
    state_dir.join(JOURNAL_DIR_NAME)
}

fn journal_path(state_dir: &Path, suite: &SuiteId) -> PathBuf {
    // Suite ids have a narrow alphabet and never start with a dot, so the
    // name is a safe file name and never looks like a temporary.
    journal_directory(state_dir).join(format!("{suite}.json"))
}

fn empty_record(suite: &SuiteId) -> SuiteRecord {
    SuiteRecord {
        format: JOURNAL_FORMAT,
        suite: suite.clone(),
        last_accepted_serial: None,
        run: None,
        installed: BTreeMap::new(),
    }
}

/// Moves a corrupt journal to `NAME.corrupt-UNIXTIME` (a suffix added if that exists).
fn set_aside(path: &Path) -> Result<PathBuf, StateError> {
    let base = format!("{}.corrupt-{}", path.display(), now_unix());
    let mut kept_as = PathBuf::from(&base);
    let mut counter = 1;
    while kept_as.exists() {
        kept_as = PathBuf::from(format!("{base}.{counter}"));
        counter += 1;
    }
    atomic::rename_durably(path, &kept_as)?;
    Ok(kept_as)
}

/// The newest copy of the suite's journal set aside as corrupt, if any.
fn set_aside_copy(directory: &Path, suite: &SuiteId) -> Result<Option<PathBuf>, StateError> {
    let prefix = format!("{suite}.json.corrupt-");
    let entries =
        fs::read_dir(directory).map_err(|source| StateError::io("list", directory, source))?;
    let mut newest: Option<PathBuf> = None;
    for entry in entries {
        let entry = entry.map_err(|source| StateError::io("list", directory, source))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(&prefix))
        {
            let path = entry.path();
            if newest.as_ref().is_none_or(|current| path > *current) {
                newest = Some(path);
            }
        }
    }
    Ok(newest)
}

fn run_mut(record: &mut SuiteRecord) -> Result<&mut RunRecord, StateError> {
    match record.run.as_mut() {
        Some(run) if run.in_progress() => Ok(run),
        _ => Err(StateError::NoRun {
            suite: record.suite.clone(),
        }),
    }
}

fn component_mut<'record>(
    record: &'record mut SuiteRecord,
    suite: &SuiteId,
    product: &ProductId,
) -> Result<&'record mut ComponentRecord, StateError> {
    let run = run_mut(record)?;
    run.components
        .iter_mut()
        .find(|component| &component.product == product)
        .ok_or_else(|| StateError::UnknownStep {
            suite: suite.clone(),
            product: product.clone(),
            phase: Phase::Install,
        })
}

fn step_mut<'record>(
    record: &'record mut SuiteRecord,
    suite: &SuiteId,
    product: &ProductId,
    phase: Phase,
) -> Result<&'record mut StepRecord, StateError> {
    let unknown = || StateError::UnknownStep {
        suite: suite.clone(),
        product: product.clone(),
        phase,
    };
    let run = run_mut(record)?;
    run.components
        .iter_mut()
        .find(|component| &component.product == product)
        .ok_or_else(unknown)?
        .steps
        .iter_mut()
        .find(|step| step.phase == phase)
        .ok_or_else(unknown)
}

fn transition(
    suite: &SuiteId,
    product: &ProductId,
    step: &StepRecord,
    action: &'static str,
) -> StateError {
    StateError::StepTransition {
        suite: suite.clone(),
        product: product.clone(),
        phase: step.phase,
        action,
        state: step.state.name(),
    }
}

/// Records `product` as installed if this run has now completed it.
fn note_installed(record: &mut SuiteRecord, product: &ProductId, at: u64) {
    let Some(run) = record.run.as_ref() else {
        return;
    };
    let Some(component) = run.component(product) else {
        return;
    };
    if component.completed_by_this_run() {
        record.installed.insert(
            product.clone(),
            InstalledProduct {
                version: component.version.clone(),
                model: component.model.clone(),
                build: run.build.clone(),
                run: run.id.clone(),
                installed_at: at,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Sha256 {
        Sha256::from_bytes(&[byte; 32])
    }

    fn plan(products: &[&str]) -> Vec<PlannedComponent> {
        products
            .iter()
            .map(|product| PlannedComponent {
                product: ProductId::new(*product).expect("valid in this test"),
                version: Version::new("1.0").expect("valid in this test"),
                model: digest(1),
                phases: Phase::INSTALL_ORDER.to_vec(),
            })
            .collect()
    }

    #[test]
    fn run_ids_are_random_hex() {
        let first = RunId::generate().expect("valid in this test");
        let second = RunId::generate().expect("valid in this test");
        assert_ne!(first, second);
        assert_eq!(first.as_str().len(), 32);
        assert!(RunId::try_from("XYZ".to_owned()).is_err());
    }

    #[test]
    fn a_failed_component_ends_its_walk_but_not_the_next_ones() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let lock = StateLock::acquire(directory.path()).expect("lock");
        let suite = SuiteId::new("office").expect("valid in this test");
        let mut journal = Journal::open(&lock, &suite).expect("valid in this test");
        journal
            .start_run(digest(9), plan(&["a", "b"]))
            .expect("valid in this test");
        let a = ProductId::new("a").expect("valid in this test");
        journal
            .begin_step(&a, Phase::PreInstall)
            .expect("valid in this test");
        journal
            .finish_step(
                &a,
                Phase::PreInstall,
                StepResult::Failure {
                    exit_code: Some(1),
                    reason: "exit code 1".to_owned(),
                },
            )
            .expect("valid in this test");
        assert_eq!(
            journal.next_step(),
            NextStep::Run(StepRef {
                product: ProductId::new("b").expect("valid in this test"),
                phase: Phase::PreInstall
            })
        );
        // A retry of the failed step is the next attempt.
        assert_eq!(
            journal
                .begin_step(&a, Phase::PreInstall)
                .expect("valid in this test"),
            2
        );
    }

    #[test]
    fn skipping_as_already_installed_keeps_the_installed_record() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let lock = StateLock::acquire(directory.path()).expect("lock");
        let suite = SuiteId::new("office").expect("valid in this test");
        let mut journal = Journal::open(&lock, &suite).expect("valid in this test");
        journal
            .start_run(digest(9), plan(&["a"]))
            .expect("valid in this test");
        let a = ProductId::new("a").expect("valid in this test");
        journal
            .skip_component(&a, SkipReason::AlreadyInstalled)
            .expect("valid in this test");
        assert!(journal.installed().is_empty());
        assert!(!journal.installed_matches(&plan(&["a"])[0]));
        assert_eq!(journal.next_step(), NextStep::Settled);
        journal.finish_run().expect("valid in this test");
        assert!(journal.run_in_progress().is_none());
    }
}
