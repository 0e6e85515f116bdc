//! Machines in the directory: device entries extended with the
//! `roleoutMachine` auxiliary class.
//!
//! Domain-joined machines already have an entry (often a `device` under
//! `ou=Computers`): Roleout adds its class and attributes to that entry
//! ([`Directory::adopt_machine`]) and never copies it, so the organisation
//! keeps one record per machine. Machines without an entry are created in
//! Roleout's own `ou=machines` as `device` + `pkiUser` + `roleoutMachine`
//! ([`Directory::create_machine`]). Either way the machine is found with the
//! machine search base and filter of the settings and named by its `cn`.
//!
//! The certificate is stored as `userCertificate;binary` (DER, the form
//! `pkiUser` allows) with its SHA-256 in `roleoutCertificateFingerprint`, so
//! a machine can be looked up by the certificate it presents.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use ldap3::{Mod, Scope, SearchEntry};
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::machine::Machine;
use tracing::instrument;

use crate::connection::{Directory, EntryValues};
use crate::error::{DirectoryError, Result};
use crate::escape;

/// The attributes read for a machine.
const MACHINE_ATTRIBUTES: &[&str] = &[
    "objectClass",
    "cn",
    "ipHostNumber",
    "roleoutEnabled",
    "roleoutEnrolment",
    "roleoutOs",
    "roleoutArch",
    "roleoutFact",
    "roleoutCertificateFingerprint",
    "roleoutEnrolmentToken",
    "roleoutLastSeen",
    "roleoutImagingSource",
    "roleoutEngine",
    "userCertificate;binary",
];

/// Where a machine stands in enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enrolment {
    /// Known, waiting for an admin to approve its key.
    Pending,
    /// Approved: it may authenticate (when also enabled).
    Approved,
    /// Turned away by an admin.
    Disabled,
}

impl Enrolment {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Enrolment::Pending => "pending",
            Enrolment::Approved => "approved",
            Enrolment::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Enrolment {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "pending" => Ok(Enrolment::Pending),
            "approved" => Ok(Enrolment::Approved),
            "disabled" => Ok(Enrolment::Disabled),
            _ => Err(format!(
                "{text:?} is not an enrolment state (pending, approved or disabled)"
            )),
        }
    }
}

/// A machine as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineEntry {
    /// The entry's DN.
    pub dn: String,
    /// The machine: name, IP address, OS, architecture and facts (products
    /// are not kept on the entry).
    pub machine: Machine,
    /// Whether the entry carries the `roleoutMachine` class yet.
    pub managed: bool,
    /// Whether the machine may authenticate (`roleoutEnabled`; false when
    /// absent).
    pub enabled: bool,
    /// The enrolment state, if any was recorded.
    pub enrolment: Option<Enrolment>,
    /// The machine's certificate, DER.
    pub certificate: Option<Vec<u8>>,
    /// SHA-256 of the certificate as stored in the entry.
    pub certificate_fingerprint: Option<Sha256>,
    /// SHA-256 of the machine's one-time enrolment token.
    pub enrolment_token: Option<Sha256>,
    /// When it last authenticated (GeneralizedTime, `20260101120000Z`).
    pub last_seen: Option<String>,
    /// Whether an admin made it an imaging source: it may upload images
    /// of itself (`roleoutImagingSource`).
    pub imaging_source: bool,
    /// The installation engine it is reached through (`roleoutEngine`),
    /// the roleoutd it last authenticated with when that one is an engine.
    pub engine: Option<String>,
}

/// A machine as a possible target of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCandidate {
    /// Its entry.
    pub machine: MachineEntry,
    /// The hardware its agent sent, if any.
    pub hardware: Option<roleout_model::inventory::Inventory>,
    /// Its lease, if it has one.
    pub lease: Option<roleout_model::lease::Lease>,
    /// Values of the entry that did not read (attribute: why).
    pub problems: Vec<String>,
}

