//! HMAC request signatures in the Tyk / draft-cavage HTTP Signatures format: the
//! [`HmacVerifier`] (usable on plain inputs, e.g. inside a Tyk coprocess plugin), the
//! [`HmacAuthenticator`] for the layer, and the key store. The client half is
//! [`HmacSigner`](crate::credentials::HmacSigner).
//!
//! ```
//! use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
//! use grpc_auth::clock::ManualClock;
//! use grpc_auth::credentials::{CallContext, CallCredentials, HmacSigner};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let verifier = HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret"))
//!     .clock(clock.clone());
//! let signer = HmacSigner::new("svc-a", "s3cret").clock(clock);
//!
//! // The client signs a call: date, x-nonce, authorization: Signature keyId=...
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! let mut headers = http::HeaderMap::new();
//! let ctx = CallContext::new("https://greeter.example/helloworld.Greeter", "SayHello", true);
//! rt.block_on(signer.apply(&ctx, &mut headers))?;
//!
//! // The server verifies it: gRPC calls are POSTs to the method path.
//! let ok = rt.block_on(verifier.verify("POST", "/helloworld.Greeter/SayHello", &headers))?;
//! assert_eq!((ok.key_id.as_str(), ok.algorithm.name()), ("svc-a", "hmac-sha256"));
//! let again = rt.block_on(verifier.verify("POST", "/helloworld.Greeter/SayHello", &headers));
//! assert_eq!(again.unwrap_err().to_string(), "HMAC signature already used (replay)");
//!
//! // In the layer: principal = key id, scheme "hmac".
//! let layer = grpc_auth::AuthLayer::new(HmacAuthenticator::new(verifier));
//! # let _ = layer; Ok(()) }
//! ```
//!
//! The format: `authorization: Signature keyId="..",algorithm="hmac-sha256",
//! headers="(request-target) date",signature=".."` plus a `date` entry (IMF-fixdate).
//! The signing string has one `name: value` line per listed header, joined by `\n`;
//! `(request-target)` is `post /package.Service/Method`; `headers` defaults to `date`;
//! `date` is read from `x-aux-date` when that is present (Tyk's rule for clients that
//! cannot set `Date`). The signature is base64, plain or URL-encoded.
//!
//! Defaults of [`HmacVerifier`]:
//! - algorithms hmac-sha256/384/512; hmac-sha1 only when listed in
//!   [`algorithms`](HmacVerifier::algorithms); an unknown name is refused, never downgraded;
//! - `date` within 300 s of the verifier's clock, either way (300 s);
//! - `date` and `(request-target)` must be signed; [`allow_date_only`](HmacVerifier::allow_date_only)
//!   accepts Tyk-demo style signatures over the date alone (no binding to the method);
//! - a signature is accepted once: a bounded cache (65 536 entries)
//!   remembers it until its date leaves the skew window; a cache full of live
//!   signatures refuses new ones (`UNAVAILABLE`) rather than forget one. Clients sending several calls per second to one method must sign a
//!   nonce (the signer does by default), or identical date-only signatures are replays;
//! - each metadata value read is bounded to 8 KiB, at most 32 headers may be listed.

mod keys;
mod replay;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

pub use crate::wire::hmac::{HmacAlgorithm, HmacError};
pub use keys::{HmacKeyStore, StaticHmacKeys};

use super::request::{EntryError, single_entry};
use super::{AuthRequest, AuthResult, Authenticated, Authenticator, DEFAULT_MAX_VALUE_LEN};
use crate::Principal;
use crate::clock::{self, Clock};
use crate::store::Store;
use crate::wire::hmac::{
    REQUEST_TARGET, decode_signature, parse_params, push_line, push_request_target,
};
use replay::{FirstUse, Replay};

/// Default allowed distance between the `date` and the verifier's clock: 300 s.
pub(crate) const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(300);
/// Default number of accepted signatures remembered against replay: 65 536.
pub(crate) const DEFAULT_REPLAY_CACHE_SIZE: usize = 65_536;
/// Bound on the number of headers a signature may list.
pub(crate) const MAX_SIGNED_HEADERS: usize = 32;

