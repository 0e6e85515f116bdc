//! Watching the log file a command writes, for the lines that tell its
//! outcome.
//!
//! Installers such as Windows Installer or a vendor's setup script often
//! exit 0 after failing, and say so only in their log. The watcher reads the
//! log while the command runs (on the interim timer) and once more after it
//! exits. Each check reads only the bytes written since the previous one,
//! so a long install with a large log costs no more than reading it once.
//!
//! Only what the command writes counts: bytes already in the file when the
//! command starts are skipped (an appended log keeps last year's `ERROR`
//! lines, which must not fail today's install), though they are counted so
//! that line numbers are the file's own. A file that is replaced (new
//! inode), truncated (shorter than what was read) or rewritten (its first
//! bytes changed) is read again from its start.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use roleout_model::pattern::Pattern;
use serde::{Deserialize, Serialize};

use crate::run::redact::Secrets;

/// Longest log line looked at, in bytes; the rest of a longer line is
/// neither matched nor kept, so a log without newlines cannot grow memory.
pub const MAX_LINE_BYTES: usize = 4096;

/// How many matching lines of each kind a report keeps (all are counted).
pub const MAX_KEPT_LINES: usize = 20;

/// How many bytes at the start of the file identify its content: if they
/// change, the file was rewritten in place and is read again from the start.
const FINGERPRINT_BYTES: u64 = 1024;

/// The bytes read from the file at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// The log file of a command and the lines that tell its outcome: the
/// model's `LogRules` with its path rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogWatch {
    /// The log file; a relative path is taken from the command's working
    /// directory.
    pub path: PathBuf,
    /// A line matching one of these says the command succeeded.
    pub success: Vec<Pattern>,
    /// A line matching one of these says the command failed, whatever its
    /// exit code.
    pub failure: Vec<Pattern>,
}

impl LogWatch {
    /// Whether there is any pattern to look for; a log without patterns
    /// tells nothing and is not read.
    pub fn has_patterns(&self) -> bool {
        !self.success.is_empty() || !self.failure.is_empty()
    }
}

/// One log line that matched a pattern, secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Its line number in the file, from 1.
    pub number: u64,
    /// Its text (at most [`MAX_LINE_BYTES`] of it).
    pub text: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.number, self.text)
    }
}

/// What the log said about one run of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFindings {
    /// The log file, as shown (secrets masked).
    pub path: String,
    /// Whether the file existed at some check.
    pub found: bool,
    /// Why the last check could not read the file, if it could not.
    pub read_error: Option<String>,
    /// How many lines the command wrote that were looked at.
    pub lines_read: u64,
    /// Whether a success line is needed (success patterns were given).
    pub success_required: bool,
    /// The first lines that matched a failure pattern.
    pub failure_lines: Vec<LogLine>,
    /// How many lines matched a failure pattern.
    pub failure_count: u64,
    /// The first lines that matched a success pattern (and no failure
    /// pattern: a line matching both counts as a failure).
    pub success_lines: Vec<LogLine>,
    /// How many lines matched a success pattern.
    pub success_count: u64,
    /// Whether these are the command's own output lines rather than a
    /// log file's (`path` is then a label).
    #[serde(default)]
    pub stream: bool,
}

impl LogFindings {
    /// What the lines came from, in words: `the log PATH` or `its output`.
    pub fn source(&self) -> String {
        if self.stream {
            self.path.clone()
        } else {
            format!("the log {}", self.path)
        }
    }
}

/// The lines a command printed on one of its streams, matched as a log's
/// are (`<outcome>` patterns without a log file): fed by the thread that
/// reads the stream, so every line is looked at, not only those kept.
pub(crate) type StreamJudge = Arc<Mutex<LogWatcher>>;

/// A judge for one output stream, shown as `label`.
pub(crate) fn stream_judge(
    label: &str,
    success: Vec<Pattern>,
    failure: Vec<Pattern>,
    secrets: Secrets,
) -> StreamJudge {
    let watch = LogWatch {
        path: PathBuf::from(label),
        success,
        failure,
    };
    let mut watcher = LogWatcher::unread(watch, secrets);
    watcher.findings.found = true;
    watcher.findings.stream = true;
    Arc::new(Mutex::new(watcher))
}

