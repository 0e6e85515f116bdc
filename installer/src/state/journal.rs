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
//! One file per suite, `STATE_DIR/journal/SUITE.json`. One file per suite
//! rather than one overall: suites are installed independently and a
//! damaged file stops one suite, not every one.
//!
//! The file is a snapshot followed by changes, each a JSON value on its own
//! line: the first line is the whole [`SuiteRecord`] (`"format": 2`), every
//! later line one change, holding whole the parts of the record that
//! changed (a component's record, an installed product, the run's end), so
//! the record is the snapshot with the changes applied in order. A change
//! is appended and made durable with one `fdatasync` of the file: an
//! append changes no directory entry, so no rename and no fsync of the
//! directory are needed, and a step's record costs the size of the step,
//! not of the whole suite. The snapshot is rewritten whole (atomically,
//! see [`atomic`](crate::state::atomic)) when a run starts, when the
//! journal is created, and on opening once many changes have piled up.
//!
//! A last line that is incomplete or does not parse was being appended
//! when the process or the machine stopped; the method writing it had not
//! returned, so nothing acted on it, and it is dropped (the next write
//! starts from a clean snapshot). Anything else that is not valid JSON or
//! not a journal makes the file corrupt: it is moved aside as
//! `SUITE.json.corrupt-UNIXTIME` and reported
//! ([`StateError::CorruptJournal`]); it is never silently replaced by an
//! empty journal, because an empty journal would run finished steps again.
//! Starting over takes an explicit [`Journal::start_over`]. A file with a
//! format number from a newer Roleout is left in place and refused.
//! Format 1 (the whole record, rewritten on every change) is read and
//! rewritten as format 2 on opening. Fields unknown to this build make a
//! file corrupt: a change that adds a field raises the format number.
//!
//! The journal does not know dependencies between components; the install
//! loop does. The journal only keeps the planned order, and
//! [`Journal::next_step`] walks it conservatively (a reboot wait anywhere
//! holds back everything after it).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use roleout_model::command::Phase;
use roleout_model::ids::{ProductId, Sha256, SuiteId};
use roleout_model::version::Version;
use serde::{Deserialize, Serialize};

use crate::state::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use crate::state::{StateError, StateLock, now_unix};

/// The journal format this build writes (and the newest it reads).
pub const JOURNAL_FORMAT: u64 = 2;

/// The oldest journal format this build reads: format 1 held the whole
/// record alone and was rewritten on every change.
pub const OLDEST_JOURNAL_FORMAT: u64 = 1;

