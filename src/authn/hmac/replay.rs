//! Replay protection: an accepted signature is "first seen" once in a [`Store`], kept
//! for as long as its signed date can pass the skew check of any verifier sharing it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The replay check: a store, and the largest skew of the verifiers sharing it.
///
/// Keyed by `SHA-256(MAC)` (the MAC decoded): two encodings of one signature are one
/// entry, and so are two spellings of its unsigned `keyId`. An entry lives until its
/// signed date plus the largest skew any verifier sharing this check allows (clones
/// share it: a stricter clone does not shorten what a laxer one needs); replicas
/// sharing a Redis store must use the same skew. Without a skew check an entry never
/// leaves. In the default [`MemoryStore`] a full store refuses new signatures rather
/// than forget a live one, and an entry outlives wall-clock steps (it leaves only when
/// its time has passed on the monotonic clock too).
#[derive(Clone, Debug)]
pub(crate) struct Replay {
    store: SharedStore,
    /// The largest skew (seconds) of any verifier sharing the check; `u64::MAX` once
    /// one had no skew check.
    max_skew: Arc<AtomicU64>,
    /// The verifier's own memory store (setting the clock remakes it on that clock);
    /// `None` for a store the user gave.
    pub(crate) own: Option<MemoryStore>,
}

impl Replay {
    /// A check of its own: a [`MemoryStore`] of `capacity` entries on `clock`.
    pub(crate) fn memory(capacity: usize, clock: Arc<dyn Clock>, skew: Option<Duration>) -> Self {
        let own = MemoryStore::with_clock(capacity, clock);
        let r = Self {
            store: Arc::new(own.clone()),
            max_skew: Arc::default(),
            own: Some(own),
        };
        r.register(skew);
        r
    }

    /// A check on a store the user gave (shared with other replicas, say).
    pub(crate) fn on(store: SharedStore, skew: Option<Duration>) -> Self {
        let r = Self {
            store,
            max_skew: Arc::default(),
            own: None,
        };
        r.register(skew);
        r
    }

    /// The store's name.
    pub(crate) fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// A verifier with `skew` (`None`: no skew check) uses the check.
    pub(crate) fn register(&self, skew: Option<Duration>) {
        let secs = skew.map_or(u64::MAX, |s| s.as_secs().saturating_add(1));
        self.max_skew.fetch_max(secs, Ordering::SeqCst);
    }

    /// Records the signature `mac` dated `date`, at `now`.
    pub(crate) async fn first_use(
        &self,
        mac: &[u8],
        date: SystemTime,
        now: SystemTime,
    ) -> FirstUse {
        let key = Key::digest(Kind::Replay, &[mac]);
        let max_skew = self.max_skew.load(Ordering::SeqCst);
        let ttl = (max_skew != u64::MAX).then(|| {
            let until = crate::clock::add(date, Duration::from_secs(max_skew));
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
