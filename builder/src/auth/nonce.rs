//! Replay protection: a challenge's nonce is good once.
//!
//! A challenge token is valid until it expires, so without this check a
//! captured token and signature could be presented again for a new session.
//! [`NonceStore::claim`] records a nonce the first time a valid signature
//! over it is presented and refuses it every time after.
//!
//! [`NonceCache`] keeps claimed nonces in this process's memory. That is
//! complete protection for a single roleoutd, but not across several
//! roleoutd behind a load balancer: a replay sent to another instance would
//! find an empty cache there. Across instances the claims are recorded in
//! the shared directory ([`SharedNonces`], implemented by the directory:
//! an add of an entry named by the nonce fails if it exists, which is the
//! same claim-once operation); roleoutd claims each nonce in its own cache
//! first (a replay to the same instance costs no round trip), then in the
//! directory.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use roleout_model::ids::MachineId;
use roleout_model::keys::unix_seconds;

use crate::auth::challenge::Nonce;

/// How many live nonces a [`NonceCache`] holds unless configured otherwise.
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;

/// Why a nonce was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The nonce was claimed before: the challenge answer is being replayed.
    #[error("replay refused: the nonce {nonce} of machine {machine}'s challenge was already used")]
    Replayed {
        /// The machine the challenge was for.
        machine: MachineId,
        /// The nonce.
        nonce: Nonce,
    },
    /// Too many unexpired nonces are held to record one more. Evicting a
    /// live nonce would reopen it to replay, so the claim is refused
    /// instead; the machine may try again once challenges expire.
    #[error(
        "too many authentications in flight: {capacity} unexpired nonces are held; \
         try again when older challenges expire"
    )]
    Full {
        /// The store's capacity.
        capacity: usize,
    },
    /// The store could not be reached (for stores kept outside this
    /// process).
    #[error("the nonce store is unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
}

/// Records nonces so that each is accepted once.
///
/// Implementations must make `claim` atomic: of two concurrent claims of
/// one nonce, exactly one succeeds.
pub trait NonceStore: Send + Sync {
    /// Records `nonce` (of a challenge for `machine` that expires at
    /// `expires_at`, Unix seconds) as used. Refuses a nonce recorded before.
    /// The store may forget a nonce once its challenge has expired, since an
    /// expired challenge is refused anyway.
    fn claim(
        &self,
        machine: &MachineId,
        nonce: &Nonce,
        expires_at: u64,
        now: SystemTime,
    ) -> Result<(), ReplayError>;
}

/// Nonces claimed once across every roleoutd of an installation.
pub trait SharedNonces: Send + Sync {
    /// Records `nonce` (of a challenge for `machine` expiring at
    /// `expires_at`, Unix seconds) as used by any instance; refuses one
    /// any instance recorded before. Atomic across instances.
    fn claim_shared(
        &self,
        machine: &MachineId,
        nonce: &Nonce,
        expires_at: u64,
    ) -> impl std::future::Future<Output = Result<(), ReplayError>> + Send;
}

impl SharedNonces for roleout_directory::Directory {
    async fn claim_shared(
        &self,
        machine: &MachineId,
        nonce: &Nonce,
        expires_at: u64,
    ) -> Result<(), ReplayError> {
        let not_after = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(expires_at);
        match self.claim_nonce(&nonce.to_base64(), not_after).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReplayError::Replayed {
                machine: machine.clone(),
                nonce: *nonce,
            }),
            Err(error) => Err(ReplayError::Unavailable {
                reason: error.to_string(),
            }),
        }
    }
}

/// An in-memory [`NonceStore`] of bounded size for one roleoutd.
#[derive(Debug)]
pub struct NonceCache {
    capacity: usize,
    inner: Mutex<Claimed>,
}

#[derive(Debug, Default)]
struct Claimed {
    /// Each claimed nonce with its challenge's expiry.
    expiry_of: HashMap<Nonce, u64>,
    /// The same entries ordered by expiry, to forget expired ones cheaply.
    by_expiry: BTreeSet<(u64, Nonce)>,
}

impl NonceCache {
    /// A cache that holds at most `capacity` unexpired nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Claimed::default()),
        }
    }

    /// How many nonces are held (expired ones included until the next
    /// claim forgets them).
    pub fn len(&self) -> usize {
        self.lock().expiry_of.len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Claimed> {
        // Every update below leaves both maps consistent before anything
        // that could panic, so a poisoned lock still guards valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new(DEFAULT_NONCE_CAPACITY)
    }
}

impl NonceStore for NonceCache {
    fn claim(
        &self,
        machine: &MachineId,
        nonce: &Nonce,
        expires_at: u64,
        now: SystemTime,
    ) -> Result<(), ReplayError> {
        let now = unix_seconds(now);
        let mut claimed = self.lock();
        // Forget nonces whose challenges have expired (expiry at or before
        // now: such a challenge is already refused by its token check).
        while let Some(&(expiry, oldest)) = claimed.by_expiry.first() {
            if expiry > now {
                break;
            }
            claimed.by_expiry.pop_first();
            claimed.expiry_of.remove(&oldest);
        }
        if claimed.expiry_of.contains_key(nonce) {
            return Err(ReplayError::Replayed {
                machine: machine.clone(),
                nonce: *nonce,
            });
        }
        if claimed.expiry_of.len() >= self.capacity {
            return Err(ReplayError::Full {
                capacity: self.capacity,
            });
        }
        claimed.expiry_of.insert(*nonce, expires_at);
        claimed.by_expiry.insert((expires_at, *nonce));
        Ok(())
    }
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_nonce_is_good_once() {
        let cache = NonceCache::new(10);
        let machine = MachineId::new("ws-1").unwrap();
        let nonce = Nonce::generate().unwrap();
        cache.claim(&machine, &nonce, 200, at(100)).unwrap();
        let error = cache.claim(&machine, &nonce, 200, at(150)).unwrap_err();
        assert!(matches!(error, ReplayError::Replayed { .. }), "{error}");
    }

    #[test]
    fn expired_nonces_are_forgotten_and_a_full_cache_refuses() {
        let cache = NonceCache::new(2);
        let machine = MachineId::new("ws-1").unwrap();
        let nonces: Vec<Nonce> = (0..3).map(|_| Nonce::generate().unwrap()).collect();
        cache.claim(&machine, &nonces[0], 110, at(100)).unwrap();
        cache.claim(&machine, &nonces[1], 120, at(100)).unwrap();
        let error = cache.claim(&machine, &nonces[2], 130, at(100)).unwrap_err();
        assert_eq!(error, ReplayError::Full { capacity: 2 });
        // At 110 the first challenge has expired: its slot is free again.
        cache.claim(&machine, &nonces[2], 130, at(110)).unwrap();
        assert_eq!(cache.len(), 2);
    }
}
