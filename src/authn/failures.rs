//! [`FailureLimits`]: failed logins counted per user and per peer over a window, so a
//! password guesser gets a bounded number of tries, and once limited costs nothing
//! (no password hash is computed).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::AuthError;
use crate::clock::Clock;
use crate::store::{Counted, Key, Kind, MemoryStore, SharedStore, Store as _, StoreError};

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

fn key(kind: u8, value: &[u8]) -> Key {
    Key::digest(Kind::Failures, &[&[kind], value])
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

/// The counters, in a [`Store`]: the authenticator's own bounded memory by default, or
/// one shared by replicas (Redis), so the limits hold for the cluster.
#[derive(Clone)]
pub(crate) struct FailureLimiter {
    limits: FailureLimits,
    store: SharedStore,
    /// The store is the limiter's own memory (remade when the clock changes).
    pub(crate) own: bool,
}

impl FailureLimiter {
    /// Counters in a memory store of their own, on `clock`.
    pub(crate) fn memory(limits: FailureLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(MemoryStore::with_clock(limits.capacity, clock)),
            limits,
            own: true,
        }
    }

    /// Counters in `store`.
    pub(crate) fn on(limits: FailureLimits, store: SharedStore) -> Self {
        Self {
            limits,
            store,
            own: false,
        }
    }

    pub(crate) fn limits(&self) -> FailureLimits {
        self.limits
    }

    pub(crate) fn store(&self) -> &SharedStore {
        &self.store
    }

    fn keys(&self, user: &str, peer: Option<IpAddr>) -> (Option<Key>, Option<Key>) {
        let l = &self.limits;
        (
            (l.per_user > 0).then(|| user_key(user)),
            peer.filter(|_| l.per_peer > 0).map(peer_key),
        )
    }

    /// Counts a login attempt by `user` from `peer` before its password is checked, in
    /// one atomic step of the store, so concurrent guesses (on any replica sharing it)
    /// cannot all pass before the first failure is counted. Refuses an attempt over a
    /// limit, or one that cannot be counted (a full memory store, a store down). The
    /// attempt stays counted as a failure unless [`succeeded`](Self::succeeded) or
    /// [`refund`](Self::refund) says otherwise.
    pub(crate) async fn attempt(&self, user: &str, peer: Option<IpAddr>) -> Result<(), AuthError> {
        let (user_key, peer_key) = self.keys(user, peer);
        let mut counters = Vec::with_capacity(2);
        if let Some(k) = user_key {
            counters.push((k, self.limits.per_user));
        }
        if let Some(k) = peer_key {
            counters.push((k, self.limits.per_peer));
        }
        if counters.is_empty() {
            return Ok(());
        }
        match self.store.count(&counters, self.limits.window).await {
            Ok(Counted::Yes) => Ok(()),
            Ok(Counted::Limited) => Err(limited()),
            Err(StoreError::Full { .. }) => {
                tracing::warn!(
                    capacity = self.limits.capacity,
                    "grpc-auth: failed-login table full of live entries; login refused"
                );
                Err(AuthError::unavailable(
                    "too many failed logins in progress; retry later",
                ))
            }
            Err(e) => {
                tracing::warn!(
                    store = self.store.name(),
                    error = %e,
                    "grpc-auth: failed-login limits unavailable; login refused"
                );
                Err(AuthError::unavailable(format!(
                    "failed-login limits unavailable: {e}"
                )))
            }
        }
    }

    /// The attempt succeeded: the user's count is cleared, the peer's attempt given back.
    /// On a shared store this runs beside the call (on a Tokio runtime), so an accepted
    /// login waits for one round trip to the store, not two.
    pub(crate) async fn succeeded(&self, user: &str, peer: Option<IpAddr>) {
        let (user_key, peer_key) = self.keys(user, peer);
        let one: Vec<Key> = peer_key.into_iter().collect();
        let all: Vec<Key> = user_key.into_iter().collect();
        if !self.own
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let this = self.clone();
            rt.spawn(async move { this.uncount(&one, &all).await });
            return;
        }
        self.uncount(&one, &all).await;
    }

    /// The password was never checked (the server was busy): the attempt is given back.
    pub(crate) async fn refund(&self, user: &str, peer: Option<IpAddr>) {
        let (user_key, peer_key) = self.keys(user, peer);
        let one: Vec<Key> = user_key.into_iter().chain(peer_key).collect();
        self.uncount(&one, &[]).await;
    }

    async fn uncount(&self, one: &[Key], all: &[Key]) {
        if one.is_empty() && all.is_empty() {
            return;
        }
        if let Err(e) = self.store.uncount(one, all).await {
            // The attempt stays counted: the caller gets fewer tries, never more.
            tracing::warn!(
                store = self.store.name(),
                error = %e,
                "grpc-auth: could not give a login attempt back"
            );
        }
    }
}

