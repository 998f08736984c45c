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

use super::refresh::{Backoff, Failures};
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

    /// The token (a [`Secret`]: its `Debug` is redacted).
    pub fn value(&self) -> &Secret {
        &self.value
    }

    /// When it stops being used (`None`: until replaced).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// Why a token could not be had.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
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
pub(crate) const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// Default: first retry delay after a failed fetch (doubling up to 30 s).
pub(crate) const DEFAULT_MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Default: longest retry delay.
pub(crate) const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// No background refresh starts sooner than this after a fetch: a token near its end
/// (a token file not yet rewritten) is not fetched again on every call.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Bearer credentials from a [`TokenSource`].
///
/// - A cached token is attached without waiting.
/// - Within `refresh_ahead` of expiry (at most half the token's lifetime, so a token
///   shorter-lived than `refresh_ahead` is not fetched again on every call), the cached
///   token is still used while one background fetch replaces it; at most one a second.
/// - Without a valid token, concurrent calls share one fetch (single flight).
/// - After a failed fetch, calls fail at once with that error until the backoff delay
///   (1 s, doubling to 30 s) has passed; then the next call fetches again.
/// - A token that has expired when it arrives is a failed fetch.
/// - A token the server refuses (`UNAUTHENTICATED`) before its expiry is fetched anew
///   once (revoked upstream); a source that returns the same token keeps it: no loop.
///   A server refusing every token does not drive a fetch per call either: after a
///   refusal, the next refusal drops the token only once the backoff delay (1 s,
///   doubling to 30 s) has passed; until then the token is kept. A refusal more than
///   30 s after the last pause ended counts as the first again.
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
///
/// Clones share the cached token, the fetch in flight and the failure state; each keeps
/// its own timings, so a setter on a clone changes that clone only.
pub struct TokenSourceCredentials<S> {
    shared: Arc<Shared<S>>,
    config: Config,
}

/// What a handle is configured with.
#[derive(Debug, Clone)]
struct Config {
    refresh_ahead: Duration,
    backoff: Backoff,
    clock: Arc<dyn Clock>,
}

struct Shared<S> {
    source: S,
    state: Mutex<State>,
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    failures: Failures,
    refreshing: bool,
    /// The last token dropped after the server refused it (dropped once only).
    rejected: Option<HeaderValue>,
    /// Tokens the server refused in a row: paces the refetches they cause.
    refusals: Failures,
}

/// The cached token.
struct Current {
    value: HeaderValue,
    expires: Option<SystemTime>,
    /// When it was fetched (the clock's time), for its lifetime.
    fetched: SystemTime,
    /// The same on the monotonic clock, for the pause between refreshes.
    fetched_monotonic: Duration,
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
            shared: Arc::new(Shared {
                source,
                state: Mutex::new(State::default()),
                fetch: tokio::sync::Mutex::new(()),
            }),
            config: Config {
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                backoff: Backoff::new(DEFAULT_MIN_BACKOFF, DEFAULT_MAX_BACKOFF),
                clock: clock::system(),
            },
        }
    }

    /// Refreshes this long before expiry (default 60 s).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.config.refresh_ahead = ahead;
        self
    }

    /// Sets the retry delays after failures (default 1 s doubling to 30 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff = Backoff::new(min, max);
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// The `authorization` value for the next call.
    pub async fn header_value(&self) -> Result<HeaderValue, Status> {
        match self.shared.cached(&self.config) {
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
        let _flight = self.shared.fetch.lock().await;
        // Another caller may have fetched, or failed, while we waited.
        match self.shared.cached(&self.config) {
            Cached::Fresh(v) | Cached::Stale(v, _) => return Ok(v),
            Cached::BackingOff(e) => return Err(e),
            Cached::Missing => {}
        }
        self.shared.fetch_now(&self.config).await
    }

    fn refresh_in_background(&self) {
        let shared = self.shared.clone();
        let config = self.config.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            shared.lock().refreshing = false;
            return;
        };
        rt.spawn(async move {
            let _flight = shared.fetch.lock().await;
            let _ = shared.fetch_now(&config).await;
            shared.lock().refreshing = false;
        });
    }
}

