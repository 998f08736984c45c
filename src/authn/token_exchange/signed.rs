//! [`SignedTokens`]: stateless HS256 JWTs signed with [`TokenKeys`], verified by the
//! crate's [`JwtAuthenticator`] over the current and previous keys.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::TokenIssuer;
use crate::authn::jwt::{JwtAuthenticator, JwtKey, KeyError, KeyQuery, KeySet, KeySource};
use crate::clock::{self, Clock};
use crate::{AuthError, Principal, Secret};

/// Default `iss` of issued tokens.
pub(crate) const DEFAULT_ISSUER: &str = "grpc-auth";
/// Default lifetime of an issued token: 15 minutes.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// Shortest HS256 secret accepted: 32 bytes, the hash's size (RFC 7518, 3.2).
const MIN_SECRET_LEN: usize = 32;

/// Why a token key was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenKeyError {
    /// An HS256 secret shorter than 32 bytes.
    #[error("token signing secret is {0} bytes; at least 32 are needed")]
    TooShort(usize),
    /// The key id is already in the ring.
    #[error("token key id {0:?} is already in use")]
    KidInUse(String),
    /// jsonwebtoken refused the key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The signing key and the keys that verify: clones share one ring, so a rotation made
/// through any clone is seen by every [`SignedTokens`] using it.
///
/// ```
/// use grpc_auth::authn::token_exchange::TokenKeys;
/// let keys = TokenKeys::hs256("k1", b"first-secret-of-at-least-32-bytes!!".as_slice())?;
/// keys.rotate("k2", b"second-secret-of-at-least-32-bytes!".as_slice())?; // k2 signs, k1 still verifies
/// assert_eq!(keys.verifying_kids(), ["k2", "k1"]);
/// keys.drop_previous(); // tokens signed with k1 are now refused
/// assert_eq!(keys.verifying_kids(), ["k2"]);
/// # Ok::<(), grpc_auth::authn::token_exchange::TokenKeyError>(())
/// ```
#[derive(Clone)]
pub struct TokenKeys(Arc<RwLock<Arc<Ring>>>, Arc<AtomicU64>);

struct Ring {
    kid: String,
    signing: EncodingKey,
    current: JwtKey,
    previous: Vec<JwtKey>,
    verifying: Arc<KeySet>,
}

impl Ring {
    fn new(kid: String, secret: &Secret, previous: Vec<JwtKey>) -> Result<Self, TokenKeyError> {
        if secret.expose().len() < MIN_SECRET_LEN {
            return Err(TokenKeyError::TooShort(secret.expose().len()));
        }
        if previous.iter().any(|k| k.kid() == Some(kid.as_str())) {
            return Err(TokenKeyError::KidInUse(kid));
        }
        let current = JwtKey::secret(Algorithm::HS256, secret.expose())?.with_kid(kid.clone());
        let mut all = vec![current.clone()];
        all.extend(previous.iter().cloned());
        Ok(Self {
            signing: EncodingKey::from_secret(secret.expose()),
            kid,
            current,
            previous,
            verifying: Arc::new(KeySet::new(all)),
        })
    }
}

impl TokenKeys {
    /// Signs with the HS256 `secret` (at least 32 bytes) named `kid`.
    pub fn hs256(kid: impl Into<String>, secret: impl Into<Secret>) -> Result<Self, TokenKeyError> {
        let ring = Ring::new(kid.into(), &secret.into(), Vec::new())?;
        Ok(Self(Arc::new(RwLock::new(Arc::new(ring))), Arc::default()))
    }

