//! Jobs: work an admin starts on a set of machines, with each machine's
//! progress through the job's phases.
//!
//! The first kind is an image deployment: an image made on target
//! machines, each through the installation engine it is reached by. A job
//! names its targets and what each gets (its host name and addresses); the
//! leases on the targets carry the job's id, so a target serves one job at
//! a time. Each target moves through [`Phase`]s, from `locked` to
//! `complete` (or `failed`, with the reason).
//!
//! Which targets an image may go to is decided here too ([`verdict`]),
//! for the admin's listing and for the job's own check, from the image,
//! the target's hardware, whether it may authenticate, and its lease.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{MachineId, Sha256};
use crate::image::{DriverAliases, ImageDescription, ImageName, TargetConfiguration, exclusions};
use crate::inventory::Inventory;
use crate::lease::Lease;

/// A job's name: `KIND-YYYYMMDD-HHMMSS-NNNN`, unique enough to be an entry
/// name and a lease's job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// The id, checked: 1 to 64 lowercase letters, digits and `-`.
    pub fn new(id: impl Into<String>) -> Result<JobId, String> {
        let id = id.into();
        let plain = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|character| {
                character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
            })
            && !id.starts_with('-');
        if plain {
            Ok(JobId(id))
        } else {
            Err(format!(
                "invalid job id {id:?}: 1 to 64 lowercase letters, digits and '-'"
            ))
        }
    }

    /// An id for a job of `kind` started at `unix_seconds`, told apart
    /// from others started in the same second by `salt` (random).
    pub fn generate(kind: &str, unix_seconds: u64, salt: u16) -> JobId {
        // `2026-12-05T08:10:00Z` -> `20261205-081000`.
        let time = crate::protocol::Timestamp::from_unix_seconds(unix_seconds)
            .map(|time| time.to_string())
            .unwrap_or_default();
        let digits: String = time
            .chars()
            .take(19)
            .filter_map(|character| match character {
                'T' => Some('-'),
                '-' | ':' => None,
                other => Some(other),
            })
            .collect();
        JobId(format!("{kind}-{digits}-{salt:04x}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = String;
    fn try_from(id: String) -> Result<Self, String> {
        JobId::new(id)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one target of a job stands, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Its lease is taken for the job.
    Locked,
    /// Its engine gathers the image's files (what it lacks only).
    Transfer,
    /// Its disk is partitioned and formatted.
    Partition,
    /// The files are unpacked onto it.
    Copy,
    /// Its own host name, addresses, machine id, keys are written.
    Configure,
    /// Its first boot runs the job's scripts once.
    FirstBoot,
    /// It reported completion; its lease is released.
    Complete,
    /// It stopped; the message says why.
    Failed,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 8] = [
        Phase::Locked,
        Phase::Transfer,
        Phase::Partition,
        Phase::Copy,
        Phase::Configure,
        Phase::FirstBoot,
        Phase::Complete,
        Phase::Failed,
    ];

    /// The phase's name (`first-boot`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Locked => "locked",
            Phase::Transfer => "transfer",
            Phase::Partition => "partition",
            Phase::Copy => "copy",
            Phase::Configure => "configure",
            Phase::FirstBoot => "first-boot",
            Phase::Complete => "complete",
            Phase::Failed => "failed",
        }
    }

    /// Whether the target is done with the job, one way or the other.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Complete | Phase::Failed)
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(text: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|phase| phase.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a job phase"))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One target of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobTarget {
    /// The machine.
    pub machine: MachineId,
    /// The installation engine it is reached through, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// What makes it itself.
    pub configuration: TargetConfiguration,
}

/// An image deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Deployment {
    /// Its id.
    pub id: JobId,
    /// The image.
    pub image: ImageName,
    /// The image's manifest when the job began (the image may be captured
    /// again meanwhile; the job keeps to this one).
    pub manifest: Sha256,
    /// Who started it.
    pub started_by: String,
    /// When (Unix seconds).
    pub started_at: u64,
    /// Until when its leases hold unless renewed (Unix seconds).
    pub lease_until: u64,
    /// The targets.
    pub targets: Vec<JobTarget>,
    /// Scripts an admin added, run once at each target's first start
    /// after the image's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<JobScript>,
}

/// The most bytes a script given inline may have.
pub const MAX_INLINE_SCRIPT: usize = 64 * 1024;

