//! Where the install loop gets signed suites and payloads, and where its
//! reports go.
//!
//! The loop only sees the [`Source`] trait. Its production implementation
//! is the HTTP client ([`crate::client::HttpSource`]), which talks to
//! roleoutd; [`DirectorySource`] reads the same signed envelopes from a
//! directory (an offline mirror on a USB stick, or a test fixture). Both
//! go through the same checks: an envelope is believed only after its
//! signature verifies with the pinned builder key, and a payload only
//! after its SHA-256 matches, so where the bytes came from does not
//! matter.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use roleout_model::ids::{Sha256, SuiteId};
use roleout_model::protocol::{
    AckStatus, Close, CloseStatus, ErrorCode, SignedEnvelope, StatusReport, SuiteComplete,
};

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The server (or the directory) could not be reached at all; what is
    /// to be reported stays in the outbox.
    #[error("{what}: the server cannot be reached: {reason}")]
    Unreachable {
        /// What was being asked for.
        what: String,
        /// Why, as the transport says it.
        reason: String,
    },
    /// The server refused: authentication, approval, a forbidden suite.
    #[error("{what}: the server refused ({code}): {message}")]
    Refused {
        /// What was being asked for.
        what: String,
        /// The API error code.
        code: ErrorCode,
        /// The server's sentence.
        message: String,
    },
    /// The server answered with something that is not the expected body.
    #[error("{what}: the answer is not valid: {reason}")]
    Invalid {
        /// What was being asked for.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Signed suites, payloads and report delivery, as the install loop needs
/// them.
pub trait Source {
    /// The signed list of suites this machine may install.
    fn suite_list(&mut self) -> Result<SignedEnvelope, SourceError>;
    /// The signed delivery of one suite.
    fn suite(&mut self, suite: &SuiteId) -> Result<SignedEnvelope, SourceError>;
    /// The bytes of one payload (checked by the caller against `digest`).
    fn payload(&mut self, digest: &Sha256) -> Result<Box<dyn Read + '_>, SourceError>;
    /// Delivers one status report.
    fn report(&mut self, report: &StatusReport) -> Result<AckStatus, SourceError>;
    /// Delivers the end of a run.
    fn complete(&mut self, complete: &SuiteComplete) -> Result<Close, SourceError>;
}

/// A source over a directory laid out like the API:
///
/// ```text
/// DIR/suites.json          signed envelope of the suite list
/// DIR/suites/SUITE.json    signed envelope of each suite delivery
/// DIR/payloads/SHA256      payload bytes, named by their digest
/// DIR/reports/ID.json      reports delivered (written by the source)
/// DIR/delivered.log        one line per delivery attempt that reached it: the report id
/// ```
///
/// A report whose id is already in `reports/` is acknowledged as a
/// duplicate and not written again, like roleoutd does.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    directory: PathBuf,
}

impl DirectorySource {
    /// A source over `directory`.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self {
            directory: directory.into(),
        }
    }

    fn read_envelope(&self, path: &Path, what: &str) -> Result<SignedEnvelope, SourceError> {
        let bytes = fs::read(path).map_err(|error| unreachable(what, path, &error))?;
        serde_json::from_slice(&bytes).map_err(|error| SourceError::Invalid {
            what: what.to_owned(),
            reason: format!("{}: {error}", path.display()),
        })
    }

    fn deliver(&self, id: &str, body: &impl serde::Serialize) -> Result<bool, SourceError> {
        let what = format!("report {id}");
        let reports = self.directory.join("reports");
        fs::create_dir_all(&reports).map_err(|error| unreachable(&what, &reports, &error))?;
        let log_path = self.directory.join("delivered.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|error| unreachable(&what, &log_path, &error))?;
        writeln!(log, "{id}").map_err(|error| unreachable(&what, &log_path, &error))?;
        let path = reports.join(format!("{id}.json"));
        let bytes = serde_json::to_vec_pretty(body).map_err(|error| SourceError::Invalid {
            what: what.clone(),
            reason: error.to_string(),
        })?;
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            // Synced before the acknowledgement, as a server stores a report
            // before it answers: the outbox forgets a report once it is
            // acknowledged, so the copy here must outlive a power cut.
            Ok(mut file) => {
                file.write_all(&bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|error| unreachable(&what, &path, &error))?;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(unreachable(&what, &path, &error)),
        }
    }
}

fn unreachable(what: &str, path: &Path, error: &io::Error) -> SourceError {
    SourceError::Unreachable {
        what: what.to_owned(),
        reason: format!("{}: {error}", path.display()),
    }
}

impl Source for DirectorySource {
    fn suite_list(&mut self) -> Result<SignedEnvelope, SourceError> {
        self.read_envelope(&self.directory.join("suites.json"), "the suite list")
    }

    fn suite(&mut self, suite: &SuiteId) -> Result<SignedEnvelope, SourceError> {
        let path = self.directory.join("suites").join(format!("{suite}.json"));
        self.read_envelope(&path, &format!("suite {suite}"))
    }

    fn payload(&mut self, digest: &Sha256) -> Result<Box<dyn Read + '_>, SourceError> {
        let path = self.directory.join("payloads").join(digest.as_str());
        let file = File::open(&path)
            .map_err(|error| unreachable(&format!("payload {digest}"), &path, &error))?;
        Ok(Box::new(file))
    }

    fn report(&mut self, report: &StatusReport) -> Result<AckStatus, SourceError> {
        Ok(if self.deliver(&report.id, report)? {
            AckStatus::Recorded
        } else {
            AckStatus::Duplicate
        })
    }

    fn complete(&mut self, complete: &SuiteComplete) -> Result<Close, SourceError> {
        self.deliver(&complete.id, complete)?;
        Ok(Close {
            status: CloseStatus::Close,
        })
    }
}
