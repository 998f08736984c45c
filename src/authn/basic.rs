//! [`BasicAuthenticator`]: `authorization: Basic base64(user:password)` against a
//! credential store, with argon2 hashes, a short-lived verified-credential cache, a
//! bound on concurrent hash checks and failed-login limits.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::failures::{FailureLimiter, FailureLimits};
use super::verified::{ConfigId, VerifiedCache};
use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::clock::{self, Clock};
use crate::{AuthError, Principal, Secret, wire};

/// Default time a verified hashed credential is remembered: 60 s.
pub(crate) const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default number of verified credentials remembered: 10 000.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default number of password hashes checked at once per CPU, and of checks that may
/// wait for one, per CPU: 1 and 4.
const DEFAULT_HASHES_PER_CPU: (usize, usize) = (1, 4);

/// Authenticates HTTP Basic credentials.
///
/// Passwords are stored in plaintext (tests, demos) or as PHC strings (argon2, for
/// real use).
/// - Plaintext is compared by SHA-256 digest in constant time, so neither the bytes
///   nor the length of the password leak.
/// - Hashes are verified by the `argon2` crate on tokio's blocking pool, at most one
///   per CPU at a time with up to four per CPU waiting
///   ([`max_concurrent_hashes`](Self::max_concurrent_hashes)); over that, the call is
///   refused `UNAVAILABLE` "too many password checks in progress" at once. A check
///   keeps its slot until argon2 returns, even when its call was cancelled.
/// - An unknown user name costs what a known one costs: when there are hashed users,
///   it is checked against a dummy hash with the same parameters.
/// - Failed logins are limited per user and per peer ([`FailureLimits`]); a limited
///   caller gets `RESOURCE_EXHAUSTED` without a hash being computed.
/// - A verified hashed credential is cached for 60 s, keyed by an HMAC
///   of `user:password` under a random per-process key (never the plaintext), for this
///   configuration only: a clone that adds users, changes a password or grants scopes
///   never serves an entry the other verified. Failures are not cached.
///
/// ```
/// use grpc_auth::authn::BasicAuthenticator;
/// let auth = BasicAuthenticator::new()
///     .user("ada", "lovelace")
///     .hashed_user("bob", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$8rC6uXbNEYAlRlyTNa+EvaxC4x0uL+/5KxvZmOqqoac")
///     .expect("a valid PHC string")
///     .grant("ada", ["greeter.write"]);
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct BasicAuthenticator {
    users: Arc<HashMap<String, User>>,
    /// A PHC string with the costliest stored hash's parameters that matches no
    /// password: what an unknown user is checked against.
    dummy: Option<Arc<str>>,
    cache: Option<Arc<VerifiedCache<[u8; 32]>>>,
    cache_key: Arc<Secret>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    config: ConfigId,
    hashing: Arc<Hashing>,
    limits: Option<FailureLimiter>,
}

/// The bound on argon2 work: `running` checks at once, `queued` more waiting.
struct Hashing {
    running: Arc<Semaphore>,
    queued: Semaphore,
    limits: (usize, usize),
}

impl Hashing {
    fn new(running: usize, queued: usize) -> Self {
        let running = running.clamp(1, Semaphore::MAX_PERMITS);
        let queued = queued.min(Semaphore::MAX_PERMITS);
        Self {
            running: Arc::new(Semaphore::new(running)),
            queued: Semaphore::new(queued),
            limits: (running, queued),
        }
    }
}

/// What the verified-credential cache knows of a login.
enum Lookup {
    Hit,
    /// Not cached; the key to cache a verification under.
    Miss([u8; 32]),
    /// No cache, or a plaintext password (never cached).
    NotCached,
}

#[derive(Clone)]
struct User {
    password: Stored,
    principal: Principal,
}

