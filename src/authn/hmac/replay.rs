//! The replay cache: signatures already accepted, each remembered for as long as its
//! signed date can pass the skew check of any verifier sharing the cache, bounded,
//! keyed by a digest of the MAC.

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

/// Remembers accepted signatures by `SHA-256(MAC)`, the MAC decoded: two encodings of
/// one signature are one entry, and so are two spellings of its (unsigned) `keyId`.
///
/// Entries are grouped by their signed date (second). A group leaves only when its date
/// plus the largest skew any verifier sharing the cache allows has passed, on the wall
/// clock and, measured from when its entries came in, on the monotonic clock too: a
/// wall clock stepped forward and back (NTP, a resumed VM) does not forget a live
/// signature, and neither does a clone with a longer window. Without a skew check a
/// signature never leaves: the cache then refuses new signatures once full. At
/// capacity with every entry live, a new signature is refused ([`FirstUse::Full`]).
///
/// Memory: about 110 bytes per entry (a hash map entry and a digest in its group), so
/// 7.5 MB at the default 65 536 entries; around 200 bytes per entry are seen resident
/// at capacity with the hash map's spare room.
pub(crate) struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<[u8; 32], u64>,
    by_date: BTreeMap<u64, Group>,
    /// The largest skew (seconds) of any verifier that used the cache; `u64::MAX`
    /// once one had no skew check.
    max_skew: u64,
}

struct Group {
    keys: Vec<[u8; 32]>,
    /// The largest (monotonic − wall) offset, in seconds, at which an entry came in:
    /// the group's monotonic deadline is its wall expiry plus this.
    max_offset: i128,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records the signature `mac` dated `date` (unix seconds), verified with `skew`
    /// seconds (`None`: no skew check) at `now` (wall, unix seconds) and `mono`
    /// (monotonic seconds).
    pub(crate) fn first_use(
        &self,
        mac: &[u8],
        date: u64,
        skew: Option<u64>,
        now: u64,
        mono: u64,
    ) -> FirstUse {
        let key: [u8; 32] = Sha256::digest(mac).into();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.max_skew = inner.max_skew.max(skew.unwrap_or(u64::MAX));
        inner.purge(now, mono);
        if inner.seen.contains_key(&key) {
            return FirstUse::Replay;
        }
        if inner.seen.len() >= self.capacity {
            return FirstUse::Full;
        }
        inner.seen.insert(key, date);
        let offset = i128::from(mono) - i128::from(now);
        let group = inner.by_date.entry(date).or_insert(Group {
            keys: Vec::new(),
            max_offset: offset,
        });
        group.keys.push(key);
        group.max_offset = group.max_offset.max(offset);
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
    /// Drops the oldest groups whose window has passed on both clocks.
    fn purge(&mut self, now: u64, mono: u64) {
        let max_skew = self.max_skew;
        while let Some(entry) = self.by_date.first_entry() {
            let expiry = entry.key().saturating_add(max_skew);
            let mono_deadline = i128::from(expiry) + entry.get().max_offset;
            if max_skew == u64::MAX || now <= expiry || i128::from(mono) <= mono_deadline {
                break;
            }
            for key in entry.remove().keys {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    /// First use at wall `now`, with the monotonic clock at `now` too.
    fn first(c: &ReplayCache, mac: &[u8], date: u64, now: u64) -> FirstUse {
        c.first_use(mac, date, Some(300), now, now)
    }

    #[test]
    fn second_use_is_refused() {
        let c = ReplayCache::new(16);
        assert_eq!(first(&c, b"mac", NOW, NOW), FirstUse::Yes);
        assert_eq!(first(&c, b"mac", NOW, NOW), FirstUse::Replay);
        assert_eq!(first(&c, b"mac2", NOW, NOW), FirstUse::Yes);
    }

    #[test]
    fn a_full_cache_of_live_entries_refuses_instead_of_forgetting() {
        let c = ReplayCache::new(4);
        for i in 0..4u8 {
            assert_eq!(first(&c, &[i], NOW, NOW), FirstUse::Yes);
        }
        assert_eq!(first(&c, b"new", NOW, NOW), FirstUse::Full);
        for _ in 0..1_000 {
            first(&c, b"flood", NOW, NOW + 10);
        }
        for i in 0..4u8 {
            assert_eq!(first(&c, &[i], NOW, NOW + 300), FirstUse::Replay);
        }
    }

    #[test]
    fn entries_live_until_date_plus_skew_and_then_leave() {
        let c = ReplayCache::new(3);
        assert_eq!(first(&c, b"a", NOW - 290, NOW), FirstUse::Yes); // until NOW + 10
        assert_eq!(first(&c, b"b", NOW - 280, NOW), FirstUse::Yes); // until NOW + 20
        assert_eq!(first(&c, b"c", NOW - 280, NOW), FirstUse::Yes);
        assert_eq!(first(&c, b"a", NOW - 290, NOW + 10), FirstUse::Replay);
        assert_eq!(first(&c, b"d", NOW + 10, NOW + 11), FirstUse::Yes);
        assert_eq!(c.len(), 3);
        assert_eq!(first(&c, b"e", NOW + 11, NOW + 11), FirstUse::Full);
        assert_eq!(first(&c, b"e", NOW + 21, NOW + 21), FirstUse::Yes);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_longer_skew_of_a_sharing_verifier_keeps_entries_longer() {
        let c = ReplayCache::new(16);
        assert_eq!(c.first_use(b"m", NOW, Some(10), NOW, NOW), FirstUse::Yes);
        // A clone with a 300 s window uses the same cache: the entry must last 300 s.
        assert_eq!(
            c.first_use(b"m", NOW, Some(300), NOW + 200, NOW + 200),
            FirstUse::Replay
        );
    }

    #[test]
    fn a_wall_clock_stepped_forward_and_back_forgets_nothing() {
        let c = ReplayCache::new(16);
        assert_eq!(c.first_use(b"m", NOW, Some(300), NOW, 5), FirstUse::Yes);
        // The wall clock jumps a day ahead (monotonic: 1 s later), then back.
        c.first_use(b"other", NOW + 86_400, Some(300), NOW + 86_400, 6);
        assert_eq!(
            c.first_use(b"m", NOW, Some(300), NOW + 1, 7),
            FirstUse::Replay
        );
    }

    #[test]
    fn entries_without_a_skew_check_never_leave() {
        let c = ReplayCache::new(2);
        assert_eq!(c.first_use(b"a", NOW, None, NOW, 0), FirstUse::Yes);
        assert_eq!(
            c.first_use(b"a", NOW, Some(1), u64::MAX - 1, u64::MAX - 1),
            FirstUse::Replay
        );
    }
}