    /// Also verifies (never signs with) `secret` (at least 32 bytes, like a signing one)
    /// named `kid`: the key before a rotation, on a replica started after it.
    pub fn also_verify(
        self,
        kid: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Result<Self, TokenKeyError> {
        let kid = kid.into();
        let ring = self.ring();
        if ring.kid == kid || ring.previous.iter().any(|k| k.kid() == Some(kid.as_str())) {
            return Err(TokenKeyError::KidInUse(kid));
        }
        let secret = secret.into();
        if secret.expose().len() < MIN_SECRET_LEN {
            return Err(TokenKeyError::TooShort(secret.expose().len()));
        }
        let key = JwtKey::secret(Algorithm::HS256, secret.expose())?.with_kid(kid);
        let mut previous = ring.previous.clone();
        previous.push(key);
        let mut all = vec![ring.current.clone()];
        all.extend(previous.iter().cloned());
        let next = Ring {
            kid: ring.kid.clone(),
            signing: ring.signing.clone(),
            current: ring.current.clone(),
            previous,
            verifying: Arc::new(KeySet::new(all)),
        };
        self.set(next);
        Ok(self)
    }

    /// Signs from now on with `secret` named `kid`; the key that signed until now keeps
    /// verifying (older ones are dropped).
    pub fn rotate(
        &self,
        kid: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Result<(), TokenKeyError> {
        let ring = self.ring();
        let next = Ring::new(kid.into(), &secret.into(), vec![ring.current.clone()])?;
        self.set(next);
        tracing::info!(
            kid = self.signing_kid(),
            "grpc-auth: token signing key rotated"
        );
        Ok(())
    }

    /// Stops verifying every key but the signing one: tokens they signed are refused.
    pub fn drop_previous(&self) {
        let ring = self.ring();
        let next = Ring {
            kid: ring.kid.clone(),
            signing: ring.signing.clone(),
            current: ring.current.clone(),
            previous: Vec::new(),
            verifying: Arc::new(KeySet::new(vec![ring.current.clone()])),
        };
        self.set(next);
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> String {
        self.ring().kid.clone()
    }

    /// The ids of the keys that verify, the signing one first.
    pub fn verifying_kids(&self) -> Vec<String> {
        self.ring()
            .verifying
            .keys()
            .iter()
            .filter_map(|k| k.kid().map(str::to_owned))
            .collect()
    }

    fn ring(&self) -> Arc<Ring> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, ring: Ring) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        // After the keys are in place, so a cache never pairs new keys with an old number.
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

impl KeySource for TokenKeys {
    async fn keys(&self, _query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
        Ok(self.ring().verifying.clone())
    }

    fn generation(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("signing", &self.signing_kid())
            .field("verifying", &self.verifying_kids())
            .finish()
    }
}

/// Stateless tokens: HS256 JWTs with `iss`, `sub`, `iat`, `exp`, `jti`, and the login
/// principal's `scope` (space-separated) and `roles`; the header's `kid` names the key.
///
/// Every token is bound to the service that issued it: its `aud` is the audience given
/// to [`SignedTokens::new`] (name the service, the same on each of its replicas), and
/// verification requires it, so another service that shares the keys refuses it
/// ("invalid token audience").
///
/// Verified by a [`JwtAuthenticator`] over [`TokenKeys`] (signature, `exp` with the
/// leeway, `iss`, `aud`); the principal's scheme is `"token"`. Stateless means
/// not revocable: keep the lifetime short, or use [`OpaqueTokens`](super::OpaqueTokens).
#[derive(Clone)]
pub struct SignedTokens {
    keys: TokenKeys,
    issuer: String,
    audience: String,
    ttl: Duration,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    verifier: JwtAuthenticator<TokenKeys>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scp: Option<&'a [String]>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<&'a serde_json::Value>,
}

#[derive(Deserialize)]
struct Issuer {
    iss: Option<String>,
}

impl SignedTokens {
    /// Tokens signed with `keys` for `audience` (the issuing service's name, shared by
    /// its replicas), `iss` `"grpc-auth"`, valid for 15 minutes.
    pub fn new(keys: TokenKeys, audience: impl Into<String>) -> Self {
        let mut s = Self {
            verifier: JwtAuthenticator::new(keys.clone()),
            keys,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: audience.into(),
            ttl: DEFAULT_TTL,
            leeway: crate::authn::jwt::DEFAULT_LEEWAY,
            clock: clock::system(),
        };
        s.rebuild();
        s
    }

    fn rebuild(&mut self) {
        self.verifier = JwtAuthenticator::new(self.keys.clone())
            .issuer(self.issuer.clone())
            .audience(self.audience.clone())
            .leeway(self.leeway)
            .clock(ArcClock(self.clock.clone()))
            .scheme("token");
    }

    /// Sets `iss`, which also tells our tokens from other bearers.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self.rebuild();
        self
    }

    /// Sets how long an issued token is valid.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the clock-skew leeway for `exp` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.rebuild();
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.rebuild();
        self
    }

    /// The keys (rotate through them).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Signs a token for `principal` (what [`TokenIssuer::issue`] does, without waiting).
    pub fn sign(&self, principal: &Principal) -> Result<String, AuthError> {
        let ring = self.keys.ring();
        let iat = self.clock.unix_seconds();
        // Never past the login's own expiry: a signed token cannot be revoked, so it must
        // not outlive the credential it stands for.
        let mut exp = iat.saturating_add(self.ttl.as_secs());
        if let Some(login) = super::store::login_expiry(principal)? {
            exp = exp.min(login);
        }
        // Scopes as `scope` (RFC 9068: space-separated), or, when one holds whitespace (a
        // JWT `scp` element kept whole), as the `scp` array, so none splits in two.
        let scopes = principal.scopes();
        let whole = scopes.iter().any(|s| s.chars().any(char::is_whitespace));
        let (scope, scp) = match scopes.is_empty() {
            true => (None, None),
            false if whole => (None, Some(scopes)),
            false => (Some(scopes.join(" ")), None),
        };
        let claims = Claims {
            iss: &self.issuer,
            sub: principal.subject(),
            aud: &self.audience,
            iat,
            exp,
            jti: random_id()?,
            scope,
            scp,
            roles: principal.roles(),
            // A certificate-bound login (RFC 8705), or a login over a connection with a
            // client certificate (`TokenExchange` sets `cnf`), binds the token to it.
            cnf: principal.claims().get("cnf"),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(ring.kid.clone());
        jsonwebtoken::encode(&header, &claims, &ring.signing)
            .map_err(|_| AuthError::unavailable("token signing failed"))
    }
}

/// 128 random bits, base64url.
pub(super) fn random_id() -> Result<String, AuthError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| AuthError::unavailable("no randomness for a token"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Lets the verifier share the issuer's clock.
#[derive(Debug)]
struct ArcClock(Arc<dyn Clock>);

impl Clock for ArcClock {
    fn now(&self) -> std::time::SystemTime {
        self.0.now()
    }

    fn monotonic(&self) -> Duration {
        self.0.monotonic()
    }
}

impl TokenIssuer for SignedTokens {
    async fn issue(&self, principal: &Principal) -> Result<Secret, AuthError> {
        self.sign(principal).map(Secret::from)
    }

    fn recognizes(&self, token: &str) -> bool {
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()
            .and_then(|p| serde_json::from_slice::<Issuer>(&p).ok())
            .and_then(|c| c.iss)
            .is_some_and(|iss| iss == self.issuer)
    }

    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verifier.verify_cached(token).await
    }
}

impl fmt::Debug for SignedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedTokens")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}