impl<S: TokenSource> Shared<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, config: &Config) -> Cached {
        let now = config.clock.now();
        let monotonic = config.clock.monotonic();
        let mut st = self.lock();
        let backing_off = st.failures.is_backing_off(monotonic);
        if let Some(Current {
            value,
            expires,
            fetched,
            fetched_monotonic,
        }) = &st.current
        {
            // Refresh ahead by at most half the token's lifetime.
            let ahead = expires
                .and_then(|exp| exp.duration_since(*fetched).ok())
                .map_or(config.refresh_ahead, |life| {
                    config.refresh_ahead.min(life / 2)
                });
            let just_fetched = monotonic < fetched_monotonic.saturating_add(MIN_REFRESH_INTERVAL);
            match expires {
                None => return Cached::Fresh(value.clone()),
                Some(exp) if clock::add(now, ahead) < *exp => {
                    return Cached::Fresh(value.clone());
                }
                Some(exp) if now < *exp => {
                    let value = value.clone();
                    let start = !st.refreshing && !backing_off && !just_fetched;
                    if start {
                        st.refreshing = true;
                    }
                    return Cached::Stale(value, start);
                }
                Some(_) => {}
            }
        }
        match st.failures.backing_off(monotonic) {
            Some(e) => Cached::BackingOff(e.clone()),
            None => Cached::Missing,
        }
    }

    async fn fetch_now(&self, config: &Config) -> Result<HeaderValue, Status> {
        let result = self.source.fetch().await;
        let now = config.clock.now();
        let mut st = self.lock();
        let result = result.and_then(|t| match t.expires_at {
            Some(exp) if exp <= now => Err(TokenError::Unavailable(
                "the token it returned had expired".into(),
            )),
            _ => bearer(&t).map(|v| (v, t.expires_at)),
        });
        match result {
            Ok((value, expires)) => {
                st.current = Some(Current {
                    value: value.clone(),
                    expires,
                    fetched: now,
                    fetched_monotonic: config.clock.monotonic(),
                });
                st.failures.clear();
                Ok(value)
            }
            Err(e) => {
                let status = Status::from(e);
                let monotonic = config.clock.monotonic();
                let delay = st
                    .failures
                    .failed(monotonic, config.backoff, status.clone());
                tracing::debug!(failures = st.failures.count(), retry_in = ?delay, reason = %status.message(), "grpc-auth: token fetch failed");
                Err(status)
            }
        }
    }
}

fn bearer(t: &Token) -> Result<HeaderValue, TokenError> {
    crate::wire::bearer::value(t.value.expose())
        .ok_or_else(|| TokenError::Refused("token is not a valid metadata value".into()))
}

impl<S: TokenSource> CallCredentials for TokenSourceCredentials<S> {
    async fn apply(&self, _: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        metadata.insert(AUTHORIZATION, self.header_value().await?);
        Ok(())
    }

    fn observes_responses(&self) -> bool {
        true
    }

    /// A token the server refused (`UNAUTHENTICATED`) before it expired (revoked
    /// upstream) is dropped, so the next call fetches a new one; once per token: a
    /// source that hands the refused token back keeps it, never fetching in a loop.
    /// Refusals in a row drop tokens no faster than the backoff allows (a server that
    /// refuses every token: a wrong audience); a refusal more than the longest delay
    /// after the last pause ended counts as the first again.
    fn on_response(&self, outcome: &super::CallOutcome<'_>) {
        let Some(sent) = outcome.sent().get(AUTHORIZATION) else {
            return;
        };
        if outcome.status() != Some(tonic::Code::Unauthenticated) {
            return;
        }
        let now = self.config.clock.monotonic();
        let backoff = self.config.backoff;
        let mut st = self.shared.lock();
        let current = st.current.as_ref().map(|c| &c.value);
        if current != Some(sent) || st.rejected.as_ref() == Some(sent) {
            return;
        }
        if st.refusals.is_backing_off(now) {
            tracing::debug!(
                "grpc-auth: token refused by the server again; kept until the backoff passes"
            );
            return;
        }
        // Not reset by calls the server takes: a public method's call says nothing of the
        // token. A streak ends with time instead.
        if st.refusals.lapsed(now, backoff) {
            st.refusals.clear();
        }
        let refused = Status::unauthenticated("token refused by the server");
        st.refusals.failed(now, backoff, refused);
        st.rejected = Some(sent.clone());
        st.current = None;
        tracing::debug!("grpc-auth: token refused by the server; the next call fetches anew");
    }
}

