//! [`IntrospectionAuthenticator`]: bearer tokens checked at the identity provider's
//! OAuth 2.0 token introspection endpoint (RFC 7662), with a bounded cache of the
//! answers and one request in flight per token.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::claims::{numeric_date, strings};
use super::verified::{ConfigId, VerifiedCache};
use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::clock::{self, Clock};
use crate::fetch::{FetchError, Limits};
use crate::oauth::{ClientAuth, Endpoint};
use crate::{AuthError, Principal};

/// The scheme name principals get by default.
const SCHEME: &str = "introspection";
/// Default: an active answer serves at most this long (and never past the token's `exp`).
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Default: an inactive answer (a garbage or revoked token) serves this long.
const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Default: answers kept, each of the positive and the negative cache.
const DEFAULT_CAPACITY: usize = 10_000;
/// Default: distinct tokens being introspected at once; more are `UNAVAILABLE`.
const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default: the whole check (discovery included) is bounded by this.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest introspection answer read.
const MAX_RESPONSE: usize = 64 * 1024;

/// Why an [`IntrospectionAuthenticator`] could not be built: a bad endpoint URL or TLS
/// set-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token introspection: {0}")]
pub struct IntrospectionError(String);

/// Accepts bearer tokens the identity provider's introspection endpoint (RFC 7662)
/// calls active: for opaque access tokens, which only the provider can read.
///
/// - **The request:** `POST token=..&token_type_hint=access_token`, the server
///   authenticated as an OAuth 2.0 client ([`ClientAuth`]: `client_secret_basic`,
///   `client_secret_post` or `private_key_jwt`). The endpoint is configured
///   ([`builder`](Self::builder)) or read from the issuer's discovery document's
///   `introspection_endpoint` ([`builder_for_issuer`](Self::builder_for_issuer)).
/// - **Active:** the principal is the answer's `sub`, else its `client_id` (a
///   client-credentials token names no user); its scopes are `scope`; its claims the
///   whole answer. When configured, `iss` must match (an answer without one is the
///   endpoint's own issuer's) and `aud` must contain the audience. An answer with `exp`
///   in the past, `nbf` in the future, no `token_type` or one other than bearer (a
///   refresh token is active too; see
///   [`allow_missing_token_type`](IntrospectionAuthenticatorBuilder::allow_missing_token_type)),
///   a `token_use` other than `access_token`, a `sub` that is not a string, or a `cnf`
///   the connection does not satisfy (RFC 8705) is refused.
/// - **Inactive** (`active: false`), or a token the endpoint refuses to introspect
///   (`400 unsupported_token_type`, e.g. a JWT): `UNAUTHENTICATED`.
/// - **The endpoint down, slow (2 s by default), answering 5xx or garbage, or refusing
///   our own client authentication** (`401 invalid_client`, any other 400: a
///   misconfiguration, logged as an error): `UNAVAILABLE`, and never cached as inactive.
/// - **Caching**, keyed by the token's SHA-256, for this authenticator only: an active
///   answer until the earlier of the token's `exp` and the TTL (30 s; a token revoked
///   at the provider is refused once its entry expires), an inactive one briefly (5 s),
///   so a flood of garbage tokens costs the provider little; 10,000 entries each.
///   Cached answers keep serving while the provider is down. Concurrent calls with one
///   token make one request; at most 256 distinct tokens are in flight, more are
///   `UNAVAILABLE` at once.
/// - The token never reaches a log line or an error message.
///
/// With JWTs too, put the JWT scheme first: `jwt.or(introspection)` verifies JWTs
/// locally and sends only other bearer tokens to the provider (the JWT scheme leaves a
/// token that is not a JWT to the next scheme: [`AuthError::Unrecognized`]).
///
/// ```no_run
/// use grpc_auth::authn::{Authenticator, IntrospectionAuthenticator};
/// use grpc_auth::oauth::ClientAuth;
/// use grpc_auth::AuthLayer;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let introspection = IntrospectionAuthenticator::builder_for_issuer(
///     "https://idp.example",
///     ClientAuth::secret_basic("greeter", "s3cret"),
/// )
/// .audience("https://greeter.example")
/// .build()?;
/// let layer = AuthLayer::new(introspection);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct IntrospectionAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    auth: ClientAuth,
    issuer: Option<String>,
    audience: Option<String>,
    scheme: Cow<'static, str>,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    config: ConfigId,
    positive: VerifiedCache<[u8; 32]>,
    negative: quick_cache::sync::Cache<[u8; 32], (Instant, AuthError)>,
    negative_ttl: Duration,
    /// Each token's request in flight, with the number of callers waiting on it.
    flights: Mutex<HashMap<[u8; 32], (Flight, usize)>>,
    max_in_flight: usize,
    allow_missing_token_type: bool,
}

