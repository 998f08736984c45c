//! [`JwksKeys`]: JWT keys from a JWKS URL, or from an issuer through OpenID Connect
//! discovery, refreshed in the background.
//!
//! ```no_run
//! use grpc_auth::authn::jwt::{JwksKeys, JwtAuthenticator};
//! use std::time::Duration;
//!
//! # async fn start() -> Result<(), grpc_auth::authn::jwt::JwksError> {
//! let keys = JwksKeys::builder_for_issuer("https://accounts.example.com") // or JwksKeys::builder(jwks_url)
//!     .refresh_interval(Duration::from_secs(600))
//!     .build()?;
//! keys.ready().await?; // optional: fail start-up if the provider cannot be reached
//! let auth = JwtAuthenticator::new(keys)
//!     .issuer("https://accounts.example.com")
//!     .audience("greeter");
//! # let _ = auth; Ok(()) }
//! ```
//!
//! What it does: see [`JwksKeys`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::discovery::{Endpoint, Fetched, Fetcher};
use super::keys::{KeyQuery, KeySet, KeySource};
use crate::AuthError;
use crate::clock::{self, Clock};

const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
const DEFAULT_MIN_TTL: Duration = Duration::from_secs(60);
const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_BYTES: usize = 1 << 20;
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Why keys could not be fetched, or a source not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A URL that does not parse or is not http(s), or an HTTP client that cannot be built.
    #[error("{0}")]
    Config(String),
    /// The provider could not be reached, or answered with an error, too slowly or too much.
    #[error("{0}")]
    Fetch(String),
    /// The answer was not a usable discovery document or key set.
    #[error("{0}")]
    Invalid(String),
    /// The discovery document names another issuer than the configured one.
    #[error("discovery document of {expected} names issuer {found:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `issuer` the document named (empty if none).
        found: String,
    },
}

/// JWT keys from a JWKS URL or OpenID Connect discovery; cheap to clone (clones share
/// the keys and the refresh task).
///
/// - **Fetch**: `GET` the JWKS URL, or first `<issuer>/.well-known/openid-configuration`
///   (whose `issuer` must equal the configured one) and then its `jwks_uri`, on every
///   fetch. Connect and total timeouts, a response size limit (1 MiB), at most 5
///   redirects and never from https to http. A key that is not for signatures, of an
///   unsupported type, symmetric (`oct`), or whose `alg` does not fit it is skipped
///   and logged; a response without any usable key is a failed fetch. An RSA key
///   without `alg` verifies RS256.
/// - **Refresh**: every 10 minutes, or as the response's `Cache-Control: max-age`
///   says, clamped to [1 min, 24 h]. A background tokio task does it; a call that finds
///   the keys due wakes it and goes on with the current keys. The task stops when the
///   last clone of the source is dropped.
/// - **Unknown `kid`**: a call with a `kid` the keys lack refetches at once and waits,
///   at most once per 30 s; in between, such calls wait for a fetch in flight, if
///   any, and otherwise fail "unknown token key id"; `UNAVAILABLE` instead when the
///   provider's last answer was a failure (the key may exist).
/// - **Provider down**: the last good keys keep serving until 24 h past their refresh
///   time, then calls fail `UNAVAILABLE`; so do calls before any key was obtained.
///   After a failed fetch, calls wait 1 s, doubling to 60 s, before trying again.
/// - **Start-up**: lazily, on the first call, or [`ready`](Self::ready) to wait for
///   the first fetch and see its error.
/// - [`KeySource::generation`] moves when a fetch finds a different set of keys.
///
/// ```no_run
/// use grpc_auth::authn::jwt::{JwksKeys, JwtAuthenticator};
/// # async fn start() -> Result<(), grpc_auth::authn::jwt::JwksError> {
/// let keys = JwksKeys::builder("https://issuer.example/.well-known/jwks.json").build()?;
/// keys.ready().await?;
/// let auth = JwtAuthenticator::new(keys).issuer("https://issuer.example");
/// # let _ = auth; Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwksKeys {
    shared: Arc<Shared>,
}

