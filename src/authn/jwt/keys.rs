//! JWT verification keys: [`JwtKey`], [`KeySet`] and the [`KeySource`] the
//! authenticator asks for them.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::AuthError;

/// A key configuration error.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key material could not be parsed.
    #[error("invalid key: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The algorithm does not belong to the key's family (e.g. HS256 for an RSA key).
    #[error("algorithm {0:?} does not fit this key")]
    AlgorithmMismatch(Algorithm),
    /// A JWK without `alg` whose type does not name one algorithm.
    #[error("JWK has no usable algorithm")]
    NoAlgorithm,
}

/// One verification key and the algorithms it may verify. A key never verifies an
/// algorithm it was not configured for, which rules out algorithm confusion.
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl JwtKey {
    /// An HMAC secret for `alg` (HS256, HS384 or HS512).
    pub fn secret(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        Self::checked(DecodingKey::from_secret(secret), alg)
    }

    /// A PEM public key for `alg`: RSA for RS*/PS*, EC for ES*, Ed25519 for EdDSA.
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match alg.family() {
            jsonwebtoken::AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem)?,
            jsonwebtoken::AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem)?,
            jsonwebtoken::AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem)?,
            jsonwebtoken::AlgorithmFamily::Hmac => return Err(KeyError::AlgorithmMismatch(alg)),
        };
        Self::checked(key, alg)
    }

    /// A key from a JWK; its `kid` is kept and its algorithm taken from `alg`, or
    /// from the key type when that names one (EC P-256/P-384, OKP Ed25519).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
        let key = DecodingKey::from_jwk(jwk)?;
        let alg = match (jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(ka), _) => Algorithm::try_from(ka).map_err(|_| KeyError::NoAlgorithm)?,
            (None, AlgorithmParameters::EllipticCurve(ec)) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(KeyError::NoAlgorithm),
            },
            (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
            _ => return Err(KeyError::NoAlgorithm),
        };
        let mut k = Self::checked(key, alg)?;
        k.kid = jwk.common.key_id.clone();
        Ok(k)
    }

    fn checked(key: DecodingKey, alg: Algorithm) -> Result<Self, KeyError> {
        if key.family() != alg.family() {
            return Err(KeyError::AlgorithmMismatch(alg));
        }
        Ok(Self {
            kid: None,
            key,
            algorithms: vec![alg],
        })
    }

    /// Sets the key id matched against a token's `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Also allows `alg` (same family), e.g. PS256 besides RS256 for one RSA key.
    pub fn also_allow(mut self, alg: Algorithm) -> Result<Self, KeyError> {
        if self.key.family() != alg.family() {
            return Err(KeyError::AlgorithmMismatch(alg));
        }
        if !self.algorithms.contains(&alg) {
            self.algorithms.push(alg);
        }
        Ok(self)
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// A set of keys, searched by `kid` and algorithm.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<JwtKey>,
}

impl KeySet {
    /// A set holding `keys`.
    pub fn new(keys: Vec<JwtKey>) -> Self {
        Self { keys }
    }

    /// All keys.
    pub fn keys(&self) -> &[JwtKey] {
        &self.keys
    }

    /// Whether the set has a key with this id.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// The keys a token with `kid` and `alg` may be verified with: the key with that
    /// id, or without an id every key that allows `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a JwtKey> + 'a {
        self.keys.iter().filter(move |k| match kid {
            Some(kid) => k.kid() == Some(kid),
            None => k.allows(alg),
        })
    }
}

/// Where the JWT authenticator gets its keys: static keys here, JWKS and OpenID
/// Connect discovery elsewhere.
pub trait KeySource: Send + Sync + 'static {
    /// The current keys. `kid` is the token's key id, so a remote source can refetch
    /// when it does not know it. A source whose keys cannot be had fails `UNAVAILABLE`.
    fn keys(
        &self,
        kid: Option<&str>,
    ) -> impl Future<Output = Result<Arc<KeySet>, AuthError>> + Send;

    /// A number that changes whenever the set of usable keys changes (a key added or
    /// removed), so that cached verifications made under old keys are redone. Fixed
    /// keys never change: the default is 0.
    fn generation(&self) -> u64 {
        0
    }
}

/// Keys fixed at start-up.
///
/// ```
/// use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
/// use jsonwebtoken::Algorithm;
/// let keys = StaticKeys::new()
///     .with(JwtKey::secret(Algorithm::HS256, b"a-long-random-secret").unwrap().with_kid("k1"));
/// # let _ = keys;
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticKeys(Arc<KeySet>);

impl StaticKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    pub fn with(mut self, key: JwtKey) -> Self {
        Arc::make_mut(&mut self.0).keys.push(key);
        self
    }
}

impl From<JwtKey> for StaticKeys {
    fn from(key: JwtKey) -> Self {
        Self::new().with(key)
    }
}

impl KeySource for StaticKeys {
    async fn keys(&self, _kid: Option<&str>) -> Result<Arc<KeySet>, AuthError> {
        Ok(self.0.clone())
    }
}