/// One introspection in progress, awaited by every call with the same token.
type Flight = Arc<OnceCell<Result<Principal, AuthError>>>;

/// Builds an [`IntrospectionAuthenticator`]: see
/// [`IntrospectionAuthenticator::builder`].
pub struct IntrospectionAuthenticatorBuilder {
    target: Target,
    auth: ClientAuth,
    issuer: Option<String>,
    audience: Option<String>,
    scheme: Cow<'static, str>,
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
    max_in_flight: usize,
    timeout: Duration,
    allow_http: bool,
    allow_missing_token_type: bool,
    roots: Vec<Vec<u8>>,
    clock: Arc<dyn Clock>,
}

enum Target {
    Url(String),
    Issuer(String),
}

impl IntrospectionAuthenticator {
    /// Introspects at `url` (https; plain http only to loopback unless
    /// [`allow_http`](IntrospectionAuthenticatorBuilder::allow_http)), authenticated as
    /// `auth`.
    pub fn builder(url: impl Into<String>, auth: ClientAuth) -> IntrospectionAuthenticatorBuilder {
        IntrospectionAuthenticatorBuilder::new(Target::Url(url.into()), auth)
    }

    /// Introspects at the `introspection_endpoint` of `issuer`'s OpenID Connect
    /// discovery document (read on first use; a failed discovery is `UNAVAILABLE` and
    /// tried again on the next call), and requires answers naming an `iss` to name
    /// `issuer`.
    pub fn builder_for_issuer(
        issuer: impl Into<String>,
        auth: ClientAuth,
    ) -> IntrospectionAuthenticatorBuilder {
        let issuer = issuer.into();
        let mut b = IntrospectionAuthenticatorBuilder::new(Target::Issuer(issuer.clone()), auth);
        b.issuer = Some(issuer);
        b
    }
}

impl IntrospectionAuthenticatorBuilder {
    fn new(target: Target, auth: ClientAuth) -> Self {
        Self {
            target,
            auth,
            issuer: None,
            audience: None,
            scheme: Cow::Borrowed(SCHEME),
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            capacity: DEFAULT_CAPACITY,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            timeout: DEFAULT_TIMEOUT,
            allow_http: false,
            allow_missing_token_type: false,
            roots: Vec::new(),
            clock: clock::system(),
        }
    }

    /// Requires an answer's `iss`, when it has one, to be `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires an answer's `aud` (a string or a list) to contain `audience`: a token
    /// issued for another service is refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How long an active answer serves at most (default 30 s; never past the token's
    /// `exp`). A token revoked at the provider is refused once its entry expires.
    /// Whole seconds; zero disables the positive cache.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an inactive answer serves (default 5 s; zero disables the negative
    /// cache).
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How many answers each cache keeps (default 10,000). Losing one costs only a
    /// new request to the provider.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How many distinct tokens may be introspected at once (default 256); more are
    /// `UNAVAILABLE` at once rather than queued.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// The bound on one check, discovery included (default 2 s): past it the call is
    /// `UNAVAILABLE`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The scheme name principals get (default `introspection`).
    pub fn scheme(mut self, scheme: impl Into<Cow<'static, str>>) -> Self {
        self.scheme = scheme.into();
        self
    }