/// Configures a [`JwksKeys`]; from [`JwksKeys::builder`] or [`JwksKeys::builder_for_issuer`].
#[derive(Clone)]
pub struct JwksKeysBuilder {
    target: Target,
    settings: Settings,
    clock: Arc<dyn Clock>,
    root_pems: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Target {
    Jwks(String),
    Discovery(String),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) refresh_interval: Duration,
    pub(super) min_ttl: Duration,
    pub(super) max_ttl: Duration,
    pub(super) unknown_kid_interval: Duration,
    pub(super) max_stale: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) timeout: Duration,
    pub(super) max_bytes: usize,
    /// Plain `http://` URLs to hosts other than loopback are accepted.
    pub(super) allow_http: bool,
}

impl Settings {
    /// What bounds each fetch.
    pub(super) fn limits(&self) -> crate::fetch::Limits {
        crate::fetch::Limits {
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            max_bytes: self.max_bytes,
        }
    }
}

impl From<crate::fetch::FetchError> for JwksError {
    fn from(e: crate::fetch::FetchError) -> Self {
        match e {
            crate::fetch::FetchError::Config(m) => Self::Config(m),
            crate::fetch::FetchError::Request(m) => Self::Fetch(m),
        }
    }
}

impl JwksKeys {
    /// Keys from the JWK set at `jwks_url`: https, or plain http to a loopback host
    /// (tests) or with [`allow_http`](JwksKeysBuilder::allow_http).
    pub fn builder(jwks_url: impl Into<String>) -> JwksKeysBuilder {
        JwksKeysBuilder::new(Target::Jwks(jwks_url.into()))
    }

    /// Keys of `issuer`, found through OpenID Connect discovery:
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must be `issuer`
    /// exactly, names the `jwks_uri`.
    pub fn builder_for_issuer(issuer: impl Into<String>) -> JwksKeysBuilder {
        JwksKeysBuilder::new(Target::Discovery(issuer.into()))
    }

    /// Waits until there are usable keys: at once if there are, else after a fetch
    /// (joining one in flight), whose error it returns.
    pub async fn ready(&self) -> Result<(), JwksError> {
        let s = &self.shared;
        s.start_task();
        let snap = s.snapshot(s.clock.now());
        if snap.usable.is_some() {
            return Ok(());
        }
        s.fetch(snap.epoch).await?;
        match s.snapshot(s.clock.now()).usable {
            Some(_) => Ok(()),
            None => Err(JwksError::Fetch(format!(
                "{}: no usable keys",
                s.fetcher.endpoint()
            ))),
        }
    }

    /// Fetches the keys now, or waits for the fetch in flight, and returns its outcome.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let s = &self.shared;
        s.start_task();
        let epoch = s.state().epoch;
        s.fetch(epoch).await
    }

    /// The keys as they stand, without fetching: `None` before the first successful
    /// fetch or when they are too stale to serve.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        let s = &self.shared;
        s.snapshot(s.clock.now()).usable
    }

    /// When the current keys are due for a refresh (per the source's clock).
    pub fn next_refresh(&self) -> Option<SystemTime> {
        self.shared.state().current.as_ref().map(|l| l.due_at)
    }
}

impl KeySource for JwksKeys {
    async fn keys(&self, query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
        let s = &self.shared;
        s.start_task();
        let snap = s.snapshot(s.clock.now());
        let (keys, just_fetched) = match snap.usable {
            Some(keys) => {
                if snap.due && !snap.backoff {
                    s.wake.notify_one();
                }
                (keys, false)
            }
            None if snap.backoff => return Err(unavailable()),
            None => {
                // The outcome is in the state; a failure was logged by the fetch.
                let _ = s.fetch(snap.epoch).await;
                let keys = s.snapshot(s.clock.now()).usable.ok_or_else(unavailable)?;
                (keys, true)
            }
        };
        match query.kid() {
            Some(kid) if !just_fetched && !keys.contains_kid(kid) => {
                s.refetch_for_unknown_kid(keys).await
            }
            _ => Ok(keys),
        }
    }

    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }
}

