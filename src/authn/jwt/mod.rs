//! [`JwtAuthenticator`]: `authorization: Bearer <JWT>` verified against keys from a
//! [`KeySource`].
//!
//! ```
//! use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
//! use jsonwebtoken::Algorithm;
//! use std::time::Duration;
//!
//! let key = JwtKey::secret(Algorithm::HS256, b"a-long-random-secret").unwrap();
//! let auth = JwtAuthenticator::new(StaticKeys::from(key))
//!     .issuer("https://issuer.example")
//!     .audience("greeter")
//!     .leeway(Duration::from_secs(30));
//! # let _ = auth;
//! ```
//!
//! What it checks: the signature with a key that allows the token's `alg` (so
//! `alg: none` and HS256-signed-with-an-RSA-public-key are refused), `exp` and `nbf`
//! against the configured [`Clock`] with a leeway (default 60 s), `iss` and `aud`
//! when configured, and the required claims (default `exp` and `sub`). The principal
//! gets `sub` as subject, scopes from `scope` (space-separated) or `scp` (array or
//! string), roles from `roles`, and the whole payload as claims.

mod cache;
#[cfg(feature = "jwks")]
mod discovery;
#[cfg(feature = "jwks")]
mod issuers;
#[cfg(feature = "jwks")]
mod jwk_set;
#[cfg(feature = "jwks")]
mod jwks;
mod keys;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) use cache::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL};
#[cfg(feature = "jwks")]
pub use issuers::IssuerKeys;
/// The algorithm and JWK types the key constructors take (jsonwebtoken's, re-exported
/// so naming one needs no dependency, nor a matching version, of your own).
pub use jsonwebtoken::{Algorithm, jwk::Jwk};
#[cfg(feature = "jwks")]
pub use jwks::{JwksError, JwksKeys, JwksKeysBuilder};
pub use keys::{JwtKey, KeyError, KeyQuery, KeySet, KeySource, StaticKeys};

use super::revocation::Revocations;
use super::verified::ConfigId;
use cache::TokenCache;
#[cfg(all(feature = "fuzzing", feature = "jwks"))]
pub(crate) use {discovery::parse_discovery, jwk_set::parse_jwks};

use super::claims::{numeric_date, strings};
use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::clock::{self, Clock};
use crate::{AuthError, Principal};

/// Default leeway for `exp` and `nbf`: 60 s.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// A JWT payload: a JSON object whose names are all distinct. The whole payload is
/// parsed (what a handler reads through [`Principal::claims`] is what was checked), and a
/// repeated claim name is refused (RFC 7519 section 4: two parsers must never disagree on
/// which `sub` a token carries).
struct Payload(Map<String, Value>);

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Objects;
        impl<'de> serde::de::Visitor<'de> for Objects {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Payload, M::Error> {
                let mut claims = Map::new();
                while let Some((name, value)) = m.next_entry::<String, Value>()? {
                    if claims.contains_key(&name) {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                    claims.insert(name, value);
                }
                Ok(Payload(claims))
            }
        }
        d.deserialize_map(Objects)
    }
}

/// The registered claims this authenticator reads, borrowed from the payload.
struct StdClaims<'a> {
    sub: Option<&'a Value>,
    iss: Option<&'a Value>,
    aud: Option<&'a Value>,
    exp: Option<&'a Value>,
    nbf: Option<&'a Value>,
    scope: Option<&'a Value>,
    scp: Option<&'a Value>,
    roles: Option<&'a Value>,
}

impl<'a> StdClaims<'a> {
    fn of(claims: &'a Map<String, Value>) -> Self {
        Self {
            sub: claims.get("sub"),
            iss: claims.get("iss"),
            aud: claims.get("aud"),
            exp: claims.get("exp"),
            nbf: claims.get("nbf"),
            scope: claims.get("scope"),
            scp: claims.get("scp"),
            roles: claims.get("roles"),
        }
    }
}

/// A verified token: who, and until when (`exp`, seconds since the epoch).
#[derive(Debug, Clone)]
pub struct Verified {
    /// The principal the token proves.
    pub principal: Principal,
    /// The token's `exp`, if it has one.
    pub expires_at: Option<u64>,
}

/// Verifies bearer JWTs. See the [module docs](self).
#[derive(Clone)]
pub struct JwtAuthenticator<K = StaticKeys> {
    keys: K,
    issuers: Vec<String>,
    audiences: Vec<String>,
    required: Vec<String>,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    cache: Option<Arc<TokenCache>>,
    scheme: Cow<'static, str>,
    /// Which configuration cached entries belong to; fresh after every setter.
    config: ConfigId,
    revocations: Option<Revocations>,
}

