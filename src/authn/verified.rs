//! The verified-result cache the schemes share (JWT tokens, Basic credentials): an
//! accepted credential's principal, kept until the earlier of an expiry and a TTL,
//! for the configuration that verified it and the key generation it was verified
//! under. Only accepted credentials go in; the layer still checks policy on every call.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quick_cache::Equivalent;

use crate::Principal;
use crate::clock::Clock;

/// Identifies one configuration of an authenticator. Every builder call that changes
/// what is accepted or what a principal holds takes a fresh one, so an entry cached
/// under one configuration never serves another, even when clones share the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConfigId(u64);

impl ConfigId {
    /// An id no other configuration in this process has.
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A cache key: the configuration, then the credential's key. Hashes as the two in
/// order, so a [`Lookup`] over a borrowed form finds it.
#[derive(PartialEq, Eq)]
pub(crate) struct Key<K> {
    config: ConfigId,
    key: K,
}

impl<K: Hash> Hash for Key<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.config.hash(state);
        self.key.hash(state);
    }
}

/// A lookup by a borrowed key (`&str` for a cached token).
struct Lookup<'a, Q: ?Sized> {
    config: ConfigId,
    key: &'a Q,
}

impl<Q: Hash + ?Sized> Hash for Lookup<'_, Q> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.config.hash(state);
        self.key.hash(state);
    }
}

impl<K: Borrow<Q>, Q: Eq + ?Sized> Equivalent<Key<K>> for Lookup<'_, Q> {
    fn equivalent(&self, key: &Key<K>) -> bool {
        self.config == key.config && self.key == key.key.borrow()
    }
}

#[derive(Clone)]
struct Entry {
    principal: Principal,
    /// Unix seconds before which the entry serves: min(expiry, cached at + TTL).
    until: u64,
    /// The TTL on the monotonic clock too: a wall clock stepped back never stretches it.
    monotonic_until: Duration,
    /// The key source's generation the credential was verified under.
    generation: u64,
}

/// A bounded map from accepted credentials to their principals. Eviction only costs a
/// re-verification: nothing security depends on is lost when an entry goes.
pub(crate) struct VerifiedCache<K> {
    entries: quick_cache::sync::Cache<Key<K>, Entry>,
    ttl: u64,
}

impl<K: Hash + Eq + Send + Sync + 'static> VerifiedCache<K> {
    /// `capacity` entries, each serving at most `ttl` (whole seconds, saturating).
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            ttl: ttl.as_secs(),
        }
    }

    /// The principal `key` was verified as under `config`, if that still holds now (by
    /// `clock`'s wall and monotonic time) under key generation `generation`.
    pub(crate) fn get<Q>(
        &self,
        config: ConfigId,
        key: &Q,
        clock: &dyn Clock,
        generation: u64,
    ) -> Option<Principal>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let lookup = Lookup { config, key };
        let entry = self.entries.get(&lookup)?;
        if clock.unix_seconds() < entry.until
            && clock.monotonic() < entry.monotonic_until
            && entry.generation == generation
        {
            return Some(entry.principal);
        }
        self.entries.remove(&lookup);
        None
    }

    /// Remembers an accepted credential, verified now (by `clock`) under `config` and
    /// `generation`, valid until `expires_at` if it has an expiry.
    pub(crate) fn insert(
        &self,
        config: ConfigId,
        key: K,
        principal: Principal,
        expires_at: Option<u64>,
        clock: &dyn Clock,
        generation: u64,
    ) {
        let now = clock.unix_seconds();
        let monotonic_until = clock
            .monotonic()
            .saturating_add(Duration::from_secs(self.ttl));
        let until = now
            .saturating_add(self.ttl)
            .min(expires_at.unwrap_or(u64::MAX));
        if until <= now {
            return;
        }
        self.entries.insert(
            Key { config, key },
            Entry {
                principal,
                until,
                monotonic_until,
                generation,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<K: Hash + Eq> fmt::Debug for VerifiedCache<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("ttl_secs", &self.ttl)
            .field("capacity", &self.entries.capacity())
            .field("len", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn an_entry_serves_only_its_configuration() {
        let c: VerifiedCache<String> = VerifiedCache::new(Duration::from_secs(60), 16);
        let clock = ManualClock::at_unix(1_000);
        let (a, b) = (ConfigId::fresh(), ConfigId::fresh());
        assert_ne!(a, b);
        let ada = Principal::new("ada", "jwt");
        c.insert(a, "tok".into(), ada, None, &clock, 0);
        clock.advance(Duration::from_secs(1));
        assert_eq!(c.get(a, "tok", &clock, 0).unwrap().subject(), "ada");
        assert!(c.get(b, "tok", &clock, 0).is_none());
        // Both configurations' entries coexist.
        let bob = Principal::new("bob", "jwt");
        c.insert(b, "tok".into(), bob, None, &clock, 0);
        assert_eq!(c.get(a, "tok", &clock, 0).unwrap().subject(), "ada");
        assert_eq!(c.get(b, "tok", &clock, 0).unwrap().subject(), "bob");
    }

    #[test]
    fn a_huge_ttl_saturates() {
        let c: VerifiedCache<[u8; 32]> = VerifiedCache::new(Duration::MAX, 16);
        let clock = ManualClock::at_unix(u64::MAX / 1_000_000 - 1);
        clock.advance(Duration::MAX);
        let cfg = ConfigId::fresh();
        c.insert(
            cfg,
            [1; 32],
            Principal::new("ada", "basic"),
            None,
            &clock,
            0,
        );
        assert!(c.get(cfg, &[1; 32], &clock, 0).is_some());
    }

    #[test]
    fn the_ttl_holds_on_the_monotonic_clock_when_the_wall_clock_steps_back() {
        let c: VerifiedCache<String> = VerifiedCache::new(Duration::from_secs(30), 16);
        let clock = ManualClock::at_unix(10_000);
        let cfg = ConfigId::fresh();
        c.insert(
            cfg,
            "tok".into(),
            Principal::new("ada", "jwt"),
            None,
            &clock,
            0,
        );
        clock.set_unix(10_000 - 3_600);
        clock.advance(Duration::from_secs(29));
        assert!(c.get(cfg, "tok", &clock, 0).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(c.get(cfg, "tok", &clock, 0).is_none());
    }
}