/// Feeds bytes a stream carried to its judge.
pub(crate) fn feed_stream(judge: &StreamJudge, bytes: &[u8]) {
    judge
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .feed(bytes);
}

/// What the command's two streams said, as one finding: the lines of
/// standard error follow those of standard output, marked as such.
pub(crate) fn stream_findings(stdout: &StreamJudge, stderr: &StreamJudge) -> LogFindings {
    let finish = |judge: &StreamJudge| {
        let mut watcher = judge.lock().unwrap_or_else(PoisonError::into_inner);
        watcher.finish_line();
        watcher.findings.clone()
    };
    let mut findings = finish(stdout);
    let errors = finish(stderr);
    let marked = |lines: Vec<LogLine>| {
        lines.into_iter().map(|line| LogLine {
            number: line.number,
            text: format!("(stderr) {}", line.text),
        })
    };
    findings.path = "its output".to_owned();
    findings.lines_read += errors.lines_read;
    findings.failure_count += errors.failure_count;
    findings.success_count += errors.success_count;
    findings.failure_lines.extend(marked(errors.failure_lines));
    findings.failure_lines.truncate(MAX_KEPT_LINES);
    findings.success_lines.extend(marked(errors.success_lines));
    findings.success_lines.truncate(MAX_KEPT_LINES);
    findings
}

/// Reads a log file as it grows and matches its new lines.
#[derive(Debug)]
pub(crate) struct LogWatcher {
    watch: LogWatch,
    secrets: Secrets,
    /// Device and inode of the file last read; a different pair is a
    /// different file.
    identity: Option<(u64, u64)>,
    /// Bytes of the file read so far.
    offset: u64,
    /// The file's first bytes (up to [`FINGERPRINT_BYTES`]) as read.
    fingerprint: Vec<u8>,
    /// Complete lines before `offset`.
    line_number: u64,
    /// The line being read (no newline yet), bounded.
    partial: Vec<u8>,
    /// Whether `partial` lost bytes to the bound.
    partial_cut: bool,
    findings: LogFindings,
}

/// Where a watcher began: what the log held when its command started. A
/// watcher made from it later (by an agent restarted while the command
/// ran, see `supervise`) reads exactly what the command wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogStart {
    identity: Option<(u64, u64)>,
    offset: u64,
    fingerprint: Vec<u8>,
    line_number: u64,
}

impl LogWatcher {
    /// Where this watcher stands now, to be resumed from by
    /// [`LogWatcher::resume`].
    pub(crate) fn start_point(&self) -> LogStart {
        LogStart {
            identity: self.identity,
            offset: self.offset,
            fingerprint: self.fingerprint.clone(),
            line_number: self.line_number,
        }
    }

    /// A watcher that goes on from `start`, as the one that recorded it
    /// would have.
    pub(crate) fn resume(watch: LogWatch, secrets: Secrets, start: LogStart) -> Self {
        let mut watcher = Self::unread(watch, secrets);
        watcher.identity = start.identity;
        watcher.offset = start.offset;
        watcher.fingerprint = start.fingerprint;
        watcher.line_number = start.line_number;
        watcher
    }

    /// Starts watching: what the file holds now is skipped.
    pub(crate) fn start(watch: LogWatch, secrets: Secrets) -> Self {
        let mut watcher = Self::unread(watch, secrets);
        if let Err(error) = watcher.read(true) {
            watcher.note_error(&error);
        }
        watcher
    }

    /// A watcher that has read nothing yet.
    fn unread(watch: LogWatch, secrets: Secrets) -> Self {
        let findings = LogFindings {
            path: secrets.redact(&watch.path.display().to_string()),
            found: false,
            read_error: None,
            lines_read: 0,
            success_required: !watch.success.is_empty(),
            failure_lines: Vec::new(),
            failure_count: 0,
            success_lines: Vec::new(),
            success_count: 0,
            stream: false,
        };
        Self {
            watch,
            secrets,
            identity: None,
            offset: 0,
            fingerprint: Vec::new(),
            line_number: 0,
            partial: Vec::new(),
            partial_cut: false,
            findings,
        }
    }

    /// Reads what was written since the last check.
    pub(crate) fn check(&mut self) {
        match self.read(false) {
            Ok(()) => self.findings.read_error = None,
            Err(error) => self.note_error(&error),
        }
    }

