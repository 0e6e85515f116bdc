//! Status reports under `ou=reports` (Blocks 1070-1085): one entry per
//! report a machine sends about one step of one component, and one
//! summary entry per machine and suite for the end of a run.
//!
//! # Entry layout
//!
//! Flat under `ou=reports`, so that "every report of machine M" and "every
//! report about suite S" are each one one-level search:
//! - a step report is `cn=MACHINE:ID` (the machine's own report id; machine
//!   names hold no `:`, so two machines never share a name), with the
//!   machine, suite, build digest, component, step, outcome, exit code or
//!   signal, duration, evidence lines (`{n}`-ordered), start and finish
//!   times and the digest of its log;
//! - a run summary is `cn=MACHINE@SUITE` (report ids hold no `@`), holding
//!   the last `SuiteComplete` of that machine for that suite: its id, build
//!   digest, counts and an overall outcome.
//!
//! Log text never enters the directory: the caller puts it in the content
//! store and passes its digest. Storing is idempotent by the report id: a
//! report whose id is already stored changes nothing and is answered
//! [`AckStatus::Duplicate`].

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ldap3::{Mod, Scope};
use tracing::instrument;

use roleout_model::ids::{MachineId, ProductId, Sha256, SuiteId};
use roleout_model::protocol::{
    AckStatus, ReportOutcome, ReportStep, RunSummary, StatusReport, SuiteComplete, Timestamp,
};

use crate::catalog::CatalogError;
use crate::catalog::builds::{generalized_time, parse_generalized_time};
use crate::catalog::entry::CatalogEntry;
use crate::catalog::mapping::attribute;
use crate::catalog::store::from_search;
use crate::connection::Directory;
use crate::escape;

/// Attribute and class names of report entries.
mod names {
    pub(super) const CLASS: &str = "roleoutReport";
    pub(super) const ID: &str = "roleoutReportId";
    pub(super) const MACHINE: &str = "roleoutMachineName";
    pub(super) const SUITE: &str = "roleoutSuiteName";
    pub(super) const COMPONENT: &str = "roleoutComponent";
    pub(super) const OUTCOME: &str = "roleoutOutcome";
    pub(super) const EXIT_CODE: &str = "roleoutExitCode";
    pub(super) const SIGNAL: &str = "roleoutSignal";
    pub(super) const EVIDENCE: &str = "roleoutEvidence";
    pub(super) const LOG_DIGEST: &str = "roleoutLogDigest";
    pub(super) const FINISHED_AT: &str = "roleoutReportedAt";
    pub(super) const STARTED_AT: &str = "roleoutStartedAt";
    pub(super) const STEP: &str = "roleoutStep";
    pub(super) const DURATION: &str = "roleoutDurationMs";
    pub(super) const SUMMARY: &str = "roleoutRunSummary";
}

/// A step report as the directory holds it: the [`StatusReport`] with its
/// log replaced by the log's digest, and the machine that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// The machine that sent it.
    pub machine: MachineId,
    /// The machine's id for it.
    pub id: String,
    /// The suite.
    pub suite: SuiteId,
    /// The build installed.
    pub build_digest: Sha256,
    /// The component.
    pub component: ProductId,
    /// The step.
    pub step: ReportStep,
    /// How it ended.
    pub outcome: ReportOutcome,
    /// Exit code, when the command exited.
    pub exit_code: Option<i32>,
    /// Signal, when one ended it.
    pub signal: Option<i32>,
    /// How long it ran.
    pub duration_ms: u64,
    /// Evidence lines, in order.
    pub evidence: Vec<String>,
    /// Digest of the log in the content store, when there was a log.
    pub log_digest: Option<Sha256>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    pub finished_at: Timestamp,
}

/// The last run summary of one machine for one suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCompletion {
    /// The machine.
    pub machine: MachineId,
    /// The id of its `SuiteComplete`.
    pub id: String,
    /// The suite.
    pub suite: SuiteId,
    /// The build installed.
    pub build_digest: Sha256,
    /// The counts.
    pub summary: RunSummary,
}