impl<S> Clone for TokenSourceCredentials<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S> fmt::Debug for TokenSourceCredentials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceCredentials")
            .field("refresh_ahead", &self.config.refresh_ahead)
            .field("backoff", &self.config.backoff)
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

#[cfg(test)]
mod clone_tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Tokens valid for 200 s from the clock's start (refresh ahead is at most half of
    /// that); counts fetches.
    struct Counting(Arc<AtomicUsize>, SystemTime);
    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<Token, TokenError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Token::new("t", Some(self.1 + Duration::from_secs(200))))
        }
    }

    #[tokio::test]
    async fn a_setter_on_a_clone_configures_that_clone_and_the_token_is_shared() {
        let clock = ManualClock::at_unix(1_000_000);
        let fetches = Arc::new(AtomicUsize::new(0));
        let base = TokenSourceCredentials::new(Counting(fetches.clone(), clock.now()))
            .clock(clock.clone());
        let eager = base.clone().refresh_ahead(Duration::from_secs(90));
        base.header_value().await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(120)); // 80 s left
        base.header_value().await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "fresh for the 60 s default"
        );
        eager.header_value().await.unwrap();
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if fetches.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "due for the clone's 90 s: refreshed"
        );
    }
}

#[cfg(test)]
mod rejection_tests {
    use super::*;
    use crate::credentials::CallOutcome;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out `tok-1`, `tok-2`, ... or, when `same`, always `tok-1`.
    struct Counting {
        fetches: AtomicUsize,
        same: bool,
    }

    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<Token, TokenError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            let n = if self.same { 1 } else { n };
            Ok(Token::new(format!("tok-{n}"), None))
        }
    }

    fn creds(same: bool) -> TokenSourceCredentials<Arc<Counting>> {
        TokenSourceCredentials::new(Arc::new(Counting {
            fetches: AtomicUsize::new(0),
            same,
        }))
    }

    /// One call: what it sent, then the server's answer `code`.
    async fn call(c: &TokenSourceCredentials<Arc<Counting>>, code: Option<&str>) -> String {
        let ctx = CallContext::new("https://svc.example/pkg.Svc", "M", true);
        let mut sent = HeaderMap::new();
        c.apply(&ctx, &mut sent).await.unwrap();
        let mut response = HeaderMap::new();
        if let Some(code) = code {
            response.insert("grpc-status", HeaderValue::from_str(code).unwrap());
        }
        c.on_response(&CallOutcome::new(ctx, &sent, Some(&response)));
        sent.get(AUTHORIZATION)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_refused_token_is_fetched_anew_once() {
        let c = creds(false);
        assert_eq!(call(&c, None).await, "Bearer tok-1");
        assert_eq!(
            call(&c, Some("7")).await,
            "Bearer tok-1",
            "PERMISSION_DENIED keeps it"
        );
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-1");
        assert_eq!(
            call(&c, None).await,
            "Bearer tok-2",
            "refused: fetched anew"
        );
        assert_eq!(call(&c, None).await, "Bearer tok-2");
        assert_eq!(c.shared.source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_source_returning_the_refused_token_is_not_asked_in_a_loop() {
        let c = creds(true);
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-1");
        assert_eq!(
            call(&c, Some("16")).await,
            "Bearer tok-1",
            "fetched once more"
        );
        for _ in 0..5 {
            assert_eq!(call(&c, Some("16")).await, "Bearer tok-1");
        }
        assert_eq!(c.shared.source.fetches.load(Ordering::SeqCst), 2, "no loop");
    }

    #[tokio::test]
    async fn refusals_in_a_row_drop_tokens_no_faster_than_the_backoff() {
        let clock = crate::clock::ManualClock::at_unix(1_000_000);
        let c = creds(false).clock(clock.clone());
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-1");
        // Fetched anew once; refused again within the first delay (1 s): kept.
        for _ in 0..5 {
            assert_eq!(call(&c, Some("16")).await, "Bearer tok-2");
        }
        clock.advance(Duration::from_secs(1));
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-2", "the 1 s passed");
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-3");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            call(&c, Some("16")).await,
            "Bearer tok-3",
            "kept: the second delay is 2 s"
        );
        // A call the server takes (a public method's, say) does not start the count over.
        assert_eq!(call(&c, None).await, "Bearer tok-3");
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-3", "still paused");
        clock.advance(Duration::from_secs(1));
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-3", "the 2 s passed");
        // The third delay is 4 s; a refusal 30 s after it ended counts as the first.
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-4");
        clock.advance(Duration::from_secs(4 + 30));
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-4");
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-5");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            call(&c, Some("16")).await,
            "Bearer tok-5",
            "the first delay (1 s) again"
        );
        assert_eq!(call(&c, None).await, "Bearer tok-6");
        assert_eq!(c.shared.source.fetches.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_wall_clock_stepped_back_does_not_stretch_the_pause() {
        let clock = crate::clock::ManualClock::at_unix(1_000_000);
        let c = creds(false).clock(clock.clone());
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-1");
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-2");
        clock.set_unix(1_000_000 - 3_600);
        clock.advance(Duration::from_secs(1));
        assert_eq!(call(&c, Some("16")).await, "Bearer tok-2");
        assert_eq!(
            call(&c, None).await,
            "Bearer tok-3",
            "paused 1 s, not an hour"
        );
    }
}

#[cfg(test)]
mod lifetime_tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Tokens living `life` from each fetch (by `clock`); counts fetches.
    struct Short {
        clock: ManualClock,
        life: Duration,
        fetches: AtomicUsize,
    }

    impl TokenSource for Arc<Short> {
        async fn fetch(&self) -> Result<Token, TokenError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            let exp = clock::add(self.clock.now(), self.life);
            Ok(Token::new(format!("tok-{n}"), Some(exp)))
        }
    }

    fn short(life: Duration) -> (ManualClock, Arc<Short>, TokenSourceCredentials<Arc<Short>>) {
        let clock = ManualClock::at_unix(1_000_000);
        let source = Arc::new(Short {
            clock: clock.clone(),
            life,
            fetches: AtomicUsize::new(0),
        });
        let creds = TokenSourceCredentials::new(source.clone()).clock(clock.clone());
        (clock, source, creds)
    }

    async fn settle(source: &Short, fetches: usize) {
        for _ in 0..200 {
            if source.fetches.load(Ordering::SeqCst) >= fetches {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_token_shorter_lived_than_refresh_ahead_is_fresh_for_half_its_life() {
        // 30 s tokens, 60 s refresh ahead: refreshed after 15 s, not on every call.
        let (clock, source, creds) = short(Duration::from_secs(30));
        for _ in 0..10 {
            assert_eq!(creds.header_value().await.unwrap(), "Bearer tok-1");
        }
        clock.advance(Duration::from_secs(14));
        assert_eq!(creds.header_value().await.unwrap(), "Bearer tok-1");
        tokio::task::yield_now().await;
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        // Due: the cached token serves while one background fetch replaces it.
        assert_eq!(creds.header_value().await.unwrap(), "Bearer tok-1");
        settle(&source, 2).await;
        for _ in 0..10 {
            assert_eq!(creds.header_value().await.unwrap(), "Bearer tok-2");
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_token_expired_on_arrival_is_a_failed_fetch() {
        let (_clock, source, creds) = short(Duration::ZERO);
        let e = creds.header_value().await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                tonic::Code::Unavailable,
                "token source unavailable: the token it returned had expired"
            )
        );
        // Backing off: not asked again at once.
        assert_eq!(
            creds.header_value().await.unwrap_err().code(),
            tonic::Code::Unavailable
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }
}
