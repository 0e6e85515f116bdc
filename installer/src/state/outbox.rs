//! Reports kept until roleoutd has them.
//!
//! A machine keeps installing while roleoutd is unreachable; its status
//! reports wait here and go out later, in the order they were made. Each
//! report is one file, written atomically, named
//! `STATE_DIR/outbox/SEQUENCE.ID.json` so a directory listing gives creation
//! order. A report is removed only after the server accepted it.
//!
//! Delivery is "once" in the only sense a network allows: the outbox sends a
//! report until the server acknowledges it, and every report carries a
//! stable [`ReportId`] so the server can recognize a repeat. A repeat happens
//! when the acknowledgement is lost, or when the process dies between the
//! acknowledgement and the removal; the server's idempotent handling of the
//! id turns that repeat into no change. The outbox itself never sends a
//! report again after [`Outbox::delivered`] returned, with one exception
//! it accepts on purpose: the removal of a delivered report is made
//! durable by the next fsync of the outbox directory (the next report
//! kept, [`Outbox::sync`], or dropping the outbox), not by one fsync of
//! its own, which would cost as much again as keeping the report did. A
//! power cut in between brings the report back and it goes once more,
//! which its id makes a repeat the server ignores. Nothing is lost that
//! way, and a crash of the process alone loses no removal.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use roleout_model::command::Phase;
use roleout_model::ids::ProductId;
use serde::{Deserialize, Serialize};

use crate::state::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use crate::state::journal::RunId;
use crate::state::{StateError, StateLock, now_unix};

/// The report file format this build writes and reads.
pub const REPORT_FORMAT: u64 = 1;

/// Name of the outbox directory inside the state directory.
pub const OUTBOX_DIR_NAME: &str = "outbox";

/// Longest report id, in bytes (it is part of a file name).
pub const MAX_REPORT_ID_LEN: usize = 200;

/// Identifies a report, stably across retries of its delivery.
///
/// Made of the run id and what the report is about, so that a report made
/// again after a crash (before it reached the outbox) gets the same id and
/// the server still sees one report. ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit: it is used as part of a file name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReportId(String);

impl ReportId {
    /// Checks and wraps an id.
    pub fn new(value: impl Into<String>) -> Result<ReportId, StateError> {
        let value = value.into();
        check_report_name("id", &value, MAX_REPORT_ID_LEN, |character| {
            character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.')
        })?;
        Ok(ReportId(value))
    }

    /// The id of the report of `kind` about one attempt of one step:
    /// `RUN.PRODUCT.PHASE.ATTEMPT.KIND`. Unambiguous although product ids may
    /// contain dots: run ids, phases, attempts and kinds never do.
    pub fn for_step(
        run: &RunId,
        product: &ProductId,
        phase: Phase,
        attempt: u32,
        kind: &ReportKind,
    ) -> Result<ReportId, StateError> {
        ReportId::new(format!("{run}.{product}.{phase}.{attempt}.{kind}"))
    }

    /// The id of the report of `kind` about a whole run (`RUN.KIND`), such as
    /// "suite complete".
    pub fn for_run(run: &RunId, kind: &ReportKind) -> Result<ReportId, StateError> {
        ReportId::new(format!("{run}.{kind}"))
    }

