//! [`BasicLogin`]: logs in with HTTP Basic, then sends the bearer token the server
//! answered with (the client half of
//! [`TokenExchange`](crate::authn::token_exchange::TokenExchange), and of Arrow Flight's
//! `authenticate_basic_token`).

use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;
use tonic::{Code, Status};

use super::refresh::{Backoff, Failures};
use super::{
    CallContext, CallCredentials, CallOutcome, DEFAULT_MAX_BACKOFF, DEFAULT_MIN_BACKOFF,
    DEFAULT_REFRESH_AHEAD,
};
use crate::clock::{self, Clock};
use crate::wire;

/// Logs in with `authorization: Basic ...`, captures `authorization: Bearer <token>` from
/// the response headers, and sends that bearer on later calls. Attach it with
/// [`CredentialsLayer`](super::CredentialsLayer), which shows it the responses.
///
/// - **Where the login happens.** By default the login rides on a real call: the first
///   call carries Basic, and its response brings the token (a server whose
///   `TokenExchange` logs in on any method). With [`login_method`](Self::login_method)
///   (Arrow Flight's `Handshake`), calls to that method carry Basic and are the logins,
///   made by the application; other calls carry the bearer, and fail `UNAUTHENTICATED`
///   "not logged in" before the first login.
/// - **One login in flight.** Calls that find no valid token while a login is in flight
///   wait for its outcome, so eight concurrent first calls make one login.
/// - **Expiry.** A JWT's lifetime `exp - iat` is read (unverified: the server verifies)
///   and counted from its arrival, so clock skew does not matter; a JWT without `iat`
///   expires at `exp`; other tokens after [`token_ttl`](Self::token_ttl) if set. Within `refresh_ahead` (60 s) of
///   expiry, the next call logs in again while the others keep the valid token.
/// - **Rejection.** A call that sent the current token and came back `UNAUTHENTICATED`
///   drops the token: the next call logs in. The failed call is not retried, so a
///   server that refuses every token never sees a loop.
/// - **Failed login.** The login call returns the server's status; until the backoff
///   (1 s doubling to 30 s) has passed, calls then fail at once, not sent, with
///   `login failed: <the server's message>`.
///
/// ```
/// use grpc_auth::credentials::{BasicLogin, CredentialsLayer};
/// let creds = BasicLogin::new("ada", "lovelace");
/// let layer = CredentialsLayer::new(creds, "https://greeter.example".parse().unwrap());
/// // Arrow Flight: logins are the application's Handshake calls.
/// let flight = BasicLogin::new("ada", "lovelace")
///     .login_method("/arrow.flight.protocol.FlightService/Handshake");
/// # let _ = (layer, flight);
/// ```
///
/// Clones share the token, the login in flight and the failure state; each keeps its
/// own settings, so a setter on a clone changes that clone only.
#[derive(Clone)]
pub struct BasicLogin {
    shared: Arc<Shared>,
    config: Config,
}

struct Shared {
    basic: HeaderValue,
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

#[derive(Clone)]
struct Config {
    login_methods: Vec<String>,
    refresh_ahead: Duration,
    token_ttl: Option<Duration>,
    backoff: Backoff,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct State {
    token: Option<(HeaderValue, Option<SystemTime>)>,
    /// The login in flight: the id of the call carrying it (0 when the context had
    /// none: a call made outside [`CredentialsLayer`](super::CredentialsLayer)).
    login_in_flight: Option<u64>,
    failures: Failures,
}

/// What a call sends, decided under the lock.
enum Decision {
    Send(HeaderValue),
    Fail(Status),
    Wait,
}

impl BasicLogin {
    /// Logs in as `user` with `password`.
    pub fn new(user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let basic = wire::basic::value(user.as_ref(), password.as_ref());
        Self {
            shared: Arc::new(Shared {
                basic,
                state: Mutex::new(State::default()),
                changed: tokio::sync::Notify::new(),
            }),
            config: Config {
                login_methods: Vec::new(),
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                token_ttl: None,
                backoff: Backoff::new(DEFAULT_MIN_BACKOFF, DEFAULT_MAX_BACKOFF),
                clock: clock::system(),
            },
        }
    }