#[derive(Clone)]
enum Stored {
    /// SHA-256 of the plaintext password.
    Plain(Secret),
    Hash(Arc<str>),
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

impl BasicAuthenticator {
    /// An empty store with the cache and the failure limits on.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        // An all-zero key only weakens the cache key's secrecy, not correctness.
        let _ = getrandom::fill(&mut key);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            users: Arc::new(HashMap::new()),
            dummy: None,
            cache: Some(Arc::new(VerifiedCache::new(
                DEFAULT_CACHE_TTL,
                DEFAULT_CACHE_CAPACITY,
            ))),
            cache_key: Arc::new(Secret::new(key.to_vec())),
            ttl: DEFAULT_CACHE_TTL,
            clock: clock::system(),
            config: ConfigId::fresh(),
            hashing: Arc::new(Hashing::new(
                cpus * DEFAULT_HASHES_PER_CPU.0,
                cpus * DEFAULT_HASHES_PER_CPU.1,
            )),
            limits: Some(FailureLimiter::memory(
                FailureLimits::default(),
                clock::system(),
            )),
        }
    }

    /// `self` after a configuration change: cached verifications made under the old
    /// configuration no longer serve it (clones keep theirs).
    fn reconfigured(mut self) -> Self {
        self.config = ConfigId::fresh();
        self
    }

    /// Adds a user with a plaintext password (tests and demos).
    pub fn user(mut self, name: impl Into<String>, password: impl Into<Secret>) -> Self {
        let name = name.into();
        let principal = Principal::new(name.clone(), "basic");
        let password = Secret::new(digest(password.into().expose()));
        Arc::make_mut(&mut self.users).insert(
            name,
            User {
                password: Stored::Plain(password),
                principal,
            },
        );
        self.reconfigured()
    }

    /// Adds a user with a PHC-format password hash (argon2id, argon2i, argon2d).
    pub fn hashed_user(
        mut self,
        name: impl Into<String>,
        phc: &str,
    ) -> Result<Self, PasswordHashError> {
        let parsed = PasswordHash::new(phc).map_err(|_| invalid_phc())?;
        argon2::Params::try_from(&parsed).map_err(|_| invalid_phc())?;
        // A PHC string without its salt or hash (`$argon2id$v=19$m=..`) parses, but no
        // password could ever match it: refused here rather than a user who never logs in.
        argon2::Algorithm::try_from(parsed.algorithm).map_err(|_| invalid_phc())?;
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err(invalid_phc());
        }
        let dummy = dummy_like(&parsed)?;
        if self
            .dummy
            .as_deref()
            .is_none_or(|current| cost(current) < cost(&dummy))
        {
            self.dummy = Some(dummy.into());
        }
        let name = name.into();
        let principal = Principal::new(name.clone(), "basic");
        Arc::make_mut(&mut self.users).insert(
            name,
            User {
                password: Stored::Hash(phc.into()),
                principal,
            },
        );
        Ok(self.reconfigured())
    }

    /// Grants scopes to an existing user.
    pub fn grant<I, S>(mut self, name: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Some(u) = Arc::make_mut(&mut self.users).get_mut(name) {
            u.principal = u.principal.clone().with_scopes(scopes);
        }
        self.reconfigured()
    }

    /// Sets how long a verified hashed credential is remembered (default 60 s) and how
    /// many are remembered (default 10 000). The TTL counts in whole seconds and
    /// saturates (`Duration::MAX` is "until evicted"). [`no_cache`](Self::no_cache)
    /// turns the cache off.
    pub fn cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.ttl = ttl;
        self.cache = (capacity > 0 && ttl.as_secs() > 0)
            .then(|| Arc::new(VerifiedCache::new(ttl, capacity)));
        self
    }

    /// Turns the verified-credential cache off: every login runs argon2.
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Bounds the argon2 work: at most `running` password hashes checked at once and
    /// `queued` more waiting for a slot; a check beyond that is refused `UNAVAILABLE`.
    /// Default: one running and four waiting per CPU. `running` is at least 1.
    pub fn max_concurrent_hashes(mut self, running: usize, queued: usize) -> Self {
        self.hashing = Arc::new(Hashing::new(running, queued));
        self
    }

    /// Sets the failed-login limits (on by default: [`FailureLimits::default`]).
    /// Clones share the counters. They are kept where they were (the authenticator's
    /// own memory, or the store given to [`failure_store`](Self::failure_store)).
    pub fn failure_limits(mut self, limits: FailureLimits) -> Self {
        self.limits = Some(match self.limits.as_ref().filter(|l| !l.own) {
            Some(shared) => FailureLimiter::on(limits, shared.store().clone()),
            None => FailureLimiter::memory(limits, self.clock.clone()),
        });
        self
    }

    /// Keeps the failed-login counters in `store`: with a
    /// `RedisStore` (feature `redis`) shared by every replica, the limits hold
    /// for the cluster (one atomic script per attempt), not per replica. When the store
    /// cannot answer, a login that needs a password check is refused with
    /// `UNAVAILABLE` "failed-login limits unavailable: ..." (a cached login needs no
    /// count and goes on).
    pub fn failure_store(mut self, store: impl crate::store::Store) -> Self {
        let limits = self
            .limits
            .as_ref()
            .map_or_else(FailureLimits::default, FailureLimiter::limits);
        self.limits = Some(FailureLimiter::on(limits, Arc::new(store)));
        self
    }

    /// Turns the failed-login limits off.
    pub fn no_failure_limits(mut self) -> Self {
        self.limits = None;
        self
    }

    /// Uses `clock` for the cache's lifetimes and the failure windows.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        if let Some(own) = self.limits.as_ref().filter(|l| l.own) {
            self.limits = Some(FailureLimiter::memory(own.limits(), self.clock.clone()));
        }
        self.reconfigured()
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.cache_key.expose()) else {
            return [0; 32];
        };
        mac.update(&(user.len() as u64).to_le_bytes());
        mac.update(user.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Checks `password` against `phc` on the blocking pool, within the bound.
    async fn verify_hash(
        &self,
        phc: Arc<str>,
        password: Zeroizing<String>,
    ) -> Result<bool, AuthError> {
        let busy = || AuthError::unavailable("too many password checks in progress; retry later");
        // A free slot is taken at once; otherwise wait in the bounded queue.
        let running = match self.hashing.running.clone().try_acquire_owned() {
            Ok(running) => running,
            Err(_) => {
                let Ok(waiting) = self.hashing.queued.try_acquire() else {
                    return Err(busy());
                };
                let running = self
                    .hashing
                    .running
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| busy())?;
                drop(waiting);
                running
            }
        };
        let check = move || {
            let _running = running; // held until argon2 returns, cancelled or not
            PasswordHash::new(&phc)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(check)
                .await
                .map_err(|_| AuthError::unavailable("password verification failed to run")),
            Err(_) => Ok(check()),
        }
    }

    /// Whether a verification of `user:password` under this configuration is cached
    /// (proof of the password, so no guess is being made), or where to cache one.
    fn lookup(&self, user: &User, name: &str, password: &str) -> Lookup {
        let (Some(cache), Stored::Hash(_)) = (&self.cache, &user.password) else {
            return Lookup::NotCached;
        };
        let key = self.cache_key(name, password);
        match cache.get(self.config, &key, &*self.clock, 0) {
            Some(_) => Lookup::Hit,
            None => Lookup::Miss(key),
        }
    }

    /// Whether `password` is `user`'s; false for an unknown user, after the same work.
    /// `cache_key`: where to remember a verified hash (from [`lookup`](Self::lookup)).
    async fn check_password(
        &self,
        user: Option<&User>,
        password: Zeroizing<String>,
        cache_key: Option<[u8; 32]>,
    ) -> Result<bool, AuthError> {
        let Some(user) = user else {
            // An unknown user costs what a known one costs.
            return match &self.dummy {
                Some(dummy) => self
                    .verify_hash(dummy.clone(), password)
                    .await
                    .map(|_| false),
                None => {
                    let _ = plain_matches(&Secret::new(digest(b"")), &password);
                    Ok(false)
                }
            };
        };
        match &user.password {
            Stored::Plain(stored) => Ok(plain_matches(stored, &password)),
            Stored::Hash(phc) => {
                let ok = self.verify_hash(phc.clone(), password).await?;
                if ok && let (Some(cache), Some(key)) = (&self.cache, cache_key) {
                    let principal = user.principal.clone();
                    cache.insert(self.config, key, principal, None, &*self.clock, 0);
                }
                Ok(ok)
            }
        }
    }
}

