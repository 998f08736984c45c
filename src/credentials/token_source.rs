//! [`TokenSourceCredentials`]: a bearer token from your [`TokenSource`], cached,
//! refreshed ahead of expiry, fetched once for many concurrent calls, and retried with
//! backoff after a failure.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use tonic::Status;

use super::{CallContext, CallCredentials};
use crate::Secret;
use crate::clock::{self, Clock};

/// A token and when it expires.
#[derive(Debug, Clone)]
pub struct Token {
    value: Secret,
    expires_at: Option<SystemTime>,
}

impl Token {
    /// A token valid until `expires_at` (`None`: until replaced).
    pub fn new(value: impl Into<Secret>, expires_at: Option<SystemTime>) -> Self {
        Self {
            value: value.into(),
            expires_at,
        }
    }
}

/// Why a token could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached or failed (retryable): `UNAVAILABLE`.
    #[error("token source unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused (bad client credentials): `UNAUTHENTICATED`.
    #[error("token source refused: {0}")]
    Refused(String),
}

impl From<TokenError> for Status {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Unavailable(_) => Status::unavailable(e.to_string()),
            TokenError::Refused(_) => Status::unauthenticated(e.to_string()),
        }
    }
}

/// Where tokens come from, e.g. an OAuth2 client-credentials call. Implement with `async fn`.
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a fresh token.
    fn fetch(&self) -> impl Future<Output = Result<Token, TokenError>> + Send;
}

impl<S: TokenSource> TokenSource for Arc<S> {
    fn fetch(&self) -> impl Future<Output = Result<Token, TokenError>> + Send {
        (**self).fetch()
    }
}

/// Default: refresh this long before expiry.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// Default: first retry delay after a failed fetch (doubling up to [`DEFAULT_MAX_BACKOFF`]).
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Default: longest retry delay.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Bearer credentials from a [`TokenSource`].
///
/// - A cached token is attached without waiting.
/// - Within `refresh_ahead` of expiry, the cached token is still used while one
///   background fetch replaces it.
/// - Without a valid token, concurrent calls share one fetch (single flight).
/// - After a failed fetch, calls fail at once with that error until the backoff delay
///   (1 s, doubling to 30 s) has passed; then the next call fetches again.
///
/// ```
/// use grpc_auth::credentials::{Token, TokenError, TokenSource, TokenSourceCredentials};
/// use std::time::{Duration, SystemTime};
///
/// struct ClientCredentials;
/// impl TokenSource for ClientCredentials {
///     async fn fetch(&self) -> Result<Token, TokenError> {
///         // POST to the token endpoint...
///         Ok(Token::new("eyJ...", Some(SystemTime::now() + Duration::from_secs(3600))))
///     }
/// }
/// let creds = TokenSourceCredentials::new(ClientCredentials);
/// # let _ = creds;
/// ```
pub struct TokenSourceCredentials<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    source: S,
    state: Mutex<State>,
    fetch: tokio::sync::Mutex<()>,
    refresh_ahead: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct State {
    current: Option<(HeaderValue, Option<SystemTime>)>,
    failures: u32,
    retry_at: Option<SystemTime>,
    last_error: Option<Status>,
    refreshing: bool,
}

enum Cached {
    Fresh(HeaderValue),
    /// Valid, but due for refresh: use it and start a background refresh if `true`.
    Stale(HeaderValue, bool),
    Missing,
    BackingOff(Status),
}

impl<S: TokenSource> TokenSourceCredentials<S> {
    /// Credentials over `source` with the default timings.
    pub fn new(source: S) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                state: Mutex::new(State::default()),
                fetch: tokio::sync::Mutex::new(()),
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                min_backoff: DEFAULT_MIN_BACKOFF,
                max_backoff: DEFAULT_MAX_BACKOFF,
                clock: clock::system(),
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            f(inner);
        }
        self
    }

    /// Refreshes this long before expiry (configure before cloning).
    pub fn refresh_ahead(self, ahead: Duration) -> Self {
        self.configure(|i| i.refresh_ahead = ahead)
    }

    /// Sets the retry delays after failures (configure before cloning).
    pub fn backoff(self, min: Duration, max: Duration) -> Self {
        self.configure(|i| {
            i.min_backoff = min;
            i.max_backoff = max.max(min);
        })
    }

    /// Reads the time from `clock` (configure before cloning).
    pub fn clock(self, clock: impl Clock) -> Self {
        self.configure(|i| i.clock = Arc::new(clock))
    }

    /// The `authorization` value for the next call.
    pub async fn header_value(&self) -> Result<HeaderValue, Status> {
        match self.inner.cached() {
            Cached::Fresh(v) => return Ok(v),
            Cached::Stale(v, start) => {
                if start {
                    self.refresh_in_background();
                }
                return Ok(v);
            }
            Cached::BackingOff(e) => return Err(e),
            Cached::Missing => {}
        }
        let _flight = self.inner.fetch.lock().await;
        // Another caller may have fetched, or failed, while we waited.
        match self.inner.cached() {
            Cached::Fresh(v) | Cached::Stale(v, _) => return Ok(v),
            Cached::BackingOff(e) => return Err(e),
            Cached::Missing => {}
        }
        self.inner.fetch_now().await
    }

    fn refresh_in_background(&self) {
        let inner = self.inner.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            inner.lock().refreshing = false;
            return;
        };
        rt.spawn(async move {
            let _flight = inner.fetch.lock().await;
            let _ = inner.fetch_now().await;
            inner.lock().refreshing = false;
        });
    }
}