    /// Allows a plain `http://` endpoint off loopback (never in production: tokens and
    /// the client secret would travel in clear).
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Accepts active answers without a `token_type` (for providers that never send
    /// one). By default one is required and must be bearer: some providers call a
    /// refresh token active and mark it only by the missing `token_type`.
    pub fn allow_missing_token_type(mut self) -> Self {
        self.allow_missing_token_type = true;
        self
    }

    /// Trusts these PEM root certificates besides the system's.
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Reads the time from `clock` (expiry checks and the positive cache).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The authenticator; fails on a bad URL or TLS set-up.
    pub fn build(self) -> Result<IntrospectionAuthenticator, IntrospectionError> {
        let limits = Limits {
            connect_timeout: self.timeout,
            timeout: self.timeout,
            max_bytes: MAX_RESPONSE,
        };
        let endpoint = match &self.target {
            Target::Url(url) => Endpoint::fixed(url, self.allow_http, &self.roots, limits),
            Target::Issuer(issuer) => Endpoint::discovered(
                issuer,
                "introspection_endpoint",
                self.allow_http,
                &self.roots,
                limits,
            ),
        }
        .map_err(|e| IntrospectionError(e.to_string()))?;
        Ok(IntrospectionAuthenticator {
            inner: Arc::new(Inner {
                endpoint,
                auth: self.auth,
                issuer: self.issuer,
                audience: self.audience,
                scheme: self.scheme,
                timeout: self.timeout,
                clock: self.clock,
                config: ConfigId::fresh(),
                positive: VerifiedCache::new(self.ttl, self.capacity),
                negative: quick_cache::sync::Cache::new(self.capacity),
                negative_ttl: self.negative_ttl,
                flights: Mutex::new(HashMap::new()),
                max_in_flight: self.max_in_flight,
                allow_missing_token_type: self.allow_missing_token_type,
            }),
        })
    }
}

impl IntrospectionAuthenticator {
    /// The principal `token` stands for, from the cache or the provider.
    pub async fn introspect(&self, token: &str) -> Result<Principal, AuthError> {
        let inner = &self.inner;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = inner.cached(&digest) {
            return hit;
        }
        let flight = inner.join(digest)?;
        let _leave = Leave {
            inner,
            digest,
            flight: &flight,
        };
        // Each caller's wait is bounded from its own start: a waiter that takes over
        // from a cancelled leader does not get a fresh timeout.
        let answer = flight.get_or_init(|| async {
            // A flight that finished just before this one started has filled the cache.
            if let Some(hit) = inner.cached(&digest) {
                return hit;
            }
            let outcome = inner.ask(token).await;
            inner.remember(digest, &outcome);
            outcome
        });
        match tokio::time::timeout(inner.timeout, answer).await {
            Ok(answer) => answer.clone(),
            Err(_) => Err(inner.timed_out()),
        }
    }
}

/// Leaves a flight: the last caller out (or the first once it has an answer) removes
/// it, so a cancelled call leaves nothing behind and a finished answer is not reused
/// past the cache's rules. Made right after [`Inner::join`] counted the caller in.
struct Leave<'a> {
    inner: &'a Inner,
    digest: [u8; 32],
    flight: &'a Flight,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((flight, waiters)) = flights.get_mut(&self.digest) else {
            return;
        };
        // Another flight for the token, started after this one was removed: not ours.
        if !Arc::ptr_eq(flight, self.flight) {
            return;
        }
        *waiters = waiters.saturating_sub(1);
        if *waiters == 0 || self.flight.initialized() {
            flights.remove(&self.digest);
        }
    }
}

impl Inner {
    /// A cached answer: an active token's principal, or an inactive token's refusal.
    fn cached(&self, digest: &[u8; 32]) -> Option<Result<Principal, AuthError>> {
        if let Some(p) = self.positive.get(self.config, digest, &*self.clock, 0) {
            return Some(Ok(p));
        }
        let (until, refusal) = self.negative.get(digest)?;
        if Instant::now() < until {
            return Some(Err(refusal));
        }
        self.negative.remove(digest);
        None
    }

