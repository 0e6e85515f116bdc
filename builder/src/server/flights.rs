//! One fetch per content at a time: when many machines ask a roleoutd for
//! a payload it lacks at once (a site's morning, a new instance behind the
//! balancer), the first asker brings it from the upstream and the others
//! wait for it and are served from the store, instead of each bringing the
//! same bytes again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

/// A lock per key, made on first use and forgotten once nobody holds or
/// waits for it.
#[derive(Debug)]
pub struct Flights<K> {
    locks: Mutex<HashMap<K, Weak<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Flights {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> Flights<K> {
    /// Waits for `key`'s turn; the turn lasts as long as the guard.
    pub async fn turn(&self, key: &K) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Keys whose last holder is gone are dropped as others come.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
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
    use std::time::Duration;

    use super::*;

    /// Eight askers of one missing content, each checking the store after
    /// its turn as the payload route does: one fetch; another content is
    /// fetched meanwhile, not after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn askers_of_one_key_take_turns_and_other_keys_do_not_wait() {
        let flights = Arc::new(Flights::<u32>::default());
        let stored = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut askers = Vec::new();
        for _ in 0..8 {
            let (flights, stored, fetches) = (flights.clone(), stored.clone(), fetches.clone());
            askers.push(tokio::spawn(async move {
                let _turn = flights.turn(&1).await;
                if !stored.lock().unwrap().contains(&1) {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    stored.lock().unwrap().insert(1);
                }
            }));
        }
        // Wait until the first asker holds the turn of key 1.
        for _ in 0..100 {
            if fetches.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Key 2 gets its turn while key 1's fetch goes on.
        let other = tokio::time::timeout(Duration::from_millis(200), flights.turn(&2)).await;
        assert!(other.is_ok(), "another key waited for key 1");
        drop(other);
        for asker in askers {
            asker.await.unwrap();
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "one fetch for eight askers"
        );
        assert!(flights.is_empty(), "no lock is kept once nobody waits");
    }
}