impl fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksKeys")
            .field("source", &self.shared.fetcher.endpoint().to_string())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

fn unavailable() -> AuthError {
    AuthError::unavailable("JWT signing keys unavailable")
}

impl JwksKeysBuilder {
    fn new(target: Target) -> Self {
        Self {
            target,
            settings: Settings {
                refresh_interval: DEFAULT_REFRESH,
                min_ttl: DEFAULT_MIN_TTL,
                max_ttl: DEFAULT_MAX_TTL,
                unknown_kid_interval: DEFAULT_UNKNOWN_KID_INTERVAL,
                max_stale: DEFAULT_MAX_STALE,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                timeout: DEFAULT_TIMEOUT,
                max_bytes: DEFAULT_MAX_BYTES,
                allow_http: false,
            },
            clock: clock::system(),
            root_pems: Vec::new(),
        }
    }

    /// How often keys are refreshed when the response has no `Cache-Control:
    /// max-age` (default 10 minutes; at least 1 s).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.settings.refresh_interval = every;
        self
    }

    /// The bounds a response's `Cache-Control: max-age` is clamped to (default 1 min
    /// and 24 h); `no-cache` and `no-store` count as 0.
    pub fn cache_control_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.settings.min_ttl = min.min(max);
        self.settings.max_ttl = max.max(min);
        self
    }

    /// The least time between two refetches caused by an unknown `kid` (default 30 s).
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.settings.unknown_kid_interval = interval;
        self
    }

    /// How long past their refresh time keys keep serving while fetches fail
    /// (default 24 h); after that, calls fail `UNAVAILABLE`.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.settings.max_stale = max_stale;
        self
    }

    /// The TCP (and TLS) connect timeout (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// The timeout of each HTTP request, body included (default 5 s); discovery
    /// makes two.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// The largest response body accepted (default 1 MiB).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.settings.max_bytes = limit;
        self
    }

    /// Accepts plain `http://` key and discovery URLs to any host. Off by default: keys
    /// fetched without TLS can be replaced by anyone on the path, so only https (and
    /// http to a loopback address, for tests) is accepted.
    pub fn allow_http(mut self) -> Self {
        self.settings.allow_http = true;
        self
    }

    /// Reads the time (key age, refresh and retry times) from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Also trusts the CA certificates in `pem` (besides the system's roots), e.g.
    /// for an in-house identity provider.
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pems.push(pem.into());
        self
    }

    /// The source. Nothing is fetched until the first call or [`JwksKeys::ready`];
    /// fails on a URL that does not parse or is not http(s), or bad root certificates.
    pub fn build(self) -> Result<JwksKeys, JwksError> {
        let endpoint = match self.target {
            Target::Jwks(url) => Endpoint::jwks(&url, self.settings.allow_http)?,
            Target::Discovery(issuer) => Endpoint::discovery(issuer, self.settings.allow_http)?,
        };
        let fetcher = Fetcher::new(endpoint, self.settings, &self.root_pems)?;
        Ok(JwksKeys {
            shared: Arc::new(Shared {
                fetcher,
                settings: self.settings,
                clock: self.clock,
                state: Mutex::new(State::default()),
                fetching: tokio::sync::Mutex::new(()),
                wake: Arc::new(Notify::new()),
                generation: AtomicU64::new(0),
                task_started: AtomicBool::new(false),
                task: OnceLock::new(),
            }),
        })
    }
}

impl fmt::Debug for JwksKeysBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksKeysBuilder")
            .field("target", &self.target)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// The shared state, refresh and rotation
// ---------------------------------------------------------------------------

struct Shared {
    fetcher: Fetcher,
    settings: Settings,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Held for the length of a fetch: one at a time, the others join it.
    fetching: tokio::sync::Mutex<()>,
    /// Wakes the refresh task early (keys found due by a call).
    wake: Arc<Notify>,
    generation: AtomicU64,
    task_started: AtomicBool,
    task: OnceLock<AbortHandle>,
}

