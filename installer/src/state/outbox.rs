//! Reports kept until roleoutd has them.
//!
//! A machine keeps installing while roleoutd is unreachable; its status
//! reports wait here and go out later, in the order they were made. They
//! are kept in one append-only log, `STATE_DIR/outbox/reports.log`: a line
//! per report kept (`{"report": ...}`), in creation order, and a line per
//! report the server accepted (`{"delivered": "ID"}`). Keeping a report is
//! one append and one `fdatasync`; a file per report cost a temporary
//! file, its fsync, a rename and an fsync of the directory, then an unlink
//! and another fsync to remove it. When the last waiting report is
//! delivered the log is emptied, and opening rewrites a log that holds
//! delivered marks with only the waiting reports, so it stays short.
//!
//! Delivery is "once" in the only sense a network allows: the outbox sends a
//! report until the server acknowledges it, and every report carries a
//! stable [`ReportId`] so the server can recognize a repeat. A repeat happens
//! when the acknowledgement is lost, or when the process dies between the
//! acknowledgement and the removal; the server's idempotent handling of the
//! id turns that repeat into no change. The outbox itself never sends a
//! report again after [`Outbox::delivered`] returned, with one exception
//! it accepts on purpose: the delivered mark is made durable by the next
//! `fdatasync` of the log (the next report kept, [`Outbox::sync`], or
//! dropping the outbox), not by one of its own, which would cost as much
//! again as keeping the report did. A power cut in between brings the
//! report back and it goes once more, which its id makes a repeat the
//! server ignores. Nothing is lost that way, and a crash of the process
//! alone loses no mark.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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

/// Name of the outbox log inside the outbox directory.
pub const OUTBOX_LOG_NAME: &str = "reports.log";

/// One line of the outbox log, as read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum Line {
    /// A report kept for delivery.
    Report(Report),
    /// The report with this id was accepted by the server.
    Delivered(ReportId),
}

/// One line of the outbox log, as written.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum LineRef<'report> {
    Report(&'report Report),
    Delivered(&'report ReportId),
}

/// A waiting report: its id and where its line is in the log.
#[derive(Debug, Clone)]
struct Entry {
    id: ReportId,
    offset: u64,
    length: usize,
}

/// The reports waiting for roleoutd.
#[derive(Debug)]
pub struct Outbox {
    directory: PathBuf,
    log_path: PathBuf,
    /// The log, open for reading and appending; opened when first needed.
    file: Option<File>,
    /// Whether the log file exists.
    log_exists: bool,
    /// The length of the log's valid content: a failed append is cut back
    /// to it, so no partial line is ever followed by another.
    length: u64,
    entries: Vec<Entry>,
    /// Whether something was written to the log since its last fdatasync.
    unsynced: bool,
    /// Damage found on opening, each reported once by [`Outbox::pending`].
    damage: Vec<StateError>,
}

/// What a read of the log found.
struct Scan {
    entries: Vec<Entry>,
    /// Where the last complete line ends.
    valid_length: u64,
    /// How many delivered marks it holds.
    marks: usize,
    /// Whether an incomplete last line followed the complete ones.
    torn: bool,
    /// Lines that are not outbox lines: their line number, the parser's
    /// message and the bytes.
    corrupt: Vec<(usize, String, Vec<u8>)>,
}

/// Reads the log. A last line that is incomplete or does not parse was
/// being appended when the process or the machine stopped (its writer had
/// not returned, so nothing relied on it) and is dropped; any other line
/// that does not parse is kept aside by the caller.
fn scan(path: &Path, bytes: &[u8]) -> Result<Scan, StateError> {
    let mut found = Scan {
        entries: Vec::new(),
        valid_length: 0,
        marks: 0,
        torn: false,
        corrupt: Vec::new(),
    };
    let mut offset = 0;
    let mut number = 0;
    let mut lines = bytes.split_inclusive(|byte| *byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        let start = offset;
        offset += line.len();
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            found.valid_length = offset as u64;
            continue;
        }
        let is_last = lines.peek().is_none();
        let complete = line.ends_with(b"\n");
        match serde_json::from_slice::<Line>(line) {
            Ok(Line::Report(report)) if report.format != REPORT_FORMAT => {
                return Err(StateError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found: report.format,
                    supported: REPORT_FORMAT,
                });
            }
            // Whole but for its line end: its push never returned.
            Ok(Line::Report(_)) if !complete => found.torn = true,
            Ok(Line::Report(report)) => {
                if !found.entries.iter().any(|entry| entry.id == report.id) {
                    found.entries.push(Entry {
                        id: report.id,
                        offset: start as u64,
                        length: line.len(),
                    });
                }
                found.valid_length = offset as u64;
            }
            Ok(Line::Delivered(id)) => {
                found.entries.retain(|entry| entry.id != id);
                found.marks += 1;
                found.valid_length = offset as u64;
                found.torn = !complete;
            }
            Err(_) if is_last => found.torn = true,
            Err(error) => found
                .corrupt
                .push((number, error.to_string(), line.to_vec())),
        }
    }
    Ok(found)
}