impl<K: KeySource> JwtAuthenticator<K> {
    /// Verifies tokens with keys from `keys`.
    pub fn new(keys: K) -> Self {
        install_crypto_provider();
        Self {
            keys,
            issuers: Vec::new(),
            audiences: Vec::new(),
            required: vec!["exp".into(), "sub".into()],
            leeway: DEFAULT_LEEWAY,
            clock: clock::system(),
            scheme: Cow::Borrowed("jwt"),
            cache: Some(Arc::new(TokenCache::new(
                DEFAULT_CACHE_TTL,
                DEFAULT_CACHE_CAPACITY,
            ))),
            config: ConfigId::fresh(),
            revocations: None,
        }
    }

    /// `self` after a configuration change: cached verifications made under the old
    /// configuration no longer serve it (clones keep theirs).
    fn reconfigured(mut self) -> Self {
        self.config = ConfigId::fresh();
        self
    }

    /// Accepts only tokens whose `iss` is `issuer` (repeat to accept several); a
    /// token without `iss` is then refused.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self.reconfigured()
    }

    /// Accepts only tokens whose `aud` (a string or an array) contains `audience`
    /// (repeat to accept several); a token without `aud` is then refused. Without
    /// any, `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self.reconfigured()
    }

    /// Sets the claims a token must carry (default `exp` and `sub`). Of the
    /// registered claims, `exp`, `nbf`, `iss`, `aud` and `sub` are understood;
    /// any other name must be present in the payload.
    pub fn required_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = claims.into_iter().map(Into::into).collect();
        self.reconfigured()
    }

    /// Sets the leeway for `exp` and `nbf`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        if let Some(r) = &self.revocations {
            r.register_leeway(leeway);
        }
        self.reconfigured()
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.reconfigured()
    }

    /// Caches accepted tokens (on by default: 5 minutes, 10 000 tokens). A cached token's principal serves until
    /// the earlier of its `exp` and `ttl`, and only while the key source's keys are
    /// unchanged ([`KeySource::generation`]); the layer still checks policy on every
    /// call. `capacity == 0` turns the cache off.
    pub fn cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.cache =
            (capacity > 0 && !ttl.is_zero()).then(|| Arc::new(TokenCache::new(ttl, capacity)));
        self
    }

    /// Refuses revoked tokens: after a token verifies (or is found in the cache), its
    /// `jti` and `sub` are looked up in `revocations` on every call (one round trip to
    /// a shared store). A revoked token is `UNAUTHENTICATED` "token revoked"; a store
    /// that cannot answer makes the call `UNAVAILABLE`. See
    /// [`Revocations`].
    pub fn revocations(mut self, revocations: Revocations) -> Self {
        revocations.register_leeway(self.leeway);
        self.revocations = Some(revocations);
        self
    }

    /// Names the scheme in the principals it makes (default `"jwt"`).
    pub fn scheme(mut self, scheme: impl Into<Cow<'static, str>>) -> Self {
        self.scheme = scheme.into();
        self.reconfigured()
    }

    /// Turns the verified-token cache off: every call checks the signature.
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The key source.
    pub fn key_source(&self) -> &K {
        &self.keys
    }

    /// Verifies `token`: usable outside the layer, it needs only the token.
    ///
    /// The signature is checked first (by jsonwebtoken's crypto provider, with a key
    /// that allows the header's `alg`), then the claims; the payload is decoded once.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (_, payload) = message.split_once('.').ok_or_else(malformed)?;
        // base64url without padding is the only encoding (RFC 7515 section 2): a
        // padded segment would give one signed token a second accepted spelling.
        if payload.contains('.') || token.contains('=') {
            return Err(malformed());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        // No header extension is understood, so any `crit` (RFC 7515 section 4.1.11,
        // including RFC 7797's `b64`) makes the token unverifiable.
        if header.crit.is_some() {
            return Err(AuthError::unauthenticated(
                "token has unsupported critical header parameters",
            ));
        }
        let kid = header.kid.as_deref();
        let keys = self
            .keys
            .keys(KeyQuery::from_token(kid, header.alg, payload))
            .await?;
        let mut failure = None;
        let mut verified = false;
        for key in keys.candidates(kid, header.alg)? {
            if !key.allows(header.alg) {
                failure.get_or_insert(AuthError::unauthenticated("token algorithm not allowed"));
                continue;
            }
            match jsonwebtoken::crypto::verify(
                signature,
                message.as_bytes(),
                key.decoding_key(),
                header.alg,
            ) {
                Ok(true) => {
                    verified = true;
                    break;
                }
                Ok(false) => failure = Some(AuthError::unauthenticated("invalid token signature")),
                Err(_) => failure = Some(malformed()),
            }
        }
        if !verified {
            return Err(
                failure.unwrap_or_else(|| AuthError::unauthenticated("invalid token signature"))
            );
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(malformed());
        }
        let Payload(claims) = serde_json::from_slice(&payload).map_err(|_| malformed())?;
        self.check_claims(claims)
    }

    /// Verifies `token` through the verified-token cache (what the layer does): a
    /// token accepted before, still before its `exp` and the cache TTL and under the
    /// same keys, is not verified again. Without a cache, the same as [`verify`](Self::verify).
    pub async fn verify_cached(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(cache) = &self.cache else {
            return Ok(self.verify(token).await?.principal);
        };
        // Read before verifying: a key change during the check re-verifies next time.
        let generation = self.keys.generation();
        if let Some(principal) = cache.get(self.config, token, &*self.clock, generation) {
            return Ok(principal);
        }
        let verified = self.verify(token).await?;
        cache.insert(
            self.config,
            cache::key(token),
            verified.principal.clone(),
            verified.expires_at,
            &*self.clock,
            generation,
        );
        Ok(verified.principal)
    }

    fn check_claims(&self, all: Map<String, Value>) -> Result<Verified, AuthError> {
        let claims = StdClaims::of(&all);
        for name in &self.required {
            if all.get(name.as_str()).is_none_or(Value::is_null) {
                return Err(AuthError::unauthenticated(format!(
                    "token lacks required claim: {name}"
                )));
            }
        }
        let now = self.clock.unix_seconds();
        let leeway = self.leeway.as_secs();
        let expires_at = numeric(claims.exp, "exp")?;
        if expires_at.is_some_and(|exp| now > exp.saturating_add(leeway)) {
            return Err(AuthError::unauthenticated("token expired"));
        }
        if numeric(claims.nbf, "nbf")?.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(AuthError::unauthenticated("token not yet valid"));
        }
        if !self.issuers.is_empty() {
            match &claims.iss {
                None => {
                    return Err(AuthError::unauthenticated(
                        "token lacks required claim: iss",
                    ));
                }
                Some(Value::String(iss)) if self.issuers.contains(iss) => {}
                Some(_) => return Err(AuthError::unauthenticated("invalid token issuer")),
            }
        }
        if !self.audiences.is_empty() {
            let ok = match &claims.aud {
                None => {
                    return Err(AuthError::unauthenticated(
                        "token lacks required claim: aud",
                    ));
                }
                Some(Value::String(aud)) => self.audiences.contains(aud),
                Some(Value::Array(auds)) => auds.iter().any(|a| {
                    a.as_str()
                        .is_some_and(|a| self.audiences.iter().any(|x| x == a))
                }),
                Some(_) => false,
            };
            if !ok {
                return Err(AuthError::unauthenticated("invalid token audience"));
            }
        }
        let subject = match claims.sub {
            None => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(AuthError::unauthenticated("token has an invalid sub claim")),
        };
        let mut scopes: Vec<String> = strings(claims.scope).collect();
        scopes.extend(strings(claims.scp));
        let principal = Principal::new(subject, self.scheme.clone())
            .with_scopes(scopes)
            .with_roles(strings(claims.roles));
        let principal = principal.with_claims(all);
        Ok(Verified {
            principal,
            expires_at,
        })
    }
}

