//! One fetch per content at a time (and one packing per imaging archive,
//! `ServerState::archives`): when many machines ask a roleoutd for
//! a payload it lacks at once (a site's morning, a new instance behind the
//! balancer), the first asker brings it from the upstream and the others
//! wait for it and are served from the store, instead of each bringing the
//! same bytes again. When that fetch fails, those waiting meanwhile are
//! given its failure at once rather than each trying in turn (behind an
//! upstream that is down, the last of a thousand would wait a thousand
//! timeouts).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// How recent a failed fetch must be for a waiter to take its failure
/// instead of trying again.
pub const SHARED_FAILURE: Duration = Duration::from_secs(5);

/// The lock of one key: the last failure of its holders, if any.
type Lock<E> = tokio::sync::Mutex<Option<(Instant, E)>>;

/// A lock per key, made on first use and forgotten once nobody holds or
/// waits for it; each remembers its holders' last failure (of type `E`).
#[derive(Debug)]
pub struct Flights<K, E> {
    locks: Mutex<HashMap<K, Weak<Lock<E>>>>,
}

impl<K, E> Default for Flights<K, E> {
    fn default() -> Self {
        Flights {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

/// A key's turn; it lasts as long as this value.
pub struct Turn<E> {
    guard: OwnedMutexGuard<Option<(Instant, E)>>,
}

impl<E: Clone> Turn<E> {
    /// The failure of an earlier holder of this key within
    /// [`SHARED_FAILURE`], to be given instead of trying again.
    pub fn recent_failure(&self) -> Option<E> {
        match &*self.guard {
            Some((when, failure)) if when.elapsed() < SHARED_FAILURE => Some(failure.clone()),
            _ => None,
        }
    }

    /// Records that this holder's attempt failed with `failure`.
    pub fn failed(&mut self, failure: E) {
        *self.guard = Some((Instant::now(), failure));
    }
}

impl<K: Eq + Hash + Clone, E> Flights<K, E> {
    /// Waits for `key`'s turn.
    pub async fn turn(&self, key: &K) -> Turn<E> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Keys whose last holder is gone are dropped as others come.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(None));
                    locks.insert(key.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        Turn {
            guard: lock.lock_owned().await,
        }
    }

    /// How many keys are held or waited for now.
    pub fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|lock| lock.strong_count() > 0)
            .count()
    }

    /// Whether no key is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// What the payload route does with its turn: check the store, take a
    /// recent failure, or fetch (`succeed` says whether the fetch does).
    async fn ask(
        flights: &Flights<u32, String>,
        stored: &Mutex<bool>,
        fetches: &AtomicUsize,
        succeed: bool,
    ) -> Result<(), String> {
        let mut turn = flights.turn(&1).await;
        if *stored.lock().unwrap() {
            return Ok(());
        }
        if let Some(failure) = turn.recent_failure() {
            return Err(failure);
        }
        fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if succeed {
            *stored.lock().unwrap() = true;
            Ok(())
        } else {
            turn.failed("upstream down".to_owned());
            Err("upstream down".to_owned())
        }
    }

    /// Eight askers at once; the first's fetch succeeds or fails as
    /// `succeed` says. Returns how many fetched and what each got.
    async fn eight_askers(succeed: bool) -> (usize, Vec<Result<(), String>>) {
        let flights = Arc::new(Flights::<u32, String>::default());
        let stored = Arc::new(Mutex::new(false));
        let fetches = Arc::new(AtomicUsize::new(0));
        let askers: Vec<_> = (0..8)
            .map(|_| {
                let (flights, stored, fetches) = (flights.clone(), stored.clone(), fetches.clone());
                tokio::spawn(async move { ask(&flights, &stored, &fetches, succeed).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for asker in askers {
            outcomes.push(asker.await.unwrap());
        }
        assert!(flights.is_empty(), "no lock is kept once nobody waits");
        (fetches.load(Ordering::SeqCst), outcomes)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn askers_of_one_key_share_one_fetch() {
        let (fetches, outcomes) = eight_askers(true).await;
        assert_eq!(fetches, 1, "one fetch for eight askers");
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn askers_waiting_on_a_failed_fetch_get_its_failure_at_once() {
        let (fetches, outcomes) = eight_askers(false).await;
        assert_eq!(fetches, 1, "the others did not try again");
        assert!(
            outcomes
                .iter()
                .all(|outcome| outcome == &Err("upstream down".to_owned())),
            "{outcomes:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn another_key_does_not_wait() {
        let flights = Flights::<u32, String>::default();
        let _held = flights.turn(&1).await;
        let other = tokio::time::timeout(Duration::from_secs(5), flights.turn(&2)).await;
        assert!(other.is_ok(), "key 2 waited for key 1");
    }
}