impl<S: TokenSource> Inner<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self) -> Cached {
        let now = self.clock.now();
        let mut st = self.lock();
        let backing_off = st.retry_at.is_some_and(|t| now < t);
        if let Some((value, expires)) = &st.current {
            match expires {
                None => return Cached::Fresh(value.clone()),
                Some(exp) if clock::add(now, self.refresh_ahead) < *exp => {
                    return Cached::Fresh(value.clone());
                }
                Some(exp) if now < *exp => {
                    let value = value.clone();
                    let start = !st.refreshing && !backing_off;
                    if start {
                        st.refreshing = true;
                    }
                    return Cached::Stale(value, start);
                }
                Some(_) => {}
            }
        }
        match (&st.last_error, backing_off) {
            (Some(e), true) => Cached::BackingOff(e.clone()),
            _ => Cached::Missing,
        }
    }

    async fn fetch_now(&self) -> Result<HeaderValue, Status> {
        let result = self.source.fetch().await;
        let now = self.clock.now();
        let mut st = self.lock();
        match result.and_then(|t| bearer(&t).map(|v| (v, t.expires_at))) {
            Ok((value, expires)) => {
                st.current = Some((value.clone(), expires));
                st.failures = 0;
                st.retry_at = None;
                st.last_error = None;
                Ok(value)
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                let delay = backoff_delay(self.min_backoff, self.max_backoff, st.failures);
                st.retry_at = Some(clock::add(now, delay));
                let status = Status::from(e);
                st.last_error = Some(status.clone());
                tracing::debug!(failures = st.failures, retry_in = ?delay, reason = %status.message(), "grpc-auth: token fetch failed");
                Err(status)
            }
        }
    }
}

/// The wait after `failures` consecutive failures: `min`, doubling, at most `max`.
pub(crate) fn backoff_delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    min.saturating_mul(1 << exp).min(max)
}

fn bearer(t: &Token) -> Result<HeaderValue, TokenError> {
    let mut v = Vec::with_capacity(7 + t.value.expose().len());
    v.extend_from_slice(b"Bearer ");
    v.extend_from_slice(t.value.expose());
    let mut value = HeaderValue::from_bytes(&v)
        .map_err(|_| TokenError::Refused("token is not a valid metadata value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

impl<S: TokenSource> CallCredentials for TokenSourceCredentials<S> {
    async fn apply(&self, _: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        metadata.insert(AUTHORIZATION, self.header_value().await?);
        Ok(())
    }
}

impl<S> Clone for TokenSourceCredentials<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for TokenSourceCredentials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceCredentials")
            .field("refresh_ahead", &self.inner.refresh_ahead)
            .field("min_backoff", &self.inner.min_backoff)
            .field("max_backoff", &self.inner.max_backoff)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    struct Fixed(Option<Token>);
    impl TokenSource for Fixed {
        async fn fetch(&self) -> Result<Token, TokenError> {
            self.0
                .clone()
                .ok_or_else(|| TokenError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn huge_configured_durations_do_not_panic() {
        let soon = SystemTime::now() + Duration::from_secs(3600);
        let creds = TokenSourceCredentials::new(Fixed(Some(Token::new("t", Some(soon)))))
            .refresh_ahead(Duration::MAX);
        assert!(creds.header_value().await.is_ok());
        assert!(
            creds.header_value().await.is_ok(),
            "a stale token still serves"
        );
        let failing =
            TokenSourceCredentials::new(Fixed(None)).backoff(Duration::MAX, Duration::MAX);
        assert!(failing.header_value().await.is_err());
        assert!(
            failing.header_value().await.is_err(),
            "backing off, no panic"
        );
    }
}