/// A NumericDate claim: a non-negative number of seconds.
fn numeric(v: Option<&Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match v {
        None => Ok(None),
        Some(v) => numeric_date(v).map(Some).ok_or_else(|| {
            AuthError::unauthenticated(format!("token has an invalid {name} claim"))
        }),
    }
}

fn malformed() -> AuthError {
    AuthError::unauthenticated("malformed token")
}

impl<K: KeySource> Authenticator for JwtAuthenticator<K> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Bearer") {
            return Ok(None);
        }
        // Not a compact JWS (three dot-separated parts): an opaque token, perhaps
        // another scheme's (`jwt.or(introspection)`); refused if none claims it.
        if auth.credentials().split('.').count() != 3 {
            return Err(AuthError::unrecognized("malformed token"));
        }
        let principal = self.verify_cached(auth.credentials()).await?;
        crate::authn::mtls::check_binding(&principal, req)?;
        if let Some(revocations) = &self.revocations {
            revocations.check(&principal).await?;
        }
        Ok(Some(Authenticated::by(
            principal,
            http::header::AUTHORIZATION,
        )))
    }
}

impl<K: fmt::Debug> fmt::Debug for JwtAuthenticator<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("keys", &self.keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("required", &self.required)
            .field("leeway", &self.leeway)
            .field("cache", &self.cache)
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}

/// Installs jsonwebtoken's process-wide crypto provider from this crate's features:
/// `aws-lc-rs` (default) wins over `rust-crypto` when feature unification enables
/// both, so jsonwebtoken never panics for want of a provider. A provider the
/// application installed first is left alone.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "aws-lc-rs")]
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "grpc-auth needs a JWT crypto backend: enable feature `aws-lc-rs` (default) or `rust-crypto`"
);

#[cfg(test)]
mod tests;