fn invalid_phc() -> PasswordHashError {
    PasswordHashError
}

/// A password hash that is not an argon2 PHC string this crate can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid password hash: not an argon2 PHC string")]
pub struct PasswordHashError;

/// A PHC string with `like`'s algorithm, version, parameters and output length, a
/// random salt and a random output: it costs what `like` costs and matches nothing.
fn dummy_like(like: &PasswordHash<'_>) -> Result<String, PasswordHashError> {
    let mut salt = [0u8; 16];
    let mut out = vec![0u8; like.hash.map_or(32, |h| h.len())];
    getrandom::fill(&mut salt).map_err(|_| invalid_phc())?;
    getrandom::fill(&mut out).map_err(|_| invalid_phc())?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| invalid_phc())?;
    let mut dummy = like.clone();
    dummy.salt = Some(salt.as_salt());
    dummy.hash = Some(Output::new(&out).map_err(|_| invalid_phc())?);
    Ok(dummy.to_string())
}

/// The relative cost of checking against `phc` (memory times passes times lanes).
fn cost(phc: &str) -> u64 {
    PasswordHash::new(phc)
        .ok()
        .and_then(|h| argon2::Params::try_from(&h).ok())
        .map_or(0, |p| {
            u64::from(p.m_cost()) * u64::from(p.t_cost()) * u64::from(p.p_cost())
        })
}