    /// Logs in only through calls to `path` (`/package.Service/Method`), which the
    /// application makes; repeat for several.
    pub fn login_method(mut self, path: impl Into<String>) -> Self {
        self.config.login_methods.push(path.into());
        self
    }

    /// Logs in again this long before the token expires (default 60 s).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.config.refresh_ahead = ahead;
        self
    }

    /// How long a token that is not a JWT lasts (default: until refused).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.config.token_ttl = Some(ttl);
        self
    }

    /// Sets the delays after failed logins (default 1 s doubling to 30 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff = Backoff::new(min, max);
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// Whether a token is held (valid or not).
    pub fn has_token(&self) -> bool {
        self.lock().token.is_some()
    }
}

impl BasicLogin {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_login_method(&self, ctx: &CallContext<'_>) -> bool {
        self.config.login_methods.iter().any(|m| ctx.is_path(m))
    }

    fn login(&self, st: &mut State, ctx: &CallContext<'_>) -> Decision {
        st.login_in_flight = Some(ctx.call_id());
        Decision::Send(self.shared.basic.clone())
    }

    fn decide(&self, ctx: &CallContext<'_>) -> Decision {
        let now = self.config.clock.now();
        let monotonic = self.config.clock.monotonic();
        let mut st = self.lock();
        let backing_off = st.failures.is_backing_off(monotonic);
        if !self.config.login_methods.is_empty() {
            if self.is_login_method(ctx) {
                return self.login(&mut st, ctx);
            }
        } else if let Some((_, Some(exp))) = &st.token
            && now < *exp
            && now
                .checked_add(self.config.refresh_ahead)
                .is_none_or(|t| t >= *exp)
            && st.login_in_flight.is_none()
            && !backing_off
        {
            // Due for renewal: this call logs in, the others keep the valid token.
            return self.login(&mut st, ctx);
        }
        match &st.token {
            Some((value, None)) => return Decision::Send(value.clone()),
            Some((value, Some(exp))) if now < *exp => return Decision::Send(value.clone()),
            _ => {}
        }
        if st.login_in_flight.is_some() {
            return Decision::Wait;
        }
        if let Some(e) = st.failures.backing_off(monotonic) {
            return Decision::Fail(e.clone());
        }
        match self.config.login_methods.first() {
            None => self.login(&mut st, ctx),
            Some(m) => Decision::Fail(Status::unauthenticated(format!(
                "not logged in: call {m} first"
            ))),
        }
    }

    /// When a token received now expires, on this client's clock: a JWT's lifetime
    /// (`exp - iat`, immune to clock skew between client and server) from now, else its
    /// `exp`, else the configured ttl. A time past what `SystemTime` holds (the token
    /// comes from the network) is no expiry: the token serves until refused.
    fn expiry(&self, token: &str) -> Option<SystemTime> {
        let now = self.config.clock.now();
        match jwt_times(token) {
            Some((Some(iat), Some(exp))) => {
                now.checked_add(Duration::from_secs(exp.saturating_sub(iat)))
            }
            Some((None, Some(exp))) => UNIX_EPOCH.checked_add(Duration::from_secs(exp)),
            _ => self.config.token_ttl.and_then(|ttl| now.checked_add(ttl)),
        }
    }