    /// An id from the run and a sequence number taken from the journal
    /// ([`Journal::next_sequence`](crate::state::journal::Journal::next_sequence)),
    /// for reports that are about nothing narrower than the run.
    pub fn for_sequence(run: &RunId, sequence: u64) -> Result<ReportId, StateError> {
        ReportId::new(format!("{run}.{sequence}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReportId {
    type Error = StateError;
    fn try_from(value: String) -> Result<Self, StateError> {
        ReportId::new(value)
    }
}

impl From<ReportId> for String {
    fn from(id: ReportId) -> String {
        id.0
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for ReportId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ReportId({})", self.0)
    }
}

/// What a report is ("step-status", "suite-complete"): lowercase ASCII
/// letters, digits and `-`, at most 32 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReportKind(String);

impl ReportKind {
    /// Checks and wraps a kind.
    pub fn new(value: impl Into<String>) -> Result<ReportKind, StateError> {
        let value = value.into();
        check_report_name("kind", &value, 32, |character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
        })?;
        Ok(ReportKind(value))
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReportKind {
    type Error = StateError;
    fn try_from(value: String) -> Result<Self, StateError> {
        ReportKind::new(value)
    }
}

impl From<ReportKind> for String {
    fn from(kind: ReportKind) -> String {
        kind.0
    }
}

impl fmt::Display for ReportKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for ReportKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ReportKind({})", self.0)
    }
}

fn check_report_name(
    what: &'static str,
    value: &str,
    max_len: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), StateError> {
    let fail = |reason| StateError::InvalidReportName {
        what,
        value: value.chars().take(80).collect(),
        reason,
    };
    let Some(first) = value.chars().next() else {
        return Err(fail("it is empty"));
    };
    if value.len() > max_len {
        return Err(fail("it is too long"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(fail("it must start with a letter or a digit"));
    }
    if !value.chars().all(allowed) {
        return Err(fail("it contains a character that is not allowed"));
    }
    Ok(())
}

/// A report waiting for delivery. The payload's shape belongs to the
/// protocol; the outbox only keeps and orders it. Secrets must be redacted
/// before a report is made: the file is private to root, but it goes to the
/// server as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Report {
    /// Always [`REPORT_FORMAT`].
    pub format: u64,
    /// The stable id the server deduplicates on.
    pub id: ReportId,
    /// What the report is.
    pub kind: ReportKind,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// The protocol message.
    pub payload: serde_json::Value,
}

impl Report {
    /// A report made now.
    pub fn new(id: ReportId, kind: ReportKind, payload: serde_json::Value) -> Report {
        Report {
            format: REPORT_FORMAT,
            id,
            kind,
            created_at: now_unix(),
            payload,
        }
    }
}

/// What [`Outbox::deliver_all`] did.
#[derive(Debug)]
pub struct Delivery<E> {
    /// How many reports were delivered and removed.
    pub delivered: usize,
    /// The report whose sending failed, and the failure; `None` when the
    /// outbox is now empty.
    pub stopped_at: Option<(ReportId, E)>,
}

#[derive(Debug, Clone)]
struct Entry {
    sequence: u64,
    id: ReportId,
    path: PathBuf,
}

/// The reports waiting for roleoutd.
#[derive(Debug)]
pub struct Outbox {
    directory: PathBuf,
    entries: Vec<Entry>,
    next_sequence: u64,
    /// Whether a report was removed since the directory was last fsynced.
    unsynced_removals: bool,
}

impl Outbox {
    /// Opens the outbox of the locked state directory.
    pub fn open(lock: &StateLock) -> Result<Outbox, StateError> {
        let directory = lock.state_dir().join(OUTBOX_DIR_NAME);
        atomic::ensure_directory(&directory, PRIVATE_DIR_MODE)?;
        let mut entries = Vec::new();
        let listing = fs::read_dir(&directory)
            .map_err(|source| StateError::io("list", &directory, source))?;
        for entry in listing {
            let entry = entry.map_err(|source| StateError::io("list", &directory, source))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if atomic::is_temporary_name(name) {
                continue;
            }
            // Anything else (a report set aside as corrupt) is not a pending report.
            if let Some((sequence, id)) = parse_file_name(name) {
                entries.push(Entry {
                    sequence,
                    id,
                    path: entry.path(),
                });
            }
        }
        entries.sort_by_key(|entry| entry.sequence);
        let next_sequence = entries.last().map_or(0, |entry| entry.sequence + 1);
        Ok(Outbox {
            directory,
            entries,
            next_sequence,
            unsynced_removals: false,
        })
    }

    /// Keeps `report` for delivery after every report already kept. Returns
    /// `false`, changing nothing, when a report with the same id is already
    /// waiting (a report made again after a crash).
    pub fn push(&mut self, report: &Report) -> Result<bool, StateError> {
        if self.entries.iter().any(|entry| entry.id == report.id) {
            return Ok(false);
        }
        let sequence = self.next_sequence;
        let path = self
            .directory
            .join(format!("{sequence:020}.{}.json", report.id));
        let mut bytes =
            serde_json::to_vec_pretty(report).map_err(|source| StateError::Serialize {
                what: "a report",
                source,
            })?;
        bytes.push(b'\n');
        // Its fsync of the directory makes earlier removals durable too.
        atomic::write_atomic(&path, &bytes, PRIVATE_FILE_MODE)?;
        self.unsynced_removals = false;
        self.next_sequence += 1;
        self.entries.push(Entry {
            sequence,
            id: report.id.clone(),
            path,
        });
        Ok(true)
    }

    /// The ids of the waiting reports, oldest first.
    pub fn pending_ids(&self) -> Vec<ReportId> {
        self.entries.iter().map(|entry| entry.id.clone()).collect()
    }

    /// How many reports wait.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no report waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The waiting reports, oldest first.
    ///
    /// A report file that cannot be read as a report is moved aside
    /// (`NAME.corrupt-UNIXTIME`, no longer pending) and reported as an error;
    /// the next call goes on without it.
    pub fn pending(&mut self) -> Result<Vec<Report>, StateError> {
        let mut reports = Vec::with_capacity(self.entries.len());
        for index in 0..self.entries.len() {
            reports.push(self.load(index)?);
        }
        Ok(reports)
    }

    /// Removes the report `id` after the server accepted it, so this
    /// outbox never sends it again. The removal is durable after the next
    /// report is kept or [`Outbox::sync`] (see the module comment). `false`
    /// when no such report waits.
    pub fn delivered(&mut self, id: &ReportId) -> Result<bool, StateError> {
        let Some(index) = self.entries.iter().position(|entry| &entry.id == id) else {
            return Ok(false);
        };
        let path = &self.entries[index].path;
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(StateError::io("remove", path, error)),
        }
        self.unsynced_removals = true;
        self.entries.remove(index);
        Ok(true)
    }

    /// Makes the removals of delivered reports durable (one fsync of the
    /// directory, none when nothing was removed since the last one).
    pub fn sync(&mut self) -> Result<(), StateError> {
        if self.unsynced_removals {
            atomic::sync_directory(&self.directory)?;
            self.unsynced_removals = false;
        }
        Ok(())
    }

    /// Sends the waiting reports oldest first, removing each one the server
    /// accepted, and stops at the first one `send` fails for (it and the
    /// ones after it stay, in order, for the next time).
    pub fn deliver_all<E>(
        &mut self,
        mut send: impl FnMut(&Report) -> Result<(), E>,
    ) -> Result<Delivery<E>, StateError> {
        let mut delivered = 0;
        while !self.entries.is_empty() {
            let report = self.load(0)?;
            if let Err(error) = send(&report) {
                return Ok(Delivery {
                    delivered,
                    stopped_at: Some((report.id, error)),
                });
            }
            self.delivered(&report.id)?;
            delivered += 1;
        }
        Ok(Delivery {
            delivered,
            stopped_at: None,
        })
    }

    /// Reads entry `index`, setting a corrupt file aside.
    fn load(&mut self, index: usize) -> Result<Report, StateError> {
        let entry = &self.entries[index];
        let bytes =
            fs::read(&entry.path).map_err(|source| StateError::io("read", &entry.path, source))?;
        let problem = match serde_json::from_slice::<Report>(&bytes) {
            Ok(report) if report.format != REPORT_FORMAT => {
                return Err(StateError::UnsupportedFormat {
                    path: entry.path.clone(),
                    found: report.format,
                    supported: REPORT_FORMAT,
                });
            }
            Ok(report) if report.id != entry.id => {
                format!(
                    "it holds report {} but its file name says {}",
                    report.id, entry.id
                )
            }
            Ok(report) => return Ok(report),
            Err(error) => error.to_string(),
        };
        let path = entry.path.clone();
        let kept_as = PathBuf::from(format!("{}.corrupt-{}", path.display(), now_unix()));
        atomic::rename_durably(&path, &kept_as)?;
        self.entries.remove(index);
        Err(StateError::CorruptReport {
            path,
            kept_as,
            reason: problem,
        })
    }
}

impl Drop for Outbox {
    /// Best effort: a failure here costs at most a report sent once more
    /// after a power cut, which the server recognizes.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Splits `SEQUENCE.ID.json` into its parts.
fn parse_file_name(name: &str) -> Option<(u64, ReportId)> {
    let stem = name.strip_suffix(".json")?;
    let (sequence, id) = stem.split_once('.')?;
    if sequence.is_empty() || !sequence.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((sequence.parse().ok()?, ReportId::new(id).ok()?))
}

/// The reports waiting in `state_dir`'s outbox, oldest first, read without a
/// lock (for `roleout status`). Files that do not parse are skipped here;
/// the installer reports them.
pub fn waiting_ids(state_dir: &Path) -> Result<Vec<ReportId>, StateError> {
    let directory = state_dir.join(OUTBOX_DIR_NAME);
    let listing = match fs::read_dir(&directory) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StateError::io("list", directory, error)),
    };
    let mut found = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| StateError::io("list", &directory, source))?;
        if let Some(parsed) = entry.file_name().to_str().and_then(parse_file_name) {
            found.push(parsed);
        }
    }
    found.sort_by_key(|(sequence, _)| *sequence);
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_report_ids_are_file_name_safe_and_distinct() {
        let run = RunId::try_from("0123456789abcdef0123456789abcdef".to_owned())
            .expect("valid in this test");
        let kind = ReportKind::new("step-status").expect("valid in this test");
        let product = ProductId::new("jre_1.8").expect("valid in this test");
        let first = ReportId::for_step(&run, &product, Phase::Install, 1, &kind)
            .expect("valid in this test");
        let second = ReportId::for_step(&run, &product, Phase::Install, 2, &kind)
            .expect("valid in this test");
        assert_eq!(
            first.as_str(),
            "0123456789abcdef0123456789abcdef.jre_1.8.install.1.step-status"
        );
        assert_ne!(first, second);
    }

    #[test]
    fn bad_ids_and_kinds_are_refused() {
        for bad in ["", ".hidden", "a/b", "a b", "../x"] {
            assert!(ReportId::new(bad).is_err(), "{bad}");
        }
        assert!(ReportId::new("a".repeat(MAX_REPORT_ID_LEN + 1)).is_err());
        assert!(ReportKind::new("Step").is_err());
        assert!(ReportKind::new("a.b").is_err());
    }

    #[test]
    fn file_names_parse_back() {
        assert_eq!(
            parse_file_name("00000000000000000007.run.x.json")
                .map(|(sequence, id)| (sequence, id.0)),
            Some((7, "run.x".to_owned()))
        );
        assert!(parse_file_name("00000000000000000007.run.x.json.corrupt-5").is_none());
        assert!(parse_file_name("x.run.json").is_none());
    }
}
