//! The installer's durable state on the machine.
//!
//! `roleout` runs as root on machines people depend on, so what it has done
//! must survive a crash, a `kill -9` and a power cut, and what it reports must
//! reach roleoutd exactly as often as the server can tell apart. Everything
//! here lives under one state directory chosen by the caller (normally
//! `/var/lib/roleout`):
//!
//! ```text
//! STATE_DIR/
//!   lock                  held with flock(2) by the one installer at work; holds its pid
//!   journal/SUITE.json    one journal per suite: the run in progress and what is installed
//!   outbox/reports.log    reports roleoutd has not acknowledged yet, in creation order
//! CACHE_DIR/              payloads by digest (often /var/cache/roleout; the caller decides)
//!   sha256/ab/abcdef…
//!   tmp/                  downloads being verified; never read as cache entries
//! ```
//!
//! - [`atomic`]: whole-file replacement with the fsyncs that make it durable
//!   (the journal and the outbox append to their files in between).
//! - [`lock`]: [`StateLock`], the proof that this process is the only writer.
//! - [`journal`]: per-suite progress, resumable after a crash or a reboot.
//! - [`outbox`]: reports kept until delivered, each with a stable id.
//! - [`cache`]: payloads addressed by SHA-256, verified before they enter.
//!
//! Every writer takes a `&StateLock` when it is opened: the lock is what makes
//! "read, change, write back" safe, so the types ask for it rather than trust
//! the caller to remember. Readers (`roleout status`) need no lock: every file
//! is replaced atomically or appended to, so they see an old or a new version,
//! never a mix (a journal line being appended is incomplete, and readers drop
//! it as the writer would after a crash).

use std::io;
use std::path::PathBuf;

use roleout_model::command::Phase;
use roleout_model::ids::{ProductId, Sha256, SuiteId};

pub mod atomic;
pub mod cache;
pub mod journal;
pub mod lock;
pub mod outbox;

pub use lock::StateLock;