/// What a verified signature proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacVerified {
    /// The `keyId` whose secret verified the signature.
    pub key_id: String,
    /// The algorithm used.
    pub algorithm: HmacAlgorithm,
    /// The signed headers, lower-cased, in signing order.
    pub headers: Vec<String>,
    /// The signed date.
    pub date: SystemTime,
}

/// Verifies HMAC request signatures against a [`HmacKeyStore`]. Cheap to clone; clones
/// share the replay cache. See the [module docs](self).
pub struct HmacVerifier<K = StaticHmacKeys> {
    keys: K,
    algorithms: Vec<HmacAlgorithm>,
    max_skew: Option<Duration>,
    required: Vec<String>,
    replay: Option<Replay>,
    replay_capacity: usize,
    replay_fail_open: bool,
    clock: Arc<dyn Clock>,
    max_value_len: usize,
}

impl<K: HmacKeyStore> HmacVerifier<K> {
    /// A verifier over `keys` with the defaults in the [module docs](self).
    pub fn new(keys: K) -> Self {
        let clock = clock::system();
        Self {
            keys,
            algorithms: HmacAlgorithm::DEFAULT_ALLOWED.to_vec(),
            max_skew: Some(DEFAULT_MAX_SKEW),
            required: vec![REQUEST_TARGET.to_owned(), "date".to_owned()],
            replay: Some(Replay::memory(
                DEFAULT_REPLAY_CACHE_SIZE,
                clock.clone(),
                Some(DEFAULT_MAX_SKEW),
            )),
            replay_capacity: DEFAULT_REPLAY_CACHE_SIZE,
            replay_fail_open: false,
            clock,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
        }
    }

