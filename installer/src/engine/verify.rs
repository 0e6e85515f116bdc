//! What the install loop checks in a signed envelope beyond the envelope
//! itself, and where it keeps the last envelope it accepted per suite.
//!
//! The envelope checks (pinned key, signature, this machine, expiry,
//! rollback and a serial reused for other contents) live in one place,
//! [`roleout_model::protocol::signing::verify_envelope`]; this module calls it and then
//! checks what only the install loop knows: the payload is of the kind
//! asked for and reads as that kind (the schema), the suite inside is the
//! one asked for, the Machine object is this machine's, and the build
//! digest the envelope vouches for is the delivery's. Any refusal stops the
//! suite before anything in it runs.
//!
//! The last accepted envelope of a suite ([`AcceptedSerial`]: its serial
//! and build digest) is kept in `STATE_DIR/accepted/SUITE.json`, written
//! before the journal records the serial: the journal keeps only the
//! serial, and the envelope check needs the digest too, to tell the same
//! build fetched again from other contents under the same serial.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use roleout_model::ids::{MachineId, SuiteId};
use roleout_model::protocol::{SignedEnvelope, SuiteDelivery, SuiteList};

use crate::state::StateError;
use crate::state::atomic::{self, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
use crate::state::journal::SuiteRecord;
use roleout_model::protocol::signing::{
    AcceptedSerial, EnvelopeError, PinnedKey, verify_and_accept, verify_envelope,
};

/// Name of the directory of accepted serials inside the state directory.
pub const ACCEPTED_DIR_NAME: &str = "accepted";

/// Why an envelope was refused. No variant carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The envelope itself was refused (key, signature, machine, expiry,
    /// rollback).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The payload is not of the kind asked for, or does not read as it.
    #[error("the envelope's payload is not a valid {expected}: {reason}")]
    Payload {
        /// What was asked for.
        expected: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The envelope carries another suite than the one asked for.
    #[error("the envelope carries suite {found}, not suite {expected}")]
    OtherSuite {
        /// The suite asked for.
        expected: SuiteId,
        /// The suite it carries.
        found: SuiteId,
    },
    /// The Machine object inside is another machine's.
    #[error("the Machine object in the delivery is for {found}, not for this machine ({expected})")]
    OtherMachineObject {
        /// This machine.
        expected: MachineId,
        /// The machine it names.
        found: MachineId,
    },
    /// The signed build digest is not the delivery's.
    #[error("the envelope's build digest differs from the delivery's")]
    BuildDigest,
}

/// A suite delivery that passed every check, and what to record as accepted.
#[derive(Debug)]
pub struct AcceptedSuite {
    /// The delivery.
    pub delivery: SuiteDelivery,
    /// The serial and build to remember for the next envelope of the suite.
    pub accepted: AcceptedSerial,
}

/// Checks a suite envelope for `machine` and suite `suite` against the
/// pinned key at `now`; `last` is the last envelope accepted for the suite.
pub fn verify_suite(
    envelope: &SignedEnvelope,
    pinned: &PinnedKey,
    machine: &MachineId,
    suite: &SuiteId,
    last: Option<&AcceptedSerial>,
    now: SystemTime,
) -> Result<AcceptedSuite, VerifyError> {
    let (signed, accepted) = verify_and_accept(envelope, pinned, machine, last, now)?;
    let delivery: SuiteDelivery = signed.payload().map_err(|error| VerifyError::Payload {
        expected: "suite delivery",
        reason: error.to_string(),
    })?;
    if delivery.suite.id != *suite {
        return Err(VerifyError::OtherSuite {
            expected: suite.clone(),
            found: delivery.suite.id.clone(),
        });
    }
    if delivery.machine.name != *machine {
        return Err(VerifyError::OtherMachineObject {
            expected: machine.clone(),
            found: delivery.machine.name.clone(),
        });
    }
    if signed.build_digest.as_ref() != Some(&delivery.build_digest) {
        return Err(VerifyError::BuildDigest);
    }
    Ok(AcceptedSuite { accepted, delivery })
}

/// Checks the envelope of the machine's suite list. The list spans suites,
/// so no serial of one suite applies to it.
pub fn verify_suite_list(
    envelope: &SignedEnvelope,
    pinned: &PinnedKey,
    machine: &MachineId,
    now: SystemTime,
) -> Result<SuiteList, VerifyError> {
    let signed = verify_envelope(envelope, pinned, machine, None, now)?;
    signed.payload().map_err(|error| VerifyError::Payload {
        expected: "suite list",
        reason: error.to_string(),
    })
}

fn accepted_path(state_dir: &Path, suite: &SuiteId) -> PathBuf {
    state_dir
        .join(ACCEPTED_DIR_NAME)
        .join(format!("{suite}.json"))
}

/// The last envelope accepted for `suite`: from its file, else (a state
/// directory from before the file existed) the journal's serial with the
/// build of the journal's latest run, the best the journal knows.
pub fn last_accepted(
    state_dir: &Path,
    suite: &SuiteId,
    journal: Option<&SuiteRecord>,
) -> Result<Option<AcceptedSerial>, StateError> {
    let path = accepted_path(state_dir, suite);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StateError::io("read", &path, std::io::Error::other(error))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(journal.and_then(|record| {
                record.last_accepted_serial.map(|serial| AcceptedSerial {
                    serial,
                    build_digest: record.run.as_ref().map(|run| run.build.clone()),
                    payload_digest: None,
                })
            }))
        }
        Err(error) => Err(StateError::io("read", &path, error)),
    }
}

/// Records `accepted` as the last envelope accepted for `suite` (durable
/// before it returns).
pub fn remember(
    state_dir: &Path,
    suite: &SuiteId,
    accepted: &AcceptedSerial,
) -> Result<(), StateError> {
    let path = accepted_path(state_dir, suite);
    atomic::ensure_directory(&state_dir.join(ACCEPTED_DIR_NAME), PRIVATE_DIR_MODE)?;
    let bytes = serde_json::to_vec(accepted).map_err(|source| StateError::Serialize {
        what: "an accepted serial",
        source,
    })?;
    atomic::write_atomic(&path, &bytes, PRIVATE_FILE_MODE)
}
