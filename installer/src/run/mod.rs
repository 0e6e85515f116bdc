//! Running one command of a product's life cycle (pre-install, install,
//! post-install, uninstall) and deciding how it went.
//!
//! The runner is a small type in the manner of ripgrep's `CommandReader`:
//! an already-rendered command goes in; its exit, bounded output, timing,
//! the log lines that matched and the decided [`Outcome`] with its evidence
//! come out as a [`CommandReport`]. Around that it keeps four promises:
//!
//! - **The whole process tree stops.** The command runs in a process group
//!   of its own; a timeout, a failure line in the log or dropping a
//!   [`RunningCommand`] kills the whole group (`SIGTERM`, a short grace,
//!   then `SIGKILL`), so the helpers an installer forks die with it.
//! - **Memory stays bounded** whatever the command prints or logs (see
//!   [`CaptureLimit`] and [`MAX_LINE_BYTES`]).
//! - **No secret is kept**: every stored string passes through
//!   [`Secrets::redact`] first.
//! - **No shell unless asked**: argv goes to `execve` as it is;
//!   [`Invocation::Shell`] is the visible opt-in.
//!
//! The runner uses plain threads rather than async: the installer runs one
//! command at a time. One thread per output pipe reads it, and one thread
//! blocks in `waitid` until the command exits and then says so on a
//! channel. The waiting side sleeps on that channel until the next event
//! it knows of (the deadline, the next interim read of the log), so a
//! command is seen to exit the moment it does, with no polling pauses, and
//! timeout, interim log checks and exit stay one simple, ordered sequence.

mod capture;
mod logwatch;
mod outcome;
mod redact;
pub mod supervise;
mod tree;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use roleout_model::command::{CommandLineModel, ExitCodeTable, OutputRules};
use serde::{Deserialize, Serialize};

pub use self::capture::{CaptureLimit, CapturedOutput};
use self::capture::{SharedBuffer, read_in_background};
pub use self::logwatch::{LogFindings, LogLine, LogWatch, MAX_KEPT_LINES, MAX_LINE_BYTES};
use self::logwatch::{LogWatcher, StreamJudge, feed_stream, stream_findings, stream_judge};
pub use self::outcome::{Exit, Outcome, StopReason};
use self::outcome::{Facts, decide, seconds};
pub use self::redact::{MASK, Secrets};
use self::supervise::{AgentRecord, EndRecord, Found};
use self::tree::Tree;
pub use self::tree::sweep_abandoned;

/// The shell used by [`Invocation::Shell`].
pub const SHELL: &str = "/bin/sh";

/// The shortest pause between two interim reads of the log.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// Why a command could not be run at all. A command that ran and failed is
/// not an error: it is a [`CommandReport`] whose outcome is
/// [`Outcome::Failed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The argv had no program.
    #[error("the command line is empty: there is no program to run")]
    EmptyCommand,
    /// The program does not exist.
    #[error(
        "program `{program}` not found (no such file or no such name on PATH, or the interpreter named by its `#!` line is missing)"
    )]
    ProgramNotFound {
        /// The program, as given.
        program: String,
    },
    /// The program exists but may not be run.
    #[error(
        "permission denied running `{program}` (is it executable, and are its directories searchable?)"
    )]
    PermissionDenied {
        /// The program, as given.
        program: String,
    },
    /// The working directory is not there.
    #[error("working directory {} does not exist or is not a directory", path.display())]
    WorkingDirMissing {
        /// The directory, as given.
        path: PathBuf,
    },
    /// An argument or environment value holds a NUL byte, which `execve`
    /// cannot pass.
    #[error("{what} of `{program}` contains a NUL byte, which no program can be given")]
    NulByte {
        /// The program, as given.
        program: String,
        /// Which string: "argument 2", "the script", "environment variable FOO".
        what: String,
    },
    /// An environment variable name is empty or holds `=` or NUL.
    #[error(
        "environment variable name {name:?} for `{program}` is empty or contains `=` or a NUL byte"
    )]
    InvalidEnvName {
        /// The program, as given.
        program: String,
        /// The name.
        name: String,
    },
    /// Starting the program failed for another reason.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program, as given.
        program: String,
        /// What the system said.
        source: io::Error,
    },
    /// Waiting for the program failed (the system lost track of it).
    #[error("could not wait for `{program}` to exit: {source}")]
    Wait {
        /// The program, as given.
        program: String,
        /// What the system said.
        source: io::Error,
    },
}

/// What to execute.
#[derive(Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A program and its arguments, passed to `execve` as they are (a bare
    /// name is looked up on `PATH`).
    Program {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A script run as `/bin/sh -c SCRIPT sh ARGS…`: the arguments are the
    /// script's `$1`, `$2`… and are never spliced into its text.
    Shell {
        /// The script text.
        script: String,
        /// Its positional arguments.
        args: Vec<String>,
    },
}

impl Invocation {
    /// The program `execve` is given.
    pub fn program(&self) -> &str {
        match self {
            Invocation::Program { program, .. } => program,
            Invocation::Shell { .. } => SHELL,
        }
    }

    /// Every argument after the program, as `execve` gets them.
    fn arguments(&self) -> Vec<&str> {
        match self {
            Invocation::Program { args, .. } => args.iter().map(String::as_str).collect(),
            Invocation::Shell { script, args } => ["-c", script.as_str(), "sh"]
                .into_iter()
                .chain(args.iter().map(String::as_str))
                .collect(),
        }
    }
}