    /// Replaces the allow-list of algorithms (include [`HmacAlgorithm::Sha1`] to accept
    /// legacy clients).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = HmacAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Sets the allowed distance between `date` and the clock, either way (default 300 s).
    pub fn max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = Some(skew);
        if let Some(r) = &self.replay {
            r.register(self.max_skew);
        }
        self
    }

    /// Accepts any date (as Tyk does with a clock skew of 0). The date must still parse
    /// and be signed. A signature then stays replayable forever, so the replay cache
    /// never forgets one: once it holds `replay_cache_size` signatures, every new one is
    /// refused (`UNAVAILABLE`). Combine it with
    /// [`no_replay_protection`](Self::no_replay_protection) only when replays do not matter.
    pub fn no_skew_check(mut self) -> Self {
        self.max_skew = None;
        if let Some(r) = &self.replay {
            r.register(None);
        }
        self
    }

    /// Sets how many accepted signatures the verifier's own memory remembers (default
    /// 65 536, about 18 MB resident at capacity; no effect on a [`replay_store`](Self::replay_store);
    /// at least 1). [`no_replay_protection`](Self::no_replay_protection) turns it off. A signature is remembered until its date leaves
    /// the skew window, never less; when every entry is still live and the cache is
    /// full, a new signature is refused with `UNAVAILABLE` ("HMAC replay cache full")
    /// and a warning is logged. Size it above peak signed calls per second times twice
    /// the skew (a date may be up to the skew ahead of the clock).
    pub fn replay_cache_size(mut self, entries: usize) -> Self {
        self.replay_capacity = entries.max(1);
        // A store given with `replay_store` (shared by replicas) stays: the size is the
        // verifier's own memory's.
        if self.replay.as_ref().is_none_or(|r| r.own.is_some()) {
            self.replay = Some(Replay::memory(
                self.replay_capacity,
                self.clock.clone(),
                self.max_skew,
            ));
        }
        self
    }

    /// Keeps accepted signatures in `store` instead of the verifier's own memory: with a
    /// `RedisStore` (feature `redis`) shared by every replica, a signature
    /// accepted by one replica is a replay on all the others (`SET NX PX`, one round
    /// trip per signed call). Replicas sharing a store must use the same skew window:
    /// an entry lives for the signed date plus this verifier's window.
    ///
    /// When the store cannot answer (Redis down, slow, its connection lost), the call
    /// is refused with `UNAVAILABLE` "HMAC replay check unavailable: redis store
    /// unavailable: ..." unless [`replay_fails_open`](Self::replay_fails_open) says
    /// otherwise.
    pub fn replay_store(mut self, store: impl Store) -> Self {
        self.replay = Some(Replay::on(Arc::new(store), self.max_skew));
        self
    }

    /// Accepts a correctly signed call when the replay store cannot be reached or does
    /// not answer in time (logged at warn each time), instead of refusing it. A store
    /// that answers but lost its data ([`StoreError::Unreliable`](crate::store::StoreError::Unreliable))
    /// is refused all the same. Off by default: turn it on only when
    /// availability matters more than replays during a store outage. Only the replay
    /// check fails open; the signature, its date and its key are checked as always.
    pub fn replay_fails_open(mut self, fail_open: bool) -> Self {
        self.replay_fail_open = fail_open;
        self
    }

    /// Turns replay protection off: a signature is accepted as often as it is sent
    /// while its date passes the skew check. For clients that send identical date-only
    /// signatures several times a second, when replays do not matter.
    pub fn no_replay_protection(mut self) -> Self {
        self.replay_capacity = 0;
        self.replay = None;
        self
    }

    /// Sets the headers a signature must cover (names, or `(request-target)`); `date`
    /// is always required. Default: `(request-target)` and `date`.
    pub fn require_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.required = headers
            .into_iter()
            .map(|h| h.as_ref().trim().to_ascii_lowercase())
            .collect();
        if !self.required.iter().any(|h| h == "date") {
            self.required.push("date".to_owned());
        }
        self
    }

    /// Accepts signatures over `date` alone, like the Tyk demo's `hmac.sh` sends. Such a
    /// signature is not bound to the method: anyone who sees it may replay it on
    /// another method within the window unless the replay cache has already seen it.
    pub fn allow_date_only(self) -> Self {
        self.require_headers(["date"])
    }

    /// Reads the time from `clock` (tests: [`ManualClock`](crate::clock::ManualClock)).
    /// The verifier's own replay memory is made anew on this clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        if self.replay.as_ref().is_some_and(|r| r.own.is_some()) {
            self.replay = Some(Replay::memory(
                self.replay_capacity,
                self.clock.clone(),
                self.max_skew,
            ));
        }
        self
    }

    /// Sets the bound on each metadata value [`verify`](Self::verify) reads (default
    /// 8 KiB). Through the layer, the layer's bound
    /// ([`AuthLayer::max_value_len`](crate::AuthLayer::max_value_len)) applies instead.
    pub fn max_value_len(mut self, max: usize) -> Self {
        self.max_value_len = max;
        self
    }

    /// The key store.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// Verifies the signature on a request: `http_method` (`POST` for gRPC), `path`
    /// (`/package.Service/Method`; a query is ignored) and its `headers`.
    ///
    /// Checks, in order: the `authorization` entry and its parameters, the algorithm,
    /// the signature's encoding, the listed and required headers, the date and its
    /// skew, the key, the MAC (constant time), and the replay cache.
    pub async fn verify(
        &self,
        http_method: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<HmacVerified, HmacError> {
        self.verify_within(http_method, path, headers, self.max_value_len)
            .await
    }

    /// [`verify`](Self::verify) with `max` bytes per metadata value (the layer's bound).
    pub(crate) async fn verify_within(
        &self,
        http_method: &str,
        path: &str,
        headers: &HeaderMap,
        max: usize,
    ) -> Result<HmacVerified, HmacError> {
        let value = Self::single(headers, "authorization", max)?
            .ok_or(HmacError::MissingAuthorization)?
            .trim();
        let (scheme, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Signature") {
            return Err(HmacError::NotSignature);
        }
        let params = parse_params(params)?;
        let algorithm =
            HmacAlgorithm::from_name(params.algorithm).ok_or(HmacError::UnsupportedAlgorithm)?;
        if !self.algorithms.contains(&algorithm) {
            return Err(HmacError::AlgorithmNotAllowed(algorithm));
        }
        let mac = decode_signature(params.signature)?;
        let listed = listed_headers(params.headers.unwrap_or("date"))?;
        if let Some(missing) = self.required.iter().find(|r| !listed.contains(r)) {
            return Err(HmacError::HeaderNotSigned(missing.clone()));
        }

        let mut signing = String::with_capacity(256);
        let mut date = None;
        for name in &listed {
            if name == REQUEST_TARGET {
                push_request_target(&mut signing, http_method, path);
            } else if name == "date" {
                let (line, value) = match Self::single(headers, "x-aux-date", max)? {
                    Some(v) => ("x-aux-date", v),
                    None => (
                        "date",
                        Self::single(headers, "date", max)?.ok_or(HmacError::MissingDate)?,
                    ),
                };
                push_line(&mut signing, line, value);
                date = Some(value);
            } else {
                let value = Self::single(headers, name, max)?
                    .ok_or_else(|| HmacError::HeaderAbsent(name.clone()))?;
                push_line(&mut signing, name, value);
            }
        }
        let date = date.ok_or(HmacError::MissingDate)?;
        let date = httpdate::parse_http_date(date.trim()).map_err(|_| HmacError::BadDate)?;
        if let Some(skew) = self.max_skew {
            let now = self.clock.now();
            let distance = now.duration_since(date).unwrap_or_else(|e| e.duration());
            if distance > skew {
                return Err(HmacError::DateOutsideWindow(skew));
            }
        }

        let secret = self
            .keys
            .secret(params.key_id)
            .await?
            .ok_or(HmacError::UnknownKey)?;
        if secret.is_empty() || !algorithm.verify(secret.expose(), signing.as_bytes(), &mac) {
            return Err(HmacError::BadSignature);
        }
        if let Some(replay) = &self.replay {
            // Keyed by the MAC alone: `keyId` is not signed, so a respelled id (a store
            // that looks ids up ignoring case) must not make a replay look new.
            match replay.first_use(&mac, date, self.clock.now()).await {
                FirstUse::Yes => {}
                FirstUse::Replay => return Err(HmacError::Replay),
                FirstUse::Full => {
                    tracing::warn!(
                        method = path,
                        capacity = self.replay_capacity,
                        "grpc-auth: HMAC replay cache full of live signatures; signature refused"
                    );
                    return Err(HmacError::ReplayCacheFull);
                }
                FirstUse::Unavailable(e) if self.replay_fail_open && e.is_unreachable() => {
                    tracing::warn!(
                        method = path,
                        store = replay.store_name(),
                        error = %e,
                        "grpc-auth: HMAC replay check unavailable; accepted (fail open)"
                    );
                }
                FirstUse::Unavailable(e) => {
                    tracing::warn!(
                        method = path,
                        store = replay.store_name(),
                        error = %e,
                        "grpc-auth: HMAC replay check unavailable; signature refused"
                    );
                    return Err(HmacError::ReplayStore(e.to_string().into()));
                }
            }
        }
        Ok(HmacVerified {
            key_id: params.key_id.to_owned(),
            algorithm,
            headers: listed,
            date,
        })
    }

    /// The single value of metadata `name`, bounded and ASCII, or `None` when absent.
    fn single<'h>(
        headers: &'h HeaderMap,
        name: &str,
        max: usize,
    ) -> Result<Option<&'h str>, HmacError> {
        single_entry(headers, name, max).map_err(|e| match e {
            EntryError::Repeated => HmacError::Repeated(name.to_owned()),
            EntryError::Oversized(max) => HmacError::Oversized {
                name: name.to_owned(),
                max,
            },
            EntryError::NotAscii => HmacError::NotAscii(name.to_owned()),
        })
    }
}

