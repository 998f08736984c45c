//! The replay cache: signatures already accepted, bounded, keyed by a digest.

use std::time::Duration;

use quick_cache::sync::{Cache, GuardResult};
use sha2::{Digest, Sha256};

/// Remembers accepted signatures by `SHA-256(len(keyId) || keyId || MAC)`, where MAC is
/// the decoded signature: two encodings of one signature are one entry.
///
/// Bounded: past `capacity` the oldest, least-used entries go, so a flood of distinct
/// valid signatures (which needs the secret) can push one out before its date leaves
/// the skew window. Stale entries need no expiry: a signature's `date` is signed, so
/// once it is outside the window the date check refuses it before this cache is asked.
pub(crate) struct ReplayCache(Cache<[u8; 32], ()>);

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Cache::new(capacity))
    }

    /// Records the signature; `false` when it was already recorded or is being
    /// recorded by a concurrent request (only one of two racing copies wins).
    pub(crate) fn first_use(&self, key_id: &str, mac: &[u8]) -> bool {
        let mut h = Sha256::new();
        h.update((key_id.len() as u64).to_le_bytes());
        h.update(key_id.as_bytes());
        h.update(mac);
        let key: [u8; 32] = h.finalize().into();
        match self.0.get_value_or_guard(&key, Some(Duration::ZERO)) {
            GuardResult::Guard(guard) => {
                let _ = guard.insert(());
                true
            }
            GuardResult::Value(()) | GuardResult::Timeout => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_refused_per_key_id() {
        let c = ReplayCache::new(16);
        assert!(c.first_use("k", b"mac"));
        assert!(!c.first_use("k", b"mac"));
        assert!(c.first_use("k2", b"mac"));
        assert!(c.first_use("k", b"mac2"));
    }

    #[test]
    fn key_id_and_mac_boundaries_do_not_collide() {
        let c = ReplayCache::new(16);
        assert!(c.first_use("ab", b"c"));
        assert!(c.first_use("a", b"bc"));
    }
}