impl fmt::Debug for Invocation {
    /// Arguments can hold secrets and an invocation does not know which,
    /// so only the program and how many arguments follow are shown; a
    /// [`CommandSpec`] shows the whole command line, redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invocation::Program { program, args } => {
                write!(f, "Program({program:?}, {} arguments)", args.len())
            }
            Invocation::Shell { args, .. } => write!(f, "Shell(script, {} arguments)", args.len()),
        }
    }
}

/// Everything needed to run one command: what to run, where, for how long,
/// and how to judge it. Built with [`CommandSpec::new`],
/// [`CommandSpec::shell`] or [`CommandSpec::from_model`], then adjusted
/// field by field.
#[derive(Clone)]
#[non_exhaustive]
pub struct CommandSpec {
    /// What to execute.
    pub invocation: Invocation,
    /// The working directory; the runner's own when none.
    pub working_dir: Option<PathBuf>,
    /// Environment variables added to (or replacing) the runner's own.
    pub env: BTreeMap<String, String>,
    /// How long the command may run before its process group is killed.
    pub timeout: Duration,
    /// How often the log is read while the command runs; none means only
    /// after it exits.
    pub check_interval: Option<Duration>,
    /// What exit codes mean.
    pub exit_codes: ExitCodeTable,
    /// The log that also tells the outcome, if any.
    pub log: Option<LogWatch>,
    /// Patterns over the command's own output (standard output and
    /// standard error) that also tell the outcome, if any.
    pub output: Option<OutputRules>,
    /// How many more times the command runs when its exit code means
    /// "retry".
    pub retries: u32,
    /// The pause before a retry.
    pub retry_delay: Duration,
    /// How much of stdout and of stderr is kept.
    pub capture: CaptureLimit,
    /// How long a stopped command gets between `SIGTERM` and `SIGKILL`.
    pub kill_grace: Duration,
    /// How long to wait, after the command exited, for its output pipes to
    /// close: a process it left running in the background may hold them
    /// open for ever, and is not waited for longer than this.
    pub drain_grace: Duration,
    /// Values masked in everything the report keeps.
    pub secrets: Secrets,
    /// Run under a supervisor that outlives this process (see
    /// [`supervise`]), when set; else as this process's own child.
    pub supervision: Option<Supervision>,
}

/// How a command is run under a supervisor (see [`supervise`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    /// The program that supervises: `roleout` itself, run as
    /// `roleout supervise-step`.
    pub program: PathBuf,
    /// The command's folder: each attempt keeps its records in
    /// `attempt-N` below it. A run that finds records there from an
    /// earlier process reads or waits for that command instead of
    /// starting it again.
    pub dir: PathBuf,
}

impl CommandSpec {
    /// Runs `argv[0]` with the rest of `argv` as arguments, with the
    /// defaults: one hour of timeout, success on exit code 0, no log.
    pub fn new(argv: Vec<String>) -> Result<Self, RunError> {
        let mut argv = argv.into_iter();
        let program = argv.next().ok_or(RunError::EmptyCommand)?;
        Ok(Self::with_invocation(Invocation::Program {
            program,
            args: argv.collect(),
        }))
    }

    /// Runs `script` with `/bin/sh -c`, `args` being its positional
    /// arguments, with the defaults of [`CommandSpec::new`].
    pub fn shell(script: impl Into<String>, args: Vec<String>) -> Self {
        Self::with_invocation(Invocation::Shell {
            script: script.into(),
            args,
        })
    }

    /// The spec of a command line whose templates have already been
    /// rendered. A relative working directory is taken from `base_dir` (the
    /// payload directory), and `base_dir` is the working directory when the
    /// model names none. Secrets are not in the model: set
    /// [`CommandSpec::secrets`] afterwards.
    pub fn from_model(model: &CommandLineModel, base_dir: &Path) -> Result<Self, RunError> {
        let mut argv = model.argv.iter().cloned();
        let first = argv.next().ok_or(RunError::EmptyCommand)?;
        let invocation = if model.shell {
            Invocation::Shell {
                script: first,
                args: argv.collect(),
            }
        } else {
            Invocation::Program {
                program: first,
                args: argv.collect(),
            }
        };
        let mut spec = Self::with_invocation(invocation);
        spec.working_dir = Some(match &model.working_dir {
            Some(dir) => base_dir.join(dir),
            None => base_dir.to_owned(),
        });
        spec.env = model.effective_env();
        spec.timeout = Duration::from_secs(model.timeout_secs);
        spec.check_interval = model.check_interval_secs.map(Duration::from_secs);
        spec.retries = model.retries;
        spec.exit_codes = model.effective_exit_codes();
        spec.log = model.outcome.log.as_ref().map(|rules| LogWatch {
            path: PathBuf::from(&rules.path),
            success: rules.success.clone(),
            failure: rules.failure.clone(),
        });
        spec.output = model.outcome.output.clone();
        Ok(spec)
    }