impl fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limits", &self.limits)
            .field("store", &self.store.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::net::Ipv4Addr;

    const NOW: u64 = 1_000_000;
    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn limiter(per_user: u32, per_peer: u32, clock: &ManualClock) -> FailureLimiter {
        FailureLimiter::memory(
            FailureLimits::new()
                .per_user(per_user)
                .per_peer(per_peer)
                .window(Duration::from_secs(60)),
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn a_user_is_limited_after_its_failures_until_the_window_ends() {
        let clock = ManualClock::at_unix(NOW);
        let l = limiter(3, 0, &clock);
        run(async {
            for _ in 0..3 {
                l.attempt("ada", PEER).await.unwrap();
            }
            assert_eq!(l.attempt("ada", PEER).await, Err(limited()));
            assert_eq!(limited().code(), tonic::Code::ResourceExhausted);
            assert!(
                l.attempt("bob", PEER).await.is_ok(),
                "other users are not limited"
            );
            clock.advance(Duration::from_secs(59));
            assert_eq!(l.attempt("ada", PEER).await, Err(limited()));
            clock.advance(Duration::from_secs(1));
            assert!(l.attempt("ada", PEER).await.is_ok(), "a new window");
        });
    }

    #[test]
    fn a_peer_is_limited_across_user_names() {
        let clock = ManualClock::at_unix(NOW);
        let l = limiter(0, 3, &clock);
        run(async {
            for i in 0..3 {
                l.attempt(&format!("user-{i}"), PEER).await.unwrap();
            }
            assert_eq!(l.attempt("someone-else", PEER).await, Err(limited()));
            let other = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
            assert!(l.attempt("someone-else", other).await.is_ok());
            assert!(
                l.attempt("someone-else", None).await.is_ok(),
                "no peer known"
            );
        });
    }

    #[test]
    fn an_ipv6_64_is_one_peer() {
        let clock = ManualClock::at_unix(NOW);
        let l = limiter(0, 2, &clock);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        run(async {
            l.attempt("u1", Some(a)).await.unwrap();
            l.attempt("u2", Some(b)).await.unwrap();
            assert_eq!(l.attempt("u3", Some(a)).await, Err(limited()));
            assert!(l.attempt("u3", Some(c)).await.is_ok(), "another /64");
        });
    }

    #[test]
    fn success_clears_the_user_and_gives_the_peer_attempt_back() {
        let clock = ManualClock::at_unix(NOW);
        let l = limiter(2, 3, &clock);
        run(async {
            l.attempt("ada", PEER).await.unwrap();
            l.succeeded("ada", PEER).await;
            l.attempt("ada", PEER).await.unwrap(); // a failure
            l.attempt("ada", PEER).await.unwrap(); // a failure
            assert_eq!(l.attempt("ada", PEER).await, Err(limited()), "user at 2");
            l.attempt("bob", PEER).await.unwrap(); // the peer's third
            assert_eq!(l.attempt("carol", PEER).await, Err(limited()), "peer at 3");
            l.refund("bob", PEER).await;
            assert!(l.attempt("carol", PEER).await.is_ok(), "a refunded attempt");
        });
    }

    #[test]
    fn a_full_table_refuses_untracked_callers_and_never_forgets_a_live_count() {
        let clock = ManualClock::at_unix(NOW);
        let l = FailureLimiter::memory(
            FailureLimits::new()
                .per_user(2)
                .per_peer(0)
                .capacity(4)
                .window(Duration::from_secs(60)),
            Arc::new(clock.clone()),
        );
        run(async {
            l.attempt("ada", None).await.unwrap();
            l.attempt("ada", None).await.unwrap();
            for i in 0..3 {
                l.attempt(&format!("u{i}"), None).await.unwrap();
            }
            clock.advance(Duration::from_secs(1));
            assert_eq!(
                l.attempt("ada", None).await,
                Err(limited()),
                "still counted"
            );
            let e = l.attempt("newcomer", None).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unavailable);
            // Once the window ends, the table frees up.
            clock.advance(Duration::from_secs(60));
            assert!(l.attempt("newcomer", None).await.is_ok());
        });
    }
}
