//! [`OpaqueTokens`]: random tokens looked up in a [`TokenStore`], so they can be revoked.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::TokenIssuer;
use super::signed::DEFAULT_TTL;
use crate::clock::{self, Clock};
use crate::{AuthError, Principal, Secret};

/// Prefix of opaque tokens: tells them from other bearers (and from JWTs).
pub(crate) const OPAQUE_PREFIX: &str = "gat_";
/// Default number of live tokens a [`MemoryTokenStore`] holds: 100 000.
pub(crate) const DEFAULT_STORE_CAPACITY: usize = 100_000;

/// SHA-256 of a token: what a store keys on, so it never holds a usable token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", URL_SAFE_NO_PAD.encode(&self.0[..6]))
    }
}

/// What a store remembers of an issued token.
#[derive(Debug, Clone)]
pub struct StoredToken {
    /// Who the token proves.
    pub principal: Principal,
    /// When it stops being accepted.
    pub expires_at: SystemTime,
    /// The service the token was issued for: only it accepts the token.
    pub audience: String,
    /// When it was issued (`None`: unknown; a revoked subject's token of unknown age is
    /// refused).
    pub issued_at: Option<SystemTime>,
}

/// Where opaque tokens live: memory ([`MemoryTokenStore`]), or a shared database so
/// that every replica sees them. Implement with `async fn`; a store that cannot be
/// reached fails `UNAVAILABLE`.
pub trait TokenStore: Send + Sync + 'static {
    /// Remembers a newly issued token.
    fn insert(
        &self,
        digest: TokenDigest,
        token: StoredToken,
    ) -> impl Future<Output = Result<(), AuthError>> + Send;

    /// The token's record, if it was issued and not revoked (expired ones may be returned).
    fn lookup(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<StoredToken>, AuthError>> + Send;

    /// Forgets a token; whether it was there.
    fn revoke(&self, digest: &TokenDigest) -> impl Future<Output = Result<bool, AuthError>> + Send;
}

impl<S: TokenStore> TokenStore for Arc<S> {
    fn insert(
        &self,
        digest: TokenDigest,
        token: StoredToken,
    ) -> impl Future<Output = Result<(), AuthError>> + Send {
        (**self).insert(digest, token)
    }
    fn lookup(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<StoredToken>, AuthError>> + Send {
        (**self).lookup(digest)
    }
    fn revoke(&self, digest: &TokenDigest) -> impl Future<Output = Result<bool, AuthError>> + Send {
        (**self).revoke(digest)
    }
}

/// An in-process, bounded token store. Tokens do not survive a restart and are not
/// seen by other replicas; when full, the least recently used are evicted (their
/// holders log in again).
///
/// ```
/// use grpc_auth::authn::token_exchange::{MemoryTokenStore, OpaqueTokens};
/// let tokens = OpaqueTokens::new(MemoryTokenStore::new(10_000), "billing-api");
/// # let _ = tokens;
/// ```
#[derive(Clone)]
pub struct MemoryTokenStore(pub(super) Arc<quick_cache::sync::Cache<TokenDigest, StoredToken>>);

impl MemoryTokenStore {
    /// A store holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(quick_cache::sync::Cache::new(capacity.max(1))))
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::new(DEFAULT_STORE_CAPACITY)
    }
}

impl TokenStore for MemoryTokenStore {
    async fn insert(&self, digest: TokenDigest, token: StoredToken) -> Result<(), AuthError> {
        self.0.insert(digest, token);
        Ok(())
    }

    async fn lookup(&self, digest: &TokenDigest) -> Result<Option<StoredToken>, AuthError> {
        Ok(self.0.get(digest))
    }

    async fn revoke(&self, digest: &TokenDigest) -> Result<bool, AuthError> {
        Ok(self.0.remove(digest).is_some())
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("len", &self.0.len())
            .field("capacity", &self.0.capacity())
            .finish()
    }
}