    fn with_invocation(invocation: Invocation) -> Self {
        Self {
            invocation,
            working_dir: None,
            env: BTreeMap::new(),
            timeout: Duration::from_secs(roleout_model::command::DEFAULT_TIMEOUT_SECS),
            check_interval: None,
            exit_codes: ExitCodeTable::default(),
            log: None,
            output: None,
            retries: 0,
            retry_delay: Duration::from_secs(2),
            capture: CaptureLimit::default(),
            kill_grace: Duration::from_secs(5),
            drain_grace: Duration::from_secs(2),
            secrets: Secrets::default(),
            supervision: None,
        }
    }

    /// The command line as a person would type it, secrets masked.
    pub fn command_line(&self) -> String {
        std::iter::once(self.invocation.program())
            .chain(self.invocation.arguments())
            .map(|word| quote(&self.secrets.redact(word)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The program as named in errors, secrets masked.
    fn program_shown(&self) -> String {
        self.secrets.redact(self.invocation.program())
    }

    /// Refuses what `execve` cannot take, naming it, before anything runs.
    fn check(&self) -> Result<(), RunError> {
        let program = || self.program_shown();
        let nul = |what: String| RunError::NulByte {
            program: program(),
            what,
        };
        if self.invocation.program().contains('\0') {
            return Err(nul("the program name".to_owned()));
        }
        match &self.invocation {
            Invocation::Shell { script, .. } if script.contains('\0') => {
                return Err(nul("the script".to_owned()));
            }
            _ => {}
        }
        let args = match &self.invocation {
            Invocation::Program { args, .. } | Invocation::Shell { args, .. } => args,
        };
        if let Some(position) = args.iter().position(|arg| arg.contains('\0')) {
            return Err(nul(format!("argument {}", position + 1)));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(RunError::InvalidEnvName {
                    program: program(),
                    name: self.secrets.redact(name),
                });
            }
            if value.contains('\0') {
                return Err(nul(format!("environment variable {name}")));
            }
        }
        match &self.working_dir {
            Some(dir) if !dir.is_dir() => Err(RunError::WorkingDirMissing { path: dir.clone() }),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: BTreeMap<&str, String> = self
            .env
            .iter()
            .map(|(name, value)| (name.as_str(), self.secrets.redact(value)))
            .collect();
        f.debug_struct("CommandSpec")
            .field("command_line", &self.command_line())
            .field("working_dir", &self.working_dir)
            .field("env", &env)
            .field("timeout", &self.timeout)
            .field("check_interval", &self.check_interval)
            .field("exit_codes", &self.exit_codes)
            .field("log", &self.log)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("capture", &self.capture)
            .field("kill_grace", &self.kill_grace)
            .field("drain_grace", &self.drain_grace)
            .field("secrets", &self.secrets)
            .field("supervision", &self.supervision)
            .finish()
    }
}

/// Quotes `word` for a POSIX shell when it needs it, so that a command
/// line in a report can be read (and pasted) unambiguously.
fn quote(word: &str) -> String {
    let plain =
        |character: char| character.is_ascii_alphanumeric() || "_@%+=:,./-".contains(character);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// One earlier attempt of a retried command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptSummary {
    /// How it ended.
    pub exit: Exit,
    /// How long it ran.
    pub duration: Duration,
    /// The facts its outcome ("retry") was decided from.
    pub evidence: Vec<String>,
}

/// Everything known about a command's run, secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReport {
    /// The command line (see [`CommandSpec::command_line`]).
    pub command: String,
    /// How the last attempt's process ended.
    pub exit: Exit,
    /// Why the runner stopped it, if it did.
    pub stopped: Option<StopReason>,
    /// How long the last attempt ran.
    pub duration: Duration,
    /// What it printed on stdout.
    pub stdout: CapturedOutput,
    /// What it printed on stderr.
    pub stderr: CapturedOutput,
    /// What its log said, when a log with patterns was given.
    pub log: Option<LogFindings>,
    /// The decision.
    pub outcome: Outcome,
    /// The facts the decision was made from, one sentence each.
    pub evidence: Vec<String>,
    /// Which attempt this report is of, from 1.
    pub attempt: u32,
    /// The attempts before it, which asked to be retried.
    pub earlier_attempts: Vec<AttemptSummary>,
}

impl CommandReport {
    /// Whether the command ran past its timeout.
    pub fn timed_out(&self) -> bool {
        self.stopped == Some(StopReason::Timeout)
    }
}

impl fmt::Display for CommandReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {} ({}, after {}, attempt {})",
            self.command,
            self.outcome,
            self.exit,
            seconds(self.duration),
            self.attempt
        )?;
        for fact in &self.evidence {
            write!(f, "\n  {fact}")?;
        }
        if !self.outcome.is_success() && !self.stderr.is_empty() {
            write!(f, "\nstderr:\n{}", self.stderr.text.trim_end())?;
        }
        Ok(())
    }
}

/// Whether the program of `spec` can be started: found (a path, or a
/// name on the `PATH` it will run with), a file, and executable.
fn check_program(spec: &CommandSpec) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    let program = spec.invocation.program();
    let shown = || spec.program_shown();
    let candidates: Vec<PathBuf> = if program.contains('/') {
        let path = Path::new(program);
        vec![match (&spec.working_dir, path.is_relative()) {
            (Some(dir), true) => dir.join(path),
            _ => path.to_owned(),
        }]
    } else {
        let path = spec
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_owned());
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(program))
            .collect()
    };
    let mut denied = false;
    for candidate in candidates {
        let Ok(metadata) = std::fs::metadata(&candidate) else {
            continue;
        };
        if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 {
            return Ok(());
        }
        denied = true;
    }
    if denied {
        Err(RunError::PermissionDenied { program: shown() })
    } else {
        Err(RunError::ProgramNotFound { program: shown() })
    }
}

