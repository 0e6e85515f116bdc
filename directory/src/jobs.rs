//! Jobs in the directory: `cn=ID,ou=jobs,BASE` (`roleoutJob`) holds what
//! the job is (`roleoutJobDescription`, JSON), and one child per target,
//! `cn=MACHINE,cn=ID,...` (`roleoutJobTarget`), where it stands
//! (`roleoutJobPhase`, `roleoutJobMessage`, `roleoutLastSeen`). Each
//! target's progress is its own entry, so engines working on different
//! targets never write the same entry; a job and all its targets read in
//! one subtree search.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use ldap3::{Mod, Scope, SearchEntry};
use roleout_model::ids::MachineId;
use roleout_model::job::{Deployment, JobId, Phase};
use tracing::instrument;

use crate::connection::{Directory, EntryValues, single};
use crate::error::{DirectoryError, Result};
use crate::escape;
use crate::machines::generalized_time;

const JOB_CLASS: &str = "roleoutJob";
const TARGET_CLASS: &str = "roleoutJobTarget";
const DESCRIPTION: &str = "roleoutJobDescription";
const PHASE: &str = "roleoutJobPhase";
const MESSAGE: &str = "roleoutJobMessage";
const UPDATED: &str = "roleoutLastSeen";

/// Where one target of a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// The target.
    pub machine: MachineId,
    /// Its phase.
    pub phase: Phase,
    /// What its last step said.
    pub message: Option<String>,
    /// When it last changed (GeneralizedTime).
    pub updated: Option<String>,
}

/// A deployment with where each of its targets stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentEntry {
    /// The job entry's DN.
    pub dn: String,
    /// The job.
    pub deployment: Deployment,
    /// Each target, in the job's order.
    pub targets: Vec<TargetStatus>,
}

fn target_status(entry: &SearchEntry) -> Result<TargetStatus> {
    let cn = entry.text("cn").ok_or_else(|| {
        DirectoryError::mapping(&entry.dn, "cn", "a job target needs its machine's name")
    })?;
    let machine = MachineId::new(cn)
        .map_err(|error| DirectoryError::mapping(&entry.dn, "cn", error.to_string()))?;
    let phase = entry
        .text(PHASE)
        .ok_or_else(|| DirectoryError::mapping(&entry.dn, PHASE, "a job target needs its phase"))?
        .parse::<Phase>()
        .map_err(|message| DirectoryError::mapping(&entry.dn, PHASE, message))?;
    Ok(TargetStatus {
        machine,
        phase,
        message: entry.text(MESSAGE).map(str::to_owned),
        updated: entry.text(UPDATED).map(str::to_owned),
    })
}

/// Jobs and their targets from the entries of one subtree search, each
/// job's targets in the job's own order.
fn assemble(entries: &[SearchEntry]) -> Result<Vec<DeploymentEntry>> {
    let mut jobs: BTreeMap<String, DeploymentEntry> = BTreeMap::new();
    let mut statuses: BTreeMap<String, Vec<TargetStatus>> = BTreeMap::new();
    for entry in entries {
        if entry.has_class(JOB_CLASS) {
            let text = entry.text(DESCRIPTION).ok_or_else(|| {
                DirectoryError::mapping(&entry.dn, DESCRIPTION, "a job needs its description")
            })?;
            let deployment: Deployment = serde_json::from_str(text).map_err(|error| {
                DirectoryError::mapping(&entry.dn, DESCRIPTION, error.to_string())
            })?;
            jobs.insert(
                entry.dn.to_ascii_lowercase(),
                DeploymentEntry {
                    dn: entry.dn.clone(),
                    deployment,
                    targets: Vec::new(),
                },
            );
        } else if entry.has_class(TARGET_CLASS) {
            let parent = entry
                .dn
                .split_once(',')
                .map(|(_, parent)| parent.to_ascii_lowercase())
                .unwrap_or_default();
            statuses
                .entry(parent)
                .or_default()
                .push(target_status(entry)?);
        }
    }
    let mut assembled: Vec<DeploymentEntry> = jobs
        .into_iter()
        .map(|(key, mut job)| {
            let mut found = statuses.remove(&key).unwrap_or_default();
            for target in &job.deployment.targets {
                if let Some(index) = found
                    .iter()
                    .position(|status| status.machine == target.machine)
                {
                    job.targets.push(found.swap_remove(index));
                }
            }
            job
        })
        .collect();
    assembled.sort_by(|a, b| a.deployment.id.cmp(&b.deployment.id));
    Ok(assembled)
}