impl MachineEntry {
    /// True when the machine may authenticate: enabled and approved.
    pub fn may_authenticate(&self) -> bool {
        self.enabled && self.enrolment == Some(Enrolment::Approved)
    }

    /// True when the recorded last-seen time is at or after `when` (to the
    /// second); false when none is recorded.
    pub fn seen_since(&self, when: SystemTime) -> bool {
        // GeneralizedTime in this one form (`YYYYMMDDHHMMSSZ`) sorts as
        // text in time order.
        self.last_seen
            .as_deref()
            .is_some_and(|seen| seen.len() == 15 && seen >= generalized_time(when).as_str())
    }
}

fn bytes_set<const N: usize>(values: [&[u8]; N]) -> HashSet<Vec<u8>> {
    values.iter().map(|value| value.to_vec()).collect()
}

fn attribute(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

fn boolean(value: bool) -> &'static [u8] {
    if value { b"TRUE" } else { b"FALSE" }
}

/// The `roleoutFact` values for `facts`, as `key=value`.
fn fact_values(facts: &BTreeMap<String, String>) -> Result<HashSet<Vec<u8>>> {
    facts
        .iter()
        .map(|(key, value)| {
            if key.is_empty() || key.contains('=') {
                return Err(DirectoryError::Mapping {
                    dn: String::new(),
                    attribute: "roleoutFact".to_owned(),
                    message: format!("fact key {key:?} must be non-empty and contain no '='"),
                });
            }
            Ok(format!("{key}={value}").into_bytes())
        })
        .collect()
}

/// The attribute holding a machine certificate's SHA-256.
fn fingerprint_attribute() -> Vec<u8> {
    attribute("roleoutCertificateFingerprint")
}

/// `fingerprint` as the value of [`fingerprint_attribute`].
fn fingerprint_value(fingerprint: &Sha256) -> HashSet<Vec<u8>> {
    bytes_set([fingerprint.as_str().as_bytes()])
}

/// The change that makes `certificate` (DER) the entry's certificate.
fn certificate_value(certificate: &[u8]) -> Mod<Vec<u8>> {
    Mod::Replace(
        attribute("userCertificate;binary"),
        bytes_set([certificate]),
    )
}

