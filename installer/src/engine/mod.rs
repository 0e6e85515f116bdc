//! The install loop (Fig. 10, machine side): from a signed suite to
//! installed components, reported once each, resumable after a crash or a
//! reboot.
//!
//! One run of a suite goes like this:
//!
//! 1. the state lock is taken (one installer at a time); a step whose
//!    report an earlier run queued but whose end it did not record is
//!    settled from that report; then reports left in the outbox are
//!    delivered;
//! 2. the suite envelope is fetched from a [`Source`] and checked
//!    ([`verify`]: the envelope checks of [`roleout_model::protocol::signing::verify_envelope`],
//!    then the suite, Machine object and build digest inside), against the
//!    last envelope accepted for the suite (an older serial is a
//!    rollback). Any refusal stops the suite before anything runs;
//! 3. the journal says whether a run of this build is in progress: it is
//!    resumed (a step found running was interrupted and runs again; done
//!    steps never run again), a run of an older build is abandoned, and
//!    otherwise a new run starts with every planned step pending;
//! 4. a suite-level IncrementalInstall is decided before any component:
//!    when it says skip, every component is reported skipped with its
//!    reason and nothing runs; then each component, in plan order:
//!    dependents of a failed component are blocked, dependents of one waiting for a reboot are held; variable
//!    values are resolved (response file, suite linkage, defaults) and
//!    validated; IncrementalInstall and the version checker may skip it,
//!    with their explanation; payloads come through the cache by digest
//!    (a digest mismatch refuses the component before any command); then
//!    pre-install, install and post-install run through [`crate::run`],
//!    each recorded in the journal before and after;
//! 5. each step's report goes into the outbox *before* the journal records
//!    the step's end (so a crash between the two loses no report and runs
//!    nothing twice). The end is made durable together with the next
//!    step's start (one fdatasync for both), and delivery is tried once it
//!    is durable, so a report never leaves the outbox before the end of
//!    its step is on disk; a report that cannot be delivered stays for the
//!    next run;
//! 6. when nothing waits for a reboot, the run is closed in the journal and
//!    "suite complete" is reported.
//!
//! Reports carry stable ids (run id, product, phase, attempt), so a report
//! sent again after a lost acknowledgement is a duplicate to roleoutd, not
//! a second event. Only redacted text reaches reports, events and the
//! journal: password values are masked by the runner and by rendering.

pub mod identity;
pub mod removal;
pub mod source;
pub mod values;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use roleout_model::command::{CommandLineModel, Phase};
use roleout_model::condition::{Facts, RunHistory};
use roleout_model::ids::{MachineId, ProductId, Sha256, SuiteId};
use roleout_model::product::ProductModel;
use roleout_model::protocol::{
    MAX_EVIDENCE_CHARS, MAX_EVIDENCE_ITEMS, ReportOutcome, ReportStep, RunSummary, SignedEnvelope,
    StatusReport, SuiteComplete, SuiteDelivery, Timestamp, canonical_json, cap_log,
};
use roleout_model::render::{RenderContext, render_command, render_condition};
use roleout_model::resolve::{PlanStep, Reason};
use roleout_model::suite::{OnFailure, Suite};
use roleout_model::validate::{
    GivenValues, Validators, Values, resolve_suite_values, resolve_values_partially,
};
use roleout_model::variable::Value;

use crate::facts::SystemFacts;
use crate::progress::{Event, Reporter};
use crate::run::{self, CommandReport, CommandSpec, Exit, Outcome, Secrets};
use crate::state::atomic::{self, PRIVATE_FILE_MODE};
use crate::state::cache::{ENTRY_MODE, PayloadCache};
use crate::state::journal::{
    self, BootCheck, ComponentRecord, Journal, PlannedComponent, Resume, RunId, SkipReason,
    StepResult, StepState, SuiteRecord,
};
use crate::state::outbox::{Outbox, Report, ReportId, ReportKind};
use crate::state::{StateError, StateLock};
use roleout_model::protocol::signing::PinnedKey;

pub use self::source::{DirectorySource, Source, SourceError};
pub use self::verify::VerifyError;

/// Where Linux says which boot this is.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The outbox kind of a step report.
const STATUS_KIND: &str = "status";
/// The outbox kind of the report of a component settled without a
/// command (skipped, blocked).
const CHECK_KIND: &str = "check";
/// The outbox kind of the end of a run.
const COMPLETE_KIND: &str = "suite-complete";

/// The environment variable that names a fault-injection point: when it
/// names one the install loop reaches, the process aborts there, as a
/// power cut or a `kill -9` would stop it. Tests use it to stop the
/// installer between two writes, where no outside signal can be timed.
pub const FAULT_INJECTION_VARIABLE: &str = "ROLEOUT_FAULT_INJECTION";

/// Fault-injection point: a step's report is in the outbox and the
/// journal does not yet record the step's end.
pub const FAULT_AFTER_STEP_REPORT_QUEUED: &str = "after-step-report-queued";

/// Aborts the process when [`FAULT_INJECTION_VARIABLE`] names `point`.
fn fault_point(point: &str) {
    if std::env::var_os(FAULT_INJECTION_VARIABLE).is_some_and(|value| value == point) {
        std::process::abort();
    }
}

fn report_kind(kind: &str) -> Result<ReportKind, EngineError> {
    ReportKind::new(kind).map_err(state_error)
}

/// Process exit codes of `roleout`, documented in `roleout --help`.
pub mod exit_code {
    /// Every component is installed or skipped.
    pub const SUCCESS: i32 = 0;
    /// A component failed or was blocked.
    pub const FAILED: i32 = 1;
    /// Usage or configuration error.
    pub const USAGE: i32 = 2;
    /// Authentication or verification refused.
    pub const REFUSED: i32 = 3;
    /// The server cannot be reached (reports are kept in the outbox).
    pub const UNREACHABLE: i32 = 4;
    /// A reboot is required to continue.
    pub const REBOOT: i32 = 5;
    /// Another roleout holds the state lock.
    pub const LOCKED: i32 = 6;
}

/// Why a run could not go on. A component that fails is not an error: it
/// is counted in the [`SuiteOutcome`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Another installer holds the state directory.
    #[error(transparent)]
    Locked(StateError),
    /// The state directory could not be read or written.
    #[error(transparent)]
    State(StateError),
    /// An envelope was refused; nothing from it ran.
    #[error("suite {suite}: refused: {reason}")]
    Refused {
        /// The suite (or `suites` for the list).
        suite: String,
        /// Which check failed.
        reason: String,
    },
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The configuration or the input is wrong.
    #[error("{0}")]
    Config(String),
}

impl EngineError {
    /// The process exit code this error ends `roleout` with.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Locked(_) => exit_code::LOCKED,
            EngineError::State(_) | EngineError::Config(_) => exit_code::USAGE,
            EngineError::Refused { .. } => exit_code::REFUSED,
            EngineError::Source(SourceError::Unreachable { .. }) => exit_code::UNREACHABLE,
            EngineError::Source(_) => exit_code::REFUSED,
        }
    }
}

fn state_error(error: StateError) -> EngineError {
    match error {
        StateError::Locked { .. } => EngineError::Locked(error),
        other => EngineError::State(other),
    }
}

/// Everything a run needs to know about this machine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The state directory (journal, outbox, lock, enrolment).
    pub state_dir: PathBuf,
    /// The payload cache directory.
    pub cache_dir: PathBuf,
    /// The install root (`/`, or a sandbox): the `root` template variable
    /// and where package databases are asked.
    pub root: PathBuf,
    /// This machine.
    pub machine: MachineId,
    /// The builder key envelopes must verify with.
    pub builder_key: PinnedKey,
    /// Values from a response file.
    pub given: GivenValues,
    /// The file holding the boot id ([`BOOT_ID_PATH`] on a real machine).
    pub boot_id_path: PathBuf,
    /// The languages localized texts are shown in, most wanted first
    /// (from the locale; see `roleout_model::text::languages_from_locale`).
    pub languages: Vec<String>,
    /// The bound the payload cache is trimmed to after each install.
    pub cache_max_bytes: u64,
    /// Builder keys the pinned one vouched for (a rotation announced by
    /// roleoutd): envelopes signed by them are accepted too.
    pub endorsed_keys: Vec<PinnedKey>,
    /// The program that supervises each install command so that it
    /// outlives this process (`roleout` itself; see `run::supervise`). A
    /// step interrupted by a crash of this process is then finished from
    /// its command's recorded end, or waited for, instead of being run
    /// again. None runs commands as children of this process, and an
    /// interrupted step runs again.
    pub supervisor: Option<PathBuf>,
}

/// The folder of the records of supervised commands, per run.
const STEPS_DIR: &str = "steps";

/// The payload cache's bound unless one is given: 2 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;

impl Settings {
    /// Settings with the usual cache (`STATE_DIR/cache`), root `/` and
    /// boot id file.
    pub fn new(state_dir: impl Into<PathBuf>, machine: MachineId, builder_key: PinnedKey) -> Self {
        let state_dir = state_dir.into();
        Self {
            cache_dir: state_dir.join("cache"),
            state_dir,
            root: PathBuf::from("/"),
            machine,
            builder_key,
            given: GivenValues::default(),
            boot_id_path: PathBuf::from(BOOT_ID_PATH),
            languages: Vec::new(),
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            endorsed_keys: Vec::new(),
            supervisor: None,
        }
    }

    /// The folder of one attempt of one install step's commands
    /// (`STATE_DIR/steps/RUN/PRODUCT.PHASE.ATTEMPT`).
    fn step_dir(&self, run: &RunId, product: &ProductId, phase: Phase, attempt: u32) -> PathBuf {
        self.state_dir
            .join(STEPS_DIR)
            .join(run.as_str())
            .join(format!("{product}.{phase}.{attempt}"))
    }