/// Runs a command to the end, retrying it as its exit codes ask, and
/// reports the last attempt. An error means it could not be run at all.
pub fn run(spec: &CommandSpec) -> Result<CommandReport, RunError> {
    let attempts = spec.retries.saturating_add(1);
    let mut earlier_attempts = Vec::new();
    let mut attempt = 1;
    loop {
        let mut report = run_attempt(spec, attempt)?;
        report.attempt = attempt;
        if report.outcome == Outcome::Retry {
            if attempt < attempts {
                tracing::info!(command = %report.command, attempt, "retrying as the exit code asks");
                earlier_attempts.push(AttemptSummary {
                    exit: report.exit,
                    duration: report.duration,
                    evidence: report.evidence,
                });
                // An attempt an earlier process started already had its pause.
                let started_before = spec.supervision.as_ref().is_some_and(|supervision| {
                    attempt_dir(supervision, attempt + 1)
                        .join("agent.json")
                        .exists()
                });
                if !started_before {
                    thread::sleep(spec.retry_delay);
                }
                attempt += 1;
                continue;
            }
            let tries = if attempts == 1 {
                "it is not to be retried".to_owned()
            } else {
                format!("all {attempts} attempts asked the same")
            };
            report.outcome = Outcome::Failed {
                reason: format!("{} asks to try again, but {tries}", report.exit),
            };
        }
        report.earlier_attempts = earlier_attempts;
        return Ok(report);
    }
}

/// The folder of one attempt of a supervised command.
fn attempt_dir(supervision: &Supervision, attempt: u32) -> PathBuf {
    supervision.dir.join(format!("attempt-{attempt}"))
}

/// Runs one attempt: directly, or under a supervisor, where what an
/// earlier process left of the attempt is read or waited for first.
fn run_attempt(spec: &CommandSpec, attempt: u32) -> Result<CommandReport, RunError> {
    let Some(supervision) = &spec.supervision else {
        return RunningCommand::start(spec)?.wait();
    };
    let dir = attempt_dir(supervision, attempt);
    let wait_error = |source| RunError::Wait {
        program: spec.program_shown(),
        source,
    };
    match supervise::look(&dir).map_err(wait_error)? {
        Found::Ended {
            agent,
            end,
            stopped,
        } => {
            let note = "it had ended when roleout started again; how is read from what its supervisor recorded, and it was not run again";
            from_record(spec, &agent, Some(end), stopped, note)
        }
        Found::Running(agent) => {
            let elapsed =
                Duration::from_millis(supervise::now_ms().saturating_sub(agent.started_at_ms));
            let deadline = Instant::now() + spec.timeout.saturating_sub(elapsed);
            let mut watcher = log_watcher(spec, agent.log.clone());
            let interval = spec
                .check_interval
                .filter(|_| watcher.is_some())
                .map(|interval| interval.max(MIN_CHECK_INTERVAL));
            let stopped = supervise::wait_for(&dir, deadline, spec.kill_grace, interval, || {
                watcher.as_mut().is_some_and(|watcher| {
                    watcher.check();
                    watcher.saw_failure()
                })
            })
            .map_err(wait_error)?;
            let end = supervise::read_end(&dir).map_err(wait_error)?;
            if end.is_none() && stopped.is_none() {
                // Its supervisor died with it: it did not finish. (`look`
                // ends what it left and clears its folder.)
                supervise::look(&dir).map_err(wait_error)?;
                return run_again(spec, supervision, &dir);
            }
            let note = "it was still running when roleout started again; roleout waited for it to end rather than start it again";
            from_record(spec, &agent, end, stopped, note)
        }
        Found::Lost => run_again(spec, supervision, &dir),
        Found::Nothing => RunningCommand::start_supervised(spec, supervision, &dir)?.wait(),
    }
}

/// Runs anew an attempt whose earlier start was lost with its supervisor,
/// saying so in the evidence.
fn run_again(
    spec: &CommandSpec,
    supervision: &Supervision,
    dir: &Path,
) -> Result<CommandReport, RunError> {
    let mut report = RunningCommand::start_supervised(spec, supervision, dir)?.wait()?;
    report.evidence.insert(
        0,
        "an earlier start of this command was interrupted along with its supervisor (a reboot, or both killed), so it ran again".to_owned(),
    );
    Ok(report)
}

/// The watcher of the command's log, when it has one with patterns: from
/// what the log holds now, or from `start` when an earlier process
/// recorded where the log stood.
fn log_watcher(spec: &CommandSpec, start: Option<logwatch::LogStart>) -> Option<LogWatcher> {
    spec.log
        .as_ref()
        .filter(|log| log.has_patterns())
        .map(|log| {
            let mut log = log.clone();
            if let Some(dir) = &spec.working_dir {
                log.path = dir.join(&log.path);
            }
            match start.clone() {
                Some(start) => LogWatcher::resume(log, spec.secrets.clone(), start),
                None => LogWatcher::start(log, spec.secrets.clone()),
            }
        })
}