/// The outcome of a modify that is conditional on a value being there
/// (a delete of that value) or absent (an add to a single-valued
/// attribute): `false` when the condition did not hold.
pub(crate) fn conditional(result: Result<()>) -> Result<bool> {
    use crate::error::result_code::{ATTRIBUTE_OR_VALUE_EXISTS, NO_SUCH_ATTRIBUTE};
    // slapd answers an add to a single-valued attribute that has a value
    // with constraintViolation; 389 Directory Server with
    // objectClassViolation, saying "single-valued attribute ... has
    // multiple values" (any other objectClassViolation is a real error).
    const CONSTRAINT_VIOLATION: u32 = 19;
    const OBJECT_CLASS_VIOLATION: u32 = 65;
    match result {
        Ok(()) => Ok(true),
        Err(error)
            if matches!(
                error.ldap_code(),
                Some(NO_SUCH_ATTRIBUTE | ATTRIBUTE_OR_VALUE_EXISTS | CONSTRAINT_VIOLATION)
            ) =>
        {
            Ok(false)
        }
        Err(error)
            if error.ldap_code() == Some(OBJECT_CLASS_VIOLATION)
                && error.to_string().contains("single-valued attribute") =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

impl Directory {
    /// Every machine matching the machine search base and filter: one search.
    #[instrument(skip(self))]
    pub async fn machines(&self) -> Result<Vec<MachineEntry>> {
        let layout = self.layout();
        let entries = self
            .search(
                layout.machine_search_base(),
                Scope::Subtree,
                layout.machine_filter(),
                MACHINE_ATTRIBUTES,
            )
            .await?;
        entries.iter().map(machine_entry).collect()
    }

    /// Every machine with its hardware and lease, as an image's targets
    /// are chosen among them: one search. A hardware or lease value that
    /// does not read is kept as its error, so one broken entry does not
    /// hide the others.
    #[instrument(skip(self))]
    pub async fn target_candidates(&self) -> Result<Vec<TargetCandidate>> {
        let layout = self.layout();
        let mut attributes = MACHINE_ATTRIBUTES.to_vec();
        attributes.extend(["roleoutHardware", "roleoutLease"]);
        let entries = self
            .search(
                layout.machine_search_base(),
                Scope::Subtree,
                layout.machine_filter(),
                &attributes,
            )
            .await?;
        entries
            .iter()
            .map(|entry| {
                let machine = machine_entry(entry)?;
                let mut problems = Vec::new();
                let hardware = entry.text("roleoutHardware").and_then(|text| {
                    serde_json::from_str::<roleout_model::inventory::Inventory>(text)
                        .map_err(|error| problems.push(format!("roleoutHardware: {error}")))
                        .ok()
                });
                let lease = entry.text("roleoutLease").and_then(|text| {
                    roleout_model::lease::Lease::parse(text)
                        .map_err(|error| problems.push(format!("roleoutLease: {error}")))
                        .ok()
                });
                Ok(TargetCandidate {
                    machine,
                    hardware,
                    lease,
                    problems,
                })
            })
            .collect()
    }

    /// The machine called `name` (its `cn`), or `None`: one search.
    #[instrument(skip(self))]
    pub async fn machine(&self, name: &MachineId) -> Result<Option<MachineEntry>> {
        let layout = self.layout();
        let filter = escape::and([
            layout.machine_filter(),
            &escape::equality("cn", name.as_str()),
        ]);
        let entries = self
            .search(
                layout.machine_search_base(),
                Scope::Subtree,
                &filter,
                MACHINE_ATTRIBUTES,
            )
            .await?;
        match entries.as_slice() {
            [] => Ok(None),
            [entry] => machine_entry(entry).map(Some),
            [first, second, ..] => Err(DirectoryError::Mapping {
                dn: first.dn.clone(),
                attribute: "cn".to_owned(),
                message: format!(
                    "machine name {name} is not unique: {} also has it",
                    second.dn
                ),
            }),
        }
    }

    /// The machine whose certificate has SHA-256 `fingerprint`, or `None`:
    /// one search.
    #[instrument(skip(self))]
    pub async fn machine_by_fingerprint(
        &self,
        fingerprint: &Sha256,
    ) -> Result<Option<MachineEntry>> {
        let layout = self.layout();
        let filter = escape::and([
            layout.machine_filter(),
            &escape::equality("roleoutCertificateFingerprint", fingerprint.as_str()),
        ]);
        let entries = self
            .search(
                layout.machine_search_base(),
                Scope::Subtree,
                &filter,
                MACHINE_ATTRIBUTES,
            )
            .await?;
        entries.first().map(machine_entry).transpose()
    }

    /// The machine entry at `dn`, or `None` when there is no entry there.
    #[instrument(skip(self))]
    pub async fn machine_at(&self, dn: &str) -> Result<Option<MachineEntry>> {
        match self.read(dn, MACHINE_ATTRIBUTES).await? {
            Some(entry) => machine_entry(&entry).map(Some),
            None => Ok(None),
        }
    }

    /// Creates `machine` in Roleout's own machine container as `device` +
    /// `pkiUser` + `roleoutMachine` (+ `ipHost` with an IP address), pending
    /// and not enabled. Returns the DN.
    #[instrument(skip(self, machine), fields(machine = %machine.name))]
    pub async fn create_machine(&self, machine: &Machine) -> Result<String> {
        let dn = self.layout().machine_dn(&machine.name);
        let mut classes = bytes_set([b"device", b"pkiUser", b"roleoutMachine"]);
        let mut attributes = vec![
            (
                attribute("cn"),
                bytes_set([machine.name.as_str().as_bytes()]),
            ),
            // roleoutEnabled is left out: absent means not enabled, and
            // roleoutd (which creates entries for machines that enrol on
            // their own) may not write it; only admins enable a machine.
            (
                attribute("roleoutEnrolment"),
                bytes_set([Enrolment::Pending.as_str().as_bytes()]),
            ),
        ];
        if let Some(ip) = &machine.ip {
            classes.insert(b"ipHost".to_vec());
            attributes.push((attribute("ipHostNumber"), bytes_set([ip.as_bytes()])));
        }
        for (name, value) in [("roleoutOs", &machine.os), ("roleoutArch", &machine.arch)] {
            if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
                attributes.push((attribute(name), bytes_set([value.as_bytes()])));
            }
        }
        let facts = fact_values(&machine.facts).map_err(|error| with_dn(error, &dn))?;
        if !facts.is_empty() {
            attributes.push((attribute("roleoutFact"), facts));
        }
        attributes.push((attribute("objectClass"), classes));
        self.add(&dn, attributes).await?;
        Ok(dn)
    }

    /// Extends the existing entry of machine `name`, found with the machine
    /// search base and filter, with `roleoutMachine` (and `pkiUser` for the
    /// certificate), pending and not enabled. An entry already extended is
    /// left as it is. Returns its DN. The machine filter must match entries
    /// that are not extended yet (`(objectClass=device)`, not the default
    /// `(objectClass=roleoutMachine)`), or nothing is found.
    #[instrument(skip(self))]
    pub async fn adopt_machine(&self, name: &MachineId) -> Result<String> {
        let layout = self.layout();
        let filter = escape::and([
            layout.machine_filter(),
            &escape::equality("cn", name.as_str()),
        ]);
        let entries = self
            .search(
                layout.machine_search_base(),
                Scope::Subtree,
                &filter,
                &["objectClass"],
            )
            .await?;
        let entry = match entries.as_slice() {
            [entry] => entry,
            [] => {
                return Err(DirectoryError::NotFound {
                    what: "machine",
                    name: name.to_string(),
                    searched: format!("{} with {filter}", layout.machine_search_base()),
                });
            }
            [first, second, ..] => {
                return Err(DirectoryError::Mapping {
                    dn: first.dn.clone(),
                    attribute: "cn".to_owned(),
                    message: format!(
                        "machine name {name} is not unique: {} also has it",
                        second.dn
                    ),
                });
            }
        };
        if entry.has_class("roleoutMachine") {
            return Ok(entry.dn.clone());
        }
        let mut classes = bytes_set([b"roleoutMachine"]);
        if !entry.has_class("pkiUser") {
            classes.insert(b"pkiUser".to_vec());
        }
        let modifications = vec![
            Mod::Add(attribute("objectClass"), classes),
            Mod::Replace(attribute("roleoutEnabled"), bytes_set([boolean(false)])),
            Mod::Replace(
                attribute("roleoutEnrolment"),
                bytes_set([Enrolment::Pending.as_str().as_bytes()]),
            ),
        ];
        self.modify(&entry.dn, modifications).await?;
        Ok(entry.dn.clone())
    }

    /// Stores `certificate` (DER) on the machine at `dn` with its SHA-256,
    /// replacing any previous one; returns the fingerprint.
    #[instrument(skip(self, certificate))]
    pub async fn set_machine_certificate(&self, dn: &str, certificate: &[u8]) -> Result<Sha256> {
        let fingerprint = Sha256::of(certificate);
        let modifications = vec![
            certificate_value(certificate),
            Mod::Replace(fingerprint_attribute(), fingerprint_value(&fingerprint)),
        ];
        self.modify(dn, modifications).await?;
        Ok(fingerprint)
    }

    /// Records `certificate` (DER) as the first key of the machine at `dn`,
    /// in one modify that adds its fingerprint: it fails, and `false` is
    /// returned, when the entry has a fingerprint already (another
    /// enrolment got there first), so of two first enrolments exactly one
    /// records its key.
    #[instrument(skip(self, certificate))]
    pub async fn record_first_certificate(&self, dn: &str, certificate: &[u8]) -> Result<bool> {
        let modifications = vec![
            Mod::Add(
                fingerprint_attribute(),
                fingerprint_value(&Sha256::of(certificate)),
            ),
            certificate_value(certificate),
        ];
        conditional(self.modify(dn, modifications).await)
    }

    /// Replaces the certificate of the machine at `dn` whose fingerprint is
    /// `current` with `certificate`, in one modify that deletes exactly
    /// that fingerprint (compare and swap): `false` when the entry's key
    /// changed in the meantime. Whether the machine is approved or enabled
    /// is left as it is: the current key vouched for the new one.
    #[instrument(skip(self, certificate))]
    pub async fn rotate_certificate(
        &self,
        dn: &str,
        current: &Sha256,
        certificate: &[u8],
    ) -> Result<bool> {
        let modifications = vec![
            Mod::Delete(fingerprint_attribute(), fingerprint_value(current)),
            Mod::Add(
                fingerprint_attribute(),
                fingerprint_value(&Sha256::of(certificate)),
            ),
            certificate_value(certificate),
        ];
        conditional(self.modify(dn, modifications).await)
    }

    /// Spends the one-time enrolment token whose SHA-256 is `token` on the
    /// machine at `dn` and, in the same modify, records `certificate` as
    /// its key and marks it approved: `false` when the token is not there
    /// (wrong, or already spent). Done in one write, so the key approved is
    /// exactly the one presented with the token, whatever another
    /// enrolment of the same name does at the same moment.
    #[instrument(skip(self, token, certificate))]
    pub async fn enrol_with_token(
        &self,
        dn: &str,
        token: &Sha256,
        certificate: &[u8],
    ) -> Result<bool> {
        let modifications = vec![
            Mod::Delete(
                attribute("roleoutEnrolmentToken"),
                bytes_set([token.as_str().as_bytes()]),
            ),
            certificate_value(certificate),
            Mod::Replace(
                fingerprint_attribute(),
                fingerprint_value(&Sha256::of(certificate)),
            ),
            Mod::Replace(
                attribute("roleoutEnrolment"),
                bytes_set([Enrolment::Approved.as_str().as_bytes()]),
            ),
        ];
        conditional(self.modify(dn, modifications).await)
    }

    /// Approves the machine at `dn` and enables it.
    #[instrument(skip(self))]
    pub async fn approve_machine(&self, dn: &str) -> Result<()> {
        self.set_enrolment(dn, Enrolment::Approved, true).await
    }

    /// Disables the machine at `dn`: it can no longer authenticate.
    #[instrument(skip(self))]
    pub async fn disable_machine(&self, dn: &str) -> Result<()> {
        self.set_enrolment(dn, Enrolment::Disabled, false).await
    }

    /// Marks the machine at `dn` pending again (a new key to approve),
    /// without touching whether it is enabled.
    #[instrument(skip(self))]
    pub async fn mark_machine_pending(&self, dn: &str) -> Result<()> {
        // The enrolment counts as a sighting: a pending enrolment nobody
        // approves expires from it (`expire_pending_enrolments`).
        let modifications = vec![
            Mod::Replace(
                attribute("roleoutEnrolment"),
                bytes_set([Enrolment::Pending.as_str().as_bytes()]),
            ),
            Mod::Replace(
                attribute("roleoutLastSeen"),
                bytes_set([generalized_time(SystemTime::now()).as_bytes()]),
            ),
        ];
        self.modify(dn, modifications).await
    }

    /// Deletes the pending enrolments nobody acted on: entries in Roleout's
    /// own machine container that are pending, were last seen (enrolled)
    /// before `cutoff`, hold no enrolment token and belong to no role and
    /// no machine group (so an entry an admin prepared is never removed).
    /// A flood of enrolments with made-up names goes by itself. Returns the
    /// names removed.
    #[instrument(skip(self))]
    pub async fn expire_pending_enrolments(&self, cutoff: SystemTime) -> Result<Vec<MachineId>> {
        let cutoff = generalized_time(cutoff);
        let container = format!(",{}", self.layout().machines().to_ascii_lowercase());
        let candidates: Vec<MachineEntry> = self
            .machines()
            .await?
            .into_iter()
            .filter(|entry| {
                entry.enrolment == Some(Enrolment::Pending)
                    && entry.enrolment_token.is_none()
                    && entry.dn.to_ascii_lowercase().ends_with(&container)
                    && entry
                        .last_seen
                        .as_deref()
                        .is_some_and(|seen| seen.len() == 15 && seen < cutoff.as_str())
            })
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let roles = self.role_entries().await?;
        let groups = self.group_entries().await?;
        let mut removed = Vec::new();
        for entry in candidates {
            let in_role = roles.iter().any(|role| {
                role.members
                    .iter()
                    .any(|member| member.eq_ignore_ascii_case(&entry.dn))
            });
            let in_group = groups.iter().any(|group| group.has_member(&entry.dn));
            if in_role || in_group {
                continue;
            }
            self.delete_own_machine(&entry.dn).await?;
            removed.push(entry.machine.name.clone());
        }
        Ok(removed)
    }

    async fn set_enrolment(&self, dn: &str, enrolment: Enrolment, enabled: bool) -> Result<()> {
        let modifications = vec![
            Mod::Replace(
                attribute("roleoutEnrolment"),
                bytes_set([enrolment.as_str().as_bytes()]),
            ),
            Mod::Replace(attribute("roleoutEnabled"), bytes_set([boolean(enabled)])),
        ];
        self.modify(dn, modifications).await
    }

    /// Replaces the OS, architecture and facts of the machine at `dn`
    /// (`None` or empty removes them).
    #[instrument(skip(self, facts))]
    pub async fn set_machine_facts(
        &self,
        dn: &str,
        os: Option<&str>,
        arch: Option<&str>,
        facts: &BTreeMap<String, String>,
    ) -> Result<()> {
        let single = |value: Option<&str>| -> HashSet<Vec<u8>> {
            value
                .filter(|value| !value.is_empty())
                .map(|value| bytes_set([value.as_bytes()]))
                .unwrap_or_default()
        };
        let modifications = vec![
            Mod::Replace(attribute("roleoutOs"), single(os)),
            Mod::Replace(attribute("roleoutArch"), single(arch)),
            Mod::Replace(
                attribute("roleoutFact"),
                fact_values(facts).map_err(|error| with_dn(error, dn))?,
            ),
        ];
        self.modify(dn, modifications).await
    }

    /// Stores (or with `None` removes) the hardware inventory of the
    /// machine at `dn`, with its hardware key (searchable on its own).
    #[instrument(skip(self, hardware))]
    pub async fn set_machine_hardware(
        &self,
        dn: &str,
        hardware: Option<&roleout_model::inventory::Inventory>,
    ) -> Result<()> {
        let (json, key) = match hardware {
            Some(hardware) => (
                HashSet::from([serde_json::to_vec(hardware).map_err(|error| {
                    DirectoryError::Mapping {
                        dn: dn.to_owned(),
                        attribute: "roleoutHardware".to_owned(),
                        message: error.to_string(),
                    }
                })?]),
                bytes_set([hardware.key().as_str().as_bytes()]),
            ),
            None => (HashSet::new(), HashSet::new()),
        };
        self.modify(
            dn,
            vec![
                Mod::Replace(attribute("roleoutHardware"), json),
                Mod::Replace(attribute("roleoutHardwareKey"), key),
            ],
        )
        .await
    }

    /// The hardware inventory stored on the machine at `dn`, if any.
    #[instrument(skip(self))]
    pub async fn machine_hardware(
        &self,
        dn: &str,
    ) -> Result<Option<roleout_model::inventory::Inventory>> {
        let Some(entry) = self.read(dn, &["roleoutHardware"]).await? else {
            return Ok(None);
        };
        entry
            .text("roleoutHardware")
            .map(|text| {
                serde_json::from_str(text).map_err(|error| DirectoryError::Mapping {
                    dn: dn.to_owned(),
                    attribute: "roleoutHardware".to_owned(),
                    message: error.to_string(),
                })
            })
            .transpose()
    }

    /// Stores (or with `None` removes) the SHA-256 of the machine's one-time
    /// enrolment token.
    #[instrument(skip(self, digest))]
    pub async fn set_enrolment_token(&self, dn: &str, digest: Option<&Sha256>) -> Result<()> {
        let values = digest
            .map(|digest| bytes_set([digest.as_str().as_bytes()]))
            .unwrap_or_default();
        self.modify(
            dn,
            vec![Mod::Replace(attribute("roleoutEnrolmentToken"), values)],
        )
        .await
    }

    /// Enables the machine at `dn` (an admin's decision) without changing
    /// its enrolment state: a pending key still waits for approval or a
    /// token.
    #[instrument(skip(self))]
    pub async fn enable_machine(&self, dn: &str) -> Result<()> {
        self.modify(
            dn,
            vec![Mod::Replace(
                attribute("roleoutEnabled"),
                bytes_set([boolean(true)]),
            )],
        )
        .await
    }

    /// Records that the machine at `dn` authenticated at `when`.
    #[instrument(skip(self))]
    pub async fn record_machine_seen(&self, dn: &str, when: SystemTime) -> Result<()> {
        let time = generalized_time(when);
        self.modify(
            dn,
            vec![Mod::Replace(
                attribute("roleoutLastSeen"),
                bytes_set([time.as_bytes()]),
            )],
        )
        .await
    }
}

fn with_dn(error: DirectoryError, dn: &str) -> DirectoryError {
    match error {
        DirectoryError::Mapping {
            attribute, message, ..
        } => DirectoryError::Mapping {
            dn: dn.to_owned(),
            attribute,
            message,
        },
        other => other,
    }
}

/// Maps a machine entry to a [`MachineEntry`], naming the attribute at
/// fault when a value does not fit.
fn machine_entry(entry: &SearchEntry) -> Result<MachineEntry> {
    let mapping = |attribute: &str, message: String| DirectoryError::Mapping {
        dn: entry.dn.clone(),
        attribute: attribute.to_owned(),
        message,
    };
    let cn = entry
        .text("cn")
        .ok_or_else(|| mapping("cn", "a machine needs a cn (its name)".to_owned()))?;
    let name = MachineId::new(cn).map_err(|error| mapping("cn", error.to_string()))?;
    let mut facts = BTreeMap::new();
    for fact in entry.texts("roleoutFact") {
        let (key, value) = fact
            .split_once('=')
            .ok_or_else(|| mapping("roleoutFact", format!("{fact:?} is not key=value")))?;
        facts.insert(key.to_owned(), value.to_owned());
    }
    let enabled = match entry.text("roleoutEnabled") {
        None | Some("FALSE") => false,
        Some("TRUE") => true,
        Some(other) => {
            return Err(mapping(
                "roleoutEnabled",
                format!("{other:?} is not TRUE or FALSE"),
            ));
        }
    };
    let imaging_source = match entry.text("roleoutImagingSource") {
        None | Some("FALSE") => false,
        Some("TRUE") => true,
        Some(other) => {
            return Err(mapping(
                "roleoutImagingSource",
                format!("{other:?} is not TRUE or FALSE"),
            ));
        }
    };
    let enrolment = entry
        .text("roleoutEnrolment")
        .map(|text| {
            text.parse::<Enrolment>()
                .map_err(|message| mapping("roleoutEnrolment", message))
        })
        .transpose()?;
    let digest = |attribute: &str| {
        entry
            .text(attribute)
            .map(|text| Sha256::new(text).map_err(|error| mapping(attribute, error.to_string())))
            .transpose()
    };
    Ok(MachineEntry {
        dn: entry.dn.clone(),
        machine: Machine {
            name,
            ip: entry.text("ipHostNumber").map(str::to_owned),
            os: entry.text("roleoutOs").map(str::to_owned),
            arch: entry.text("roleoutArch").map(str::to_owned),
            facts,
            products: Vec::new(),
        },
        managed: entry.has_class("roleoutMachine"),
        enabled,
        enrolment,
        certificate: entry.bytes("userCertificate;binary").into_iter().next(),
        certificate_fingerprint: digest("roleoutCertificateFingerprint")?,
        enrolment_token: digest("roleoutEnrolmentToken")?,
        last_seen: entry.text("roleoutLastSeen").map(str::to_owned),
        imaging_source,
        engine: entry.text("roleoutEngine").map(str::to_owned),
    })
}

/// `when` as a GeneralizedTime in UTC (`YYYYMMDDHHMMSSZ`); times before
/// 1970 are clamped to the epoch.
pub fn generalized_time(when: SystemTime) -> String {
    // `2026-01-01T12:00:00Z` (no fraction: whole seconds) -> `20260101120000Z`.
    let seconds = when
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    roleout_model::protocol::Timestamp::from_unix_seconds(seconds)
        .map(|time| {
            time.to_string()
                .chars()
                .filter(|character| !matches!(character, '-' | ':' | 'T'))
                .collect()
        })
        .unwrap_or_else(|| "19700101000000Z".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn last_seen_compares_as_time() {
        let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
        let entry = |seen: Option<&str>| MachineEntry {
            dn: "cn=pc,ou=machines,dc=example,dc=org".to_owned(),
            machine: Machine {
                name: MachineId::new("pc").unwrap(),
                ip: None,
                os: None,
                arch: None,
                facts: BTreeMap::new(),
                products: Vec::new(),
            },
            managed: true,
            enabled: true,
            enrolment: None,
            certificate: None,
            certificate_fingerprint: None,
            enrolment_token: None,
            last_seen: seen.map(str::to_owned),
            imaging_source: false,
            engine: None,
        };
        // 2024-02-29T12:34:56Z
        let seen = entry(Some("20240229123456Z"));
        assert!(seen.seen_since(at(1_709_210_096)));
        assert!(seen.seen_since(at(1_709_210_000)));
        assert!(!seen.seen_since(at(1_709_210_097)));
        assert!(!entry(None).seen_since(at(0)));
        assert!(!entry(Some("garbage")).seen_since(at(0)));
    }

    #[test]
    fn generalized_times_are_utc_calendar_dates() {
        assert_eq!(generalized_time(UNIX_EPOCH), "19700101000000Z");
        // 2024-02-29T12:34:56Z, a leap day.
        assert_eq!(
            generalized_time(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "20240229123456Z"
        );
        // 2000-03-01T00:00:00Z, after a century leap day.
        assert_eq!(
            generalized_time(UNIX_EPOCH + Duration::from_secs(951_868_800)),
            "20000301000000Z"
        );
    }

    #[test]
    fn enrolment_states_parse_and_print() {
        for state in [Enrolment::Pending, Enrolment::Approved, Enrolment::Disabled] {
            assert_eq!(state.as_str().parse::<Enrolment>(), Ok(state));
        }
        assert!("APPROVED".parse::<Enrolment>().is_ok());
        assert!("maybe".parse::<Enrolment>().unwrap_err().contains("maybe"));
    }

    #[test]
    fn malformed_machine_entries_name_dn_and_attribute() {
        let entry = SearchEntry {
            dn: "cn=pc1,ou=Computers,dc=x".to_owned(),
            attrs: HashMap::from([
                ("cn".to_owned(), vec!["pc1".to_owned()]),
                ("roleoutFact".to_owned(), vec!["no-equals-sign".to_owned()]),
            ]),
            bin_attrs: HashMap::new(),
        };
        let error = machine_entry(&entry).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("cn=pc1,ou=Computers,dc=x") && text.contains("roleoutFact"),
            "{text}"
        );
        let facts = BTreeMap::from([("a=b".to_owned(), "c".to_owned())]);
        assert!(fact_values(&facts).is_err());
    }
}