    /// Whether a failure line has been seen.
    pub(crate) fn saw_failure(&self) -> bool {
        self.findings.failure_count > 0
    }

    /// The last check, after the command exited: reads what is new and
    /// takes an unfinished last line as a line.
    pub(crate) fn finish(mut self) -> LogFindings {
        self.check();
        self.finish_line();
        self.findings
    }

    fn note_error(&mut self, error: &io::Error) {
        self.findings.read_error = Some(self.secrets.redact(&error.to_string()));
    }

    /// Reads the bytes after `offset`, up to the length the file has now
    /// (a log that grows faster than it is read cannot hold a check
    /// forever). With `skip`, the bytes are only counted.
    fn read(&mut self, skip: bool) -> io::Result<()> {
        let mut file = match File::open(&self.watch.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if self.identity.take().is_some() {
                    // Removed (rotated away): a file made under this name
                    // later is new and read from its start.
                    self.restart();
                }
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let metadata = file.metadata()?;
        let identity = (metadata.dev(), metadata.ino());
        if self.identity != Some(identity)
            || metadata.len() < self.offset
            || !self.fingerprint_matches(&mut file)?
        {
            self.restart();
            self.identity = Some(identity);
        }
        self.findings.found = true;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut file = file.take(metadata.len() - self.offset);
        let mut chunk = vec![0; CHUNK_BYTES];
        loop {
            let count = match file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            let bytes = &chunk[..count];
            if self.offset < FINGERPRINT_BYTES {
                // `offset` is below 1024 here, so the conversion is exact.
                let room = (FINGERPRINT_BYTES - self.offset) as usize;
                self.fingerprint
                    .extend_from_slice(&bytes[..room.min(count)]);
            }
            self.offset += count as u64;
            if skip {
                self.line_number += bytes.iter().filter(|&&byte| byte == b'\n').count() as u64;
            } else {
                self.feed(bytes);
            }
        }
    }

    fn fingerprint_matches(&self, file: &mut File) -> io::Result<bool> {
        if self.fingerprint.is_empty() {
            return Ok(true);
        }
        let mut start = vec![0; self.fingerprint.len()];
        file.seek(SeekFrom::Start(0))?;
        match file.read_exact(&mut start) {
            Ok(()) => Ok(start == self.fingerprint),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Forgets the file read so far; the next read starts at byte 0. A
    /// last line of the old file is matched first.
    fn restart(&mut self) {
        self.finish_line();
        self.offset = 0;
        self.fingerprint.clear();
        self.line_number = 0;
    }

    fn feed(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&byte| byte == b'\n') {
            let (content, complete) = match piece.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (piece, false),
            };
            let room = MAX_LINE_BYTES - self.partial.len();
            if content.len() > room {
                self.partial.extend_from_slice(&content[..room]);
                self.partial_cut = true;
            } else {
                self.partial.extend_from_slice(content);
            }
            if complete {
                self.line_number += 1;
                self.judge_line();
            }
        }
    }

    fn finish_line(&mut self) {
        if !self.partial.is_empty() {
            self.line_number += 1;
            self.judge_line();
        }
    }

    /// Matches the line in `partial` and keeps it if it matched.
    fn judge_line(&mut self) {
        let bytes = mem::take(&mut self.partial);
        let cut = mem::replace(&mut self.partial_cut, false);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
        let text = String::from_utf8_lossy(bytes);
        self.findings.lines_read += 1;
        let matches = |patterns: &[Pattern]| patterns.iter().any(|pattern| pattern.is_match(&text));
        let (kept, count) = if matches(&self.watch.failure) {
            (
                &mut self.findings.failure_lines,
                &mut self.findings.failure_count,
            )
        } else if matches(&self.watch.success) {
            (
                &mut self.findings.success_lines,
                &mut self.findings.success_count,
            )
        } else {
            return;
        };
        *count += 1;
        if kept.len() < MAX_KEPT_LINES {
            let redacted = self.secrets.redact_piece(bytes, false, cut);
            kept.push(LogLine {
                number: self.line_number,
                text: String::from_utf8_lossy(&redacted).into_owned(),
            });
        }
    }
}

#[cfg(test)]
// Test inputs are literals; a panic on one is the test failing.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::path::Path;

    use super::*;