/// What went wrong with the installer's state on disk.
///
/// Every variant names the file or the record it is about, so the message is
/// enough for the person at the machine to find it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "rename", "fsync the directory of", ...).
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// Another process holds the state directory.
    #[error(
        "the state directory is in use: {} is locked by {}",
        path.display(),
        match pid { Some(pid) => format!("process {pid}"), None => "a process that has not written its pid yet".to_owned() }
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written in the lock file by its holder, if readable.
        pid: Option<u32>,
    },

    /// A journal file exists but cannot be read as a journal.
    #[error(
        "journal {} is corrupt ({reason}); it was kept as {} and nothing was changed: \
         inspect it, then start the suite's journal over explicitly",
        path.display(),
        kept_as.display()
    )]
    CorruptJournal {
        /// Where the journal was.
        path: PathBuf,
        /// Where the corrupt content was moved to.
        kept_as: PathBuf,
        /// What is wrong with it (the JSON parser's message, with line and column).
        reason: String,
    },

    /// A journal was found corrupt earlier and set aside; no journal replaces it yet.
    #[error(
        "the journal of suite {suite} was found corrupt and set aside as {}; \
         start it over explicitly once it has been inspected",
        kept_as.display()
    )]
    JournalSetAside {
        /// The suite.
        suite: SuiteId,
        /// The corrupt copy.
        kept_as: PathBuf,
    },

    /// A state file was written by a newer Roleout in a format this one does not know.
    #[error("{} has format {found}, this Roleout reads only format {supported}", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format it declares.
        found: u64,
        /// The format this build reads.
        supported: u64,
    },

    /// A stored report cannot be read; it was moved aside.
    #[error("outbox report {} is corrupt ({reason}); it was kept as {}", path.display(), kept_as.display())]
    CorruptReport {
        /// Where the report was.
        path: PathBuf,
        /// Where it was moved to.
        kept_as: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Signed metadata carries an older serial than one already accepted.
    #[error(
        "suite {suite}: metadata serial {offered} is older than serial {accepted} accepted before \
         (a rollback to old metadata is refused)"
    )]
    Rollback {
        /// The suite.
        suite: SuiteId,
        /// The serial of the metadata just received.
        offered: u64,
        /// The highest serial accepted so far.
        accepted: u64,
    },

    /// A new run was asked for while one is unfinished.
    #[error(
        "suite {suite}: run {run} (build {build}) is still in progress; resume or abandon it first"
    )]
    RunInProgress {
        /// The suite.
        suite: SuiteId,
        /// The unfinished run.
        run: String,
        /// The build it installs.
        build: Sha256,
    },

    /// A step was asked for while no run is in progress.
    #[error("suite {suite}: no run is in progress")]
    NoRun {
        /// The suite.
        suite: SuiteId,
    },

    /// The plan names the same product twice.
    #[error("suite {suite}: product {product} appears twice in the planned order")]
    DuplicateComponent {
        /// The suite.
        suite: SuiteId,
        /// The repeated product.
        product: ProductId,
    },

    /// A step the run does not contain.
    #[error("suite {suite}: the run has no {phase} step for product {product}")]
    UnknownStep {
        /// The suite.
        suite: SuiteId,
        /// The product.
        product: ProductId,
        /// The phase.
        phase: Phase,
    },

    /// A step cannot make the asked transition from the state it is in.
    #[error("suite {suite}: cannot {action} the {phase} step of {product}: it is {state}")]
    StepTransition {
        /// The suite.
        suite: SuiteId,
        /// The product.
        product: ProductId,
        /// The phase.
        phase: Phase,
        /// What was asked ("begin", "finish", "skip", ...).
        action: &'static str,
        /// The step's current state, in words.
        state: &'static str,
    },

    /// A downloaded payload does not have the digest the manifest promises.
    #[error(
        "payload digest mismatch: expected sha256 {expected}, got sha256 {actual}; nothing was cached"
    )]
    DigestMismatch {
        /// The digest the manifest gives.
        expected: Sha256,
        /// The digest of the bytes received.
        actual: Sha256,
    },

    /// A downloaded payload does not have the size the manifest promises.
    #[error(
        "payload sha256 {digest}: expected {expected} bytes, got {}; nothing was cached",
        match actual { Some(actual) => format!("{actual}"), None => format!("more than {expected}") }
    )]
    SizeMismatch {
        /// The digest the manifest gives.
        digest: Sha256,
        /// The size the manifest gives.
        expected: u64,
        /// The size received; `None` when the source sent more than expected
        /// (reading stopped there rather than filling the disk).
        actual: Option<u64>,
    },

    /// Reading a payload from its source (a download) failed; nothing was cached.
    #[error("cannot read payload sha256 {digest} from its source: {source}; nothing was cached")]
    PayloadSource {
        /// The payload.
        digest: Sha256,
        /// The reader's error.
        source: io::Error,
    },

    /// A payload is larger than the whole cache may be.
    #[error("payload sha256 {digest} is {size} bytes, more than the cache limit of {limit} bytes")]
    TooLarge {
        /// The payload.
        digest: Sha256,
        /// Its size.
        size: u64,
        /// The cache's limit.
        limit: u64,
    },

    /// A digest asked for is not in the cache.
    #[error("payload sha256 {digest} is not in the cache")]
    NotCached {
        /// The payload.
        digest: Sha256,
    },

    /// A report id or kind breaks the naming rules.
    #[error("invalid report {what} {value:?}: {reason}")]
    InvalidReportName {
        /// "id" or "kind".
        what: &'static str,
        /// The rejected text, truncated.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A record could not be turned into JSON (a bug, not bad input).
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
}

impl StateError {
    /// An [`StateError::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StateError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Seconds since the Unix epoch (UTC), the time stamp used in every record.
///
/// A clock before 1970 (a machine without a battery-backed clock, early in
/// boot) gives 0 rather than an error: time stamps are for people reading the
/// journal, never for deciding what runs.
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
