//! Leases on entries (`roleout_model::lease`): the value of `roleoutLease`,
//! changed only by one modify that is conditional on what was read, so of
//! two holders racing for one entry exactly one wins.
//!
//! - A free entry is taken by adding the value: the attribute is
//!   single-valued, so a second add fails.
//! - An expired lease, or one the same holder holds for the same job, is
//!   replaced by deleting exactly the value read and adding the new one in
//!   the same modify: if another holder changed it in between, the delete
//!   finds no such value and nothing changes.
//! - A set of entries is taken all or nothing: on the first refusal, the
//!   leases taken so far in the call are given back. (A holder that dies in
//!   between leaves leases that expire on their own.)

use std::collections::HashSet;

use ldap3::Mod;
use roleout_model::lease::Lease;
use tracing::instrument;

use crate::connection::{Directory, EntryValues};
use crate::error::{DirectoryError, Result};
use crate::machines::conditional;

const LEASE: &str = "roleoutLease";

/// Why a set of leases was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRefused {
    /// The entry that could not be taken.
    pub dn: String,
    /// The lease that holds it, when it could be read (none when another
    /// holder took it between the read and the write).
    pub held: Option<Lease>,
}

impl std::fmt::Display for LeaseRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.held {
            Some(lease) => write!(f, "{} is {lease}", self.dn),
            None => write!(
                f,
                "{} was taken by another holder at the same moment",
                self.dn
            ),
        }
    }
}

fn value(lease: &Lease) -> HashSet<Vec<u8>> {
    HashSet::from([lease.to_value().into_bytes()])
}

fn attribute() -> Vec<u8> {
    LEASE.as_bytes().to_vec()
}

impl Directory {
    /// The lease on the entry `dn`, if it has one.
    pub async fn lease(&self, dn: &str) -> Result<Option<Lease>> {
        let entry = self
            .read(dn, &[LEASE])
            .await?
            .ok_or_else(|| DirectoryError::NotFound {
                what: "entry",
                name: dn.to_owned(),
                searched: dn.to_owned(),
            })?;
        entry
            .text(LEASE)
            .map(|text| {
                Lease::parse(text).map_err(|message| DirectoryError::Mapping {
                    dn: dn.to_owned(),
                    attribute: LEASE.to_owned(),
                    message,
                })
            })
            .transpose()
    }

    /// Takes a lease on each entry of `dns` for `holder` and `job` until
    /// `expires_at`, all or nothing (see the module documentation); `now`
    /// decides which leases have expired. Returns the leases taken, or the
    /// first entry that could not be, with its holder.
    #[instrument(skip(self))]
    pub async fn acquire_leases(
        &self,
        dns: &[String],
        holder: &str,
        job: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<std::result::Result<Vec<Lease>, LeaseRefused>> {
        let mut taken: Vec<(String, Lease)> = Vec::new();
        for dn in dns {
            let current = self.lease(dn).await?;
            let lease = Lease {
                holder: holder.to_owned(),
                job: job.to_owned(),
                expires_at,
                serial: current.as_ref().map_or(1, |lease| lease.serial + 1),
            };
            lease.check().map_err(|message| DirectoryError::Mapping {
                dn: dn.clone(),
                attribute: LEASE.to_owned(),
                message,
            })?;
            let won = match &current {
                None => conditional(
                    self.modify(dn, vec![Mod::Add(attribute(), value(&lease))])
                        .await,
                )?,
                Some(held) if held.expired(now) || held.is(holder, job) => conditional(
                    self.modify(
                        dn,
                        vec![
                            Mod::Delete(attribute(), value(held)),
                            Mod::Add(attribute(), value(&lease)),
                        ],
                    )
                    .await,
                )?,
                Some(_) => false,
            };
            if !won {
                self.release_leases(&taken).await?;
                let held = self.lease(dn).await?.filter(|held| !held.is(holder, job));
                return Ok(Err(LeaseRefused {
                    dn: dn.clone(),
                    held: held.or(current),
                }));
            }
            taken.push((dn.clone(), lease));
        }
        Ok(Ok(taken.into_iter().map(|(_, lease)| lease).collect()))
    }

    /// Gives back leases this holder took: each is removed only if it is
    /// still exactly the one given (a lease taken over since stays).
    /// Returns how many were given back.
    #[instrument(skip(self, leases))]
    pub async fn release_leases(&self, leases: &[(String, Lease)]) -> Result<usize> {
        let mut released = 0;
        for (dn, lease) in leases {
            if conditional(
                self.modify(dn, vec![Mod::Delete(attribute(), value(lease))])
                    .await,
            )? {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Extends a lease this holder holds to `expires_at`, keeping its
    /// serial; `false` when it is no longer exactly the one held (it
    /// expired and was taken over).
    #[instrument(skip(self))]
    pub async fn renew_lease(&self, dn: &str, held: &Lease, expires_at: u64) -> Result<bool> {
        let renewed = Lease {
            expires_at,
            ..held.clone()
        };
        conditional(
            self.modify(
                dn,
                vec![
                    Mod::Delete(attribute(), value(held)),
                    Mod::Add(attribute(), value(&renewed)),
                ],
            )
            .await,
        )
    }
}