/// A [`TokenStore`] on a [`Store`](crate::store::Store): with a
/// `RedisStore` (feature `redis`), opaque tokens survive a restart and are
/// valid on every replica. A token is kept under the SHA-256 digest of its value (never
/// the token itself), as JSON of its record, until its expiry (Redis forgets it then).
///
/// ```
/// use grpc_auth::authn::token_exchange::{OpaqueTokens, StoreTokens};
/// use grpc_auth::store::MemoryStore;
/// // With a RedisStore (feature `redis`) in place of the MemoryStore on every replica.
/// let tokens = OpaqueTokens::new(StoreTokens::new(MemoryStore::new(10_000)), "billing-api");
/// # let _ = tokens;
/// ```
#[derive(Clone)]
pub struct StoreTokens {
    store: crate::store::SharedStore,
    clock: Arc<dyn Clock>,
}

impl StoreTokens {
    /// Tokens kept in `store`.
    pub fn new(store: impl crate::store::Store) -> Self {
        Self {
            store: Arc::new(store),
            clock: clock::system(),
        }
    }

    /// Reads the time from `clock` (how long a record is kept).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

/// A stored token's record as JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    sub: String,
    scheme: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
    /// Expiry, milliseconds since the epoch.
    exp_ms: u64,
    aud: String,
    /// Issue time, milliseconds since the epoch.
    #[serde(default)]
    iat_ms: Option<u64>,
}

fn token_key(digest: &TokenDigest) -> crate::store::Key {
    crate::store::Key::from_digest(crate::store::Kind::Token, digest.0)
}

impl TokenStore for StoreTokens {
    async fn insert(&self, digest: TokenDigest, token: StoredToken) -> Result<(), AuthError> {
        let exp_ms = token
            .expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let record = Record {
            iat_ms: token.issued_at.map(ms),
            sub: token.principal.subject().to_owned(),
            scheme: token.principal.scheme().to_owned(),
            scopes: token.principal.scopes().to_vec(),
            roles: token.principal.roles().to_vec(),
            claims: token.principal.claims().clone(),
            exp_ms,
            aud: token.audience,
        };
        let json = serde_json::to_vec(&record)
            .map_err(|_| AuthError::unavailable("token record not serializable"))?;
        let ttl = token
            .expires_at
            .duration_since(self.clock.now())
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        self.store.put(token_key(&digest), &json, Some(ttl)).await?;
        Ok(())
    }

    async fn lookup(&self, digest: &TokenDigest) -> Result<Option<StoredToken>, AuthError> {
        let keys = [token_key(digest)];
        let values = self.store.get(&keys).await?;
        let Some(Some(json)) = values.into_iter().next() else {
            return Ok(None);
        };
        // A record this code did not write is no token.
        let Ok(r) = serde_json::from_slice::<Record>(&json) else {
            tracing::warn!(
                store = self.store.name(),
                "grpc-auth: unreadable token record"
            );
            return Ok(None);
        };
        Ok(Some(StoredToken {
            principal: Principal::new(r.sub, r.scheme)
                .with_scopes(r.scopes)
                .with_roles(r.roles)
                .with_claims(r.claims),
            expires_at: clock::add(SystemTime::UNIX_EPOCH, Duration::from_millis(r.exp_ms)),
            audience: r.aud,
            issued_at: r
                .iat_ms
                .map(|ms| clock::add(SystemTime::UNIX_EPOCH, Duration::from_millis(ms))),
        }))
    }

    async fn revoke(&self, digest: &TokenDigest) -> Result<bool, AuthError> {
        Ok(self.store.remove(token_key(digest)).await?)
    }
}

impl fmt::Debug for StoreTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTokens")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

/// Opaque tokens: `gat_` and 256 random bits, remembered (as a SHA-256 digest) in a
/// [`TokenStore`] with the principal and an expiry; revocable one by one.
#[derive(Clone)]
pub struct OpaqueTokens<S> {
    store: S,
    audience: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    revocations: Option<crate::authn::revocation::Revocations>,
}