#[derive(Default)]
struct State {
    current: Option<Loaded>,
    /// Completed fetch attempts; a caller that saw `epoch` before waiting for the
    /// fetch lock knows from a change that someone fetched meanwhile.
    epoch: u64,
    failures: u32,
    last_failure: Option<SystemTime>,
    last_error: Option<JwksError>,
    last_kid_refetch: Option<SystemTime>,
}

struct Loaded {
    keys: Arc<KeySet>,
    /// The usable keys' JWKs, canonical JSON, sorted: equal iff the same keys.
    fingerprint: Vec<String>,
    due_at: SystemTime,
    /// Past this, the keys do not serve (`None`: never).
    expires_at: Option<SystemTime>,
}

struct Snapshot {
    usable: Option<Arc<KeySet>>,
    due: bool,
    backoff: bool,
    epoch: u64,
}

enum Plan {
    Fetch(u64),
    Wait(Duration),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self, now: SystemTime) -> Snapshot {
        let st = self.state();
        let usable = st
            .current
            .as_ref()
            .filter(|l| l.expires_at.is_none_or(|t| now < t));
        Snapshot {
            due: usable.is_some_and(|l| now >= l.due_at),
            usable: usable.map(|l| l.keys.clone()),
            backoff: in_backoff(&st, now),
            epoch: st.epoch,
        }
    }

    /// Spawns the refresh task on the first call made within a tokio runtime.
    fn start_task(self: &Arc<Self>) {
        if self.task_started.load(Ordering::Acquire)
            || self.task_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.task_started.store(false, Ordering::Release);
            return;
        };
        let task = rt.spawn(refresh_loop(Arc::downgrade(self), self.wake.clone()));
        let _ = self.task.set(task.abort_handle());
    }

    /// What the refresh task does next, by the clock.
    fn plan(&self) -> Plan {
        let now = self.clock.now();
        let st = self.state();
        let Some(loaded) = &st.current else {
            // The first fetch is a call's (or `ready`'s); failures are retried on calls.
            return Plan::Wait(self.settings.refresh_interval);
        };
        match loaded.due_at.duration_since(now) {
            Ok(wait) if !wait.is_zero() => Plan::Wait(wait),
            _ if in_backoff(&st, now) => Plan::Wait(self.settings.refresh_interval),
            _ => Plan::Fetch(st.epoch),
        }
    }

    /// Fetches unless someone did since `seen`; runs on its own task, so a caller
    /// that gives up does not abort the fetch the others wait for.
    async fn fetch(self: &Arc<Self>, seen: u64) -> Result<(), JwksError> {
        let this = Arc::clone(self);
        let job = async move { this.fetch_locked(seen).await };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt.spawn(job).await.unwrap_or_else(|e| {
                Err(JwksError::Fetch(format!(
                    "{}: fetch task: {e}",
                    self.fetcher.endpoint()
                )))
            }),
            Err(_) => job.await,
        }
    }

    async fn fetch_locked(&self, seen: u64) -> Result<(), JwksError> {
        let _one_at_a_time = self.fetching.lock().await;
        {
            let st = self.state();
            if st.epoch != seen {
                return st.last_error.clone().map_or(Ok(()), Err);
            }
        }
        let result = self.fetcher.fetch().await;
        let now = self.clock.now();
        let mut st = self.state();
        st.epoch = st.epoch.wrapping_add(1);
        match result {
            Ok(fetched) => {
                self.install(&mut st, fetched, now);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(source = %self.fetcher.endpoint(), error = %e, "grpc-auth: JWKS fetch failed");
                st.failures = st.failures.saturating_add(1);
                st.last_failure = Some(now);
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn install(&self, st: &mut State, fetched: Fetched, now: SystemTime) {
        let same = st
            .current
            .as_ref()
            .is_some_and(|l| l.fingerprint == fetched.fingerprint);
        let count = fetched.keys.len();
        let keys = match &st.current {
            Some(l) if same => l.keys.clone(),
            _ => Arc::new(KeySet::new(fetched.keys)),
        };
        let due_at = now
            .checked_add(fetched.ttl)
            .or_else(|| now.checked_add(Duration::from_secs(365 * 86_400)))
            .unwrap_or(now);
        st.current = Some(Loaded {
            keys,
            fingerprint: fetched.fingerprint,
            due_at,
            expires_at: due_at.checked_add(self.settings.max_stale),
        });
        st.failures = 0;
        st.last_failure = None;
        st.last_error = None;
        // After the keys: whoever sees the new generation finds the new keys.
        if same {
            tracing::debug!(source = %self.fetcher.endpoint(), keys = count, "grpc-auth: JWKS refreshed, unchanged");
        } else {
            let generation = self
                .generation
                .fetch_add(1, Ordering::AcqRel)
                .wrapping_add(1);
            tracing::info!(source = %self.fetcher.endpoint(), keys = count, generation, "grpc-auth: JWKS keys changed");
        }
    }

    /// A call's `kid` is not in `current`: refetch if the last such refetch is old
    /// enough, else wait for a fetch in flight, if any. `UNAVAILABLE` when the provider's
    /// last answer was a failure: whether the key exists cannot be known (a rotation
    /// during an outage must not read as a bad token).
    async fn refetch_for_unknown_kid(
        self: &Arc<Self>,
        current: Arc<KeySet>,
    ) -> Result<Arc<KeySet>, AuthError> {
        let now = self.clock.now();
        let (allowed, epoch) = {
            let mut st = self.state();
            let allowed = st.last_kid_refetch.is_none_or(|t| {
                now.duration_since(t)
                    .map_or(true, |d| d >= self.settings.unknown_kid_interval)
            });
            if allowed {
                st.last_kid_refetch = Some(now);
            }
            (allowed, st.epoch)
        };
        if allowed {
            tracing::debug!(source = %self.fetcher.endpoint(), "grpc-auth: unknown key id, refetching keys");
            let _ = self.fetch(epoch).await;
        } else if self.fetching.try_lock().is_err() {
            drop(self.fetching.lock().await);
        }
        if self.state().failures > 0 {
            return Err(unavailable());
        }
        Ok(self.snapshot(self.clock.now()).usable.unwrap_or(current))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// Refreshes keys when due, until the source is dropped.
async fn refresh_loop(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let wait = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared.plan() {
                Plan::Fetch(epoch) => {
                    let _ = shared.fetch(epoch).await;
                    continue;
                }
                Plan::Wait(wait) => wait,
            }
        };
        // Holds no strong reference while it waits, so dropping the source ends it.
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
}

/// Whether a call must not retry yet after a failed fetch: 1 s after the first
/// failure, doubling to 60 s. A clock that went back ends the wait.
fn in_backoff(st: &State, now: SystemTime) -> bool {
    let Some(failed) = st.last_failure else {
        return false;
    };
    let doublings = st.failures.saturating_sub(1).min(6);
    let wait = RETRY_MIN.saturating_mul(1 << doublings).min(RETRY_MAX);
    now.duration_since(failed).is_ok_and(|d| d < wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs: u64| t0 + Duration::from_millis(secs * 1000 - 1);
        let mut st = State::default();
        assert!(!in_backoff(&st, t0));
        st.last_failure = Some(t0);
        for (failures, wait) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60)] {
            st.failures = failures;
            assert!(in_backoff(&st, at(wait)), "{failures}");
            assert!(
                !in_backoff(&st, t0 + Duration::from_secs(wait)),
                "{failures}"
            );
        }
        // A clock that went back does not keep calls waiting.
        assert!(!in_backoff(&st, t0 - Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn the_refresh_task_stops_when_the_source_is_dropped() {
        let keys = JwksKeys::builder("http://127.0.0.1:9/jwks.json")
            .build()
            .unwrap();
        keys.shared.start_task();
        let clone = keys.clone();
        let task = keys.shared.task.get().unwrap().clone();
        drop(keys);
        assert!(!task.is_finished());
        drop(clone);
        // Aborted by the drop: it finishes at its next poll.
        for _ in 0..1000 {
            if task.is_finished() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("refresh task still running");
    }
}