/// The `headers` parameter split on whitespace, lower-cased, each a header name or
/// `(request-target)`, none twice, at most [`MAX_SIGNED_HEADERS`].
fn listed_headers(param: &str) -> Result<Vec<String>, HmacError> {
    let mut listed: Vec<String> = Vec::new();
    for name in param.split_ascii_whitespace() {
        if listed.len() == MAX_SIGNED_HEADERS {
            return Err(HmacError::Malformed(
                format!("more than {MAX_SIGNED_HEADERS} signed headers").into(),
            ));
        }
        let name = name.to_ascii_lowercase();
        if name != REQUEST_TARGET && HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(HmacError::Malformed(
                "invalid header name in headers".into(),
            ));
        }
        if listed.contains(&name) {
            return Err(HmacError::Malformed(
                format!("{name} listed twice in headers").into(),
            ));
        }
        listed.push(name);
    }
    Ok(listed)
}

impl HmacVerifier<StaticHmacKeys> {
    /// Adds a key to a verifier over [`StaticHmacKeys`]:
    /// `HmacVerifier::new(StaticHmacKeys::new()).key("svc-a", "s3cret")`.
    pub fn key(mut self, key_id: impl Into<String>, secret: impl Into<crate::Secret>) -> Self {
        self.keys = self.keys.key(key_id, secret);
        self
    }
}