/// How many appended changes make [`Journal::open`] rewrite the file as one
/// snapshot, so that a journal reopened run after run stays short. A run
/// start writes a snapshot anyway; this bounds what accumulates between.
const COMPACT_AFTER_CHANGES: usize = 512;

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
/// Every change is written durably before the method returns (except with
/// [`Journal::finish_step_deferred`], whose caller syncs); if the write
/// fails, the in-memory record is left as it was, so memory and disk agree.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: SuiteRecord,
    /// The file, open for appending changes; opened at the first append
    /// after a snapshot was written.
    appender: Option<File>,
    /// The length of the file's valid content: a failed append is cut back
    /// to it, so no partial line is ever followed by another change.
    length: u64,
    /// Whether the file exists (a snapshot was written or read).
    on_disk: bool,
    /// Whether a change was appended without being synced yet.
    unsynced: bool,
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
                Ok(loaded) => {
                    let mut journal = Journal {
                        path,
                        record: loaded.record,
                        appender: None,
                        length: loaded.valid_length,
                        on_disk: true,
                        unsynced: false,
                    };
                    // A torn last line must not stay in front of the next
                    // change, an older format is not appended to, and a
                    // long tail of changes is folded into one snapshot.
                    if loaded.torn_tail
                        || loaded.format != JOURNAL_FORMAT
                        || loaded.changes >= COMPACT_AFTER_CHANGES
                    {
                        let record = journal.record.clone();
                        journal.write_snapshot(&record)?;
                    }
                    Ok(journal)
                }
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
                    appender: None,
                    length: 0,
                    on_disk: false,
                    unsynced: false,
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
        let mut journal = Journal {
            path: journal_path(lock.state_dir(), suite),
            record: empty_record(suite),
            appender: None,
            length: 0,
            on_disk: false,
            unsynced: false,
        };
        let record = journal.record.clone();
        journal.write_snapshot(&record)?;
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
        self.finish_step_deferred(product, phase, result)?;
        self.sync()
    }

    /// Like [`Journal::finish_step`], but the record is only written, not
    /// yet made durable: the next durable change (such as the
    /// [`Journal::begin_step`] of the next step) or [`Journal::sync`] makes
    /// it durable with its own single `fdatasync`.
    ///
    /// For a caller that makes it durable before anything depends on it:
    /// before the next command starts, and before the step's report leaves
    /// the outbox (the report, queued before this record, is what settles
    /// the step if the record is lost: see the install loop). A `kill -9`
    /// loses nothing written here; only a power cut can, and then the step
    /// is found running with its report queued.
    pub fn finish_step_deferred(
        &mut self,
        product: &ProductId,
        phase: Phase,
        result: StepResult,
    ) -> Result<(), StateError> {
        self.change_with(Durability::Deferred, |record| {
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

    /// Makes every change written so far durable (one `fdatasync`, none
    /// when nothing waits).
    pub fn sync(&mut self) -> Result<(), StateError> {
        if !self.unsynced {
            return Ok(());
        }
        if let Some(file) = &self.appender {
            file.sync_data()
                .map_err(|source| StateError::io("fsync", &self.path, source))?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Applies `edit` to a copy of the record, writes the copy durably, and
    /// only then makes it the current record.
    fn change(
        &mut self,
        edit: impl FnOnce(&mut SuiteRecord) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.change_with(Durability::Now, edit)
    }

    fn change_with(
        &mut self,
        durability: Durability,
        edit: impl FnOnce(&mut SuiteRecord) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut changed = self.record.clone();
        edit(&mut changed)?;
        match diff(&self.record, &changed).filter(|_| self.on_disk) {
            Some(change) if change.is_empty() => {}
            Some(change) => self.append(&change, durability)?,
            // A new run, or no file yet: the whole record.
            None => self.write_snapshot(&changed)?,
        }
        self.record = changed;
        Ok(())
    }

    /// Appends one change; with [`Durability::Now`], `fdatasync`s it (and
    /// every deferred change before it) before returning.
    fn append(&mut self, change: &Change, durability: Durability) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(change).map_err(|source| StateError::Serialize {
            what: "a journal change",
            source,
        })?;
        line.push(b'\n');
        let file = match &mut self.appender {
            Some(file) => file,
            None => self.appender.insert(
                OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .map_err(|source| StateError::io("open", &self.path, source))?,
            ),
        };
        let written = file.write_all(&line).and_then(|()| match durability {
            // The data and the new length are what an append changes;
            // fdatasync makes both durable (no directory entry changed).
            Durability::Now => file.sync_data(),
            Durability::Deferred => Ok(()),
        });
        if let Err(source) = written {
            // Best effort: cut a partial line off so that the next change
            // does not follow it. Were that to fail too, the partial line
            // is the last one and the next open drops it.
            let _ = file.set_len(self.length);
            return Err(StateError::io("append to", &self.path, source));
        }
        self.length += line.len() as u64;
        self.unsynced = durability == Durability::Deferred;
        Ok(())
    }

    /// Replaces the file with `record` alone, atomically and durably.
    fn write_snapshot(&mut self, record: &SuiteRecord) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec(record).map_err(|source| StateError::Serialize {
            what: "the journal",
            source,
        })?;
        bytes.push(b'\n');
        // The snapshot replaces the file the appender writes to, and holds
        // every change written before it.
        self.appender = None;
        atomic::write_atomic(&self.path, &bytes, PRIVATE_FILE_MODE)?;
        self.length = bytes.len() as u64;
        self.on_disk = true;
        self.unsynced = false;
        Ok(())
    }
}

impl Drop for Journal {
    /// Best effort for a caller that returned early with a deferred change
    /// written: a failure here leaves the step to be settled from its
    /// queued report after a power cut, as the deferral already allows.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Whether a change is durable when the method writing it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Synced before returning.
    Now,
    /// Written; the caller syncs it later.
    Deferred,
}

/// One change appended after the snapshot: every part of the record that
/// differs from the record before it, each given whole, so that applying
/// the changes in order gives the record back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Change {
    /// The new highest accepted serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_accepted_serial: Option<u64>,
    /// The run's end, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_end: Option<RunEnd>,
    /// The run's new report counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_sequence: Option<u64>,
    /// Components of the run whose record changed, by position in the plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    components: Vec<ComponentChange>,
    /// Installed products recorded (a record) or forgotten (`null`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    installed: BTreeMap<ProductId, Option<InstalledProduct>>,
}

impl Change {
    fn is_empty(&self) -> bool {
        *self == Change::default()
    }
}

/// A component's new record at its position in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ComponentChange {
    index: usize,
    component: ComponentRecord,
}

