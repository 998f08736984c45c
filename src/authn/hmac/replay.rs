//! Replay protection: an accepted signature is "first seen" once in a [`Store`], kept
//! for as long as its signed date can pass the skew check of any verifier sharing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::store::{Key, Kind, MemoryStore, SharedStore, StoreError};

/// What the store says of a verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FirstUse {
    /// Not seen before: recorded now.
    Yes,
    /// Already accepted while its date can still pass the skew check.
    Replay,
    /// A bounded store full of live entries: the signature cannot be remembered, so it
    /// is refused rather than forgetting a live one.
    Full,
    /// The store could not answer.
    Unavailable(StoreError),
}

/// How far apart the clocks of replicas sharing a store may be: 30 s. An entry a
/// replica writes lives this much longer than its own clock says it must.
pub(crate) const REPLICA_CLOCK_MARGIN: Duration = Duration::from_secs(30);

/// The skews (seconds; `u64::MAX`: no skew check) of the live verifiers sharing a check.
#[derive(Debug, Default)]
struct Skews {
    next: u64,
    by_verifier: HashMap<u64, u64>,
    /// The largest of `by_verifier`.
    max: u64,
}

impl Skews {
    fn update(&mut self) {
        self.max = self.by_verifier.values().copied().max().unwrap_or(0);
    }
}

/// The replay check: a store, and the skews of the verifiers sharing it.
///
/// Keyed by `SHA-256(MAC)` (the MAC decoded): two encodings of one signature are one
/// entry, and so are two spellings of its unsigned `keyId`. An entry lives until its
/// signed date plus the largest skew of the live verifiers sharing this check (clones
/// share it: a stricter clone does not shorten what a laxer one needs), plus 1 s (the
/// date's rounding), plus [`REPLICA_CLOCK_MARGIN`] on a store the user gave (replicas'
/// clocks differ); replicas sharing a Redis store must use the same skew. Without a skew
/// check an entry never leaves. In the default [`MemoryStore`] a full store refuses new
/// signatures rather than forget a live one, and an entry outlives wall-clock steps (it
/// leaves only when its time has passed on the monotonic clock too).
#[derive(Debug)]
pub(crate) struct Replay {
    store: SharedStore,
    skews: Arc<Mutex<Skews>>,
    /// This verifier's place in `skews`.
    id: u64,
    /// The verifier's own memory store (setting the clock remakes it on that clock);
    /// `None` for a store the user gave.
    pub(crate) own: Option<MemoryStore>,
}

fn secs(skew: Option<Duration>) -> u64 {
    skew.map_or(u64::MAX, |s| s.as_secs())
}

impl Replay {
    /// A check of its own: a [`MemoryStore`] of `capacity` entries on `clock`.
    pub(crate) fn memory(capacity: usize, clock: Arc<dyn Clock>, skew: Option<Duration>) -> Self {
        let own = MemoryStore::with_clock(capacity, clock);
        Self::new(Arc::new(own.clone()), Some(own), skew)
    }

    /// A check on a store the user gave (shared with other replicas, say).
    pub(crate) fn on(store: SharedStore, skew: Option<Duration>) -> Self {
        Self::new(store, None, skew)
    }