impl<K: Clone> Clone for HmacVerifier<K> {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            algorithms: self.algorithms.clone(),
            max_skew: self.max_skew,
            required: self.required.clone(),
            replay: self.replay.clone(),
            replay_capacity: self.replay_capacity,
            replay_fail_open: self.replay_fail_open,
            clock: self.clock.clone(),
            max_value_len: self.max_value_len,
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for HmacVerifier<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacVerifier")
            .field("keys", &self.keys)
            .field("algorithms", &self.algorithms)
            .field("max_skew", &self.max_skew)
            .field("required", &self.required)
            .field("replay_cache_size", &self.replay_capacity)
            .field(
                "replay_store",
                &self.replay.as_ref().map(|r| r.store_name()),
            )
            .field("replay_fails_open", &self.replay_fail_open)
            .field("max_value_len", &self.max_value_len)
            .finish()
    }
}

/// The [`HmacVerifier`] as an [`Authenticator`]: absent (`Ok(None)`) unless
/// `authorization` uses the `Signature` scheme; otherwise verifies the call as
/// `POST <method path>`. The principal's subject is the key id, its scheme `"hmac"`;
/// name key ids after the callers they stand for (`billing-service`), or wrap this
/// authenticator to map them.
///
/// ```
/// use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
/// use grpc_auth::Authenticator;
/// use grpc_auth::authn::ApiKeyAuthenticator;
/// let hmac = HmacAuthenticator::new(HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret")));
/// let auth = hmac.or(ApiKeyAuthenticator::new().key("k-123", "billing"));
/// # let _ = auth;
/// ```
#[derive(Debug, Clone)]
pub struct HmacAuthenticator<K = StaticHmacKeys> {
    verifier: HmacVerifier<K>,
}

impl<K: HmacKeyStore> HmacAuthenticator<K> {
    /// Authenticates with `verifier`.
    pub fn new(verifier: HmacVerifier<K>) -> Self {
        Self { verifier }
    }

    /// The verifier.
    pub fn verifier(&self) -> &HmacVerifier<K> {
        &self.verifier
    }
}

impl<K: HmacKeyStore> Authenticator for HmacAuthenticator<K> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Signature") {
            return Ok(None);
        }
        let verified = self
            .verifier
            .verify_within("POST", req.method(), req.headers(), req.max_value_len())
            .await?;
        Ok(Some(Authenticated::by(
            Principal::new(verified.key_id, "hmac"),
            http::header::AUTHORIZATION,
        )))
    }
}