/// The change from `old` to `new`, or `None` when only a snapshot can say
/// it (a run started or replaced, a serial forgotten).
fn diff(old: &SuiteRecord, new: &SuiteRecord) -> Option<Change> {
    if old.format != new.format || old.suite != new.suite {
        return None;
    }
    let mut change = Change::default();
    if old.last_accepted_serial != new.last_accepted_serial {
        change.last_accepted_serial = Some(new.last_accepted_serial?);
    }
    match (&old.run, &new.run) {
        (None, None) => {}
        (Some(old_run), Some(new_run)) => {
            if old_run.id != new_run.id
                || old_run.build != new_run.build
                || old_run.started_at != new_run.started_at
                || old_run.components.len() != new_run.components.len()
            {
                return None;
            }
            if old_run.end != new_run.end {
                change.run_end = Some(new_run.end.clone()?);
            }
            if old_run.sequence != new_run.sequence {
                change.run_sequence = Some(new_run.sequence);
            }
            for (index, (before, after)) in old_run
                .components
                .iter()
                .zip(&new_run.components)
                .enumerate()
            {
                if before != after {
                    if before.product != after.product {
                        return None;
                    }
                    change.components.push(ComponentChange {
                        index,
                        component: after.clone(),
                    });
                }
            }
        }
        _ => return None,
    }
    for product in old.installed.keys().chain(new.installed.keys()) {
        let after = new.installed.get(product);
        if old.installed.get(product) != after {
            change.installed.insert(product.clone(), after.cloned());
        }
    }
    Some(change)
}