/// What machines last said about one suite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteStatus {
    /// The latest report per machine and component (latest by finish
    /// time, then start time, then id).
    pub components: BTreeMap<(MachineId, ProductId), StoredReport>,
    /// The last run summary per machine.
    pub completions: BTreeMap<MachineId, StoredCompletion>,
}

/// How much report history is kept per machine and suite (see
/// [`reports_to_prune`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Reports of the newest this many runs are kept (at least 1).
    pub keep_runs: u32,
    /// Reports older than this many seconds are removed, whatever run
    /// they belong to.
    pub max_age_secs: u64,
}

impl Default for Retention {
    /// The newest 10 runs, within 90 days.
    fn default() -> Self {
        Self {
            keep_runs: 10,
            max_age_secs: 90 * 24 * 60 * 60,
        }
    }
}

/// The run a report belongs to: its id up to the first `.` (the agent
/// names step reports `RUN.PRODUCT.PHASE.ATTEMPT.KIND`); an id without a
/// dot is a run of its own.
fn run_of(report: &StoredReport) -> &str {
    report
        .id
        .split_once('.')
        .map_or(report.id.as_str(), |(run, _)| run)
}

/// Which of one machine's `reports` the retention `policy` removes at
/// `now`: per suite, the latest report of each component is always kept
/// (so status never loses a component's last word); every other report is
/// kept only while its run is one of the newest `keep_runs` runs of that
/// suite (by the latest finish time in the run) and it finished within
/// `max_age_secs`.
pub fn reports_to_prune(
    reports: &[StoredReport],
    policy: Retention,
    now: Timestamp,
) -> Vec<&StoredReport> {
    let mut latest: BTreeMap<(&SuiteId, &ProductId), &StoredReport> = BTreeMap::new();
    let mut run_ends: BTreeMap<(&SuiteId, &str), Timestamp> = BTreeMap::new();
    for report in reports {
        let key = (&report.suite, &report.component);
        match latest.get(&key) {
            Some(current) if !is_later(report, current) => {}
            _ => {
                latest.insert(key, report);
            }
        }
        let end = run_ends
            .entry((&report.suite, run_of(report)))
            .or_insert(report.finished_at);
        *end = (*end).max(report.finished_at);
    }
    let mut newest_runs: BTreeMap<&SuiteId, Vec<(Timestamp, &str)>> = BTreeMap::new();
    for ((suite, run), end) in &run_ends {
        newest_runs.entry(suite).or_default().push((*end, run));
    }
    for runs in newest_runs.values_mut() {
        runs.sort_by(|a, b| b.cmp(a));
        runs.truncate(policy.keep_runs.max(1) as usize);
    }
    let oldest_kept = now.unix_seconds().saturating_sub(policy.max_age_secs);
    reports
        .iter()
        .filter(|report| {
            let is_latest = latest
                .get(&(&report.suite, &report.component))
                .is_some_and(|kept| std::ptr::eq(*kept, *report));
            if is_latest {
                return false;
            }
            let recent_run = newest_runs
                .get(&report.suite)
                .is_some_and(|runs| runs.iter().any(|(_, run)| *run == run_of(report)));
            !(recent_run && report.finished_at.unix_seconds() >= oldest_kept)
        })
        .collect()
}

/// What a pruning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// How many report entries.
    pub reports: usize,
    /// The log digests of the removed reports (their files may go once no
    /// report names them: see the content store's collection).
    pub logs: Vec<Sha256>,
}

/// The wire name of a step (`post-install`).
fn step_name(step: ReportStep) -> &'static str {
    match step {
        ReportStep::PreInstall => "pre-install",
        ReportStep::Install => "install",
        ReportStep::PostInstall => "post-install",
        ReportStep::Uninstall => "uninstall",
        ReportStep::Check => "check",
    }
}

/// The wire name of an outcome (`success-reboot-required`).
fn outcome_name(outcome: ReportOutcome) -> &'static str {
    match outcome {
        ReportOutcome::Success => "success",
        ReportOutcome::SuccessRebootRequired => "success-reboot-required",
        ReportOutcome::Skipped => "skipped",
        ReportOutcome::Failed => "failed",
        ReportOutcome::Blocked => "blocked",
        ReportOutcome::Retry => "retry",
    }
}