impl<S: TokenStore> OpaqueTokens<S> {
    /// Tokens for `audience` (the issuing service's name, shared by its replicas) kept
    /// in `store`, valid for 15 minutes. A token issued for another audience, found in a
    /// store several services share, is refused.
    pub fn new(store: S, audience: impl Into<String>) -> Self {
        Self {
            store,
            audience: audience.into(),
            ttl: DEFAULT_TTL,
            clock: clock::system(),
            revocations: None,
        }
    }

    /// Refuses tokens whose subject or login credential is revoked in `revocations`: a
    /// token made from a JWT login carries the JWT's `jti` (revoking the JWT revokes
    /// the token), and [`revoke_subject`](crate::authn::revocation::Revocations::revoke_subject)
    /// refuses the subject's tokens issued at or before its instant. One more store
    /// lookup per call.
    pub fn revocations(mut self, revocations: crate::authn::revocation::Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Sets how long an issued token is valid.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Revokes `token` (the bearer's credentials); whether it was live.
    pub async fn revoke(&self, token: &str) -> Result<bool, AuthError> {
        self.store.revoke(&TokenDigest::of(token)).await
    }
}

impl<S: TokenStore> TokenIssuer for OpaqueTokens<S> {
    async fn issue(&self, principal: &Principal) -> Result<Secret, AuthError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut bytes[..])
            .map_err(|_| AuthError::unavailable("no randomness for a token"))?;
        let token = format!("{OPAQUE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes[..]));
        let now = self.clock.now();
        // A ttl past what `SystemTime` holds (`Duration::MAX`: "never") saturates. A
        // token never outlives the credential it was exchanged for (a JWT login's
        // `exp`): revoking that JWT's `jti` then covers the whole token's life.
        let mut expires_at = clock::add(now, self.ttl);
        if let Some(exp) = login_expiry(principal)? {
            expires_at =
                expires_at.min(clock::add(SystemTime::UNIX_EPOCH, Duration::from_secs(exp)));
        }
        // The stored principal keeps its certificate binding (`cnf`, which `TokenExchange`
        // sets from the login's connection), checked on the bearer path.
        let record = StoredToken {
            principal: principal.clone(),
            expires_at,
            audience: self.audience.clone(),
            issued_at: Some(now),
        };
        self.store.insert(TokenDigest::of(&token), record).await?;
        Ok(Secret::from(token))
    }

    fn recognizes(&self, token: &str) -> bool {
        token.starts_with(OPAQUE_PREFIX)
    }

    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = TokenDigest::of(token);
        let Some(record) = self.store.lookup(&digest).await? else {
            return Err(AuthError::unauthenticated("unknown or revoked token"));
        };
        if record.audience != self.audience {
            return Err(AuthError::unauthenticated("invalid token audience"));
        }
        if self.clock.now() >= record.expires_at {
            let _ = self.store.revoke(&digest).await;
            return Err(AuthError::unauthenticated("token expired"));
        }
        if let Some(revocations) = &self.revocations {
            let issued = record
                .issued_at
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            revocations.check_issued(&record.principal, issued).await?;
        }
        Ok(record.principal.with_scheme("token"))
    }
}

impl<S: fmt::Debug> fmt::Debug for OpaqueTokens<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaqueTokens")
            .field("store", &self.store)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}

/// The `exp` of the credential a token is exchanged for (read as the JWT scheme reads
/// it: a fractional one floored), which the token never outlives. One that cannot be
/// read refuses the exchange: the token's end could not be bounded.
pub(super) fn login_expiry(principal: &Principal) -> Result<Option<u64>, AuthError> {
    match principal.claims().get("exp") {
        None => Ok(None),
        Some(exp) => crate::authn::claims::numeric_date(exp)
            .map(Some)
            .ok_or_else(|| AuthError::unauthenticated("the credential's expiry cannot be read")),
    }
}
