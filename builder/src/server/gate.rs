//! What roleoutd lets callers spend before and after they authenticate.
//!
//! - Callers without a session (enrolment, challenge, session) read small
//!   bodies only ([`UNAUTHENTICATED_MAX_BODY`]), all of them together at
//!   most a fixed number of bytes at once (`--unauthenticated-budget-kib`);
//!   past it they are told to come back (503 with `Retry-After`) instead of
//!   being held, so no number of half-sent bodies grows memory. A body that
//!   stops arriving is cut off after [`BODY_TIMEOUT`].
//! - Enrolments are limited per source address (a token bucket,
//!   `--enrolments-per-minute`), so a flood of made-up names cannot fill
//!   the directory; reports are limited per machine
//!   (`--reports-per-minute`, with a burst of eight minutes' worth, which a
//!   run of thousands of components fits in).
//!
//! Every limit answers 429 or 503 with `Retry-After`, which the agent
//! honours.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roleout_model::ids::MachineId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest body a caller without a session may send: an enrolment
/// (certificate, facts, proof) is a few KiB.
pub const UNAUTHENTICATED_MAX_BODY: usize = 64 * 1024;

/// How long a request body may take to arrive once its head has.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many addresses or machines the buckets remember before starting
/// over (a bound on the memory they take).
const MAX_TRACKED: usize = 100_000;

/// A token bucket per key: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug)]
struct Buckets<K> {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash> Buckets<K> {
    fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(seconds)` to wait when there is none.
    fn take(&self, key: K, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            buckets.clear();
        }
        let rate = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst.max(1));
        let (tokens, last) = buckets.entry(key).or_insert((burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * rate;
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            // Whole seconds until one token is back, at least one.
            let wait = ((1.0 - *tokens) / rate).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }
}

/// The limits of one roleoutd.
#[derive(Debug)]
pub struct Gate {
    /// KiB of bodies of callers without a session being read at once.
    budget: Arc<Semaphore>,
    enrolments: Buckets<IpAddr>,
    reports: Buckets<MachineId>,
    sign_ins: Buckets<IpAddr>,
}

/// Dashboard sign-ins tried per minute from one source address (a burst
/// of as many): enough for people who mistype, too few to guess passwords.
pub const SIGN_INS_PER_MINUTE: u32 = 10;

/// Why the gate says "not now", and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many requests from this source or machine.
    TooMany {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Too many bodies of callers without a session are being read.
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
}

impl Gate {
    /// A gate: `budget_kib` KiB of bodies of callers without a session at
    /// once, `enrolments_per_minute` per source address (burst of as
    /// many), `reports_per_minute` per machine (burst of eight minutes'
    /// worth, which a run of thousands of components fits in). A rate of
    /// 0 is no limit.
    pub fn new(budget_kib: u32, enrolments_per_minute: u32, reports_per_minute: u32) -> Self {
        Self {
            budget: Arc::new(Semaphore::new(budget_kib.max(64) as usize)),
            enrolments: Buckets::new(enrolments_per_minute, enrolments_per_minute),
            reports: Buckets::new(reports_per_minute, reports_per_minute.saturating_mul(8)),
            sign_ins: Buckets::new(SIGN_INS_PER_MINUTE, SIGN_INS_PER_MINUTE),
        }
    }

    /// One dashboard sign-in tried from `source`.
    pub fn sign_in(&self, source: IpAddr) -> Result<(), Refusal> {
        self.sign_ins
            .take(source, Instant::now())
            .map_err(|retry_after| Refusal::TooMany { retry_after })
    }

    /// Room for one body of a caller without a session, held while it is
    /// read and decoded.
    pub fn unauthenticated_body(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        let kib = u32::try_from(UNAUTHENTICATED_MAX_BODY / 1024).unwrap_or(u32::MAX);
        self.budget
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| Refusal::Busy { retry_after: 2 })
    }

    /// One enrolment from `source`.
    pub fn enrolment(&self, source: IpAddr) -> Result<(), Refusal> {
        self.enrolments
            .take(source, Instant::now())
            .map_err(|retry_after| Refusal::TooMany { retry_after })
    }

    /// One report from `machine`.
    pub fn report(&self, machine: &MachineId) -> Result<(), Refusal> {
        self.reports
            .take(machine.clone(), Instant::now())
            .map_err(|retry_after| Refusal::TooMany { retry_after })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let buckets = Buckets::new(60, 3);
        let start = Instant::now();
        for _ in 0..3 {
            buckets.take("a", start).unwrap();
        }
        assert_eq!(buckets.take("a", start), Err(1));
        // Another key has its own bucket.
        buckets.take("b", start).unwrap();
        // One a second comes back.
        buckets.take("a", start + Duration::from_secs(1)).unwrap();
        assert!(buckets.take("a", start + Duration::from_secs(1)).is_err());
        // Never more than the burst, however long it waited.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            buckets.take("a", later).unwrap();
        }
        assert!(buckets.take("a", later).is_err());
    }

    #[test]
    fn the_budget_of_bodies_without_a_session_is_shared_and_given_back() {
        let gate = Gate::new(128, 0, 0);
        let first = gate.unauthenticated_body().unwrap();
        let second = gate.unauthenticated_body().unwrap();
        assert_eq!(
            gate.unauthenticated_body().unwrap_err(),
            Refusal::Busy { retry_after: 2 }
        );
        drop(first);
        let _third = gate.unauthenticated_body().unwrap();
        drop(second);
        // A rate of 0 is no limit.
        for _ in 0..1000 {
            gate.enrolment("127.0.0.1".parse().unwrap()).unwrap();
        }
    }
}