    /// The flight for `digest`, joined or started; `UNAVAILABLE` when too many distinct
    /// tokens are in flight.
    fn join(&self, digest: [u8; 32]) -> Result<Flight, AuthError> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((f, waiters)) = flights.get_mut(&digest) {
            *waiters = waiters.saturating_add(1);
            return Ok(f.clone());
        }
        if flights.len() >= self.max_in_flight {
            return Err(AuthError::unavailable(
                "too many token introspections in progress",
            ));
        }
        let f = Flight::default();
        flights.insert(digest, (f.clone(), 1));
        Ok(f)
    }

    /// Caches an answer about the token: a principal until its expiry (at most the
    /// TTL), a refusal of the token briefly. The provider's unavailability is not an
    /// answer about the token and is not kept.
    fn remember(&self, digest: [u8; 32], outcome: &Result<Principal, AuthError>) {
        match outcome {
            Ok(p) => {
                // The same reading of `exp` as the check's (a fractional one floored).
                let exp = p.claims().get("exp").and_then(numeric_date);
                self.positive
                    .insert(self.config, digest, p.clone(), exp, &*self.clock, 0);
            }
            Err(e @ AuthError::Unauthenticated(_)) if !self.negative_ttl.is_zero() => {
                if let Some(until) = Instant::now().checked_add(self.negative_ttl) {
                    self.negative.insert(digest, (until, e.clone()));
                }
            }
            Err(_) => {}
        }
    }

    /// One request to the provider, bounded by the timeout.
    async fn ask(&self, token: &str) -> Result<Principal, AuthError> {
        let form = [("token", token), ("token_type_hint", "access_token")];
        let answer =
            tokio::time::timeout(self.timeout, self.endpoint.post(&form, Some(&self.auth)))
                .await
                .map_err(|_| self.timed_out())?;
        // What went wrong on the way (the endpoint's address, the transport's error) goes
        // to the log only: callers, unauthenticated ones too, learn no more than that.
        let (status, body) = answer.map_err(|e| match e {
            FetchError::Config(what) | FetchError::Request(what) => {
                tracing::warn!(endpoint = %self.endpoint.shown(), error = %what, "grpc-auth: token introspection failed");
                AuthError::unavailable("token introspection unavailable: no answer from the endpoint")
            }
        })?;
        match status {
            200 => self.principal(&body),
            400 | 401 | 403 => {
                let code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
                if status == 400 && code.as_deref() == Some("unsupported_token_type") {
                    return Err(AuthError::unauthenticated(
                        "token refused by the introspection endpoint",
                    ));
                }
                // Our own client authentication or request is wrong: a misconfiguration,
                // not a verdict on the caller's token.
                let code = code
                    .filter(|c| OAUTH_ERRORS.contains(&c.as_str()))
                    .unwrap_or_else(|| format!("HTTP {status}"));
                tracing::error!(
                    endpoint = %self.endpoint.shown(),
                    client_id = self.auth.client_id(),
                    error = %code,
                    "grpc-auth: the introspection endpoint refused this server's client authentication or request"
                );
                Err(AuthError::unavailable(format!(
                    "token introspection refused this server's request ({code})"
                )))
            }
            _ => Err(self.unavailable(format!("answered HTTP {status}"))),
        }
    }

    fn timed_out(&self) -> AuthError {
        let ms = self.timeout.as_millis();
        self.unavailable(format!("did not answer within {ms} ms"))
    }

    fn unavailable(&self, what: String) -> AuthError {
        tracing::warn!(endpoint = %self.endpoint.shown(), error = %what, "grpc-auth: token introspection failed");
        AuthError::unavailable(format!("token introspection unavailable: {what}"))
    }

    /// The principal of a `200` answer, or why the token is refused.
    fn principal(&self, body: &[u8]) -> Result<Principal, AuthError> {
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
            return Err(self.unavailable("answered something other than a JSON object".into()));
        };
        match answer.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err(AuthError::unauthenticated("inactive token")),
            _ => return Err(self.unavailable("answered no \"active\" member".into())),
        }
        self.check(&answer)?;
        let text = |name: &str| {
            answer
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        // The user's `sub`, else (a client-credentials token names none) the client. A
        // `sub` that is there but not a name is refused, never read as the client.
        let subject = match answer.get("sub") {
            None | Some(Value::Null) => text("client_id"),
            Some(_) => match text("sub") {
                Some(sub) => Some(sub),
                None => return Err(AuthError::unauthenticated("token has an invalid sub")),
            },
        };
        let Some(subject) = subject else {
            return Err(AuthError::unauthenticated(
                "active token names neither a subject nor a client",
            ));
        };
        let scopes: Vec<String> = strings(answer.get("scope")).collect();
        Ok(Principal::new(subject, self.scheme.clone())
            .with_scopes(scopes)
            .with_claims(answer))
    }

    /// The time, issuer, audience and type rules of an active answer.
    fn check(&self, answer: &Map<String, Value>) -> Result<(), AuthError> {
        let now = self.clock.unix_seconds();
        let number = |name: &str| -> Result<Option<u64>, AuthError> {
            match answer.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => numeric_date(v).map(Some).ok_or_else(|| {
                    AuthError::unauthenticated(format!("token has an invalid {name}"))
                }),
            }
        };
        if number("exp")?.is_some_and(|exp| exp <= now) {
            return Err(AuthError::unauthenticated("token expired"));
        }
        if number("nbf")?.is_some_and(|nbf| nbf > now) {
            return Err(AuthError::unauthenticated("token not yet valid"));
        }
        // A refresh token is active too, and `token_type_hint` is only a hint: require
        // an access token's marks. Some providers answer a refresh token with no
        // `token_type` at all (oidc-provider), others with `token_use` (Ory Hydra).
        match answer.get("token_type") {
            Some(tt)
                if tt
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("bearer")) => {}
            None if self.allow_missing_token_type => {}
            _ => {
                return Err(AuthError::unauthenticated(
                    "token is not a bearer access token",
                ));
            }
        }
        if answer
            .get("token_use")
            .is_some_and(|u| u.as_str() != Some("access_token"))
        {
            return Err(AuthError::unauthenticated(
                "token is not a bearer access token",
            ));
        }
        if let Some(want) = &self.issuer {
            match answer.get("iss") {
                None => {}
                Some(Value::String(iss)) if iss == want => {}
                Some(_) => return Err(AuthError::unauthenticated("token from another issuer")),
            }
        }
        if let Some(want) = &self.audience {
            let ok = match answer.get("aud") {
                Some(Value::String(aud)) => aud == want,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                return Err(AuthError::unauthenticated(
                    "token not issued for this service",
                ));
            }
        }
        Ok(())
    }
}

/// The OAuth 2.0 error codes a message may name (RFC 6749 5.2, RFC 7662): anything
/// else an endpoint says (it could echo what it was sent) is not shown.
const OAUTH_ERRORS: [&str; 5] = [
    "invalid_request",
    "invalid_client",
    "unauthorized_client",
    "invalid_token",
    "insufficient_scope",
];

impl Authenticator for IntrospectionAuthenticator {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Bearer") {
            return Ok(None);
        }
        let principal = self.introspect(auth.credentials()).await?;
        super::mtls::check_binding(&principal, req)?;
        Ok(Some(Authenticated::by(
            principal,
            http::header::AUTHORIZATION,
        )))
    }
}

impl fmt::Debug for IntrospectionAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("IntrospectionAuthenticator")
            .field("endpoint", &i.endpoint.shown())
            .field("auth", &i.auth)
            .field("issuer", &i.issuer)
            .field("audience", &i.audience)
            .field("positive", &i.positive)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for IntrospectionAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionAuthenticatorBuilder")
            .field("auth", &self.auth)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}