/// Compares SHA-256 digests in constant time: the password's length does not leak.
fn plain_matches(stored_digest: &Secret, password: &str) -> bool {
    let presented = digest(password.as_bytes());
    stored_digest.expose().ct_eq(&presented).into()
}

impl Default for BasicAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

fn accepted(principal: Principal) -> Authenticated {
    Authenticated::by(principal, http::header::AUTHORIZATION)
}

fn bad_credentials() -> AuthError {
    AuthError::unauthenticated("invalid username or password")
}

impl Authenticator for BasicAuthenticator {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Basic") {
            return Ok(None);
        }
        let decoded = wire::basic::decode(auth.credentials())
            .map_err(|e| AuthError::unauthenticated(e.message()))?;
        let (name, password) = (decoded.user(), decoded.password());
        let user = self.users.get(name);
        // A cached verification proves the password: no guess, no limit to apply.
        let cache_key = match user.map(|u| self.lookup(u, name, password)) {
            Some(Lookup::Hit) => {
                return Ok(user.map(|u| accepted(u.principal.clone())));
            }
            Some(Lookup::Miss(key)) => Some(key),
            Some(Lookup::NotCached) | None => None,
        };
        let peer = req.remote_addr().map(|a| a.ip());
        if let Some(limits) = &self.limits {
            limits.attempt(name, peer).await?;
        }
        let checked = self
            .check_password(user, Zeroizing::new(password.to_owned()), cache_key)
            .await;
        match (checked, &self.limits) {
            (Ok(true), limits) => {
                if let Some(limits) = limits {
                    limits.succeeded(name, peer).await;
                }
                // `check_password` is true only for a known user.
                if let Some(user) = user {
                    return Ok(Some(accepted(user.principal.clone())));
                }
                Err(bad_credentials())
            }
            // The attempt stays counted as a failure.
            (Ok(false), _) => Err(bad_credentials()),
            // Not checked (busy): the attempt is given back.
            (Err(e), Some(limits)) => {
                limits.refund(name, peer).await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }
}