/// Applies a change read from the file; why it does not fit, if it does not.
fn apply(record: &mut SuiteRecord, change: Change) -> Result<(), String> {
    if let Some(serial) = change.last_accepted_serial {
        record.last_accepted_serial = Some(serial);
    }
    if change.run_end.is_some() || change.run_sequence.is_some() || !change.components.is_empty() {
        let run = record
            .run
            .as_mut()
            .ok_or("it changes the run, but the journal has no run")?;
        if let Some(end) = change.run_end {
            run.end = Some(end);
        }
        if let Some(sequence) = change.run_sequence {
            run.sequence = sequence;
        }
        let count = run.components.len();
        for ComponentChange { index, component } in change.components {
            let slot = run.components.get_mut(index).ok_or_else(|| {
                format!("it changes component {index}, but the run has {count} components")
            })?;
            if slot.product != component.product {
                return Err(format!(
                    "it changes component {index} as {}, but that component is {}",
                    component.product, slot.product
                ));
            }
            *slot = component;
        }
    }
    for (product, installed) in change.installed {
        match installed {
            Some(installed) => {
                record.installed.insert(product, installed);
            }
            None => {
                record.installed.remove(&product);
            }
        }
    }
    Ok(())
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
        Ok(loaded) => Ok(Some(loaded.record)),
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

/// A journal file read back.
struct Loaded {
    /// The snapshot with every change applied.
    record: SuiteRecord,
    /// The format of the snapshot.
    format: u64,
    /// How many changes followed the snapshot.
    changes: usize,
    /// Where the snapshot and the complete changes end.
    valid_length: u64,
    /// Whether an incomplete last line followed them.
    torn_tail: bool,
}

fn parse(path: &Path, suite: &SuiteId, bytes: &[u8]) -> Result<Loaded, Parse> {
    // The snapshot, which a format-1 file spreads over many lines.
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    let value = match stream.next() {
        Some(Ok(value)) => value,
        Some(Err(error)) => return Err(Parse::Corrupt(error.to_string())),
        None => return Err(Parse::Corrupt("it is empty".to_owned())),
    };
    let snapshot_end = stream.byte_offset();
    // Look at the format number first, so a newer file is refused as newer
    // rather than as corrupt because of fields this build does not know.
    let format = match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(format) if (OLDEST_JOURNAL_FORMAT..=JOURNAL_FORMAT).contains(&format) => format,
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
    };
    let mut record: SuiteRecord =
        serde_json::from_value(value).map_err(|error| Parse::Corrupt(error.to_string()))?;
    if &record.suite != suite {
        return Err(Parse::Corrupt(format!(
            "it is the journal of suite {}, not of suite {suite}",
            record.suite
        )));
    }
    record.format = JOURNAL_FORMAT;
    let mut loaded = Loaded {
        record,
        format,
        changes: 0,
        valid_length: snapshot_end as u64,
        torn_tail: false,
    };

    // The changes, one per line.
    let rest = &bytes[snapshot_end..];
    let line_of = |offset: usize| {
        1 + bytes[..offset]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count()
    };
    let mut offset = snapshot_end;
    let mut lines = rest.split_inclusive(|byte| *byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        let start = offset;
        offset += line.len();
        if line.iter().all(u8::is_ascii_whitespace) {
            loaded.valid_length = offset as u64;
            continue;
        }
        let is_last = lines.peek().is_none();
        if format != JOURNAL_FORMAT {
            return Err(Parse::Corrupt(format!(
                "line {}: a format-{format} journal holds only one record",
                line_of(start)
            )));
        }
        let parsed = serde_json::from_slice::<Change>(line)
            .map_err(|error| error.to_string())
            .and_then(|change| apply(&mut loaded.record, change));
        match parsed {
            Ok(()) => {
                loaded.changes += 1;
                loaded.valid_length = offset as u64;
                // Whole but for its line end: the next change must not
                // follow it on the same line.
                loaded.torn_tail = !line.ends_with(b"\n");
            }
            // Being appended when the process or the machine stopped: its
            // writer never returned, so nothing acted on it.
            Err(_) if is_last && !line.ends_with(b"\n") => loaded.torn_tail = true,
            Err(_) if is_last && serde_json::from_slice::<serde_json::Value>(line).is_err() => {
                loaded.torn_tail = true;
            }
            Err(reason) => {
                return Err(Parse::Corrupt(format!("line {}: {reason}", line_of(start))));
            }
        }
    }
    Ok(loaded)
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

    /// Every record a run goes through is the one before with its change
    /// applied, and the change survives JSON.
    #[test]
    fn a_change_applied_gives_the_changed_record() {
        let suite = SuiteId::new("office").expect("valid in this test");
        let mut record = empty_record(&suite);
        record.run = Some(RunRecord {
            id: RunId::generate().expect("valid in this test"),
            build: digest(9),
            started_at: 1,
            end: None,
            sequence: 0,
            components: plan(&["a", "b"])
                .into_iter()
                .map(|planned| ComponentRecord {
                    product: planned.product,
                    version: planned.version,
                    model: planned.model,
                    steps: vec![StepRecord {
                        phase: Phase::Install,
                        attempts: 0,
                        state: StepState::Pending,
                    }],
                })
                .collect(),
        });
        let b = ProductId::new("b").expect("valid in this test");
        type Edit = Box<dyn Fn(&mut SuiteRecord)>;
        let edits: Vec<Edit> = vec![
            Box::new(|record| record.last_accepted_serial = Some(4)),
            Box::new(|record| {
                let run = record.run.as_mut().expect("valid in this test");
                run.components[1].steps[0].attempts = 1;
                run.components[1].steps[0].state = StepState::Running { started_at: 2 };
                run.sequence = 3;
            }),
            Box::new(|record| {
                let run = record.run.as_mut().expect("valid in this test");
                run.components[1].steps[0].state = StepState::Done {
                    started_at: 2,
                    finished_at: 3,
                    exit_code: Some(0),
                    after_reboot: false,
                };
                note_installed(record, &ProductId::new("b").expect("valid in this test"), 3);
            }),
            Box::new(|record| {
                record.run.as_mut().expect("valid in this test").end =
                    Some(RunEnd::Completed { at: 4 });
                record
                    .installed
                    .remove(&ProductId::new("b").expect("valid in this test"));
            }),
        ];
        for edit in edits {
            let mut changed = record.clone();
            edit(&mut changed);
            let change = diff(&record, &changed).expect("a change says it");
            assert!(!change.is_empty());
            let read_back: Change =
                serde_json::from_slice(&serde_json::to_vec(&change).expect("valid in this test"))
                    .expect("valid in this test");
            apply(&mut record, read_back).expect("it fits");
            assert_eq!(record, changed);
        }
        assert!(!record.installed.contains_key(&b));
        // A new run is not a change: it takes a snapshot.
        let mut replaced = record.clone();
        replaced.run.as_mut().expect("valid in this test").id =
            RunId::generate().expect("valid in this test");
        assert_eq!(diff(&record, &replaced), None);
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