/// A wire enum value from its stored name, through serde (one spelling).
fn from_name<T: serde::de::DeserializeOwned>(
    entry: &CatalogEntry,
    description: &str,
) -> Result<T, CatalogError> {
    let text = entry.required(description)?;
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| entry.malformed(format!("{description} value {text:?} is not known")))
}

/// Checks a report id as the API schema does (`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`).
fn check_report_id(id: &str) -> Result<(), CatalogError> {
    let mut chars = id.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if valid {
        Ok(())
    } else {
        Err(CatalogError::Unrepresentable {
            what: format!("report id {:?}", id.chars().take(80).collect::<String>()),
            reason: "a report id is 1 to 128 ASCII letters, digits, '.', '_', ':' or '-', \
                     starting with a letter or digit"
                .to_owned(),
        })
    }
}

fn set(value: impl Into<String>) -> HashSet<String> {
    HashSet::from([value.into()])
}

fn parse_time(entry: &CatalogEntry, description: &str) -> Result<Timestamp, CatalogError> {
    let text = entry.required(description)?;
    parse_generalized_time(text).ok_or_else(|| {
        entry.malformed(format!(
            "{description} value {text:?} is not a time Roleout writes"
        ))
    })
}

fn parse_name<T: std::str::FromStr<Err = roleout_model::ids::InvalidName>>(
    entry: &CatalogEntry,
    description: &str,
) -> Result<T, CatalogError> {
    entry
        .required(description)?
        .parse()
        .map_err(|error| entry.malformed(format!("{description}: {error}")))
}

fn parse_digest(entry: &CatalogEntry, description: &str) -> Result<Sha256, CatalogError> {
    parse_name(entry, description)
}

fn report_from_entry(entry: &CatalogEntry) -> Result<StoredReport, CatalogError> {
    let log_digest = match entry.single(names::LOG_DIGEST)? {
        Some(text) => Some(
            Sha256::new(text)
                .map_err(|error| entry.malformed(format!("{}: {error}", names::LOG_DIGEST)))?,
        ),
        None => None,
    };
    Ok(StoredReport {
        machine: parse_name(entry, names::MACHINE)?,
        id: entry.required(names::ID)?.to_owned(),
        suite: parse_name(entry, names::SUITE)?,
        build_digest: parse_digest(entry, attribute::DIGEST)?,
        component: parse_name(entry, names::COMPONENT)?,
        step: from_name(entry, names::STEP)?,
        outcome: from_name(entry, names::OUTCOME)?,
        exit_code: entry.number(names::EXIT_CODE)?,
        signal: entry.number(names::SIGNAL)?,
        duration_ms: entry.number(names::DURATION)?.unwrap_or(0),
        evidence: entry
            .ordered(names::EVIDENCE)?
            .into_iter()
            .map(str::to_owned)
            .collect(),
        log_digest,
        started_at: parse_time(entry, names::STARTED_AT)?,
        finished_at: parse_time(entry, names::FINISHED_AT)?,
    })
}

fn completion_from_entry(entry: &CatalogEntry) -> Result<StoredCompletion, CatalogError> {
    let summary_text = entry.required(names::SUMMARY)?;
    Ok(StoredCompletion {
        machine: parse_name(entry, names::MACHINE)?,
        id: entry.required(names::ID)?.to_owned(),
        suite: parse_name(entry, names::SUITE)?,
        build_digest: parse_digest(entry, attribute::DIGEST)?,
        summary: entry.json(names::SUMMARY, summary_text)?,
    })
}

/// The overall outcome of a run, for the summary entry's `roleoutOutcome`.
fn run_outcome(summary: &RunSummary) -> ReportOutcome {
    if summary.failed > 0 || summary.blocked > 0 {
        ReportOutcome::Failed
    } else if summary.reboot_required {
        ReportOutcome::SuccessRebootRequired
    } else {
        ReportOutcome::Success
    }
}

/// Latest first: by finish time, then start time, then id.
fn is_later(candidate: &StoredReport, current: &StoredReport) -> bool {
    (candidate.finished_at, candidate.started_at, &candidate.id)
        > (current.finished_at, current.started_at, &current.id)
}