    fn login_done(&self, outcome: &CallOutcome<'_>) {
        let now = self.config.clock.monotonic();
        let mut st = self.lock();
        st.login_in_flight = None;
        let Some(headers) = outcome.headers() else {
            // No response: the next call tries again.
            drop(st);
            self.shared.changed.notify_waiters();
            return;
        };
        if let Some(token) = bearer_token(headers)
            && let Some(value) = wire::bearer::value(token.as_bytes())
        {
            st.token = Some((value, self.expiry(token)));
            st.failures.clear();
            tracing::debug!("grpc-auth: logged in");
        } else {
            let status = match outcome.status() {
                Some(code) if code != Code::Ok => Status::new(
                    code,
                    format!("login failed: {}", outcome.message().unwrap_or_default()),
                ),
                _ => Status::unauthenticated("login failed: the response carried no bearer token"),
            };
            let delay = st.failures.failed(now, self.config.backoff, status.clone());
            tracing::debug!(failures = st.failures.count(), retry_in = ?delay, reason = %status.message(), "grpc-auth: login failed");
        }
        drop(st);
        self.shared.changed.notify_waiters();
    }
}

/// The token of an `authorization: Bearer <token>` entry (prefix matched ignoring case),
/// as a login response carries it.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    wire::bearer::token(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// A JWT's `iat` and `exp`, read without verifying (the server verifies; the client
/// only plans); `None` when the token is not a JWT.
fn jwt_times(token: &str) -> Option<(Option<u64>, Option<u64>)> {
    #[derive(serde::Deserialize)]
    struct Times {
        iat: Option<serde_json::Value>,
        exp: Option<serde_json::Value>,
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let times = serde_json::from_slice::<Times>(&bytes).ok()?;
    let secs = |v: Option<serde_json::Value>| {
        let v = v?;
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
    };
    Some((secs(times.iat), secs(times.exp)))
}

impl CallCredentials for BasicLogin {
    async fn apply(&self, ctx: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        if self.shared.basic.is_empty() {
            return Err(Status::unauthenticated(
                "Basic credential is not a valid metadata value",
            ));
        }
        loop {
            let mut changed = pin!(self.shared.changed.notified());
            // Registered before deciding, so an outcome in between is not missed.
            changed.as_mut().enable();
            match self.decide(ctx) {
                Decision::Send(value) => {
                    metadata.insert(AUTHORIZATION, value);
                    return Ok(());
                }
                Decision::Fail(status) => return Err(status),
                Decision::Wait => changed.await,
            }
        }
    }

    fn observes_responses(&self) -> bool {
        true
    }

    fn on_response(&self, outcome: &CallOutcome<'_>) {
        let sent = outcome.sent().get(AUTHORIZATION);
        if let Some(sent) = sent
            && bool::from(sent.as_bytes().ct_eq(self.shared.basic.as_bytes()))
        {
            self.login_done(outcome);
            return;
        }
        {
            let mut st = self.lock();
            // The login call came back without our Basic: another credential replaced
            // its `authorization` (a composite, or `PerCallCredentials::add`), so the
            // login never happened and the calls waiting for it must not wait forever;
            // the next one logs in. The call is known by its id; only any other call
            // (a waiter cancelled before it sent anything) leaves the login in flight.
            let is_login_call = match st.login_in_flight {
                Some(0) => sent.is_some() && st.token.as_ref().is_none_or(|(t, _)| Some(t) != sent),
                Some(owner) => owner == outcome.context().call_id(),
                None => false,
            };
            if is_login_call {
                st.login_in_flight = None;
                drop(st);
                tracing::debug!("grpc-auth: the login's Basic credential was replaced on the call");
                self.shared.changed.notify_waiters();
                return;
            }
        }
        let Some(sent) = sent else {
            return;
        };
        if outcome.status() == Some(Code::Unauthenticated) {
            let mut st = self.lock();
            // Only the token this call sent, and only once: a newer token stays.
            if st.token.as_ref().is_some_and(|(t, _)| t == sent) {
                st.token = None;
                tracing::debug!("grpc-auth: token refused; the next call logs in");
            }
        }
    }
}

impl fmt::Debug for BasicLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicLogin")
            .field("login_methods", &self.config.login_methods)
            .field("has_token", &self.has_token())
            .field("refresh_ahead", &self.config.refresh_ahead)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