/// The report of an attempt an earlier process started, from what its
/// supervisor recorded (`end`; none when it was stopped before it could
/// record), the command's log, and `note` saying how it was found.
fn from_record(
    spec: &CommandSpec,
    agent: &AgentRecord,
    end: Option<EndRecord>,
    stopped: Option<StopReason>,
    note: &str,
) -> Result<CommandReport, RunError> {
    if let Some(error) = end.as_ref().and_then(|end| end.spawn_error.clone()) {
        return Err(RunError::Spawn {
            program: spec.program_shown(),
            source: io::Error::other(error),
        });
    }
    let empty = CapturedOutput {
        text: String::new(),
        total_bytes: 0,
        omitted_bytes: 0,
    };
    // Masked again: the supervisor masks only what it was sent.
    let masked = |output: CapturedOutput| CapturedOutput {
        text: spec.secrets.redact(&output.text),
        ..output
    };
    let (exit, finished_at_ms, stdout, stderr) = match end {
        Some(end) => (
            end.exit.unwrap_or(Exit::Signal(Signal::SIGKILL as i32)),
            end.finished_at_ms,
            masked(end.stdout),
            masked(end.stderr),
        ),
        None => (
            Exit::Signal(Signal::SIGKILL as i32),
            supervise::now_ms(),
            empty.clone(),
            empty,
        ),
    };
    let log = log_watcher(spec, agent.log.clone())
        .map(LogWatcher::finish)
        .or_else(|| {
            let rules = spec
                .output
                .as_ref()
                .filter(|rules| !rules.success.is_empty() || !rules.failure.is_empty())?;
            let judge = |output: &CapturedOutput| {
                let judge = stream_judge(
                    "its output",
                    rules.success.clone(),
                    rules.failure.clone(),
                    spec.secrets.clone(),
                );
                feed_stream(&judge, output.text.as_bytes());
                judge
            };
            Some(stream_findings(&judge(&stdout), &judge(&stderr)))
        });
    let decision = decide(Facts {
        exit,
        stopped,
        timeout: spec.timeout,
        exit_codes: &spec.exit_codes,
        log: log.as_ref(),
    });
    let mut evidence = vec![note.to_owned()];
    evidence.extend(decision.evidence);
    Ok(CommandReport {
        command: spec.command_line(),
        exit,
        stopped,
        duration: Duration::from_millis(finished_at_ms.saturating_sub(agent.started_at_ms)),
        stdout,
        stderr,
        log,
        outcome: decision.outcome,
        evidence,
        attempt: 1,
        earlier_attempts: Vec::new(),
    })
}

/// A command's process group while it runs. Dropping it kills the group
/// and reaps the command.
#[derive(Debug)]
struct ProcessGroup {
    child: Child,
    /// The command's pid, which is also its process group's id.
    pid: Pid,
    /// Disconnects (or receives) once the command has exited; see
    /// [`watch_exit`].
    exit_seen: mpsc::Receiver<()>,
    /// Whether `exit_seen` said so already.
    exited: bool,
    /// Whether `child` has been waited for. Until then its pid, and with it
    /// the group id, cannot be given to another process, so signalling the
    /// group can only reach the command's own processes.
    reaped: bool,
    /// Every process the command started, even those that left the group.
    tree: Tree,
    /// The attempt's folder when the child is the command's supervisor.
    supervised: Option<PathBuf>,
}

/// Starts a thread that blocks until process `pid` (a child of this
/// process) has exited, without reaping it (`WNOWAIT`: the pid stays
/// ours, so the process group can still be signalled safely), then drops
/// the sender, which wakes whoever waits on the receiver.
///
/// A blocked `waitid` on a thread rather than a polling loop: the exit is
/// noticed at once (a polling loop that backs off notices a quick command
/// milliseconds late, which adds up over a suite of many components) and a
/// long command costs no wake-ups at all.
fn watch_exit(pid: Pid) -> io::Result<mpsc::Receiver<()>> {
    let (sender, receiver) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("roleout-exit-watch".to_owned())
        .spawn(move || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            // EINTR: asked again. Any other answer (the exit, or ECHILD when
            // the command was reaped already) means it is gone.
            while let Err(Errno::EINTR) = waitid(Id::Pid(pid), flags) {}
            drop(sender);
        })?;
    Ok(receiver)
}

