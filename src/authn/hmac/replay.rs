//! The replay cache: signatures already accepted, each remembered for as long as its
//! signed date can pass the skew check, bounded, keyed by a digest.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// What the cache says of a verified signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstUse {
    /// Not seen before: recorded now.
    Yes,
    /// Already accepted while its date can still pass the skew check.
    Replay,
    /// Every entry is still live and the cache is at capacity: the signature cannot be
    /// remembered, so it is refused rather than forgetting a live one.
    Full,
}

/// Remembers accepted signatures by `SHA-256(len(keyId) || keyId || MAC)`, where MAC is
/// the decoded signature: two encodings of one signature are one entry.
///
/// Each entry lives until its expiry (the signed date plus the allowed skew: after
/// that the date check refuses the signature before this cache is asked) and is never
/// dropped earlier. Entries are grouped by expiry second, so expired ones leave in
/// whole groups, at amortized constant cost per entry. At capacity with every entry
/// live, new signatures are refused ([`FirstUse::Full`]). Without a skew check the
/// expiry is `u64::MAX`: entries never leave, and the cache refuses new signatures
/// once full.
///
/// Memory: about 110 bytes per entry (a hash map entry and a digest in its expiry
/// group), so 7.5 MB at the default 65 536 entries.
pub(crate) struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<[u8; 32], u64>,
    by_expiry: BTreeMap<u64, Vec<[u8; 32]>>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records the signature, to be remembered while `now <= expires_at` (unix seconds).
    pub(crate) fn first_use(
        &self,
        key_id: &str,
        mac: &[u8],
        expires_at: u64,
        now: u64,
    ) -> FirstUse {
        let mut h = Sha256::new();
        h.update((key_id.len() as u64).to_le_bytes());
        h.update(key_id.as_bytes());
        h.update(mac);
        let key: [u8; 32] = h.finalize().into();

        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.purge(now);
        if inner.seen.contains_key(&key) {
            return FirstUse::Replay;
        }
        if inner.seen.len() >= self.capacity {
            return FirstUse::Full;
        }
        inner.seen.insert(key, expires_at);
        inner.by_expiry.entry(expires_at).or_default().push(key);
        FirstUse::Yes
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .seen
            .len()
    }
}

impl Inner {
    /// Drops the groups whose expiry is before `now`.
    fn purge(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for key in entry.remove() {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    #[test]
    fn second_use_is_refused_per_key_id() {
        let c = ReplayCache::new(16);
        assert_eq!(c.first_use("k", b"mac", NOW + 300, NOW), FirstUse::Yes);
        assert_eq!(c.first_use("k", b"mac", NOW + 300, NOW), FirstUse::Replay);
        assert_eq!(c.first_use("k2", b"mac", NOW + 300, NOW), FirstUse::Yes);
        assert_eq!(c.first_use("k", b"mac2", NOW + 300, NOW), FirstUse::Yes);
    }

    #[test]
    fn key_id_and_mac_boundaries_do_not_collide() {
        let c = ReplayCache::new(16);
        assert_eq!(c.first_use("ab", b"c", NOW + 1, NOW), FirstUse::Yes);
        assert_eq!(c.first_use("a", b"bc", NOW + 1, NOW), FirstUse::Yes);
    }

    #[test]
    fn a_full_cache_of_live_entries_refuses_instead_of_forgetting() {
        let c = ReplayCache::new(4);
        for i in 0..4u8 {
            assert_eq!(c.first_use("k", &[i], NOW + 300, NOW), FirstUse::Yes);
        }
        assert_eq!(c.first_use("k", b"new", NOW + 300, NOW), FirstUse::Full);
        // Every live entry is still remembered, however many were refused.
        for _ in 0..1_000 {
            c.first_use("k", b"flood", NOW + 300, NOW + 10);
        }
        for i in 0..4u8 {
            assert_eq!(
                c.first_use("k", &[i], NOW + 300, NOW + 299),
                FirstUse::Replay
            );
        }
    }

    #[test]
    fn entries_live_until_their_expiry_and_then_leave() {
        let c = ReplayCache::new(3);
        assert_eq!(c.first_use("k", b"a", NOW + 10, NOW), FirstUse::Yes);
        assert_eq!(c.first_use("k", b"b", NOW + 20, NOW), FirstUse::Yes);
        assert_eq!(c.first_use("k", b"c", NOW + 20, NOW), FirstUse::Yes);
        // At its expiry second it is still remembered.
        assert_eq!(c.first_use("k", b"a", NOW + 10, NOW + 10), FirstUse::Replay);
        // One second later its group is gone, freeing room.
        assert_eq!(c.first_use("k", b"d", NOW + 30, NOW + 11), FirstUse::Yes);
        assert_eq!(c.len(), 3);
        assert_eq!(c.first_use("k", b"e", NOW + 30, NOW + 11), FirstUse::Full);
        assert_eq!(c.first_use("k", b"e", NOW + 30, NOW + 21), FirstUse::Yes);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn entries_without_expiry_never_leave() {
        let c = ReplayCache::new(2);
        assert_eq!(c.first_use("k", b"a", u64::MAX, NOW), FirstUse::Yes);
        assert_eq!(
            c.first_use("k", b"a", u64::MAX, u64::MAX - 1),
            FirstUse::Replay
        );
    }
}