impl Directory {
    /// Stores a new deployment with each target `locked`. The targets'
    /// leases are the caller's to take (before, all or nothing).
    #[instrument(skip(self, deployment), fields(job = %deployment.id))]
    pub async fn create_deployment(&self, deployment: &Deployment) -> Result<()> {
        let dn = self.layout().job_dn(&deployment.id);
        let json = serde_json::to_string(deployment)
            .map_err(|error| DirectoryError::mapping(&dn, DESCRIPTION, error.to_string()))?;
        self.ensure_container(self.layout().jobs(), "jobs").await?;
        self.add(
            &dn,
            vec![
                (b"objectClass".to_vec(), single(JOB_CLASS)),
                (b"cn".to_vec(), single(deployment.id.as_str())),
                (DESCRIPTION.as_bytes().to_vec(), single(json)),
            ],
        )
        .await?;
        let now = generalized_time(SystemTime::now());
        for target in &deployment.targets {
            self.add(
                &escape::child_dn("cn", target.machine.as_str(), &dn),
                vec![
                    (b"objectClass".to_vec(), single(TARGET_CLASS)),
                    (b"cn".to_vec(), single(target.machine.as_str())),
                    (PHASE.as_bytes().to_vec(), single(Phase::Locked.as_str())),
                    (UPDATED.as_bytes().to_vec(), single(now.as_str())),
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// Deployment `id` with where its targets stand, if there is one: one
    /// search.
    #[instrument(skip(self))]
    pub async fn deployment(&self, id: &JobId) -> Result<Option<DeploymentEntry>> {
        let dn = self.layout().job_dn(id);
        let entries = self
            .search_if_present(&dn, Scope::Subtree, "(objectClass=*)", &["*"])
            .await?;
        Ok(assemble(&entries)?.into_iter().next())
    }

    /// The newest deployment in which `machine` is a target not done yet,
    /// if any: two searches (its target entries not complete or failed,
    /// then that job), whatever the number of jobs kept.
    #[instrument(skip(self))]
    pub async fn open_deployment_of(&self, machine: &MachineId) -> Result<Option<DeploymentEntry>> {
        let filter = escape::and([
            format!("(objectClass={TARGET_CLASS})").as_str(),
            escape::equality("cn", machine.as_str()).as_str(),
            format!("(!({PHASE}={}))", Phase::Complete.as_str()).as_str(),
            format!("(!({PHASE}={}))", Phase::Failed.as_str()).as_str(),
        ]);
        let targets = self
            .search_if_present(self.layout().jobs(), Scope::Subtree, &filter, &["cn"])
            .await?;
        // Job ids sort by the time the job was made: the newest is last.
        let newest = targets
            .iter()
            .filter_map(|entry| entry.dn.split_once(',').map(|(_, job)| job.to_owned()))
            .max_by_key(|job| job.to_ascii_lowercase());
        let Some(job) = newest else {
            return Ok(None);
        };
        let entries = self
            .search_if_present(&job, Scope::Subtree, "(objectClass=*)", &["*"])
            .await?;
        Ok(assemble(&entries)?.into_iter().next())
    }

    /// Every deployment with where its targets stand: one search.
    #[instrument(skip(self))]
    pub async fn deployments(&self) -> Result<Vec<DeploymentEntry>> {
        let entries = self
            .search_if_present(
                self.layout().jobs(),
                Scope::Subtree,
                &format!("(|(objectClass={JOB_CLASS})(objectClass={TARGET_CLASS}))"),
                &["*"],
            )
            .await?;
        assemble(&entries)
    }

    /// Records that `machine` of job `id` reached `phase`, with what its
    /// step said.
    #[instrument(skip(self))]
    pub async fn set_target_phase(
        &self,
        id: &JobId,
        machine: &MachineId,
        phase: Phase,
        message: Option<&str>,
    ) -> Result<()> {
        let dn = escape::child_dn("cn", machine.as_str(), &self.layout().job_dn(id));
        let message: HashSet<Vec<u8>> = message.map(single).unwrap_or_default();
        self.modify(
            &dn,
            vec![
                Mod::Replace(PHASE.as_bytes().to_vec(), single(phase.as_str())),
                Mod::Replace(MESSAGE.as_bytes().to_vec(), message),
                Mod::Replace(
                    UPDATED.as_bytes().to_vec(),
                    single(generalized_time(SystemTime::now())),
                ),
            ],
        )
        .await
    }
}
