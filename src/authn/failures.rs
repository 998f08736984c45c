//! [`FailureLimits`]: failed logins counted per user and per peer over a window, so a
//! password guesser gets a bounded number of tries, and once limited costs nothing
//! (no password hash is computed).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::AuthError;

/// How many failed logins are allowed per user name and per peer address within a
/// window, and how many of those are tracked at once.
///
/// Defaults: 10 failures per user and 100 per peer address in 5 minutes (a limited
/// caller is answered `RESOURCE_EXHAUSTED` "too many failed logins; retry later" until
/// its window ends; a success clears the user's count), for up to 100 000 users and
/// peers at once. Names that do not exist are counted like real ones, so the answer
/// never tells which users exist. A login whose verification is cached is neither
/// limited nor counted (the cache proves the password), so a guesser who locked a user
/// out does not lock out that user's running clients. The peer is the TCP peer tonic reports; behind a
/// proxy every caller shares the proxy's address, so raise `per_peer` there (or set it
/// to 0 to count users only).
///
/// When every tracked entry is still inside its window and the table is full, a
/// caller that is not tracked cannot be counted, so its login is refused
/// (`UNAVAILABLE`, logged at warn) rather than let it guess uncounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    per_user: u32,
    per_peer: u32,
    window: Duration,
    capacity: usize,
}

impl Default for FailureLimits {
    fn default() -> Self {
        Self {
            per_user: 10,
            per_peer: 100,
            window: Duration::from_secs(300),
            capacity: 100_000,
        }
    }
}

impl FailureLimits {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Failures allowed per user name in a window; 0 does not count users.
    pub fn per_user(mut self, failures: u32) -> Self {
        self.per_user = failures;
        self
    }

    /// Failures allowed per peer address in a window; 0 does not count peers.
    pub fn per_peer(mut self, failures: u32) -> Self {
        self.per_peer = failures;
        self
    }

    /// The window failures are counted over (at least 1 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_secs(1));
        self
    }

    /// How many users and peers are tracked at once (about 80 bytes each).
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }
}

/// A counted failure's key: a digest of `u:` + user name or `p:` + peer address.
type Key = [u8; 32];

#[derive(Clone, Copy)]
struct Count {
    /// Unix second the window started.
    since: u64,
    failures: u32,
}

/// The counters. One mutex: taken twice per Basic login that reaches a password check.
pub(crate) struct FailureLimiter {
    limits: FailureLimits,
    counts: Mutex<HashMap<Key, Count>>,
}

fn key(kind: u8, value: &[u8]) -> Key {
    let mut h = Sha256::new();
    h.update([kind, b':']);
    h.update(value);
    h.finalize().into()
}

fn user_key(user: &str) -> Key {
    key(b'u', user.as_bytes())
}

/// An IPv4 address, or an IPv6 /64: one host is routinely given a whole /64, so its
/// addresses count as one peer.
fn peer_key(peer: IpAddr) -> Key {
    match peer.to_canonical() {
        IpAddr::V4(ip) => key(b'4', &ip.octets()),
        IpAddr::V6(ip) => {
            let [a, b, c, d, ..] = ip.segments();
            let prefix: Vec<u8> = [a, b, c, d].iter().flat_map(|s| s.to_be_bytes()).collect();
            key(b'6', &prefix)
        }
    }
}

pub(crate) fn limited() -> AuthError {
    AuthError::resource_exhausted("too many failed logins; retry later")
}