impl ProcessGroup {
    /// Waits up to `timeout` for the command to exit, without reaping it;
    /// whether it has.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        if !self.exited {
            self.exited = match self.exit_seen.recv_timeout(timeout) {
                // The watcher only ever disconnects; a message would mean
                // the same.
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
                Err(mpsc::RecvTimeoutError::Timeout) => false,
            };
        }
        self.exited
    }

    fn signal(&self, signal: Signal) {
        if !self.reaped {
            // ESRCH means every process of the group is gone already.
            let _ = killpg(self.pid, signal);
        }
        // Those that left the group (setsid) are still in the tree.
        self.tree.signal_all(signal);
    }

    /// Stops every process the command started: `SIGTERM`, up to `grace`
    /// for the command to exit, then `SIGKILL` for whatever is left (a
    /// helper that ignores `SIGTERM`, or one that left the process group,
    /// dies too).
    fn stop(&mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        self.wait_exit(grace);
        self.signal(Signal::SIGKILL);
        self.adopt_supervised_tree();
        self.tree.kill_all();
    }

    /// A supervised command's tree is the cgroup its supervisor made, as
    /// it recorded it (the supervisor itself may be gone by now).
    fn adopt_supervised_tree(&mut self) {
        if let Some(cgroup) = self
            .supervised
            .as_deref()
            .and_then(supervise::recorded_cgroup)
        {
            self.tree = Tree::Cgroup(cgroup);
        }
    }

    fn reap(&mut self) -> io::Result<Exit> {
        let status = self.child.wait()?;
        self.reaped = true;
        Tree::reaped(self.pid);
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // A waited-for process has either exited or been killed; the
            // raw status is kept should a system ever say otherwise.
            (None, None) => Exit::Code(status.into_raw()),
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(Signal::SIGKILL);
            self.adopt_supervised_tree();
            self.tree.kill_all();
            let _ = self.child.wait();
            Tree::reaped(self.pid);
        }
        // A command that ended on its own may have left a daemon running
        // on purpose: it is let go, not killed. A stopped one's tree was
        // killed already.
        self.tree.release();
    }
}

/// A command that has been started. [`RunningCommand::wait`] runs it to the
/// end; dropping it instead kills its whole process group.
#[derive(Debug)]
pub struct RunningCommand {
    spec: CommandSpec,
    process: ProcessGroup,
    started: Instant,
    stdout: SharedBuffer,
    stderr: SharedBuffer,
    /// Disconnects once both output readers have finished.
    output_done: mpsc::Receiver<()>,
    watcher: Option<LogWatcher>,
    /// Judges of standard output and standard error, with output patterns.
    judges: Option<(StreamJudge, StreamJudge)>,
}

impl RunningCommand {
    /// Starts one attempt of the command (no retry) as a child of this
    /// process, whatever [`CommandSpec::supervision`] says.
    pub fn start(spec: &CommandSpec) -> Result<Self, RunError> {
        Self::start_in(spec, None)
    }

    /// Starts one attempt under a supervisor, its records in `dir`.
    fn start_supervised(
        spec: &CommandSpec,
        supervision: &Supervision,
        dir: &Path,
    ) -> Result<Self, RunError> {
        Self::start_in(spec, Some((supervision, dir)))
    }