impl Outbox {
    /// Opens the outbox of the locked state directory.
    ///
    /// A log holding delivered marks, an incomplete last line or damaged
    /// lines is rewritten with only the waiting reports (damaged lines go
    /// to `reports.log.corrupt-UNIXTIME` and are reported by
    /// [`Outbox::pending`]). Reports kept one file each by an older Roleout
    /// (`SEQUENCE.ID.json`) are moved into the log.
    pub fn open(lock: &StateLock) -> Result<Outbox, StateError> {
        let directory = lock.state_dir().join(OUTBOX_DIR_NAME);
        atomic::ensure_directory(&directory, PRIVATE_DIR_MODE)?;
        let log_path = directory.join(OUTBOX_LOG_NAME);
        let bytes = atomic::read_optional(&log_path)?;
        let log_exists = bytes.is_some();
        let bytes = bytes.unwrap_or_default();
        let found = scan(&log_path, &bytes)?;
        let mut outbox = Outbox {
            directory,
            log_path,
            file: None,
            log_exists,
            length: found.valid_length,
            entries: Vec::new(),
            unsynced: false,
            damage: Vec::new(),
        };
        let (legacy, legacy_paths) = outbox.legacy_reports()?;
        if !found.torn && found.corrupt.is_empty() && found.marks == 0 && legacy.is_empty() {
            outbox.entries = found.entries;
            return Ok(outbox);
        }

        let mut content = Vec::new();
        for entry in found.entries {
            let start = entry.offset as usize;
            let line = &bytes[start..start + entry.length];
            outbox.entries.push(Entry {
                offset: content.len() as u64,
                ..entry
            });
            content.extend_from_slice(line);
        }
        for report in legacy {
            if outbox.entries.iter().any(|entry| entry.id == report.id) {
                continue;
            }
            let line = encode(LineRef::Report(&report))?;
            outbox.entries.push(Entry {
                id: report.id.clone(),
                offset: content.len() as u64,
                length: line.len(),
            });
            content.extend_from_slice(&line);
        }
        if !found.corrupt.is_empty() {
            let kept_as = PathBuf::from(format!(
                "{}.corrupt-{}",
                outbox.log_path.display(),
                now_unix()
            ));
            let kept: Vec<u8> = found
                .corrupt
                .iter()
                .flat_map(|(_, _, line)| line.iter().copied())
                .collect();
            atomic::write_atomic(&kept_as, &kept, PRIVATE_FILE_MODE)?;
            for (number, reason, _) in &found.corrupt {
                outbox.damage.push(StateError::CorruptReport {
                    path: outbox.log_path.clone(),
                    kept_as: kept_as.clone(),
                    reason: format!("line {number}: {reason}"),
                });
            }
        }
        atomic::write_atomic(&outbox.log_path, &content, PRIVATE_FILE_MODE)?;
        outbox.log_exists = true;
        outbox.length = content.len() as u64;
        // Only now that the log holds their reports.
        if !legacy_paths.is_empty() {
            for path in &legacy_paths {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(StateError::io("remove", path, error)),
                }
            }
            atomic::sync_directory(&outbox.directory)?;
        }
        Ok(outbox)
    }

    /// The reports an older Roleout kept one file each, oldest first, and
    /// their files; a file that is not a report is moved aside and reported.
    fn legacy_reports(&mut self) -> Result<(Vec<Report>, Vec<PathBuf>), StateError> {
        let listing = fs::read_dir(&self.directory)
            .map_err(|source| StateError::io("list", &self.directory, source))?;
        let mut files = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|source| StateError::io("list", &self.directory, source))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if atomic::is_temporary_name(name) {
                continue;
            }
            if let Some((sequence, id)) = parse_file_name(name) {
                files.push((sequence, id, entry.path()));
            }
        }
        files.sort_by_key(|(sequence, _, _)| *sequence);
        let mut reports = Vec::new();
        let mut paths = Vec::new();
        for (_, id, path) in files {
            let bytes = fs::read(&path).map_err(|source| StateError::io("read", &path, source))?;
            let problem = match serde_json::from_slice::<Report>(&bytes) {
                Ok(report) if report.format != REPORT_FORMAT => {
                    return Err(StateError::UnsupportedFormat {
                        path,
                        found: report.format,
                        supported: REPORT_FORMAT,
                    });
                }
                Ok(report) if report.id != id => {
                    format!("it holds report {} but its file name says {id}", report.id)
                }
                Ok(report) => {
                    reports.push(report);
                    paths.push(path);
                    continue;
                }
                Err(error) => error.to_string(),
            };
            let kept_as = PathBuf::from(format!("{}.corrupt-{}", path.display(), now_unix()));
            atomic::rename_durably(&path, &kept_as)?;
            self.damage.push(StateError::CorruptReport {
                path,
                kept_as,
                reason: problem,
            });
        }
        Ok((reports, paths))
    }

    /// Keeps `report` for delivery after every report already kept. Returns
    /// `false`, changing nothing, when a report with the same id is already
    /// waiting (a report made again after a crash).
    ///
    /// One line appended to the log and one `fdatasync` of it: the report
    /// is durable when this returns (and so is every delivered mark before
    /// it).
    pub fn push(&mut self, report: &Report) -> Result<bool, StateError> {
        if self.entries.iter().any(|entry| entry.id == report.id) {
            return Ok(false);
        }
        let line = encode(LineRef::Report(report))?;
        let offset = self.length;
        self.append(&line, true)?;
        self.entries.push(Entry {
            id: report.id.clone(),
            offset,
            length: line.len(),
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
    /// Damage found when the outbox was opened (a line or an older report
    /// file that is not a report, kept aside) is reported as an error, once
    /// each; the next call goes on without it.
    pub fn pending(&mut self) -> Result<Vec<Report>, StateError> {
        if !self.damage.is_empty() {
            return Err(self.damage.remove(0));
        }
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
        if self.entries.len() == 1 {
            // The last one: an empty log says it shortest.
            let file = self.file()?;
            file.set_len(0)
                .map_err(|source| StateError::io("truncate", &self.log_path, source))?;
            self.length = 0;
            self.unsynced = true;
        } else {
            let line = encode(LineRef::Delivered(id))?;
            self.append(&line, false)?;
        }
        self.entries.remove(index);
        Ok(true)
    }

    /// Makes the removals of delivered reports durable (one `fdatasync` of
    /// the log, none when nothing changed since the last one).
    pub fn sync(&mut self) -> Result<(), StateError> {
        if self.unsynced {
            let file = self.file()?;
            file.sync_data()
                .map_err(|source| StateError::io("fsync", &self.log_path, source))?;
            self.unsynced = false;
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

    /// The log, opened (and created) when first needed.
    fn file(&mut self) -> Result<&mut File, StateError> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(PRIVATE_FILE_MODE)
                .open(&self.log_path)
                .map_err(|source| StateError::io("open", &self.log_path, source))?;
            self.file = Some(file);
        }
        // Set just above when it was not.
        self.file.as_mut().ok_or_else(|| {
            StateError::io(
                "open",
                &self.log_path,
                std::io::Error::other("the outbox log is not open"),
            )
        })
    }

    /// Appends `line`; with `durable`, `fdatasync`s the log before
    /// returning (the data and the new length are what an append changes,
    /// and fdatasync covers both).
    fn append(&mut self, line: &[u8], durable: bool) -> Result<(), StateError> {
        let created = !self.log_exists;
        let length = self.length;
        let path = self.log_path.clone();
        let file = self.file()?;
        let written = file
            .write_all(line)
            .and_then(|()| if durable { file.sync_data() } else { Ok(()) });
        if let Err(source) = written {
            // Best effort: cut a partial line off so that the next line does
            // not follow it. Were that to fail too, it is the last line and
            // the next open drops it.
            let _ = file.set_len(length);
            return Err(StateError::io("append to", path, source));
        }
        self.length += line.len() as u64;
        self.log_exists = true;
        if durable {
            if created {
                // The new file's name must be durable too.
                atomic::sync_directory(&self.directory)?;
            }
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Reads entry `index` back from the log.
    fn load(&mut self, index: usize) -> Result<Report, StateError> {
        let entry = self.entries[index].clone();
        let path = self.log_path.clone();
        let mut line = vec![0; entry.length];
        self.file()?
            .read_exact_at(&mut line, entry.offset)
            .map_err(|source| StateError::io("read", &path, source))?;
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Report(report)) if report.id == entry.id => Ok(report),
            // Read back from where this process wrote or found it: a
            // mismatch means the file was changed under the lock.
            _ => Err(StateError::io(
                "read",
                path,
                std::io::Error::other(format!(
                    "report {} is no longer where it was written",
                    entry.id
                )),
            )),
        }
    }
}

impl Drop for Outbox {
    /// Best effort: a failure here costs at most a report sent once more
    /// after a power cut, which the server recognizes.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

fn encode(line: LineRef<'_>) -> Result<Vec<u8>, StateError> {
    let mut bytes = serde_json::to_vec(&line).map_err(|source| StateError::Serialize {
        what: "a report",
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Splits `SEQUENCE.ID.json` (a report kept by an older Roleout) into its
/// parts.
fn parse_file_name(name: &str) -> Option<(u64, ReportId)> {
    let stem = name.strip_suffix(".json")?;
    let (sequence, id) = stem.split_once('.')?;
    if sequence.is_empty() || !sequence.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((sequence.parse().ok()?, ReportId::new(id).ok()?))
}

/// The reports waiting in `state_dir`'s outbox, oldest first, read without a
/// lock (for `roleout status`). Lines that do not parse are skipped here;
/// the installer reports them.
pub fn waiting_ids(state_dir: &Path) -> Result<Vec<ReportId>, StateError> {
    let directory = state_dir.join(OUTBOX_DIR_NAME);
    let log_path = directory.join(OUTBOX_LOG_NAME);
    let mut ids = Vec::new();
    // Reports an older Roleout kept one file each come first: they are
    // older than anything in the log.
    let listing = match fs::read_dir(&directory) {
        Ok(listing) => Some(listing),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(StateError::io("list", directory, error)),
    };
    let mut legacy = Vec::new();
    for entry in listing.into_iter().flatten() {
        let entry = entry.map_err(|source| StateError::io("list", &directory, source))?;
        if let Some(parsed) = entry.file_name().to_str().and_then(parse_file_name) {
            legacy.push(parsed);
        }
    }
    legacy.sort_by_key(|(sequence, _)| *sequence);
    ids.extend(legacy.into_iter().map(|(_, id)| id));
    if let Some(bytes) = atomic::read_optional(&log_path)? {
        for entry in scan(&log_path, &bytes)?.entries {
            if !ids.contains(&entry.id) {
                ids.push(entry.id);
            }
        }
    }
    Ok(ids)
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