impl FailureLimiter {
    pub(crate) fn new(limits: FailureLimits) -> Self {
        Self {
            limits,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, user: &str, peer: Option<IpAddr>) -> [(Option<Key>, u32); 2] {
        let l = &self.limits;
        [
            ((l.per_user > 0).then(|| user_key(user)), l.per_user),
            (peer.filter(|_| l.per_peer > 0).map(peer_key), l.per_peer),
        ]
    }

    /// Counts a login attempt by `user` from `peer` before its password is checked,
    /// under one lock, so concurrent guesses cannot all pass before the first failure
    /// is counted. Refuses an attempt over a limit, or one that cannot be counted
    /// because the table is full of live entries. The attempt stays counted as a
    /// failure unless [`succeeded`](Self::succeeded) or [`refund`](Self::refund) says
    /// otherwise.
    pub(crate) fn attempt(
        &self,
        user: &str,
        peer: Option<IpAddr>,
        now: u64,
    ) -> Result<(), AuthError> {
        let window = self.limits.window.as_secs();
        let keys = self.keys(user, peer);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut untracked = 0;
        for (key, limit) in &keys {
            let Some(key) = key else { continue };
            match counts.get(key) {
                Some(c) if now < c.since.saturating_add(window) => {
                    if c.failures >= *limit {
                        return Err(limited());
                    }
                }
                Some(_) => {}
                None => untracked += 1,
            }
        }
        if untracked > 0 && counts.len().saturating_add(untracked) > self.limits.capacity {
            purge(&mut counts, now, window);
            if counts.len().saturating_add(untracked) > self.limits.capacity {
                tracing::warn!(
                    capacity = self.limits.capacity,
                    "grpc-auth: failed-login table full of live entries; login refused"
                );
                return Err(AuthError::unavailable(
                    "too many failed logins in progress; retry later",
                ));
            }
        }
        for key in keys.into_iter().filter_map(|(k, _)| k) {
            let c = counts.entry(key).or_insert(Count {
                since: now,
                failures: 0,
            });
            if now >= c.since.saturating_add(window) {
                *c = Count {
                    since: now,
                    failures: 0,
                };
            }
            c.failures = c.failures.saturating_add(1);
        }
        Ok(())
    }

    /// The attempt succeeded: the user's count is cleared, the peer's attempt given back.
    pub(crate) fn succeeded(&self, user: &str, peer: Option<IpAddr>) {
        let [(user_key, _), (peer_key, _)] = self.keys(user, peer);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = user_key {
            counts.remove(&key);
        }
        if let Some(key) = peer_key {
            give_back(&mut counts, &key);
        }
    }

    /// The password was never checked (the server was busy): the attempt is given back.
    pub(crate) fn refund(&self, user: &str, peer: Option<IpAddr>) {
        let keys = self.keys(user, peer);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys.into_iter().filter_map(|(k, _)| k) {
            give_back(&mut counts, &key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One attempt less for `key`; the entry goes when none is left.
fn give_back(counts: &mut HashMap<Key, Count>, key: &Key) {
    if let Some(c) = counts.get_mut(key) {
        c.failures = c.failures.saturating_sub(1);
        if c.failures == 0 {
            counts.remove(key);
        }
    }
}

/// Drops the entries whose window has ended.
fn purge(counts: &mut HashMap<Key, Count>, now: u64, window: u64) {
    counts.retain(|_, c| now < c.since.saturating_add(window));
}

impl fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const NOW: u64 = 1_000_000;
    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

    fn limiter(per_user: u32, per_peer: u32) -> FailureLimiter {
        FailureLimiter::new(
            FailureLimits::new()
                .per_user(per_user)
                .per_peer(per_peer)
                .window(Duration::from_secs(60)),
        )
    }

    #[test]
    fn a_user_is_limited_after_its_failures_until_the_window_ends() {
        let l = limiter(3, 0);
        for _ in 0..3 {
            l.attempt("ada", PEER, NOW).unwrap();
        }
        assert_eq!(l.attempt("ada", PEER, NOW), Err(limited()));
        assert_eq!(limited().code(), tonic::Code::ResourceExhausted);
        assert!(
            l.attempt("bob", PEER, NOW).is_ok(),
            "other users are not limited"
        );
        assert_eq!(l.attempt("ada", PEER, NOW + 59), Err(limited()));
        assert!(l.attempt("ada", PEER, NOW + 60).is_ok(), "a new window");
    }

    #[test]
    fn a_peer_is_limited_across_user_names() {
        let l = limiter(0, 3);
        for i in 0..3 {
            l.attempt(&format!("user-{i}"), PEER, NOW).unwrap();
        }
        assert_eq!(l.attempt("someone-else", PEER, NOW), Err(limited()));
        let other = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(l.attempt("someone-else", other, NOW).is_ok());
        assert!(
            l.attempt("someone-else", None, NOW).is_ok(),
            "no peer known"
        );
    }

    #[test]
    fn an_ipv6_64_is_one_peer() {
        let l = limiter(0, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        l.attempt("u1", Some(a), NOW).unwrap();
        l.attempt("u2", Some(b), NOW).unwrap();
        assert_eq!(l.attempt("u3", Some(a), NOW), Err(limited()));
        assert!(l.attempt("u3", Some(c), NOW).is_ok(), "another /64");
    }

    #[test]
    fn success_clears_the_user_and_gives_the_peer_attempt_back() {
        let l = limiter(2, 3);
        l.attempt("ada", PEER, NOW).unwrap();
        l.succeeded("ada", PEER);
        l.attempt("ada", PEER, NOW).unwrap(); // a failure
        l.attempt("ada", PEER, NOW).unwrap(); // a failure
        assert_eq!(l.attempt("ada", PEER, NOW), Err(limited()), "user at 2");
        l.attempt("bob", PEER, NOW).unwrap(); // the peer's third
        assert_eq!(l.attempt("carol", PEER, NOW), Err(limited()), "peer at 3");
        l.refund("bob", PEER);
        assert!(l.attempt("carol", PEER, NOW).is_ok(), "a refunded attempt");
    }

    #[test]
    fn a_full_table_refuses_untracked_callers_and_never_forgets_a_live_count() {
        let l = FailureLimiter::new(
            FailureLimits::new()
                .per_user(2)
                .per_peer(0)
                .capacity(4)
                .window(Duration::from_secs(60)),
        );
        l.attempt("ada", None, NOW).unwrap();
        l.attempt("ada", None, NOW).unwrap();
        for i in 0..3 {
            l.attempt(&format!("u{i}"), None, NOW).unwrap();
        }
        assert_eq!(l.len(), 4);
        assert_eq!(
            l.attempt("ada", None, NOW + 1),
            Err(limited()),
            "still counted"
        );
        let e = l.attempt("newcomer", None, NOW + 1).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        // Once the window ends, the table frees up.
        assert!(l.attempt("newcomer", None, NOW + 61).is_ok());
    }
}