/// A first-start script an admin added to a deployment, pinned by its
/// SHA-256: a target runs it only with exactly these bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobScript {
    /// Its name (a file name: letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// The SHA-256 of its bytes.
    pub sha256: Sha256,
    /// Where its bytes are.
    pub source: ScriptSource,
}

/// Where a script's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from")]
pub enum ScriptSource {
    /// Written by the admin, carried in the job (at most
    /// [`MAX_INLINE_SCRIPT`] bytes of UTF-8).
    Inline {
        /// The script.
        text: String,
    },
    /// Fetched by each target from this URL (and refused unless its bytes
    /// have the pinned digest).
    Url {
        /// The URL (`http://` or `https://`).
        url: String,
    },
}

impl JobScript {
    /// Checks the name (a plain file name) and the source (an inline text
    /// that has the digest, a URL that is http or https).
    pub fn check(&self) -> Result<(), String> {
        let plain = !self.name.is_empty()
            && self.name.len() <= 64
            && !self.name.starts_with('.')
            && self
                .name
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "._-".contains(character));
        if !plain {
            return Err(format!(
                "script name {:?}: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
                self.name
            ));
        }
        match &self.source {
            ScriptSource::Inline { text } => {
                if text.len() > MAX_INLINE_SCRIPT {
                    return Err(format!(
                        "script {}: {} bytes; give a script larger than {MAX_INLINE_SCRIPT} bytes by URL",
                        self.name,
                        text.len()
                    ));
                }
                let digest = Sha256::of(text.as_bytes());
                if digest != self.sha256 {
                    return Err(format!(
                        "script {}: its SHA-256 is {digest}, not the pinned {}",
                        self.name, self.sha256
                    ));
                }
            }
            ScriptSource::Url { url } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "script {}: {url:?} is not an http or https URL",
                        self.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether a machine may take an image now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Compatible and free.
    Available,
    /// It cannot take the image, for each of these reasons.
    Excluded(Vec<String>),
    /// Compatible, but another job holds it.
    Busy {
        /// The job.
        job: String,
        /// Who holds it.
        holder: String,
        /// Until when, unless renewed (Unix seconds).
        until: u64,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Available => f.write_str("available"),
            Verdict::Excluded(reasons) => write!(f, "excluded: {}", reasons.join("; ")),
            Verdict::Busy { job, holder, until } => {
                write!(
                    f,
                    "busy: job {job}, held by {holder} until {until} (Unix seconds)"
                )
            }
        }
    }
}

/// What is known of a machine when an image's targets are chosen.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its hardware, as its agent sent it (`None`: never sent).
    pub hardware: Option<&'a Inventory>,
    /// Whether it may authenticate (enabled and approved).
    pub usable: bool,
    /// Its lease, if it has one.
    pub lease: Option<&'a Lease>,
}

/// Whether `candidate` may take `image` at `now`: excluded for every
/// reason it cannot ([`exclusions`], no inventory, cannot authenticate),
/// else busy while a live lease holds it, else available.
pub fn verdict(
    image: &ImageDescription,
    aliases: &DriverAliases<'_>,
    candidate: Candidate<'_>,
    now: u64,
) -> Verdict {
    let mut reasons = Vec::new();
    if !candidate.usable {
        reasons.push("it is disabled or its key is not approved".to_owned());
    }
    match candidate.hardware {
        None => reasons.push(
            "its hardware is unknown (its agent sends it at enrolment; enrol it again)".to_owned(),
        ),
        Some(hardware) => reasons.extend(exclusions(image, aliases, hardware)),
    }
    if !reasons.is_empty() {
        return Verdict::Excluded(reasons);
    }
    match candidate.lease {
        Some(lease) if !lease.expired(now) => Verdict::Busy {
            job: lease.job.clone(),
            holder: lease.holder.clone(),
            until: lease.expires_at,
        },
        _ => Verdict::Available,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_name_their_kind_and_time() {
        // 2026-12-05T08:10:00Z
        let id = JobId::generate("image", 1_796_458_200, 0xbeef);
        assert_eq!(id.as_str(), "image-20261205-081000-beef");
        assert!(JobId::new(id.as_str()).is_ok());
        for bad in ["", "-x", "A", "a;b", &"x".repeat(65)] {
            assert!(JobId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phases_read_back_and_only_two_are_final() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        }
        let finals: Vec<Phase> = Phase::ALL
            .into_iter()
            .filter(|phase| phase.is_final())
            .collect();
        assert_eq!(finals, [Phase::Complete, Phase::Failed]);
    }
}