    fn start_in(
        spec: &CommandSpec,
        supervised: Option<(&Supervision, &Path)>,
    ) -> Result<Self, RunError> {
        spec.check()?;
        // The log is looked at before the command starts, so that what it
        // already holds is not taken for what the command writes.
        let watcher = log_watcher(spec, None);
        let spawn_error = |source| RunError::Spawn {
            program: spec.program_shown(),
            source,
        };
        let arguments: Vec<String> = spec
            .invocation
            .arguments()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let (tree, mut command) = match supervised {
            None => {
                let tree = Tree::new();
                if tree.is_cgroup() {
                    // Started through the shell that enters the cgroup: a
                    // program that cannot be run is told here, as a direct
                    // start tells it.
                    check_program(spec)?;
                }
                let (program, arguments) = tree.wrap(spec.invocation.program(), arguments);
                let mut command = Command::new(program);
                command.args(arguments).stdin(Stdio::null());
                (tree, command)
            }
            Some((supervision, dir)) => {
                // The supervisor starts the command: a program that cannot
                // be run is told here.
                check_program(spec)?;
                let record = supervise::prepare(dir, watcher.as_ref().map(LogWatcher::start_point))
                    .map_err(spawn_error)?;
                let mut command = Command::new(&supervision.program);
                command
                    .arg(supervise::SUBCOMMAND)
                    .arg(dir)
                    .arg("--token")
                    .arg(&record.token)
                    .arg("--drain-ms")
                    .arg(spec.drain_grace.as_millis().to_string())
                    .arg("--head")
                    .arg(spec.capture.head.to_string())
                    .arg("--tail")
                    .arg(spec.capture.tail.to_string())
                    .arg("--")
                    .arg(spec.invocation.program())
                    .args(arguments)
                    // The secrets, sent on standard input (never on a
                    // command line, which others can read).
                    .stdin(Stdio::piped());
                // The supervisor's orphans, should it be stopped, come here.
                (Tree::subreaper(), command)
            }
        };
        command
            .envs(&spec.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        tracing::debug!(command = %spec.command_line(), "starting");
        let started = Instant::now();
        let mut child = command.spawn().map_err(|source| {
            let program = spec.program_shown();
            match source.kind() {
                io::ErrorKind::NotFound => RunError::ProgramNotFound { program },
                io::ErrorKind::PermissionDenied => RunError::PermissionDenied { program },
                _ => RunError::Spawn { program, source },
            }
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        if let Some(mut stdin) = child.stdin.take() {
            let secrets = serde_json::to_vec(&spec.secrets.values()).unwrap_or_default();
            // A supervisor that is gone already is told by its missing end.
            let _ = std::io::Write::write_all(&mut stdin, &secrets);
        }
        // The child's pid fits a pid_t: the kernel hands out no larger ones.
        let pid = Pid::from_raw(child.id() as i32);
        Tree::started(pid);
        let exit_seen = match watch_exit(pid) {
            Ok(receiver) => receiver,
            Err(source) => {
                // No thread to wait with: the command must not run on
                // unwatched. Nothing else holds it yet, so end it here.
                let _ = killpg(pid, Signal::SIGKILL);
                tree.kill_all();
                let _ = child.wait();
                Tree::reaped(pid);
                tree.remove();
                return Err(spawn_error(source));
            }
        };
        let process = ProcessGroup {
            child,
            pid,
            exit_seen,
            exited: false,
            reaped: false,
            tree,
            supervised: supervised.map(|(_, dir)| dir.to_owned()),
        };

        // From here on an error drops `process`, which kills the command.
        let (done, output_done) = mpsc::channel();
        let judges = spec
            .output
            .as_ref()
            .filter(|rules| !rules.success.is_empty() || !rules.failure.is_empty())
            .map(|rules| {
                let judge = || {
                    stream_judge(
                        "its output",
                        rules.success.clone(),
                        rules.failure.clone(),
                        spec.secrets.clone(),
                    )
                };
                (judge(), judge())
            });
        let (stdout_judge, stderr_judge) = match &judges {
            Some((out, err)) => (Some(out.clone()), Some(err.clone())),
            None => (None, None),
        };
        let stdout = read_in_background(stdout, spec.capture, stdout_judge, done.clone())
            .map_err(spawn_error)?;
        let stderr =
            read_in_background(stderr, spec.capture, stderr_judge, done).map_err(spawn_error)?;
        Ok(Self {
            spec: spec.clone(),
            process,
            started,
            stdout,
            stderr,
            output_done,
            watcher,
            judges,
        })
    }

    /// The command's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.process.child.id()
    }

    /// Waits for the command to exit (or stops it on timeout or on a
    /// failure line in its log), then decides its outcome.
    pub fn wait(mut self) -> Result<CommandReport, RunError> {
        let stopped = self.wait_for_exit();
        let wait_error = |source| RunError::Wait {
            program: self.spec.program_shown(),
            source,
        };
        let mut exit = self.process.reap().map_err(wait_error)?;
        if let Some(dir) = &self.process.supervised {
            match supervise::read_end(dir).map_err(wait_error)? {
                Some(end) => {
                    if let Some(error) = end.spawn_error {
                        return Err(RunError::Spawn {
                            program: self.spec.program_shown(),
                            source: io::Error::other(error),
                        });
                    }
                    if let Some(recorded) = end.exit {
                        exit = recorded;
                    }
                }
                // Stopped before the supervisor could record: the
                // supervisor's own end is the command's.
                None if stopped.is_some() => {}
                None => {
                    return Err(wait_error(io::Error::other(format!(
                        "its supervisor ended ({exit}) without recording how the command ended"
                    ))));
                }
            }
        }
        let duration = self.started.elapsed();
        if let Some(reason) = stopped {
            tracing::info!(command = %self.spec.command_line(), ?reason, "stopped");
        }

        // The pipes close when the last process holding them exits; a
        // process left in the background may hold them for ever.
        match self.output_done.recv_timeout(self.spec.drain_grace) {
            Ok(())
            | Err(mpsc::RecvTimeoutError::Disconnected | mpsc::RecvTimeoutError::Timeout) => {}
        }
        let snapshot = |buffer: &SharedBuffer| {
            buffer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .snapshot(&self.spec.secrets)
        };
        let stdout = snapshot(&self.stdout);
        let stderr = snapshot(&self.stderr);

        // The log file's lines, else the command's own output's.
        let log = self.watcher.take().map(LogWatcher::finish).or_else(|| {
            self.judges
                .as_ref()
                .map(|(stdout, stderr)| stream_findings(stdout, stderr))
        });
        let decision = decide(Facts {
            exit,
            stopped,
            timeout: self.spec.timeout,
            exit_codes: &self.spec.exit_codes,
            log: log.as_ref(),
        });
        Ok(CommandReport {
            command: self.spec.command_line(),
            exit,
            stopped,
            duration,
            stdout,
            stderr,
            log,
            outcome: decision.outcome,
            evidence: decision.evidence,
            attempt: 1,
            earlier_attempts: Vec::new(),
        })
    }

    /// Records, for a supervised command, why it is being stopped.
    fn record_stop(&self, reason: StopReason) {
        if let Some(dir) = &self.process.supervised {
            supervise::record_stop(dir, reason);
        }
    }

    /// Waits until the command exits, the timeout passes or the log shows
    /// a failure line; in the last two cases stops the process group.
    fn wait_for_exit(&mut self) -> Option<StopReason> {
        let deadline = self.started + self.spec.timeout;
        // A zero interval would read the log in a busy loop.
        let interval = self
            .spec
            .check_interval
            .filter(|_| self.watcher.is_some())
            .map(|interval| interval.max(MIN_CHECK_INTERVAL));
        let mut next_check = interval.map(|interval| self.started + interval);
        loop {
            let now = Instant::now();
            let until_event = next_check
                .map_or(deadline, |at| at.min(deadline))
                .saturating_duration_since(now);
            if self.process.wait_exit(until_event) {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                self.record_stop(StopReason::Timeout);
                self.process.stop(self.spec.kill_grace);
                return Some(StopReason::Timeout);
            }
            let check_due = next_check.is_some_and(|at| now >= at);
            if let (true, Some(interval), Some(watcher)) =
                (check_due, interval, self.watcher.as_mut())
            {
                watcher.check();
                if watcher.saw_failure() {
                    if let Some(dir) = &self.process.supervised {
                        supervise::record_stop(dir, StopReason::FailureInLog);
                    }
                    self.process.stop(self.spec.kill_grace);
                    return Some(StopReason::FailureInLog);
                }
                next_check = Some(now + interval);
            }
        }
    }
}

#[cfg(test)]
// Test inputs are literals; a panic on one is the test failing.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("dpkg"), "dpkg");
        assert_eq!(quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn command_line_and_debug_mask_secrets() {
        let mut spec =
            CommandSpec::new(vec!["setup".into(), "--password=it's-s3cret".into()]).unwrap();
        spec.env.insert("DB_PASSWORD".into(), "it's-s3cret".into());
        spec.secrets.add("it's-s3cret");
        assert_eq!(spec.command_line(), "setup '--password=********'");
        let debug = format!("{spec:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("DB_PASSWORD"), "{debug}");
    }

    #[test]
    fn shell_mode_passes_arguments_as_positional_parameters() {
        let spec = CommandSpec::shell("echo \"$1\"", vec!["a b".into()]);
        assert_eq!(spec.command_line(), "/bin/sh -c 'echo \"$1\"' sh 'a b'");
    }

    #[test]
    fn a_rendered_model_becomes_a_spec() {
        use roleout_model::command::{InstallerKind, LogRules, OutcomeRules};
        use roleout_model::pattern::Pattern;

        let model = CommandLineModel {
            kind: InstallerKind::Script,
            argv: vec!["./setup.sh \"$1\"".into(), "/opt/app".into()],
            shell: true,
            working_dir: Some("bin".into()),
            env: BTreeMap::from([("LANG".into(), "C".into())]),
            response_file: None,
            timeout_secs: 600,
            check_interval_secs: Some(5),
            retries: 2,
            outcome: OutcomeRules {
                exit_codes: ExitCodeTable {
                    success: vec![0],
                    reboot: vec![194],
                    retry: vec![75],
                },
                log: Some(LogRules {
                    path: "setup.log".into(),
                    success: vec![Pattern::new("complete").unwrap()],
                    failure: Vec::new(),
                }),
                output: None,
            },
            remove_when_unassigned: false,
            then: Vec::new(),
        };
        let spec = CommandSpec::from_model(&model, Path::new("/var/cache/roleout/app")).unwrap();
        assert_eq!(
            spec.invocation,
            Invocation::Shell {
                script: "./setup.sh \"$1\"".into(),
                args: vec!["/opt/app".into()],
            }
        );
        assert_eq!(
            spec.working_dir.as_deref(),
            Some(Path::new("/var/cache/roleout/app/bin"))
        );
        assert_eq!(spec.env["LANG"], "C");
        assert_eq!(spec.timeout, Duration::from_secs(600));
        assert_eq!(spec.check_interval, Some(Duration::from_secs(5)));
        assert_eq!(spec.retries, 2);
        assert_eq!(spec.exit_codes.reboot, vec![194]);
        let log = spec.log.unwrap();
        assert_eq!(log.path, Path::new("setup.log"));
        assert_eq!(log.success.len(), 1);

        // Kind defaults: msi's reboot codes when the outcome names none,
        // deb's unattended debconf unless the command sets it.
        let mut msi = model.clone();
        msi.kind = InstallerKind::Msi;
        msi.outcome.exit_codes.reboot.clear();
        let spec = CommandSpec::from_model(&msi, Path::new("/tmp")).unwrap();
        assert_eq!(spec.exit_codes.reboot, vec![3010, 1641]);
        assert_eq!(
            CommandSpec::from_model(&model, Path::new("/tmp"))
                .unwrap()
                .exit_codes
                .reboot,
            vec![194],
            "a script keeps what it says"
        );
        let mut deb = model.clone();
        deb.kind = InstallerKind::Deb;
        let spec = CommandSpec::from_model(&deb, Path::new("/tmp")).unwrap();
        assert_eq!(spec.env["DEBIAN_FRONTEND"], "noninteractive");
        deb.env.insert("DEBIAN_FRONTEND".into(), "readline".into());
        let spec = CommandSpec::from_model(&deb, Path::new("/tmp")).unwrap();
        assert_eq!(spec.env["DEBIAN_FRONTEND"], "readline");

        let mut empty = model.clone();
        empty.argv.clear();
        assert!(matches!(
            CommandSpec::from_model(&empty, Path::new("/")),
            Err(RunError::EmptyCommand)
        ));
    }

    #[test]
    fn refuses_what_execve_cannot_take() {
        let spec = CommandSpec::new(vec!["echo".into(), "ok".into(), "bad\0".into()]).unwrap();
        let error = spec.check().unwrap_err();
        assert_eq!(
            error.to_string(),
            "argument 2 of `echo` contains a NUL byte, which no program can be given"
        );
        let mut spec = CommandSpec::new(vec!["echo".into()]).unwrap();
        spec.env.insert("A=B".into(), "x".into());
        assert!(matches!(spec.check(), Err(RunError::InvalidEnvName { .. })));
        assert!(matches!(
            CommandSpec::new(Vec::new()),
            Err(RunError::EmptyCommand)
        ));
    }
}
