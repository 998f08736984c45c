//! [`BasicAuthenticator`]: `authorization: Basic base64(user:password)` against a
//! credential store, with argon2 hashes and a short-lived verified-credential cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::clock::{self, Clock};
use crate::{AuthError, Principal, Secret};

/// Default time a verified hashed credential is remembered: 60 s.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default number of verified credentials remembered: 10 000.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Authenticates HTTP Basic credentials.
///
/// Passwords are stored in plaintext (tests, demos) or as PHC strings (argon2, for
/// real use). Plaintext is compared in constant time; hashes are verified by the
/// `argon2` crate on tokio's blocking pool. A verified hashed credential is cached
/// for [`DEFAULT_CACHE_TTL`], keyed by an HMAC of `user:password` under a random
/// per-process key (never the plaintext), in a bounded cache; failures are not cached.
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
    cache: Option<Arc<VerifiedCache>>,
    cache_key: Arc<Secret>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

/// Verified credentials by keyed hash: when the entry expires, and who it proves.
type VerifiedCache = quick_cache::sync::Cache<[u8; 32], (SystemTime, Principal)>;

#[derive(Clone)]
struct User {
    password: Stored,
    principal: Principal,
}

#[derive(Clone)]
enum Stored {
    Plain(Secret),
    Hash(Arc<str>),
}

impl BasicAuthenticator {
    /// An empty store with the cache on.
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        // An all-zero key only weakens the cache key's secrecy, not correctness.
        let _ = getrandom::fill(&mut key);
        Self {
            users: Arc::new(HashMap::new()),
            cache: Some(Arc::new(quick_cache::sync::Cache::new(
                DEFAULT_CACHE_CAPACITY,
            ))),
            cache_key: Arc::new(Secret::new(key.to_vec())),
            ttl: DEFAULT_CACHE_TTL,
            clock: clock::system(),
        }
    }

    /// Adds a user with a plaintext password (tests and demos).
    pub fn user(mut self, name: impl Into<String>, password: impl Into<Secret>) -> Self {
        let name = name.into();
        let principal = Principal::new(name.clone(), "basic");
        Arc::make_mut(&mut self.users).insert(
            name,
            User {
                password: Stored::Plain(password.into()),
                principal,
            },
        );
        self
    }

    /// Adds a user with a PHC-format password hash (argon2id, argon2i, argon2d).
    pub fn hashed_user(
        mut self,
        name: impl Into<String>,
        phc: &str,
    ) -> Result<Self, argon2::password_hash::Error> {
        PasswordHash::new(phc)?;
        let name = name.into();
        let principal = Principal::new(name.clone(), "basic");
        Arc::make_mut(&mut self.users).insert(
            name,
            User {
                password: Stored::Hash(phc.into()),
                principal,
            },
        );
        Ok(self)
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
        self
    }

    /// Sets how long a verified hashed credential is remembered and how many are
    /// remembered; `capacity == 0` turns the cache off.
    pub fn cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.ttl = ttl;
        self.cache = (capacity > 0).then(|| Arc::new(quick_cache::sync::Cache::new(capacity)));
        self
    }

    /// Uses `clock` for the cache's lifetimes.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.cache_key.expose()) else {
            return [0; 32];
        };
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl Default for BasicAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

fn accepted(principal: Principal) -> Authenticated {
    Authenticated::new(principal).with_credential(http::header::AUTHORIZATION)
}

fn bad_credentials() -> AuthError {
    AuthError::unauthenticated("invalid username or password")
}

/// Splits decoded Basic credentials into user and password.
fn parse_credentials(encoded: &str) -> Result<(String, String), AuthError> {
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| AuthError::unauthenticated("Basic credentials are not valid base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| AuthError::unauthenticated("Basic credentials are not valid UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| AuthError::unauthenticated("Basic credentials lack a ':' separator"))?;
    if user.is_empty() || password.is_empty() {
        return Err(AuthError::unauthenticated(
            "Basic credentials have an empty user or password",
        ));
    }
    Ok((user.to_owned(), password.to_owned()))
}

async fn verify_hash(phc: Arc<str>, password: String) -> Result<bool, AuthError> {
    let check = move || {
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

impl Authenticator for BasicAuthenticator {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Basic") {
            return Ok(None);
        }
        let (name, password) = parse_credentials(auth.credentials())?;
        let Some(user) = self.users.get(&name) else {
            // Spend comparable time on unknown users as on known plaintext ones.
            let _ = Secret::from("dummy-password-for-timing").ct_eq(password.as_bytes());
            return Err(bad_credentials());
        };
        let ok = match &user.password {
            Stored::Plain(secret) => secret.ct_eq(password.as_bytes()),
            Stored::Hash(phc) => {
                let key = self
                    .cache
                    .as_ref()
                    .map(|_| self.cache_key(&name, &password));
                let now = self.clock.now();
                if let (Some(cache), Some(key)) = (&self.cache, key)
                    && let Some((expires, principal)) = cache.get(&key)
                {
                    if now < expires {
                        return Ok(Some(accepted(principal)));
                    }
                    cache.remove(&key);
                }
                let ok = verify_hash(phc.clone(), password).await?;
                if ok && let (Some(cache), Some(key)) = (&self.cache, key) {
                    cache.insert(key, (now + self.ttl, user.principal.clone()));
                }
                ok
            }
        };
        if ok {
            Ok(Some(accepted(user.principal.clone())))
        } else {
            Err(bad_credentials())
        }
    }
}

impl fmt::Debug for BasicAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthenticator")
            .field("users", &self.users.len())
            .field("cache", &self.cache.as_ref().map(|c| c.capacity()))
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use argon2::password_hash::{PasswordHasher, SaltString};
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

    #[tokio::test]
    async fn hashed_password_is_verified_and_cached_until_ttl() {
        let clock = ManualClock::at_unix(1_000_000);
        let a = BasicAuthenticator::new()
            .hashed_user("bob", &phc("s3cret"))
            .unwrap()
            .cache(Duration::from_secs(30), 16)
            .clock(clock.clone());
        assert!(check(&a, &basic("bob:s3cret")).await.unwrap().is_some());
        assert_eq!(a.cache.as_ref().unwrap().len(), 1);
        assert_eq!(
            err(check(&a, &basic("bob:wrong")).await),
            "invalid username or password"
        );
        assert_eq!(
            a.cache.as_ref().unwrap().len(),
            1,
            "failures are not cached"
        );
        // Within the TTL the cached entry serves; past it, the entry is dropped and re-verified.
        assert!(check(&a, &basic("bob:s3cret")).await.unwrap().is_some());
        clock.advance(Duration::from_secs(31));
        let key = a.cache_key("bob", "s3cret");
        let (exp_before, _) = a.cache.as_ref().unwrap().get(&key).unwrap();
        assert!(check(&a, &basic("bob:s3cret")).await.unwrap().is_some());
        let (exp_after, _) = a.cache.as_ref().unwrap().get(&key).unwrap();
        assert!(exp_after > exp_before, "re-verified after expiry");
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

    #[test]
    fn invalid_phc_is_a_configuration_error() {
        assert!(
            BasicAuthenticator::new()
                .hashed_user("x", "not-a-phc")
                .is_err()
        );
    }
}