impl Directory {
    /// Stores `report` from `machine`, its log already in the content store
    /// under `log_digest`. A report whose id this machine already sent is
    /// a duplicate: nothing is written.
    #[instrument(skip_all, fields(machine = %machine, report = %report.id))]
    pub async fn store_report(
        &self,
        machine: &MachineId,
        report: &StatusReport,
        log_digest: Option<&Sha256>,
    ) -> Result<AckStatus, CatalogError> {
        check_report_id(&report.id)?;
        let cn = format!("{machine}:{}", report.id);
        let dn = escape::child_dn(attribute::CN, &cn, self.layout().reports());
        if let Some(existing) = self.read(&dn, &[names::ID]).await? {
            return self.duplicate(&dn, &existing, &report.id);
        }
        let mut attributes: Vec<(String, HashSet<String>)> = vec![
            ("objectClass".to_owned(), set(names::CLASS)),
            (attribute::CN.to_owned(), set(cn)),
            (names::ID.to_owned(), set(report.id.as_str())),
            (names::MACHINE.to_owned(), set(machine.as_str())),
            (names::SUITE.to_owned(), set(report.suite.as_str())),
            (
                attribute::DIGEST.to_owned(),
                set(report.build_digest.as_str()),
            ),
            (names::COMPONENT.to_owned(), set(report.component.as_str())),
            (names::STEP.to_owned(), set(step_name(report.step))),
            (names::OUTCOME.to_owned(), set(outcome_name(report.outcome))),
            (
                names::DURATION.to_owned(),
                set(report.duration_ms.to_string()),
            ),
            (
                names::STARTED_AT.to_owned(),
                set(generalized_time(report.started_at)),
            ),
            (
                names::FINISHED_AT.to_owned(),
                set(generalized_time(report.finished_at)),
            ),
        ];
        if let Some(code) = report.exit_code {
            attributes.push((names::EXIT_CODE.to_owned(), set(code.to_string())));
        }
        if let Some(signal) = report.signal {
            attributes.push((names::SIGNAL.to_owned(), set(signal.to_string())));
        }
        if let Some(digest) = log_digest {
            attributes.push((names::LOG_DIGEST.to_owned(), set(digest.as_str())));
        }
        if !report.evidence.is_empty() {
            let mut ordered = CatalogEntry::new(dn.clone());
            ordered.push_ordered(names::EVIDENCE, &report.evidence);
            let values = ordered.values(names::EVIDENCE);
            attributes.push((
                names::EVIDENCE.to_owned(),
                values.into_iter().map(str::to_owned).collect(),
            ));
        }
        match self.add(&dn, attributes).await {
            Ok(()) => Ok(AckStatus::Recorded),
            // The same report arrived twice at once and the other copy won.
            Err(error) if error.is_already_exists() => Ok(AckStatus::Duplicate),
            Err(error) => Err(error.into()),
        }
    }