    /// The trusted builder key whose id is `key_id` (the pinned one or an
    /// endorsed one); the pinned one when none has it, so that the refusal
    /// names the pinned key.
    pub fn key_for(&self, key_id: &Sha256) -> &PinnedKey {
        self.endorsed_keys
            .iter()
            .find(|key| &key.key_id() == key_id)
            .unwrap_or(&self.builder_key)
    }
}

/// How one suite's run ended (for now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteOutcome {
    /// The suite.
    pub suite: SuiteId,
    /// The counts, from the journal (so a resumed run counts what the
    /// interrupted one did too).
    pub summary: RunSummary,
    /// Components held back until a reboot.
    pub waiting: usize,
    /// Reports left in the outbox because delivery failed.
    pub undelivered: usize,
}

/// How an install ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOutcome {
    /// One entry per suite run.
    pub suites: Vec<SuiteOutcome>,
}

impl InstallOutcome {
    /// The process exit code: a failure or block first, then a reboot
    /// wait, then undelivered reports, else success.
    pub fn exit_code(&self) -> i32 {
        let summaries = || self.suites.iter().map(|suite| &suite.summary);
        if summaries().any(|summary| summary.failed > 0 || summary.blocked > 0) {
            exit_code::FAILED
        } else if summaries().any(|summary| summary.reboot_required) {
            exit_code::REBOOT
        } else if self.suites.iter().any(|suite| suite.undelivered > 0) {
            exit_code::UNREACHABLE
        } else {
            exit_code::SUCCESS
        }
    }
}

/// One line of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlanLine {
    /// The product.
    pub product: ProductId,
    /// Its name in the machine's language ([`Settings::languages`]), when
    /// the descriptor gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its version.
    pub version: roleout_model::version::Version,
    /// Whether it would run.
    pub would_run: bool,
    /// Why (or why not), in words.
    pub reason: String,
    /// Products it comes after.
    pub after: Vec<ProductId>,
}

/// Installs `suite`, or every suite of the machine's suite list when none
/// is given.
pub fn install(
    settings: &Settings,
    source: &mut dyn Source,
    suite: Option<&SuiteId>,
    reporter: &dyn Reporter,
) -> Result<InstallOutcome, EngineError> {
    let lock = StateLock::acquire(&settings.state_dir).map_err(state_error)?;
    end_abandoned_commands(reporter);
    let mut outbox = Outbox::open(&lock).map_err(state_error)?;
    recover_queued_steps(settings, &lock, &mut outbox, reporter)?;
    let mut delivery = Delivery::default();
    delivery.flush(&mut outbox, source, reporter)?;
    let suites = match suite {
        Some(suite) => vec![suite.clone()],
        None => fetch_suite_list(settings, source)?,
    };
    let mut outcome = InstallOutcome::default();
    for suite in suites {
        let mut run = SuiteRun::prepare(settings, &lock, source, &suite)?;
        let suite_outcome = run.execute(
            settings,
            &lock,
            source,
            &mut outbox,
            &mut delivery,
            reporter,
        )?;
        outcome.suites.push(suite_outcome);
    }
    outbox.sync().map_err(state_error)?;
    trim_state(settings, &lock, reporter);
    Ok(outcome)
}

/// Keeps the state directory to a bound after a run: the payload copies
/// of runs that are over go (`runs/RUN/`; a run still in progress, such as
/// one waiting for a reboot, keeps its own), and the payload cache is
/// brought under [`Settings::cache_max_bytes`] by dropping the entries
/// used least recently. What fails here is said and costs nothing but
/// space: the next run tries again.
fn trim_state(settings: &Settings, lock: &StateLock, reporter: &dyn Reporter) {
    let note = |message: String| reporter.event(&Event::Note { message });
    let in_progress: BTreeSet<String> = journal::suites(&settings.state_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|suite| journal::read(&settings.state_dir, suite).ok().flatten())
        .filter_map(|record| record.run)
        .filter(|run| run.end.is_none())
        .map(|run| run.id.as_str().to_owned())
        .collect();
    let folders = [
        settings.state_dir.join("runs"),
        settings.state_dir.join(STEPS_DIR),
    ];
    for listing in folders
        .iter()
        .filter_map(|folder| fs::read_dir(folder).ok())
    {
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if in_progress.contains(&name) {
                continue;
            }
            if let Err(error) = fs::remove_dir_all(entry.path()) {
                note(format!(
                    "could not remove {}: {error}",
                    entry.path().display()
                ));
            }
        }
    }
    let trimmed = PayloadCache::open(lock, &settings.cache_dir).and_then(|cache| {
        cache
            .with_max_bytes(settings.cache_max_bytes)
            .trim(&std::collections::HashSet::new())
    });
    match trimmed {
        Ok(eviction) if eviction.removed > 0 => note(format!(
            "payload cache trimmed: {} file(s), {} bytes freed, {} bytes kept",
            eviction.removed, eviction.freed_bytes, eviction.remaining_bytes
        )),
        Ok(_) => {}
        Err(error) => note(format!("the payload cache could not be trimmed: {error}")),
    }
}

/// Ends the commands an agent that died left running (see
/// `run::sweep_abandoned`), before anything runs again: a step recorded
/// running is started anew only once no copy of it is left.
fn end_abandoned_commands(reporter: &dyn Reporter) {
    match run::sweep_abandoned() {
        Ok(0) => {}
        Ok(killed) => reporter.event(&Event::Note {
            message: format!(
                "ended {killed} process(es) of commands a previous roleout left running"
            ),
        }),
        Err(error) => reporter.event(&Event::Note {
            message: format!(
                "could not look for commands a previous roleout left running: {error}"
            ),
        }),
    }
}

/// What a run of `suite` would do, without running anything: the order,
/// and for each component whether it would run and why.
pub fn plan(
    settings: &Settings,
    source: &mut dyn Source,
    suite: &SuiteId,
) -> Result<Vec<PlanLine>, EngineError> {
    let record = journal::read(&settings.state_dir, suite).map_err(state_error)?;
    let envelope = source.suite(suite)?;
    let delivery = accept_suite(settings, &envelope, suite, record.as_ref())?.delivery;
    let given = settings
        .given
        .over_customized(&delivery.customization.values);
    let facts = SystemFacts::new(&settings.root);
    let validators = Validators::builtin();
    let mut lines = Vec::new();
    for step in &delivery.plan.steps {
        let Some(product) = find_product(&delivery.suite, &step.product) else {
            return Err(EngineError::Refused {
                suite: suite.to_string(),
                reason: format!(
                    "the plan names {} but the suite has no such product",
                    step.product
                ),
            });
        };
        let payload_dir = settings
            .state_dir
            .join("runs")
            .join("plan")
            .join(product.id.as_str());
        // As install decides: a skip first, with the values that resolved,
        // so a component already installed needs none it lacks.
        let (values, invalid) =
            resolve_values_partially(&delivery.suite, product, &given, &validators);
        let context = render_context(settings, product, &payload_dir);
        let (would_run, reason) = match (
            decide(product, &values, &context, &facts, record.as_ref()),
            invalid,
        ) {
            (Ok(Some((_, explanation))), _) => (false, explanation),
            (_, Some(errors)) => (
                false,
                format!("its variable values are not valid: {errors}"),
            ),
            (Ok(None), None) => (true, "it is not installed yet".to_owned()),
            (Err(reason), None) => (false, format!("it cannot be checked: {reason}")),
        };
        let wanted: Vec<&str> = settings.languages.iter().map(String::as_str).collect();
        lines.push(PlanLine {
            product: product.id.clone(),
            name: product.description.name.get(&wanted).map(str::to_owned),
            version: product.version.clone(),
            would_run,
            reason,
            after: step.after.clone(),
        });
    }
    Ok(lines)
}