    fn watch(path: &Path, success: &[&str], failure: &[&str]) -> LogWatch {
        let compile = |sources: &[&str]| {
            sources
                .iter()
                .map(|source| Pattern::new(*source).unwrap())
                .collect()
        };
        LogWatch {
            path: path.to_owned(),
            success: compile(success),
            failure: compile(failure),
        }
    }

    fn append(path: &Path, text: &str) {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn skips_old_lines_but_numbers_new_ones_as_the_file_does() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("install.log");
        append(&path, "ERROR from last year\nold line\n");
        let mut watcher =
            LogWatcher::start(watch(&path, &["^done"], &["^ERROR"]), Secrets::default());
        append(&path, "working\nERROR disk full\n");
        watcher.check();
        assert!(watcher.saw_failure());
        append(&path, "done");
        let findings = watcher.finish();
        assert_eq!(
            findings.failure_lines,
            vec![LogLine {
                number: 4,
                text: "ERROR disk full".to_owned()
            }]
        );
        assert_eq!(findings.failure_count, 1);
        // The unfinished last line counts once the command has exited.
        assert_eq!(findings.success_lines[0].number, 5);
        assert_eq!(findings.lines_read, 3);
    }

    #[test]
    fn reads_a_line_written_in_two_parts_once() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("install.log");
        let mut watcher =
            LogWatcher::start(watch(&path, &[], &["^ERROR: boom$"]), Secrets::default());
        watcher.check();
        assert!(!watcher.findings.found);
        append(&path, "ERROR: bo");
        watcher.check();
        assert!(!watcher.saw_failure());
        append(&path, "om\r\n");
        watcher.check();
        assert!(watcher.saw_failure());
        let findings = watcher.finish();
        assert_eq!(findings.failure_count, 1);
        assert_eq!(findings.failure_lines[0].text, "ERROR: boom");
    }

    #[test]
    fn truncation_and_replacement_restart_at_the_beginning() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("install.log");
        append(&path, "first run\nsecond line\n");
        let mut watcher =
            LogWatcher::start(watch(&path, &["^ok"], &["^ERROR"]), Secrets::default());
        // Truncated and written again, shorter than before.
        fs::write(&path, "ERROR a\n").unwrap();
        watcher.check();
        assert_eq!(watcher.findings.failure_lines[0].number, 1);
        // Replaced by a new file (rotation).
        let rotated = directory.path().join("install.log.1");
        fs::rename(&path, &rotated).unwrap();
        fs::write(&path, "ok\n").unwrap();
        let findings = watcher.finish();
        assert_eq!(
            findings.success_lines,
            vec![LogLine {
                number: 1,
                text: "ok".to_owned()
            }]
        );
    }

    #[test]
    fn a_file_rewritten_to_the_same_length_is_read_again() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("install.log");
        append(&path, "aaaaa\n");
        let mut watcher = LogWatcher::start(watch(&path, &[], &["^ERROR"]), Secrets::default());
        fs::write(&path, "ERROR\n").unwrap();
        watcher.check();
        assert!(watcher.saw_failure());
    }

    #[test]
    fn long_lines_are_bounded_and_secrets_masked() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("install.log");
        let watcher =
            LogWatcher::start(watch(&path, &[], &["^ERROR"]), Secrets::new(["topsecret"]));
        let mut line = format!("ERROR topsecret {}", "x".repeat(MAX_LINE_BYTES - 20));
        line.push_str("topsecret and much more after the bound\n");
        append(&path, &line);
        let findings = watcher.finish();
        let kept = &findings.failure_lines[0].text;
        assert!(kept.starts_with("ERROR ******** xxx"), "{kept}");
        assert!(!kept.contains("top"), "{kept}");
        assert!(kept.len() <= MAX_LINE_BYTES + crate::run::redact::MASK.len());
    }

    #[test]
    fn keeps_a_bounded_number_of_lines_but_counts_all() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("install.log");
        let watcher = LogWatcher::start(watch(&path, &["^step"], &[]), Secrets::default());
        append(&path, &"step\n".repeat(100));
        let findings = watcher.finish();
        assert_eq!(findings.success_count, 100);
        assert_eq!(findings.success_lines.len(), MAX_KEPT_LINES);
        assert!(findings.found);
    }
}