    /// A stored entry with the same (case-insensitive) name: a duplicate
    /// when its id is exactly `id`; otherwise two ids that differ only in
    /// case, which the directory cannot keep apart.
    fn duplicate(
        &self,
        dn: &str,
        existing: &ldap3::SearchEntry,
        id: &str,
    ) -> Result<AckStatus, CatalogError> {
        let stored = existing
            .attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(names::ID))
            .and_then(|(_, values)| values.first());
        match stored {
            Some(stored) if stored == id => Ok(AckStatus::Duplicate),
            other => Err(CatalogError::Unrepresentable {
                what: format!("report {id:?}"),
                reason: format!(
                    "{dn} already holds report {:?}; report ids of one machine must differ \
                     in more than letter case",
                    other.map(String::as_str).unwrap_or("")
                ),
            }),
        }
    }

    /// Stores the end of a run of `machine`: the summary entry of this
    /// machine and suite takes the new id, digest and counts; the same id
    /// again is a duplicate and writes nothing.
    #[instrument(skip_all, fields(machine = %machine, suite = %complete.suite))]
    pub async fn store_completion(
        &self,
        machine: &MachineId,
        complete: &SuiteComplete,
    ) -> Result<AckStatus, CatalogError> {
        check_report_id(&complete.id)?;
        let cn = format!("{machine}@{}", complete.suite);
        let dn = escape::child_dn(attribute::CN, &cn, self.layout().reports());
        let summary = serde_json::to_value(complete.summary)
            .map(|value| roleout_model::protocol::canonical_json(&value))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| CatalogError::Unrepresentable {
                what: format!("run summary {}", complete.id),
                reason: "it does not serialize to JSON".to_owned(),
            })?;
        let outcome = outcome_name(run_outcome(&complete.summary));
        let existing = self.read(&dn, &[names::ID]).await?;
        let Some(existing) = existing else {
            let attributes: Vec<(String, HashSet<String>)> = vec![
                ("objectClass".to_owned(), set(names::CLASS)),
                (attribute::CN.to_owned(), set(cn)),
                (names::ID.to_owned(), set(complete.id.as_str())),
                (names::MACHINE.to_owned(), set(machine.as_str())),
                (names::SUITE.to_owned(), set(complete.suite.as_str())),
                (
                    attribute::DIGEST.to_owned(),
                    set(complete.build_digest.as_str()),
                ),
                (names::OUTCOME.to_owned(), set(outcome)),
                (names::SUMMARY.to_owned(), set(summary)),
            ];
            return match self.add(&dn, attributes).await {
                Ok(()) => Ok(AckStatus::Recorded),
                Err(error) if error.is_already_exists() => Ok(AckStatus::Duplicate),
                Err(error) => Err(error.into()),
            };
        };
        let stored_id = existing
            .attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(names::ID))
            .and_then(|(_, values)| values.first());
        if stored_id.is_some_and(|stored| *stored == complete.id) {
            return Ok(AckStatus::Duplicate);
        }
        self.modify(
            &dn,
            vec![
                Mod::Replace(names::ID.to_owned(), set(complete.id.as_str())),
                Mod::Replace(
                    attribute::DIGEST.to_owned(),
                    set(complete.build_digest.as_str()),
                ),
                Mod::Replace(names::OUTCOME.to_owned(), set(outcome)),
                Mod::Replace(names::SUMMARY.to_owned(), set(summary)),
            ],
        )
        .await?;
        Ok(AckStatus::Recorded)
    }

    async fn report_entries(&self, filter: &str) -> Result<Vec<CatalogEntry>, CatalogError> {
        let found = self
            .search_if_present(self.layout().reports(), Scope::OneLevel, filter, &["*"])
            .await?;
        found.into_iter().map(from_search).collect()
    }

    /// Every step report of `machine`, oldest first (one search).
    #[instrument(skip_all, fields(machine = %machine))]
    pub async fn reports_for_machine(
        &self,
        machine: &MachineId,
    ) -> Result<Vec<StoredReport>, CatalogError> {
        let filter = format!(
            "(&(objectClass={}){}({}=*))",
            names::CLASS,
            escape::equality(names::MACHINE, machine.as_str()),
            names::COMPONENT
        );
        let mut reports = self
            .report_entries(&filter)
            .await?
            .iter()
            .map(report_from_entry)
            .collect::<Result<Vec<_>, _>>()?;
        reports.sort_by(|a, b| {
            (a.finished_at, a.started_at, &a.id).cmp(&(b.finished_at, b.started_at, &b.id))
        });
        Ok(reports)
    }

    /// Every step report and every run summary kept, of every machine and
    /// suite (one search): what the dashboard's machine list reads.
    /// Reports oldest first.
    #[instrument(skip_all)]
    pub async fn all_reports(
        &self,
    ) -> Result<(Vec<StoredReport>, Vec<StoredCompletion>), CatalogError> {
        self.reports_matching(format!("(objectClass={})", names::CLASS))
            .await
    }

    /// The step reports that finished at or after `since`, and every run
    /// summary (one search, the time compared by slapd on the ordered
    /// `roleoutReportedAt`): what the dashboard's overview counts, bounded
    /// however long reports are kept.
    #[instrument(skip_all)]
    pub async fn reports_since(
        &self,
        since: Timestamp,
    ) -> Result<(Vec<StoredReport>, Vec<StoredCompletion>), CatalogError> {
        self.reports_matching(format!(
            "(&(objectClass={})(|(!({}=*))({}>={})))",
            names::CLASS,
            names::COMPONENT,
            names::FINISHED_AT,
            generalized_time(since)
        ))
        .await
    }

    /// Every step report of `machine`, oldest first, and its run summary
    /// of each suite: one search.
    #[instrument(skip_all, fields(machine = %machine))]
    pub async fn machine_history(
        &self,
        machine: &MachineId,
    ) -> Result<(Vec<StoredReport>, Vec<StoredCompletion>), CatalogError> {
        self.reports_matching(format!(
            "(&(objectClass={}){})",
            names::CLASS,
            escape::equality(names::MACHINE, machine.as_str())
        ))
        .await
    }

    async fn reports_matching(
        &self,
        filter: String,
    ) -> Result<(Vec<StoredReport>, Vec<StoredCompletion>), CatalogError> {
        let mut reports = Vec::new();
        let mut completions = Vec::new();
        for entry in self.report_entries(&filter).await? {
            if entry.values(names::COMPONENT).is_empty() {
                completions.push(completion_from_entry(&entry)?);
            } else {
                reports.push(report_from_entry(&entry)?);
            }
        }
        reports.sort_by(|a, b| {
            (a.finished_at, a.started_at, &a.id).cmp(&(b.finished_at, b.started_at, &b.id))
        });
        Ok((reports, completions))
    }

    /// Removes the reports of `machine` that `policy` does not keep at
    /// `now` ([`reports_to_prune`]): one search, then one delete per
    /// report removed. A report deleted meanwhile by another pruning is
    /// not an error.
    #[instrument(skip_all, fields(machine = %machine))]
    pub async fn prune_reports(
        &self,
        machine: &MachineId,
        policy: Retention,
        now: Timestamp,
    ) -> Result<Pruned, CatalogError> {
        let reports = self.reports_for_machine(machine).await?;
        let mut pruned = Pruned::default();
        for report in reports_to_prune(&reports, policy, now) {
            let cn = format!("{machine}:{}", report.id);
            let dn = escape::child_dn(attribute::CN, &cn, self.layout().reports());
            match self.delete(&dn).await {
                Ok(()) => {}
                Err(error) if error.is_no_such_object() => continue,
                Err(error) => return Err(error.into()),
            }
            pruned.reports += 1;
            pruned.logs.extend(report.log_digest.clone());
        }
        Ok(pruned)
    }

    /// Every log digest a stored report names (one search, the digests
    /// only): what the content store must keep of the logs.
    #[instrument(skip_all)]
    pub async fn referenced_log_digests(&self) -> Result<BTreeSet<Sha256>, CatalogError> {
        let filter = format!("(&(objectClass={})({}=*))", names::CLASS, names::LOG_DIGEST);
        let found = self
            .search_if_present(
                self.layout().reports(),
                Scope::OneLevel,
                &filter,
                &[names::LOG_DIGEST],
            )
            .await?;
        let mut digests = BTreeSet::new();
        for entry in found {
            for value in entry
                .attrs
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(names::LOG_DIGEST))
                .flat_map(|(_, values)| values)
            {
                if let Ok(digest) = Sha256::new(value) {
                    digests.insert(digest);
                }
            }
        }
        Ok(digests)
    }

    /// The latest outcome per machine and component of `suite`, and each
    /// machine's last run summary (one search).
    #[instrument(skip_all, fields(suite = %suite))]
    pub async fn suite_status(&self, suite: &SuiteId) -> Result<SuiteStatus, CatalogError> {
        let filter = format!(
            "(&(objectClass={}){})",
            names::CLASS,
            escape::equality(names::SUITE, suite.as_str())
        );
        let mut status = SuiteStatus::default();
        for entry in self.report_entries(&filter).await? {
            if entry.values(names::COMPONENT).is_empty() {
                let completion = completion_from_entry(&entry)?;
                status
                    .completions
                    .insert(completion.machine.clone(), completion);
                continue;
            }
            let report = report_from_entry(&entry)?;
            let key = (report.machine.clone(), report.component.clone());
            match status.components.get(&key) {
                Some(current) if !is_later(&report, current) => {}
                _ => {
                    status.components.insert(key, report);
                }
            }
        }
        Ok(status)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_the_wire_names() {
        for step in [
            ReportStep::PreInstall,
            ReportStep::Install,
            ReportStep::PostInstall,
            ReportStep::Uninstall,
            ReportStep::Check,
        ] {
            assert_eq!(serde_json::to_value(step).unwrap(), step_name(step));
        }
        for outcome in [
            ReportOutcome::Success,
            ReportOutcome::SuccessRebootRequired,
            ReportOutcome::Skipped,
            ReportOutcome::Failed,
            ReportOutcome::Blocked,
            ReportOutcome::Retry,
        ] {
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                outcome_name(outcome)
            );
        }
    }

    #[test]
    fn report_ids_follow_the_api_schema() {
        for good in ["a", "run-1:notes-client:install", "A.b_c"] {
            assert!(check_report_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a@b", "a/b", "a,b", &"x".repeat(129)] {
            assert!(check_report_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failed_or_blocked_component_fails_the_run() {
        let mut summary = RunSummary {
            installed: 3,
            ..RunSummary::default()
        };
        assert_eq!(run_outcome(&summary), ReportOutcome::Success);
        summary.reboot_required = true;
        assert_eq!(run_outcome(&summary), ReportOutcome::SuccessRebootRequired);
        summary.blocked = 1;
        assert_eq!(run_outcome(&summary), ReportOutcome::Failed);
    }

    fn stored(run: &str, product: &str, suite: &str, finished: u64) -> StoredReport {
        StoredReport {
            machine: MachineId::new("pc-1").unwrap(),
            id: format!("{run}.{product}.install.1.status"),
            suite: SuiteId::new(suite).unwrap(),
            build_digest: Sha256::of(b"build"),
            component: ProductId::new(product).unwrap(),
            step: ReportStep::Install,
            outcome: ReportOutcome::Success,
            exit_code: Some(0),
            signal: None,
            duration_ms: 1,
            evidence: Vec::new(),
            log_digest: Some(Sha256::of(run.as_bytes())),
            started_at: Timestamp::from_unix_seconds(finished - 1).unwrap(),
            finished_at: Timestamp::from_unix_seconds(finished).unwrap(),
        }
    }

    fn ids(reports: &[&StoredReport]) -> Vec<String> {
        let mut ids: Vec<String> = reports
            .iter()
            .map(|report| format!("{}@{}", report.id, report.suite))
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn retention_keeps_the_newest_runs_and_every_components_last_word() {
        const DAY: u64 = 24 * 60 * 60;
        let now = Timestamp::from_unix_seconds(1_000 * DAY).unwrap();
        let at = |days_ago: u64| 1_000 * DAY - days_ago * DAY;
        let reports = vec![
            // Four runs of "office" installing "browser"; the oldest run
            // also installed "fonts", which no later run touched.
            stored("r1", "browser", "office", at(40)),
            stored("r1", "fonts", "office", at(40)),
            stored("r2", "browser", "office", at(30)),
            stored("r3", "browser", "office", at(20)),
            stored("r4", "browser", "office", at(10)),
            // Another suite keeps its own count.
            stored("s1", "editor", "tools", at(35)),
            stored("s2", "editor", "tools", at(5)),
        ];
        let policy = Retention {
            keep_runs: 2,
            max_age_secs: 365 * DAY,
        };
        assert_eq!(
            ids(&reports_to_prune(&reports, policy, now)),
            [
                "r1.browser.install.1.status@office",
                "r2.browser.install.1.status@office",
            ],
            "fonts' only report stays: it is its latest word"
        );
        // By age: everything older than 25 days goes but the last words.
        let policy = Retention {
            keep_runs: 100,
            max_age_secs: 25 * DAY,
        };
        assert_eq!(
            ids(&reports_to_prune(&reports, policy, now)),
            [
                "r1.browser.install.1.status@office",
                "r2.browser.install.1.status@office",
                "s1.editor.install.1.status@tools",
            ]
        );
        // Nothing to prune in a short history.
        assert!(reports_to_prune(&reports[..1], Retention::default(), now).is_empty());
    }
}