/// What the journal says about every suite (`roleout status`), read
/// without the lock.
pub fn status(state_dir: &Path) -> Result<Vec<SuiteRecord>, EngineError> {
    let mut records = Vec::new();
    for suite in journal::suites(state_dir).map_err(state_error)? {
        if let Some(record) = journal::read(state_dir, &suite).map_err(state_error)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// Removes `product`: runs its uninstall command with the files it was
/// shipped with (from what was kept when it was installed, else from the
/// suite that installed it), records it in that suite's journal and
/// reports it. Refused, naming them, while installed products require it,
/// unless `force`.
pub fn uninstall(
    settings: &Settings,
    source: &mut dyn Source,
    product_id: &ProductId,
    force: bool,
    reporter: &dyn Reporter,
) -> Result<InstallOutcome, EngineError> {
    let lock = StateLock::acquire(&settings.state_dir).map_err(state_error)?;
    end_abandoned_commands(reporter);
    let mut outbox = Outbox::open(&lock).map_err(state_error)?;
    recover_queued_steps(settings, &lock, &mut outbox, reporter)?;
    let mut delivery = Delivery::default();
    delivery.flush(&mut outbox, source, reporter)?;
    let mut found = None;
    for suite in journal::suites(&settings.state_dir).map_err(state_error)? {
        let journal = Journal::open(&lock, &suite).map_err(state_error)?;
        if journal.installed().contains_key(product_id) {
            found = Some(journal);
            break;
        }
    }
    let Some(mut journal) = found else {
        return Err(EngineError::Config(format!(
            "product {product_id} is not recorded as installed by any suite on this machine"
        )));
    };
    let suite = journal.suite().clone();
    if !force {
        let models = removal::installed_models(&settings.state_dir);
        let needing = removal::needed_by(&models, product_id, &BTreeSet::new());
        if !needing.is_empty() {
            return Err(EngineError::Config(format!(
                "product {product_id} is still needed by {} (installed here); uninstall those first, or --force",
                needing
                    .iter()
                    .map(ProductId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let outcome = match removal::read_kept(&settings.state_dir, &suite, product_id)? {
        Some(kept) => {
            let Some(product) = kept.product().cloned() else {
                return Err(EngineError::Config(format!(
                    "what was kept of {product_id} names no product"
                )));
            };
            removal::remove(
                settings,
                &mut journal,
                &kept.suite,
                &kept.customization,
                &product,
                &kept.build,
                &mut outbox,
                reporter,
            )?
        }
        // Installed before the agent kept models: the suite must still
        // have it.
        None => {
            let envelope = source.suite(&suite)?;
            let suite_delivery = accept_and_record(settings, &mut journal, &envelope)?;
            let Some(product) = find_product(&suite_delivery.suite, product_id).cloned() else {
                return Err(EngineError::Config(format!(
                    "suite {suite} no longer has product {product_id}, and it was installed before this agent kept what it installs; its uninstall command is unknown"
                )));
            };
            removal::remove(
                settings,
                &mut journal,
                &suite_delivery.suite,
                &suite_delivery.customization.values,
                &product,
                &suite_delivery.build_digest,
                &mut outbox,
                reporter,
            )?
        }
    };
    delivery.flush(&mut outbox, source, reporter)?;
    outbox.sync().map_err(state_error)?;
    let failed = u32::from(outcome != ReportOutcome::Success);
    Ok(InstallOutcome {
        suites: vec![SuiteOutcome {
            suite,
            summary: RunSummary {
                installed: 0,
                skipped: 0,
                failed,
                blocked: 0,
                reboot_required: false,
            },
            waiting: 0,
            undelivered: outbox.len(),
        }],
    })
}

/// Finishes in the journal every step whose report an earlier run queued
/// but whose end it did not record (it died between the two writes): the
/// step ran to the end the report tells, so it is settled from the report
/// rather than run again. Runs before the outbox is delivered, while the
/// report is still there to read.
fn recover_queued_steps(
    settings: &Settings,
    lock: &StateLock,
    outbox: &mut Outbox,
    reporter: &dyn Reporter,
) -> Result<(), EngineError> {
    if outbox.is_empty() {
        return Ok(());
    }
    let status_kind = report_kind(STATUS_KIND)?;
    for suite in journal::suites(&settings.state_dir).map_err(state_error)? {
        let mut journal = Journal::open(lock, &suite).map_err(state_error)?;
        let (Some(interrupted), Some(run)) =
            (journal.interrupted_step(), journal.run_in_progress())
        else {
            continue;
        };
        let id = ReportId::for_step(
            &run.id,
            &interrupted.step.product,
            interrupted.step.phase,
            interrupted.attempt,
            &status_kind,
        )
        .map_err(state_error)?;
        if !outbox.pending_ids().contains(&id) {
            continue;
        }
        let Some(report) = outbox
            .pending()
            .map_err(state_error)?
            .into_iter()
            .find(|report| report.id == id)
        else {
            continue;
        };
        let status: StatusReport = serde_json::from_value(report.payload).map_err(|error| {
            EngineError::Config(format!(
                "outbox report {id} is not a status report: {error}"
            ))
        })?;
        let result = match status.outcome {
            ReportOutcome::Success => StepResult::Success {
                exit_code: status.exit_code,
            },
            // The boot the step ran in is not in the report; the current
            // one is the safe choice: the step then waits for one more
            // reboot rather than going on without one.
            ReportOutcome::SuccessRebootRequired => StepResult::RebootRequired {
                exit_code: status.exit_code,
                boot_id: fs::read_to_string(&settings.boot_id_path)
                    .map(|text| text.trim().to_owned())
                    .unwrap_or_default(),
            },
            _ => StepResult::Failure {
                exit_code: status.exit_code,
                reason: status.evidence.first().cloned().unwrap_or_default(),
            },
        };
        journal
            .finish_step(&interrupted.step.product, interrupted.step.phase, result)
            .map_err(state_error)?;
        reporter.event(&Event::Note {
            message: format!(
                "{}: {}: attempt {} had ended and been reported when the installer stopped; recorded from its report",
                interrupted.step.product, interrupted.step.phase, interrupted.attempt
            ),
        });
    }
    Ok(())
}

fn fetch_suite_list(
    settings: &Settings,
    source: &mut dyn Source,
) -> Result<Vec<SuiteId>, EngineError> {
    let envelope = source.suite_list()?;
    let list = verify::verify_suite_list(
        &envelope,
        settings.key_for(&envelope.key_id),
        &settings.machine,
        SystemTime::now(),
    )
    .map_err(|error| EngineError::Refused {
        suite: "list".to_owned(),
        reason: error.to_string(),
    })?;
    Ok(list.suites.into_iter().map(|entry| entry.id).collect())
}

fn refused(suite: &SuiteId, error: impl fmt::Display) -> EngineError {
    EngineError::Refused {
        suite: suite.to_string(),
        reason: error.to_string(),
    }
}

/// Verifies a suite envelope against the last one accepted for the suite
/// (from the state directory, with `record` the journal's view) and reads
/// its delivery, without recording anything.
fn accept_suite(
    settings: &Settings,
    envelope: &SignedEnvelope,
    suite: &SuiteId,
    record: Option<&SuiteRecord>,
) -> Result<verify::AcceptedSuite, EngineError> {
    let last = verify::last_accepted(&settings.state_dir, suite, record).map_err(state_error)?;
    verify::verify_suite(
        envelope,
        settings.key_for(&envelope.key_id),
        &settings.machine,
        suite,
        last.as_ref(),
        SystemTime::now(),
    )
    .map_err(|error| refused(suite, error))
}

/// Verifies a suite envelope and records it as accepted (its serial and
/// build, then the journal's serial) before anything acts on it.
fn accept_and_record(
    settings: &Settings,
    journal: &mut Journal,
    envelope: &SignedEnvelope,
) -> Result<SuiteDelivery, EngineError> {
    let suite = journal.suite().clone();
    let accepted = accept_suite(settings, envelope, &suite, Some(journal.record()))?;
    verify::remember(&settings.state_dir, &suite, &accepted.accepted).map_err(state_error)?;
    journal
        .accept_serial(accepted.accepted.serial)
        .map_err(|error| refused(&suite, error))?;
    Ok(accepted.delivery)
}

fn find_product<'suite>(suite: &'suite Suite, product: &ProductId) -> Option<&'suite ProductModel> {
    suite
        .products
        .iter()
        .find(|candidate| candidate.id == *product)
}

/// SHA-256 of the canonical JSON of a product model: what the journal
/// records as "installed from".
pub fn model_digest(product: &ProductModel) -> Sha256 {
    let bytes = serde_json::to_value(product)
        .map(|value| canonical_json(&value))
        // A ProductModel is plain data; serializing it cannot fail. Were
        // it to, an empty input still yields a stable digest.
        .unwrap_or_default();
    sha256_of(&bytes)
}

fn sha256_of(bytes: &[u8]) -> Sha256 {
    Sha256::of(bytes)
}

fn render_context(
    settings: &Settings,
    product: &ProductModel,
    payload_dir: &Path,
) -> RenderContext {
    RenderContext {
        payload: payload_dir.display().to_string(),
        root: settings.root.display().to_string(),
        state_dir: settings.state_dir.display().to_string(),
        machine: settings.machine.clone(),
        product: product.id.clone(),
        version: product.version.clone(),
    }
}

/// Whether a component is skipped, and why: IncrementalInstall, then the
/// version checker, then (with neither) the journal's record of the same
/// model installed. `Err` when a fact cannot be learnt.
fn decide(
    product: &ProductModel,
    values: &Values,
    context: &RenderContext,
    facts: &dyn Facts,
    record: Option<&SuiteRecord>,
) -> Result<Option<(SkipReason, String)>, String> {
    let digest = model_digest(product);
    let installed = record.and_then(|record| record.installed.get(&product.id));
    if let Some(incremental) = &product.incremental {
        let mut incremental = incremental.clone();
        if let Some(condition) = &incremental.when {
            incremental.when = Some(
                render_condition(condition, &product.variables, values, context)
                    .map_err(|error| error.to_string())?,
            );
        }
        let history = RunHistory {
            ever_succeeded: installed.is_some(),
            last_digest: installed.map(|installed| installed.model.as_str()),
        };
        let decision = incremental
            .should_run(facts, history, digest.as_str())
            .map_err(|error| error.to_string())?;
        if !decision.runs() {
            let reason = decision.reason().to_owned();
            return Ok(Some((
                SkipReason::ConditionFalse {
                    condition: reason.clone(),
                },
                format!("skipped: {reason}"),
            )));
        }
    }
    // What this machine gets of the product changed since Roleout last
    // installed it (a role moved, a role version edited): the version check
    // only says the product is there at an acceptable version, not that the
    // files and steps of the new model were applied, so it cannot skip.
    let model_changed = installed.is_some_and(|installed| installed.model != digest);
    if let (Some(checker), false) = (&product.version_checker, model_changed) {
        let condition = render_condition(&checker.installed, &product.variables, values, context)
            .map_err(|error| error.to_string())?;
        let evaluation = condition
            .evaluate(facts)
            .map_err(|error| error.to_string())?;
        return Ok(evaluation.holds.then(|| {
            (
                SkipReason::AlreadyInstalled,
                format!("already installed: {}", evaluation.explanation),
            )
        }));
    }
    if product.incremental.is_none() {
        if let Some(installed) = installed.filter(|installed| installed.model == digest) {
            return Ok(Some((
                SkipReason::AlreadyInstalled,
                format!(
                    "already installed: version {} from the same model was installed by run {}",
                    installed.version, installed.run
                ),
            )));
        }
    }
    Ok(None)
}

/// What `product` requires of the operating system (`<requires-system>`)
/// and the system lacks, one line each with the facts that decided; empty
/// when every requirement is met. `Err` when a fact cannot be learnt.
fn unmet_system_requirements(
    product: &ProductModel,
    values: &Values,
    context: &RenderContext,
    facts: &dyn Facts,
) -> Result<Vec<String>, String> {
    let mut unmet = Vec::new();
    for requirement in &product.dependencies.system {
        let condition = render_condition(
            &requirement.need.condition(),
            &product.variables,
            values,
            context,
        )
        .map_err(|error| error.to_string())?;
        let evaluation = condition
            .evaluate(facts)
            .map_err(|error| error.to_string())?;
        if !evaluation.holds {
            let supplied = match &requirement.provider {
                Some(provider) => format!("; {provider}, which supplies it, did not"),
                None => String::new(),
            };
            unmet.push(format!(
                "{} ({}{supplied})",
                requirement.need, evaluation.explanation
            ));
        }
    }
    Ok(unmet)
}

/// When `step` is in the plan only to supply what the operating system
/// lacks for other products (`<requires-system provider>`) and the system
/// already has all of it: why it is skipped. `None` when it has to run.
fn system_already_has(
    step: &PlanStep,
    context: &RenderContext,
    facts: &dyn Facts,
) -> Result<Option<String>, String> {
    let mut had = Vec::new();
    for reason in &step.reasons {
        let Reason::SuppliesSystem { of, need } = reason else {
            return Ok(None);
        };
        let condition = render_condition(&need.condition(), &[], &Values::new(), context)
            .map_err(|error| error.to_string())?;
        let evaluation = condition
            .evaluate(facts)
            .map_err(|error| error.to_string())?;
        if !evaluation.holds {
            return Ok(None);
        }
        had.push(format!("{need} for {of} ({})", evaluation.explanation));
    }
    Ok((!had.is_empty()).then(|| format!("the system already has {}", had.join("; "))))
}

/// Renders a command, writes its response file (mode 0600) and builds the
/// runner's spec with the password values as secrets.
fn prepare_command(
    command: &CommandLineModel,
    phase: Phase,
    product: &ProductModel,
    values: &Values,
    context: &RenderContext,
    payload_dir: &Path,
) -> Result<CommandSpec, String> {
    let rendered = render_command(command, phase, &product.variables, values, context)
        .map_err(|error| error.to_string())?;
    if let Some(file) = &rendered.response_file {
        let path = payload_dir.join(file.path.expose());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        atomic::write_atomic(&path, file.content.expose().as_bytes(), PRIVATE_FILE_MODE)
            .map_err(|error| format!("cannot write the response file: {error}"))?;
    }
    let mut model = command.clone();
    model.argv = rendered
        .argv
        .iter()
        .map(|text| text.expose().to_owned())
        .collect();
    model.working_dir = rendered
        .working_dir
        .as_ref()
        .map(|text| text.expose().to_owned());
    model.env = rendered
        .env
        .iter()
        .map(|(key, text)| (key.clone(), text.expose().to_owned()))
        .collect();
    if let (Some(log), Some(path)) = (model.outcome.log.as_mut(), &rendered.log_path) {
        log.path = path.expose().to_owned();
    }
    let mut spec =
        CommandSpec::from_model(&model, payload_dir).map_err(|error| error.to_string())?;
    spec.secrets = Secrets::new(
        values
            .values()
            .filter(|value| value.is_secret())
            .map(Value::expose)
            .map(str::to_owned),
    );
    Ok(spec)
}

/// Runs one step: `first` (the step's first command, prepared) and then
/// the commands after it (`command.then`), each prepared just before it
/// runs. The first that does not succeed ends the step with its outcome; a
/// reboot any of them asks for is asked for once the last has run. The
/// report of a step of several commands holds the evidence and output of
/// each, in order.
///
/// With `supervised` (the supervisor program and the step attempt's
/// folder), each command runs under a supervisor with its records in
/// `command-N` of the folder, so a step resumed after a crash reads the
/// commands that ended, waits for the one still running, and runs only
/// the rest.
#[allow(clippy::too_many_arguments)]
fn run_step(
    mut first: CommandSpec,
    command: &CommandLineModel,
    phase: Phase,
    product: &ProductModel,
    values: &Values,
    context: &RenderContext,
    payload_dir: &Path,
    supervised: Option<(&Path, &Path)>,
    reporter: &dyn Reporter,
) -> Result<CommandReport, String> {
    let count = 1 + command.then.len();
    let label = |index: usize| format!("command {} of {count}", index + 1);
    let supervision = |index: usize| {
        supervised.map(|(program, dir)| run::Supervision {
            program: program.to_owned(),
            dir: dir.join(format!("command-{}", index + 1)),
        })
    };
    first.supervision = supervision(0);
    let mut combined = run::run(&first).map_err(|error| error.to_string())?;
    if count == 1 {
        return Ok(combined);
    }
    let mut reboot = false;
    label_report(&mut combined, &label(0));
    for (index, next) in command.then.iter().enumerate().map(|(i, c)| (i + 1, c)) {
        match combined.outcome {
            run::Outcome::Success => {}
            run::Outcome::SuccessRebootRequired => reboot = true,
            _ => return Ok(combined),
        }
        let mut spec = prepare_command(next, phase, product, values, context, payload_dir)
            .map_err(|error| format!("{}: {error}", label(index)))?;
        spec.supervision = supervision(index);
        reporter.event(&Event::StepStarted {
            product: product.id.clone(),
            phase,
            command: spec.command_line(),
        });
        let mut report = run::run(&spec).map_err(|error| format!("{}: {error}", label(index)))?;
        label_report(&mut report, &label(index));
        combined = joined(combined, report);
    }
    if reboot && combined.outcome == run::Outcome::Success {
        combined.outcome = run::Outcome::SuccessRebootRequired;
    }
    Ok(combined)
}

/// Marks a report's evidence and output as those of one command of a step.
fn label_report(report: &mut CommandReport, label: &str) {
    for line in &mut report.evidence {
        *line = format!("{label}: {line}");
    }
    for output in [&mut report.stdout, &mut report.stderr] {
        if !output.text.is_empty() {
            output.text = format!("[{label}: {}]\n{}", report.command, output.text);
        }
    }
}

/// One report of two commands of a step run one after the other: the
/// second's outcome, exit and log, both's evidence and output.
fn joined(first: CommandReport, second: CommandReport) -> CommandReport {
    let join = |a: run::CapturedOutput, b: run::CapturedOutput| run::CapturedOutput {
        text: match (a.text.is_empty(), b.text.is_empty()) {
            (true, _) => b.text,
            (_, true) => a.text,
            _ if a.text.ends_with('\n') => a.text + &b.text,
            _ => a.text + "\n" + &b.text,
        },
        total_bytes: a.total_bytes + b.total_bytes,
        omitted_bytes: a.omitted_bytes + b.omitted_bytes,
    };
    let mut evidence = first.evidence;
    evidence.extend(second.evidence);
    CommandReport {
        command: format!("{}; then {}", first.command, second.command),
        duration: first.duration + second.duration,
        stdout: join(first.stdout, second.stdout),
        stderr: join(first.stderr, second.stderr),
        evidence,
        ..second
    }
}

/// The report outcome, a one-line detail and the runner's report of a
/// step that was prepared and run (or could not be).
fn step_result(
    result: &Result<CommandReport, String>,
) -> (ReportOutcome, String, Option<&CommandReport>) {
    match result {
        Err(reason) => (ReportOutcome::Failed, reason.clone(), None),
        Ok(report) => {
            let outcome = match &report.outcome {
                Outcome::Success => ReportOutcome::Success,
                Outcome::SuccessRebootRequired => ReportOutcome::SuccessRebootRequired,
                Outcome::Retry | Outcome::Failed { .. } => ReportOutcome::Failed,
            };
            (
                outcome,
                format!("{} ({})", report.outcome, report.exit),
                Some(report),
            )
        }
    }
}

/// How many lines of a failed command's output the agent shows.
const OUTPUT_TAIL_LINES: usize = 5;

/// The last non-empty lines a command printed: on standard error, else
/// on standard output (already masked), each at most 200 characters.
/// Control characters (escape sequences) are shown as `?`.
fn output_tail(report: &CommandReport) -> Vec<String> {
    let stream = if report.stderr.text.trim().is_empty() {
        &report.stdout.text
    } else {
        &report.stderr.text
    };
    let mut lines: Vec<String> = stream
        .lines()
        .rev()
        .filter(|line| !line.trim().is_empty())
        .take(OUTPUT_TAIL_LINES)
        .map(|line| {
            line.chars()
                .take(200)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        })
        .collect();
    lines.reverse();
    lines
}

/// Builds a status report from what is known of a step.
#[allow(clippy::too_many_arguments)]
fn status_report(
    id: &ReportId,
    suite: &SuiteId,
    build: &Sha256,
    product: &ProductId,
    step: ReportStep,
    outcome: ReportOutcome,
    report: Option<&CommandReport>,
    detail: &str,
    started: SystemTime,
) -> Result<StatusReport, EngineError> {
    let finished = SystemTime::now();
    let (exit_code, signal) = match report.map(|report| report.exit) {
        Some(Exit::Code(code)) => (Some(code), None),
        Some(Exit::Signal(signal)) => (None, Some(signal)),
        None => (None, None),
    };
    let mut evidence: Vec<String> = report
        .map(|report| report.evidence.clone())
        .unwrap_or_default();
    evidence.insert(0, detail.to_owned());
    evidence.truncate(MAX_EVIDENCE_ITEMS);
    for line in &mut evidence {
        if line.chars().count() > MAX_EVIDENCE_CHARS {
            *line = line
                .chars()
                .take(MAX_EVIDENCE_CHARS - 3)
                .collect::<String>()
                + "...";
        }
    }
    let log = match report {
        Some(report) => command_log(report),
        None => detail.to_owned(),
    };
    let duration = report.map_or_else(
        || finished.duration_since(started).unwrap_or(Duration::ZERO),
        |report| report.duration,
    );
    Ok(StatusReport {
        id: id.to_string(),
        suite: suite.clone(),
        build_digest: build.clone(),
        component: product.clone(),
        step,
        outcome,
        exit_code,
        signal,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        evidence,
        log: cap_log(&log),
        started_at: stamp(started)?,
        finished_at: stamp(finished)?,
    })
}

fn stamp(time: SystemTime) -> Result<Timestamp, EngineError> {
    Timestamp::from_system_time(time).ok_or_else(|| {
        EngineError::Config(
            "the system clock is outside 1970-9999; reports cannot be dated".to_owned(),
        )
    })
}

/// The log of a command for a report: the command line, the captured
/// output and the log lines that mattered, all already redacted by the
/// runner.
fn command_log(report: &CommandReport) -> String {
    let mut log = format!("$ {}\n", report.command);
    if !report.stdout.is_empty() {
        log.push_str("--- stdout ---\n");
        log.push_str(&report.stdout.text);
        if !log.ends_with('\n') {
            log.push('\n');
        }
    }
    if !report.stderr.is_empty() {
        log.push_str("--- stderr ---\n");
        log.push_str(&report.stderr.text);
        if !log.ends_with('\n') {
            log.push('\n');
        }
    }
    if let Some(findings) = &report.log {
        log.push_str(&format!("--- {} ---\n", findings.source()));
        for line in findings.failure_lines.iter().chain(&findings.success_lines) {
            log.push_str(&format!("{}: {}\n", line.number, line.text));
        }
    }
    log.push_str(&format!(
        "--- {} after {:?}: {}\n",
        report.exit, report.duration, report.outcome
    ));
    log
}

/// Keeps a report in the outbox. Queuing the same id again (a report made
/// again after a crash) changes nothing; were the first copy already
/// delivered, the server recognizes the id as a duplicate.
fn queue(
    outbox: &mut Outbox,
    kind: &str,
    id: &ReportId,
    body: &impl serde::Serialize,
) -> Result<(), EngineError> {
    let payload = serde_json::to_value(body)
        .map_err(|error| EngineError::Config(format!("cannot serialize report {id}: {error}")))?;
    let report = Report::new(id.clone(), report_kind(kind)?, payload);
    outbox.push(&report).map_err(state_error)?;
    Ok(())
}

/// Delivery of the outbox; after one failure it stops trying for the rest
/// of the process, so an unreachable server costs one timeout, not one
/// per report.
#[derive(Debug, Default)]
struct Delivery {
    gave_up: bool,
}

impl Delivery {
    fn flush(
        &mut self,
        outbox: &mut Outbox,
        source: &mut dyn Source,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        if self.gave_up || outbox.is_empty() {
            return Ok(());
        }
        let result = outbox
            .deliver_all(|report| send(source, report))
            .map_err(state_error)?;
        if let Some((id, error)) = result.stopped_at {
            self.gave_up = true;
            reporter.event(&Event::Note {
                message: format!(
                    "report {id} not delivered ({error}); {} report(s) kept in the outbox for the next run",
                    outbox.len()
                ),
            });
        }
        Ok(())
    }
}

fn send(source: &mut dyn Source, report: &Report) -> Result<(), SourceError> {
    let invalid = |error: serde_json::Error| SourceError::Invalid {
        what: format!("outbox report {}", report.id),
        reason: error.to_string(),
    };
    match report.kind.as_str() {
        COMPLETE_KIND => {
            let complete: SuiteComplete =
                serde_json::from_value(report.payload.clone()).map_err(invalid)?;
            source.complete(&complete).map(|_close| ())
        }
        _ => {
            let status: StatusReport =
                serde_json::from_value(report.payload.clone()).map_err(invalid)?;
            match source.report(&status) {
                // roleoutd keeps no report about a component this machine
                // was not given (it left the suite before the report went):
                // kept no longer, so it cannot hold back those after it.
                Err(SourceError::Refused {
                    code: roleout_model::protocol::ErrorCode::ForbiddenSuite,
                    message,
                    ..
                }) => {
                    tracing::warn!(report = %report.id, %message, "report refused for good; dropped from the outbox");
                    Ok(())
                }
                other => other.map(|_ack| ()),
            }
        }
    }
}

/// How a component stands in the journal of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// Nothing of it ran yet.
    Untouched,
    /// Some steps are done; some are pending.
    Partial,
    /// Every step done or skipped.
    Settled { installed: bool },
    /// A step failed.
    Failed,
    /// Blocked by a failed component.
    Blocked,
    /// A step waits for a reboot.
    Waiting,
}

fn standing(component: &ComponentRecord) -> Standing {
    let states: Vec<&StepState> = component.steps.iter().map(|step| &step.state).collect();
    if states
        .iter()
        .any(|state| matches!(state, StepState::Failed { .. }))
    {
        return Standing::Failed;
    }
    if states
        .iter()
        .any(|state| matches!(state, StepState::Blocked { .. }))
    {
        return Standing::Blocked;
    }
    if states
        .iter()
        .any(|state| matches!(state, StepState::WaitingForReboot { .. }))
    {
        return Standing::Waiting;
    }
    if states
        .iter()
        .all(|state| matches!(state, StepState::Pending))
    {
        return Standing::Untouched;
    }
    if states
        .iter()
        .all(|state| matches!(state, StepState::Done { .. } | StepState::Skipped { .. }))
    {
        return Standing::Settled {
            installed: states
                .iter()
                .any(|state| matches!(state, StepState::Done { .. })),
        };
    }
    Standing::Partial
}

/// One suite's run, prepared: the accepted delivery and its journal.
struct SuiteRun {
    suite: SuiteId,
    delivery: SuiteDelivery,
    journal: Journal,
    run: RunId,
    resumed: bool,
}

impl SuiteRun {
    fn prepare(
        settings: &Settings,
        lock: &StateLock,
        source: &mut dyn Source,
        suite: &SuiteId,
    ) -> Result<SuiteRun, EngineError> {
        let mut journal = Journal::open(lock, suite).map_err(state_error)?;
        let envelope = source.suite(suite)?;
        let delivery = accept_and_record(settings, &mut journal, &envelope)?;
        let mut resumed = false;
        if let Some(run) = journal.run_in_progress() {
            if run.build == delivery.build_digest {
                resumed = true;
            } else {
                let reason = format!(
                    "build {} replaces build {}",
                    delivery.build_digest, run.build
                );
                let abandoned = settings.state_dir.join(STEPS_DIR).join(run.id.as_str());
                journal.abandon_run(reason).map_err(state_error)?;
                // Its commands still running under their supervisors go.
                run::supervise::end_all_under(&abandoned);
            }
        }
        let run = if resumed {
            // An interrupted step whose commands ran under supervisors goes
            // on from their records (those that ended are read, a running
            // one is waited for, the rest run), so a command that finished
            // never runs again. Without, it runs again as its next attempt:
            // install commands are written to be re-runnable.
            let continued = journal.interrupted_step().is_some_and(|interrupted| {
                settings.supervisor.is_some()
                    && journal.run_in_progress().is_some_and(|run| {
                        settings
                            .step_dir(
                                &run.id,
                                &interrupted.step.product,
                                interrupted.step.phase,
                                interrupted.attempt,
                            )
                            .exists()
                    })
            });
            if !continued {
                journal
                    .resume_interrupted(Resume::RunAgain)
                    .map_err(state_error)?;
            }
            journal
                .run_in_progress()
                .map(|run| run.id.clone())
                .ok_or_else(|| EngineError::Config("the resumed run vanished".to_owned()))?
        } else {
            let mut planned = Vec::new();
            for step in &delivery.plan.steps {
                let product = find_product(&delivery.suite, &step.product).ok_or_else(|| {
                    refused(
                        suite,
                        format!(
                            "the plan names {} but the suite has no such product",
                            step.product
                        ),
                    )
                })?;
                planned.push(PlannedComponent {
                    product: product.id.clone(),
                    version: product.version.clone(),
                    model: model_digest(product),
                    phases: Phase::INSTALL_ORDER
                        .into_iter()
                        .filter(|phase| product.commands.contains_key(phase))
                        .collect(),
                });
            }
            journal
                .start_run(delivery.build_digest.clone(), planned)
                .map_err(state_error)?
        };
        Ok(SuiteRun {
            suite: suite.clone(),
            delivery,
            journal,
            run,
            resumed,
        })
    }

    /// The id of the report of one attempt of a step ([`STATUS_KIND`]), or
    /// of a component settled without a command ([`CHECK_KIND`], attempt
    /// 0: before any attempt).
    fn report_id(
        &self,
        product: &ProductId,
        phase: Phase,
        attempt: u32,
        kind: &str,
    ) -> Result<ReportId, EngineError> {
        ReportId::for_step(&self.run, product, phase, attempt, &report_kind(kind)?)
            .map_err(state_error)
    }

    /// The phase a settle report of `product` is filed under: its first
    /// step (install for a product without commands).
    fn first_phase(&self, product: &ProductId) -> Phase {
        self.journal
            .run_in_progress()
            .and_then(|run| run.component(product))
            .and_then(|component| component.steps.first())
            .map_or(Phase::Install, |step| step.phase)
    }

    #[allow(clippy::too_many_lines)]
    fn execute(
        &mut self,
        settings: &Settings,
        lock: &StateLock,
        source: &mut dyn Source,
        outbox: &mut Outbox,
        delivery: &mut Delivery,
        reporter: &dyn Reporter,
    ) -> Result<SuiteOutcome, EngineError> {
        let boot_id = fs::read_to_string(&settings.boot_id_path)
            .map(|text| text.trim().to_owned())
            .map_err(|error| {
                EngineError::Config(format!(
                    "cannot read the boot id from {}: {error}",
                    settings.boot_id_path.display()
                ))
            })?;
        if let BootCheck::Rebooted(steps) =
            self.journal.check_reboot(&boot_id).map_err(state_error)?
        {
            for step in steps {
                reporter.event(&Event::Note {
                    message: format!(
                        "{}: {}: the machine rebooted as it asked; going on",
                        step.product, step.phase
                    ),
                });
            }
        }
        reporter.event(&Event::SuiteStarted {
            suite: self.suite.clone(),
            components: self.delivery.plan.steps.len(),
            resumed: self.resumed,
        });
        let cache = PayloadCache::open(lock, &settings.cache_dir).map_err(state_error)?;
        let facts = SystemFacts::new(&settings.root);
        let validators = Validators::builtin();
        let build = self.delivery.build_digest.clone();
        let stop_on_failure = self.delivery.suite.policy.on_failure == OnFailure::Stop;
        // Products that failed or were blocked, with the product behind it.
        let mut broken: BTreeMap<ProductId, ProductId> = BTreeMap::new();
        let mut waiting: BTreeSet<ProductId> = BTreeSet::new();
        let mut first_failure: Option<ProductId> = None;
        let steps = self.delivery.plan.steps.clone();
        // The machine's response file over what admins customized for it.
        let given = settings
            .given
            .over_customized(&self.delivery.customization.values);
        if let Some(reason) = self.suite_skip(settings, &given, &facts, &validators)? {
            reporter.event(&Event::Note {
                message: format!("suite {}: skipped: {reason}", self.suite),
            });
            let detail = format!("skipped: the suite's incremental install says so: {reason}");
            for plan_step in &steps {
                let untouched = self
                    .journal
                    .run_in_progress()
                    .and_then(|run| run.component(&plan_step.product))
                    .is_some_and(|record| standing(record) == Standing::Untouched);
                if !untouched {
                    continue;
                }
                self.settle_report(
                    &plan_step.product,
                    ReportOutcome::Skipped,
                    &detail,
                    outbox,
                    reporter,
                )?;
                self.journal
                    .skip_component(
                        &plan_step.product,
                        SkipReason::ConditionFalse {
                            condition: format!("suite: {reason}"),
                        },
                    )
                    .map_err(state_error)?;
            }
            self.deliver(delivery, outbox, source, reporter)?;
        }
        self.remove_unassigned(settings, outbox, reporter)?;
        self.deliver(delivery, outbox, source, reporter)?;
        for plan_step in &steps {
            let product_id = &plan_step.product;
            let Some(product) = find_product(&self.delivery.suite, product_id).cloned() else {
                continue;
            };
            let record = self
                .journal
                .run_in_progress()
                .and_then(|run| run.component(product_id))
                .cloned();
            let Some(record) = record else { continue };
            match standing(&record) {
                Standing::Settled { .. } => continue,
                Standing::Failed => {
                    first_failure.get_or_insert_with(|| product_id.clone());
                    broken.insert(product_id.clone(), product_id.clone());
                    continue;
                }
                Standing::Blocked => {
                    broken.insert(product_id.clone(), product_id.clone());
                    continue;
                }
                Standing::Waiting => {
                    waiting.insert(product_id.clone());
                    continue;
                }
                Standing::Untouched | Standing::Partial => {}
            }
            // Dependents of a failure are blocked; with on-failure="stop"
            // everything after the first failure is.
            let blocker = plan_step
                .after
                .iter()
                .find_map(|before| broken.get(before).map(|_| before.clone()))
                .or_else(|| first_failure.clone().filter(|_| stop_on_failure));
            if let Some(by) = blocker {
                let detail = if plan_step.after.contains(&by) {
                    format!("it comes after {by}, which did not install")
                } else {
                    format!("the suite stops at the first failure ({by})")
                };
                self.settle_report(
                    product_id,
                    ReportOutcome::Blocked,
                    &detail,
                    outbox,
                    reporter,
                )?;
                self.journal
                    .block_component(product_id, &by)
                    .map_err(state_error)?;
                broken.insert(product_id.clone(), by.clone());
                self.deliver(delivery, outbox, source, reporter)?;
                continue;
            }
            if plan_step
                .after
                .iter()
                .any(|before| waiting.contains(before))
            {
                waiting.insert(product_id.clone());
                reporter.event(&Event::Note {
                    message: format!("{product_id}: held until the machine reboots (it comes after a component that asked for a reboot)"),
                });
                continue;
            }
            reporter.event(&Event::ComponentStarted {
                product: product_id.clone(),
                version: product.version.clone(),
            });
            let payload_dir = settings
                .state_dir
                .join("runs")
                .join(self.run.as_str())
                .join(product_id.as_str());
            let context = render_context(settings, &product, &payload_dir);
            // Whether the component is skipped is decided first, with the
            // values that resolved: one already installed (or whose
            // condition says no) needs none of the values it lacks, so an
            // unattended run without the secret given at the first
            // install skips it instead of failing. A variable that did not
            // resolve is absent, so a condition or version check that
            // uses it cannot be rendered and the component fails on its
            // values below, never on a wrong one.
            let (values, invalid) =
                resolve_values_partially(&self.delivery.suite, &product, &given, &validators);
            let value_failure =
                |errors: &dyn fmt::Display| format!("its variable values are not valid: {errors}");
            if standing(&record) == Standing::Untouched {
                let installed_record = Some(self.journal.record());
                let decision = match system_already_has(plan_step, &context, &facts) {
                    Ok(Some(reason)) => Ok(Some((
                        SkipReason::ConditionFalse {
                            condition: reason.clone(),
                        },
                        format!("skipped: {reason}"),
                    ))),
                    Ok(None) => decide(&product, &values, &context, &facts, installed_record),
                    Err(reason) => Err(reason),
                };
                match decision {
                    Ok(Some((reason, explanation))) => {
                        self.settle_report(
                            product_id,
                            ReportOutcome::Skipped,
                            &explanation,
                            outbox,
                            reporter,
                        )?;
                        self.journal
                            .skip_component(product_id, reason)
                            .map_err(state_error)?;
                        self.deliver(delivery, outbox, source, reporter)?;
                        continue;
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        let reason = match &invalid {
                            Some(errors) => value_failure(errors),
                            None => format!("it cannot be checked: {reason}"),
                        };
                        self.fail_component(&product, &reason, outbox, reporter)?;
                        first_failure.get_or_insert_with(|| product_id.clone());
                        broken.insert(product_id.clone(), product_id.clone());
                        self.deliver(delivery, outbox, source, reporter)?;
                        continue;
                    }
                }
            }
            if let Some(errors) = &invalid {
                let reason = value_failure(errors);
                self.fail_component(&product, &reason, outbox, reporter)?;
                first_failure.get_or_insert_with(|| product_id.clone());
                broken.insert(product_id.clone(), product_id.clone());
                self.deliver(delivery, outbox, source, reporter)?;
                continue;
            }
            // What it needs of the operating system is checked each run,
            // after its providers ran and before anything of it is fetched.
            let unmet = unmet_system_requirements(&product, &values, &context, &facts)
                .map(|unmet| {
                    (!unmet.is_empty())
                        .then(|| format!("the system lacks what it requires: {}", unmet.join("; ")))
                })
                .unwrap_or_else(|reason| {
                    Some(format!(
                        "its system requirements cannot be checked: {reason}"
                    ))
                });
            if let Some(reason) = unmet {
                self.fail_component(&product, &reason, outbox, reporter)?;
                first_failure.get_or_insert_with(|| product_id.clone());
                broken.insert(product_id.clone(), product_id.clone());
                self.deliver(delivery, outbox, source, reporter)?;
                continue;
            }
            if let Err(reason) = fetch_payloads(&product, &cache, source, &payload_dir) {
                self.fail_component(&product, &reason, outbox, reporter)?;
                first_failure.get_or_insert_with(|| product_id.clone());
                broken.insert(product_id.clone(), product_id.clone());
                self.deliver(delivery, outbox, source, reporter)?;
                continue;
            }
            // What it obsoletes goes first, by its own uninstall.
            if let Err(reason) = self.remove_obsoleted(settings, &product, outbox, reporter) {
                self.fail_component(&product, &reason, outbox, reporter)?;
                first_failure.get_or_insert_with(|| product_id.clone());
                broken.insert(product_id.clone(), product_id.clone());
                self.deliver(delivery, outbox, source, reporter)?;
                continue;
            }
            // The steps to run, and the attempt of a step an earlier process
            // left running under a supervisor (see `SuiteRun::prepare`),
            // which goes on rather than starting anew.
            let pending: Vec<(Phase, Option<u32>)> = record
                .steps
                .iter()
                .filter_map(|step| match step.state {
                    StepState::Pending => Some((step.phase, None)),
                    StepState::Running { .. } => Some((step.phase, Some(step.attempts))),
                    _ => None,
                })
                .collect();
            for (phase, continued) in pending {
                let Some(command) = product.commands.get(&phase) else {
                    continue;
                };
                let prepared =
                    prepare_command(command, phase, &product, &values, &context, &payload_dir);
                if let Ok(spec) = &prepared {
                    reporter.event(&Event::StepStarted {
                        product: product_id.clone(),
                        phase,
                        command: spec.command_line(),
                    });
                }
                let attempt = match continued {
                    Some(attempt) => attempt,
                    None => self
                        .journal
                        .begin_step(product_id, phase)
                        .map_err(state_error)?,
                };
                if continued.is_some() {
                    reporter.event(&Event::Note {
                        message: format!(
                            "{product_id}: {phase}: attempt {attempt} was under way when roleout stopped; it goes on from its records: a command that ended is not run again, one still running is waited for"
                        ),
                    });
                }
                let step_dir = settings.step_dir(&self.run, product_id, phase, attempt);
                let supervised = settings
                    .supervisor
                    .as_deref()
                    .map(|program| (program, step_dir.as_path()));
                // The reports of the steps before go now: this record made
                // their ends durable too (see below).
                self.deliver(delivery, outbox, source, reporter)?;
                let started = SystemTime::now();
                let result = prepared.and_then(|spec| {
                    run_step(
                        spec,
                        command,
                        phase,
                        &product,
                        &values,
                        &context,
                        &payload_dir,
                        supervised,
                        reporter,
                    )
                });
                let (outcome, detail, report) = step_result(&result);
                let step_result = match outcome {
                    ReportOutcome::Success => StepResult::Success {
                        exit_code: report.and_then(|report| exit_code_of(report.exit)),
                    },
                    ReportOutcome::SuccessRebootRequired => StepResult::RebootRequired {
                        exit_code: report.and_then(|report| exit_code_of(report.exit)),
                        boot_id: boot_id.clone(),
                    },
                    _ => StepResult::Failure {
                        exit_code: report.and_then(|report| exit_code_of(report.exit)),
                        reason: detail.clone(),
                    },
                };
                // The report goes into the outbox before the journal
                // records the step's end: a crash between the two leaves
                // the report queued, and the next run finishes the step
                // from it ([`recover_queued_steps`]) instead of losing the
                // report or running the step again.
                let id = self.report_id(product_id, phase, attempt, STATUS_KIND)?;
                let status = status_report(
                    &id,
                    &self.suite,
                    &build,
                    product_id,
                    phase.into(),
                    outcome,
                    report,
                    &detail,
                    started,
                )?;
                queue(outbox, STATUS_KIND, &id, &status)?;
                fault_point(FAULT_AFTER_STEP_REPORT_QUEUED);
                // The end is written now and made durable by the next
                // durable journal record: the next step's "running" (one
                // fdatasync for both, before its command starts) or the
                // sync that comes before any delivery. Until then the
                // queued report stands for it: a power cut in between
                // finds the step running with its report queued, and the
                // next run settles it from the report. Nothing runs, and
                // the report does not leave the outbox, before the end is
                // durable.
                self.journal
                    .finish_step_deferred(product_id, phase, step_result)
                    .map_err(state_error)?;
                reporter.event(&Event::ComponentOutcome {
                    product: product_id.clone(),
                    phase: Some(phase),
                    outcome,
                    detail: detail.clone(),
                    output_tail: match outcome {
                        ReportOutcome::Failed => report.map(output_tail).unwrap_or_default(),
                        _ => Vec::new(),
                    },
                });
                match outcome {
                    ReportOutcome::Success => {}
                    ReportOutcome::SuccessRebootRequired => {
                        waiting.insert(product_id.clone());
                        break;
                    }
                    _ => {
                        first_failure.get_or_insert_with(|| product_id.clone());
                        broken.insert(product_id.clone(), product_id.clone());
                        break;
                    }
                }
            }
            // Installed over what it replaces: those are gone now.
            self.forget_replaced(settings, &product, reporter)?;
        }
        // What removing each installed product will need, kept while the
        // server still delivers it.
        for plan_step in &steps {
            let Some(product) = find_product(&self.delivery.suite, &plan_step.product) else {
                continue;
            };
            let installed_now = self
                .journal
                .installed()
                .get(&product.id)
                .is_some_and(|installed| installed.model == model_digest(product));
            if installed_now
                && let Err(error) =
                    removal::keep(&settings.state_dir, &self.delivery, product, &cache)
            {
                reporter.event(&Event::Note {
                    message: format!(
                        "{}: what removing it needs could not be kept: {error}",
                        product.id
                    ),
                });
            }
        }
        let summary = self.summary();
        if waiting.is_empty() && self.journal.run_in_progress().is_some() {
            // Queued before the run is closed: a crash between the two
            // makes the next run close it and queue the same id again.
            let id =
                ReportId::for_run(&self.run, &report_kind(COMPLETE_KIND)?).map_err(state_error)?;
            let complete = SuiteComplete {
                id: id.to_string(),
                suite: self.suite.clone(),
                build_digest: build.clone(),
                summary,
            };
            queue(outbox, COMPLETE_KIND, &id, &complete)?;
            self.journal.finish_run().map_err(state_error)?;
        }
        // Also when a step waits for a reboot: its end becomes durable
        // here, and its report goes before the machine reboots.
        self.deliver(delivery, outbox, source, reporter)?;
        reporter.event(&Event::SuiteFinished {
            suite: self.suite.clone(),
            summary,
        });
        Ok(SuiteOutcome {
            suite: self.suite.clone(),
            summary,
            waiting: waiting.len(),
            undelivered: outbox.len(),
        })
    }

    /// Delivers the outbox once every journal record written so far is
    /// durable: a report leaves the outbox only after the end of its step
    /// is on disk, or a power cut could leave the step recorded running
    /// with its report gone, and it would run again.
    fn deliver(
        &mut self,
        delivery: &mut Delivery,
        outbox: &mut Outbox,
        source: &mut dyn Source,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        self.journal.sync().map_err(state_error)?;
        delivery.flush(outbox, source, reporter)
    }

    /// Reports a component settled without a command (skipped, blocked).
    /// Callers queue this report before recording the component's state
    /// in the journal, so a crash between the two makes the same report
    /// (same id) again rather than none.
    fn settle_report(
        &self,
        product: &ProductId,
        outcome: ReportOutcome,
        detail: &str,
        outbox: &mut Outbox,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        reporter.event(&Event::ComponentOutcome {
            product: product.clone(),
            phase: None,
            outcome,
            detail: detail.to_owned(),
            output_tail: Vec::new(),
        });
        let id = self.report_id(product, self.first_phase(product), 0, CHECK_KIND)?;
        let status = status_report(
            &id,
            &self.suite,
            &self.delivery.build_digest,
            product,
            ReportStep::Check,
            outcome,
            None,
            detail,
            SystemTime::now(),
        )?;
        queue(outbox, CHECK_KIND, &id, &status)
    }

    /// Records a component as failed before any of its commands ran (bad
    /// values, a payload that does not verify): its first pending step
    /// gets an attempt that started no command, reported like any attempt
    /// (queued before the journal records its end).
    fn fail_component(
        &mut self,
        product: &ProductModel,
        reason: &str,
        outbox: &mut Outbox,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        let detail = format!("not run: {reason}");
        let phase = self
            .journal
            .run_in_progress()
            .and_then(|run| run.component(&product.id))
            .and_then(|component| {
                component
                    .steps
                    .iter()
                    .find(|step| step.state == StepState::Pending)
                    .map(|step| step.phase)
            });
        let Some(phase) = phase else {
            return self.settle_report(
                &product.id,
                ReportOutcome::Failed,
                &detail,
                outbox,
                reporter,
            );
        };
        let attempt = self
            .journal
            .begin_step(&product.id, phase)
            .map_err(state_error)?;
        reporter.event(&Event::ComponentOutcome {
            product: product.id.clone(),
            phase: None,
            outcome: ReportOutcome::Failed,
            detail: detail.clone(),
            output_tail: Vec::new(),
        });
        let id = self.report_id(&product.id, phase, attempt, STATUS_KIND)?;
        let status = status_report(
            &id,
            &self.suite,
            &self.delivery.build_digest,
            &product.id,
            ReportStep::Check,
            ReportOutcome::Failed,
            None,
            &detail,
            SystemTime::now(),
        )?;
        queue(outbox, STATUS_KIND, &id, &status)?;
        self.journal
            .finish_step(
                &product.id,
                phase,
                StepResult::Failure {
                    exit_code: None,
                    reason: detail,
                },
            )
            .map_err(state_error)
    }

    /// The suite-level IncrementalInstall, decided before any component:
    /// `Some(reason)` when it says to skip the whole suite.
    ///
    /// It is decided only while no step of the run has started (every
    /// step pending or skipped), so a run that began is never cut short by
    /// a condition its own installs changed. Its history comes from what
    /// the journal records as installed: the suite has succeeded when
    /// every product of it is installed, and its last digest is this
    /// build's when every product is installed from the same model.
    fn suite_skip(
        &self,
        settings: &Settings,
        given: &GivenValues,
        facts: &dyn Facts,
        validators: &Validators,
    ) -> Result<Option<String>, EngineError> {
        let suite = &self.delivery.suite;
        let Some(incremental) = &suite.incremental else {
            return Ok(None);
        };
        let Some(run) = self.journal.run_in_progress() else {
            return Ok(None);
        };
        let started = run
            .components
            .iter()
            .flat_map(|c| &c.steps)
            .any(|step| !matches!(step.state, StepState::Pending | StepState::Skipped { .. }));
        if started {
            return Ok(None);
        }
        let cannot = |error: &dyn fmt::Display| {
            EngineError::Config(format!(
                "suite {}: its incremental-install condition cannot be decided: {error}",
                self.suite
            ))
        };
        let mut incremental = incremental.clone();
        if let Some(condition) = &incremental.when {
            let values =
                resolve_suite_values(&suite.id, &suite.variables, &given.suite, validators)
                    .map_err(|errors| cannot(&errors))?;
            let context = RenderContext {
                payload: settings
                    .state_dir
                    .join("runs")
                    .join(self.run.as_str())
                    .display()
                    .to_string(),
                root: settings.root.display().to_string(),
                state_dir: settings.state_dir.display().to_string(),
                machine: settings.machine.clone(),
                // Conditions name what they belong to in their errors; the
                // suite stands where a product would.
                product: ProductId::new(suite.id.as_str()).map_err(|error| cannot(&error))?,
                version: suite.version.clone(),
            };
            incremental.when = Some(
                render_condition(condition, &suite.variables, &values, &context)
                    .map_err(|error| cannot(&error))?,
            );
        }
        let installed = self.journal.installed();
        let ever_succeeded = suite
            .products
            .iter()
            .all(|product| installed.contains_key(&product.id));
        let same_build = ever_succeeded
            && suite.products.iter().all(|product| {
                installed
                    .get(&product.id)
                    .is_some_and(|record| record.model == model_digest(product))
            });
        let build = self.delivery.build_digest.as_str().to_owned();
        let history = RunHistory {
            ever_succeeded,
            last_digest: same_build.then_some(build.as_str()),
        };
        let decision = incremental
            .should_run(facts, history, &build)
            .map_err(|error| cannot(&error))?;
        Ok((!decision.runs()).then(|| decision.reason().to_owned()))
    }

    /// Removes the products this suite installed that the machine is no
    /// longer assigned (not in this delivery's plan) and whose uninstall
    /// command says `remove-when-unassigned`, unless an installed product
    /// still requires one; the others are left installed, and the run says
    /// so.
    fn remove_unassigned(
        &mut self,
        settings: &Settings,
        outbox: &mut Outbox,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        let planned: BTreeSet<&ProductId> = self
            .delivery
            .plan
            .steps
            .iter()
            .map(|step| &step.product)
            .collect();
        // Products a planned one replaces or obsoletes are its to handle.
        let superseded: BTreeSet<&ProductId> = self
            .delivery
            .suite
            .products
            .iter()
            .filter(|product| planned.contains(&product.id))
            .flat_map(|product| {
                product
                    .dependencies
                    .replaces
                    .iter()
                    .chain(&product.dependencies.obsoletes)
            })
            .map(|requirement| &requirement.product)
            .collect();
        let unassigned: Vec<ProductId> = self
            .journal
            .installed()
            .keys()
            .filter(|product| !planned.contains(product) && !superseded.contains(product))
            .cloned()
            .collect();
        let mut removable = Vec::new();
        for product in &unassigned {
            let kept = removal::read_kept(&settings.state_dir, &self.suite, product)?;
            let to_remove = kept.filter(|kept| {
                kept.product()
                    .and_then(|model| model.commands.get(&Phase::Uninstall))
                    .is_some_and(|command| command.remove_when_unassigned)
            });
            match to_remove {
                Some(kept) => removable.push(kept),
                None => reporter.event(&Event::Note {
                    message: format!(
                        "{product}: no longer assigned to this machine; left installed (its uninstall command does not say remove-when-unassigned)"
                    ),
                }),
            }
        }
        let leaving: BTreeSet<ProductId> = removable
            .iter()
            .filter_map(|kept| kept.product().map(|model| model.id.clone()))
            .collect();
        let models = removal::installed_models(&settings.state_dir);
        for kept in &removable {
            let Some(model) = kept.product() else {
                continue;
            };
            let needing = removal::needed_by(&models, &model.id, &leaving);
            if !needing.is_empty() {
                reporter.event(&Event::Note {
                    message: format!(
                        "{}: no longer assigned, but {} still need(s) it: left installed",
                        model.id,
                        needing
                            .iter()
                            .map(ProductId::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                continue;
            }
            reporter.event(&Event::Note {
                message: format!(
                    "{}: no longer assigned to this machine: removing it",
                    model.id
                ),
            });
            removal::remove(
                settings,
                &mut self.journal,
                &kept.suite,
                &kept.customization,
                model,
                &kept.build,
                outbox,
                reporter,
            )?;
        }
        Ok(())
    }

    /// The installed products (of this suite) that `product`'s
    /// dependencies name in `which` (replaces or obsoletes), with a version
    /// the requirement accepts.
    fn superseded_by(
        &self,
        product: &ProductModel,
        which: fn(
            &roleout_model::product::Dependencies,
        ) -> &Vec<roleout_model::product::ProductRequirement>,
    ) -> Vec<ProductId> {
        which(&product.dependencies)
            .iter()
            .filter(|requirement| {
                self.journal
                    .installed()
                    .get(&requirement.product)
                    .is_some_and(|installed| requirement.versions.matches(&installed.version))
            })
            .map(|requirement| requirement.product.clone())
            .collect()
    }

    /// Removes what `product` obsoletes (installed here) with each one's
    /// kept uninstall, before `product` installs. `Err` names the one that
    /// could not be removed.
    fn remove_obsoleted(
        &mut self,
        settings: &Settings,
        product: &ProductModel,
        outbox: &mut Outbox,
        reporter: &dyn Reporter,
    ) -> Result<(), String> {
        for old in self.superseded_by(product, |dependencies| &dependencies.obsoletes) {
            let kept = removal::read_kept(&settings.state_dir, &self.suite, &old)
                .map_err(|error| error.to_string())?;
            let Some(kept) = kept else {
                return Err(format!(
                    "it obsoletes {old}, which is installed, but what removing {old} needs was not kept"
                ));
            };
            let Some(model) = kept.product().cloned() else {
                return Err(format!("what was kept of {old} names no product"));
            };
            reporter.event(&Event::Note {
                message: format!("{}: obsoletes {old}: removing {old} first", product.id),
            });
            let outcome = removal::remove(
                settings,
                &mut self.journal,
                &kept.suite,
                &kept.customization,
                &model,
                &kept.build,
                outbox,
                reporter,
            )
            .map_err(|error| error.to_string())?;
            if outcome != ReportOutcome::Success {
                return Err(format!("it obsoletes {old}, whose removal failed"));
            }
        }
        Ok(())
    }

    /// Once `product` is installed, forgets what it replaces (installed
    /// here): it was installed over them, so their uninstall does not run.
    fn forget_replaced(
        &mut self,
        settings: &Settings,
        product: &ProductModel,
        reporter: &dyn Reporter,
    ) -> Result<(), EngineError> {
        let installed = self
            .journal
            .installed()
            .get(&product.id)
            .is_some_and(|installed| installed.model == model_digest(product));
        if !installed {
            return Ok(());
        }
        for old in self.superseded_by(product, |dependencies| &dependencies.replaces) {
            self.journal.record_uninstalled(&old).map_err(state_error)?;
            removal::forget(&settings.state_dir, &self.suite, &old);
            reporter.event(&Event::Note {
                message: format!("{}: replaces {old}, which is gone now", product.id),
            });
        }
        Ok(())
    }

    /// The counts of the run, from the journal.
    fn summary(&self) -> RunSummary {
        let mut summary = RunSummary::default();
        let Some(run) = self.journal.record().run.as_ref() else {
            return summary;
        };
        for component in &run.components {
            match standing(component) {
                Standing::Settled { installed: true } => summary.installed += 1,
                Standing::Settled { installed: false } => summary.skipped += 1,
                Standing::Failed => summary.failed += 1,
                Standing::Blocked => summary.blocked += 1,
                Standing::Waiting => summary.reboot_required = true,
                Standing::Untouched | Standing::Partial => {}
            }
        }
        summary
    }
}

fn exit_code_of(exit: Exit) -> Option<i32> {
    match exit {
        Exit::Code(code) => Some(code),
        Exit::Signal(_) => None,
    }
}

/// Fetches `file` from its descriptor's `source` (`file://`, an absolute
/// path, `http://` or `https://` trusting the Mozilla roots the agent is
/// built with) into the cache, which checks its digest and size.
fn fetch_from_source(
    location: &str,
    file: &roleout_model::product::InstallFile,
    cache: &PayloadCache,
) -> Result<(), String> {
    let reader: Box<dyn std::io::Read> = if let Some(path) = location
        .strip_prefix("file://")
        .or_else(|| location.starts_with('/').then_some(location))
    {
        Box::new(fs::File::open(path).map_err(|error| format!("cannot open {path}: {error}"))?)
    } else if location.starts_with("https://") || location.starts_with("http://") {
        let response = crate::client::source_agent()
            .get(location)
            .call()
            .map_err(|error| format!("cannot download it: {error}"))?;
        Box::new(response.into_body().into_reader())
    } else {
        return Err("only file://, http:// and https:// sources are fetched".to_owned());
    };
    cache
        .insert_from_reader(&file.sha256, file.size, reader)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Brings every file of the product's manifest into the cache (verified by
/// SHA-256 and size on the way in; from the file's `source` when roleoutd
/// cannot deliver it) and into the run's payload directory.
fn fetch_payloads(
    product: &ProductModel,
    cache: &PayloadCache,
    source: &mut dyn Source,
    payload_dir: &Path,
) -> Result<(), String> {
    fs::create_dir_all(payload_dir)
        .map_err(|error| format!("cannot create {}: {error}", payload_dir.display()))?;
    for file in &product.fileset.files {
        let relative = Path::new(&file.path);
        if relative
            .components()
            .any(|part| !matches!(part, Component::Normal(_)))
        {
            return Err(format!(
                "payload path {:?} leaves the payload directory",
                file.path
            ));
        }
        let cached = cache
            .get_verified(&file.sha256, file.size)
            .map_err(|error| error.to_string())?;
        if cached.is_none() {
            let primary = source
                .payload(&file.sha256)
                .map_err(|error| error.to_string())
                .and_then(|reader| {
                    cache
                        .insert_from_reader(&file.sha256, file.size, reader)
                        .map(drop)
                        .map_err(|error| format!("payload {}: {error}", file.path))
                });
            if let Err(reason) = primary {
                // The descriptor's `source` is where else the same bytes
                // are; they are checked against the same digest and size.
                let Some(fallback) = &file.source else {
                    return Err(reason);
                };
                fetch_from_source(fallback, file, cache).map_err(|fallback_reason| {
                    format!("{reason}; and from its source {fallback}: {fallback_reason}")
                })?;
            }
        }
        let destination = payload_dir.join(relative);
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        cache
            .materialize(&file.sha256, &destination, file.mode.unwrap_or(ENTRY_MODE))
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}