impl fmt::Debug for BasicAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthenticator")
            .field("users", &self.users.len())
            .field("cache", &self.cache)
            .field("ttl", &self.ttl)
            .field("max_concurrent_hashes", &self.hashing.limits)
            .field("failure_limits", &self.limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use argon2::password_hash::PasswordHasher;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use http::HeaderMap;

    fn phc(password: &str) -> String {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    async fn check(a: &BasicAuthenticator, value: &str) -> AuthResult {
        let mut h = HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        a.authenticate(&AuthRequest::new("/a.B/C", &h)).await
    }

    fn err(r: AuthResult) -> String {
        r.expect_err("should reject").to_string()
    }

    #[test]
    fn a_phc_string_without_salt_or_hash_is_refused() {
        for phc in [
            "$argon2id$garbage-hash-77",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
            "$scrypt$ln=16,r=8,p=1$c2FsdHNhbHRzYWx0$8rC6uXbNEYAlRlyTNa+EvaxC4x0uL+/5KxvZmOqqoac",
        ] {
            assert!(
                BasicAuthenticator::new().hashed_user("ada", phc).is_err(),
                "{phc}"
            );
        }
    }

    #[tokio::test]
    async fn plaintext_user_is_accepted_and_wrong_password_rejected() {
        let a = BasicAuthenticator::new()
            .user("ada", "pw")
            .grant("ada", ["s1"]);
        let p = check(&a, &basic("ada:pw"))
            .await
            .unwrap()
            .unwrap()
            .principal;
        assert_eq!((p.subject(), p.scheme()), ("ada", "basic"));
        assert!(p.has_scope("s1"));
        assert_eq!(
            err(check(&a, &basic("ada:pX")).await),
            "invalid username or password"
        );
        assert_eq!(
            err(check(&a, &basic("eve:pw")).await),
            "invalid username or password"
        );
    }

    #[tokio::test]
    async fn malformed_credentials_are_rejected_with_their_reason() {
        let a = BasicAuthenticator::new().user("ada", "pw");
        assert_eq!(
            err(check(&a, "Basic !!!notbase64").await),
            "Basic credentials are not valid base64"
        );
        assert_eq!(
            err(check(&a, &basic("adapw")).await),
            "Basic credentials lack a ':' separator"
        );
        assert_eq!(
            err(check(&a, &basic(":pw")).await),
            "Basic credentials have an empty user or password"
        );
        assert_eq!(
            err(check(&a, &basic("ada:")).await),
            "Basic credentials have an empty user or password"
        );
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe]));
        assert_eq!(
            err(check(&a, &not_utf8).await),
            "Basic credentials are not valid UTF-8"
        );
    }

    #[tokio::test]
    async fn other_schemes_are_absent_and_lower_case_scheme_works() {
        let a = BasicAuthenticator::new().user("ada", "pw");
        assert!(check(&a, "Bearer xyz").await.unwrap().is_none());
        let lower = basic("ada:pw").replacen("Basic", "basic", 1);
        assert!(check(&a, &lower).await.unwrap().is_some());
    }

    fn cache_len(a: &BasicAuthenticator) -> usize {
        a.cache.as_ref().unwrap().len()
    }

    #[tokio::test]
    async fn hashed_password_is_verified_and_cached_until_ttl() {
        let clock = ManualClock::at_unix(1_000_000);
        let a = BasicAuthenticator::new()
            .hashed_user("bob", &phc("s3cret"))
            .unwrap()
            .cache(Duration::from_secs(30), 16)
            .clock(clock.clone());
        assert!(check(&a, &basic("bob:s3cret")).await.unwrap().is_some());
        assert_eq!(cache_len(&a), 1);
        assert_eq!(
            err(check(&a, &basic("bob:wrong")).await),
            "invalid username or password"
        );
        assert_eq!(cache_len(&a), 1, "failures are not cached");
        // Within the TTL the cached entry serves; past it, it is dropped and re-verified.
        let key = a.cache_key("bob", "s3cret");
        let cache = a.cache.as_ref().unwrap();
        clock.advance(Duration::from_secs(29));
        assert!(cache.get(a.config, &key, &clock, 0).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(cache.get(a.config, &key, &clock, 0).is_none());
        assert!(check(&a, &basic("bob:s3cret")).await.unwrap().is_some());
        assert!(cache.get(a.config, &key, &clock, 0).is_some());
    }

    #[tokio::test]
    async fn a_clone_changing_users_or_scopes_never_serves_the_others_cache() {
        // The reported defects: `grant` on a clone leaked its scopes to the other, and
        // an old password kept working after the user's hash changed.
        let base = BasicAuthenticator::new()
            .hashed_user("bob", &phc("old-pw"))
            .unwrap();
        let granted = base.clone().grant("bob", ["admin"]);
        let p = check(&granted, &basic("bob:old-pw"))
            .await
            .unwrap()
            .unwrap()
            .principal;
        assert!(p.has_scope("admin"));
        let p = check(&base, &basic("bob:old-pw"))
            .await
            .unwrap()
            .unwrap()
            .principal;
        assert!(!p.has_scope("admin"), "the base never granted admin");

        let changed = base.clone().hashed_user("bob", &phc("new-pw")).unwrap();
        assert!(check(&base, &basic("bob:old-pw")).await.unwrap().is_some());
        assert_eq!(
            err(check(&changed, &basic("bob:old-pw")).await),
            "invalid username or password"
        );
        assert!(
            check(&changed, &basic("bob:new-pw"))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_huge_cache_ttl_does_not_panic() {
        let a = BasicAuthenticator::new()
            .hashed_user("bob", &phc("pw"))
            .unwrap()
            .cache(Duration::MAX, 16);
        assert!(check(&a, &basic("bob:pw")).await.unwrap().is_some());
        assert!(check(&a, &basic("bob:pw")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn failed_logins_are_limited_per_user_without_hashing() {
        let a = BasicAuthenticator::new()
            .hashed_user("bob", &phc("pw"))
            .unwrap()
            .failure_limits(FailureLimits::new().per_user(3).per_peer(0))
            .clock(ManualClock::at_unix(1_000_000));
        for _ in 0..3 {
            assert_eq!(
                err(check(&a, &basic("bob:guess")).await),
                "invalid username or password"
            );
        }
        let e = check(&a, &basic("bob:pw")).await.unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (
                tonic::Code::ResourceExhausted,
                "too many failed logins; retry later"
            )
        );
        // Unknown users are counted the same way: no oracle.
        for _ in 0..3 {
            check(&a, &basic("nobody:guess")).await.unwrap_err();
        }
        assert_eq!(
            check(&a, &basic("nobody:guess")).await.unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
    }

    #[test]
    fn the_dummy_hash_has_the_users_parameters_and_matches_nothing() {
        let stored = phc("pw");
        let a = BasicAuthenticator::new()
            .hashed_user("bob", &stored)
            .unwrap();
        let dummy = a.dummy.as_deref().unwrap();
        let (d, s) = (
            PasswordHash::new(dummy).unwrap(),
            PasswordHash::new(&stored).unwrap(),
        );
        assert_eq!(d.algorithm, s.algorithm);
        assert_eq!(d.params, s.params);
        assert_eq!(d.hash.unwrap().len(), s.hash.unwrap().len());
        assert_ne!(d.salt, s.salt);
        assert!(
            argon2::Argon2::default()
                .verify_password(b"pw", &d)
                .is_err()
        );
    }

    #[tokio::test]
    async fn hash_checks_beyond_the_bound_are_unavailable() {
        let a = BasicAuthenticator::new()
            .hashed_user("bob", &phc("pw"))
            .unwrap()
            .no_failure_limits()
            .max_concurrent_hashes(1, 1);
        // Start 6 wrong-password checks at once: 1 runs, 1 waits, 4 are refused.
        let results = futures_join(6, || {
            let a = a.clone();
            async move { check(&a, &basic("bob:wrong")).await }
        })
        .await;
        let codes: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().unwrap_err().code())
            .collect();
        let busy = codes
            .iter()
            .filter(|c| **c == tonic::Code::Unavailable)
            .count();
        let refused = codes
            .iter()
            .filter(|c| **c == tonic::Code::Unauthenticated)
            .count();
        assert_eq!((refused, busy), (2, 4), "{codes:?}");
    }

    async fn futures_join<F, Fut>(n: usize, f: F) -> Vec<AuthResult>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = AuthResult> + Send + 'static,
    {
        let handles: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    #[test]
    fn cache_key_is_keyed_and_not_the_plaintext() {
        let a = BasicAuthenticator::new();
        let b = BasicAuthenticator::new();
        let k = a.cache_key("ada", "pw");
        assert_ne!(k, b.cache_key("ada", "pw"), "random per-instance key");
        assert_ne!(k, a.cache_key("ada", "pw2"));
        assert!(!k.windows(2).any(|w| w == b"pw"));
    }

    #[tokio::test]
    async fn plaintext_comparison_works_for_every_length() {
        let a = BasicAuthenticator::new()
            .user("ada", "pw")
            .no_failure_limits();
        for guess in [
            "p",
            "pw2",
            "pX",
            "a-much-longer-password-than-the-stored-one",
        ] {
            assert!(check(&a, &basic(&format!("ada:{guess}"))).await.is_err());
        }
        assert!(check(&a, &basic("ada:pw")).await.unwrap().is_some());
    }

    #[test]
    fn invalid_phc_is_a_configuration_error() {
        assert!(
            BasicAuthenticator::new()
                .hashed_user("x", "not-a-phc")
                .is_err()
        );
    }
}