    fn new(store: SharedStore, own: Option<MemoryStore>, skew: Option<Duration>) -> Self {
        let mut skews = Skews::default();
        skews.by_verifier.insert(0, secs(skew));
        skews.next = 1;
        skews.update();
        Self {
            store,
            skews: Arc::new(Mutex::new(skews)),
            id: 0,
            own,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Skews> {
        self.skews.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store's name.
    pub(crate) fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// This verifier's skew is now `skew` (`None`: no skew check).
    pub(crate) fn register(&self, skew: Option<Duration>) {
        let mut skews = self.lock();
        skews.by_verifier.insert(self.id, secs(skew));
        skews.update();
    }

    /// Records the signature `mac` dated `date`, at `now`.
    pub(crate) async fn first_use(
        &self,
        mac: &[u8],
        date: SystemTime,
        now: SystemTime,
    ) -> FirstUse {
        let key = Key::digest(Kind::Replay, &[mac]);
        let max_skew = self.lock().max;
        let margin = if self.own.is_some() {
            Duration::from_secs(1)
        } else {
            REPLICA_CLOCK_MARGIN + Duration::from_secs(1)
        };
        let ttl = (max_skew != u64::MAX).then(|| {
            let until =
                crate::clock::add(date, Duration::from_secs(max_skew).saturating_add(margin));
            until
                .duration_since(now)
                .unwrap_or_default()
                .max(Duration::from_secs(1))
        });
        match self.store.insert_new(key, b"1", ttl).await {
            Ok(true) => FirstUse::Yes,
            Ok(false) => FirstUse::Replay,
            Err(StoreError::Full { .. }) => FirstUse::Full,
            Err(e) => FirstUse::Unavailable(e),
        }
    }
}

impl Clone for Replay {
    /// A clone is another verifier sharing the check, with the same skew until it sets
    /// its own.
    fn clone(&self) -> Self {
        let mut skews = self.lock();
        let id = skews.next;
        skews.next = skews.next.wrapping_add(1);
        let skew = skews.by_verifier.get(&self.id).copied().unwrap_or(u64::MAX);
        skews.by_verifier.insert(id, skew);
        skews.update();
        drop(skews);
        Self {
            store: self.store.clone(),
            skews: self.skews.clone(),
            id,
            own: self.own.clone(),
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let mut skews = self.lock();
        skews.by_verifier.remove(&self.id);
        skews.update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const NOW: u64 = 1_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn second_use_is_refused() {
        let clock = ManualClock::at_unix(NOW);
        let r = Replay::memory(16, Arc::new(clock), Some(Duration::from_secs(300)));
        run(async {
            assert_eq!(r.first_use(b"mac", at(NOW), at(NOW)).await, FirstUse::Yes);
            assert_eq!(
                r.first_use(b"mac", at(NOW), at(NOW)).await,
                FirstUse::Replay
            );
            assert_eq!(r.first_use(b"mac2", at(NOW), at(NOW)).await, FirstUse::Yes);
        });
    }

    #[test]
    fn a_full_store_of_live_entries_refuses_instead_of_forgetting() {
        let clock = ManualClock::at_unix(NOW);
        let r = Replay::memory(4, Arc::new(clock.clone()), Some(Duration::from_secs(300)));
        run(async {
            for i in 0..4u8 {
                assert_eq!(r.first_use(&[i], at(NOW), at(NOW)).await, FirstUse::Yes);
            }
            assert_eq!(r.first_use(b"new", at(NOW), at(NOW)).await, FirstUse::Full);
            clock.advance(Duration::from_secs(300));
            for i in 0..4u8 {
                assert_eq!(
                    r.first_use(&[i], at(NOW), at(NOW + 300)).await,
                    FirstUse::Replay
                );
            }
        });
    }

    #[test]
    fn entries_live_until_date_plus_skew_and_then_leave() {
        let clock = ManualClock::at_unix(NOW);
        let r = Replay::memory(16, Arc::new(clock.clone()), Some(Duration::from_secs(300)));
        run(async {
            // Dated 290 s ago: remembered until NOW + 10 (+1 s of date rounding).
            assert_eq!(
                r.first_use(b"a", at(NOW - 290), at(NOW)).await,
                FirstUse::Yes
            );
            clock.advance(Duration::from_secs(10));
            assert_eq!(
                r.first_use(b"a", at(NOW - 290), at(NOW + 10)).await,
                FirstUse::Replay
            );
            clock.advance(Duration::from_secs(1));
            assert_eq!(
                r.first_use(b"a", at(NOW - 290), at(NOW + 11)).await,
                FirstUse::Yes
            );
        });
    }

    #[test]
    fn a_longer_skew_of_a_sharing_verifier_keeps_entries_longer() {
        let clock = ManualClock::at_unix(NOW);
        let r = Replay::memory(16, Arc::new(clock.clone()), Some(Duration::from_secs(10)));
        let lax = r.clone();
        lax.register(Some(Duration::from_secs(300)));
        run(async {
            assert_eq!(r.first_use(b"m", at(NOW), at(NOW)).await, FirstUse::Yes);
            clock.advance(Duration::from_secs(200));
            assert_eq!(
                lax.first_use(b"m", at(NOW), at(NOW + 200)).await,
                FirstUse::Replay
            );
        });
    }

    #[test]
    fn entries_without_a_skew_check_never_leave() {
        let clock = ManualClock::at_unix(NOW);
        let r = Replay::memory(16, Arc::new(clock.clone()), None);
        run(async {
            assert_eq!(r.first_use(b"a", at(NOW), at(NOW)).await, FirstUse::Yes);
            clock.advance(Duration::from_secs(100_000_000));
            assert_eq!(
                r.first_use(b"a", at(NOW), at(NOW + 100_000_000)).await,
                FirstUse::Replay
            );
        });
    }
}
