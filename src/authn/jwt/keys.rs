//! JWT verification keys: [`JwtKey`], [`KeySet`] and the [`KeySource`] the
//! authenticator asks for them with a [`KeyQuery`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::AuthError;

/// A key configuration error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key material could not be parsed (the parser's message).
    #[error("invalid key: {0}")]
    Invalid(String),
    /// The algorithm does not belong to the key's family (e.g. HS256 for an RSA key).
    #[error("algorithm {0:?} does not fit this key")]
    AlgorithmMismatch(Algorithm),
    /// A JWK without `alg` whose type does not name one algorithm.
    #[error("JWK has no usable algorithm")]
    NoAlgorithm,
}

/// A parser's error as a [`KeyError`]: its message; the dependency's type stays inside.
pub(crate) fn invalid(e: jsonwebtoken::errors::Error) -> KeyError {
    KeyError::Invalid(e.to_string())
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
            jsonwebtoken::AlgorithmFamily::Rsa => {
                DecodingKey::from_rsa_pem(pem).map_err(invalid)?
            }
            jsonwebtoken::AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem).map_err(invalid)?,
            jsonwebtoken::AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem).map_err(invalid)?,
            jsonwebtoken::AlgorithmFamily::Hmac => return Err(KeyError::AlgorithmMismatch(alg)),
        };
        Self::checked(key, alg)
    }

    /// A key from a JWK; its `kid` is kept and its algorithm taken from `alg`, or
    /// from the key type when that names one (EC P-256/P-384, OKP Ed25519). An EC
    /// key's `alg` must fit its curve.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
        let key = DecodingKey::from_jwk(jwk).map_err(invalid)?;
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
        if let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm {
            let fits = matches!(
                (&ec.curve, alg),
                (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
            );
            if !fits {
                return Err(KeyError::AlgorithmMismatch(alg));
            }
        }
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
    pub(crate) fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// The keys a token with `kid` and `alg` may be verified with: every key with
    /// that id (the caller still checks that it allows `alg`); without an id, the one
    /// key that allows `alg`, and only if there is exactly one.
    ///
    /// Fails `UNAUTHENTICATED` with "unknown token key id", "no key for the token's
    /// algorithm", or, for a token without `kid` that several keys could verify,
    /// "token has no key id and several keys fit".
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> Result<impl Iterator<Item = &'a JwtKey> + 'a, AuthError> {
        let keys: &[JwtKey] = match kid {
            Some(kid) if self.contains_kid(kid) => &self.keys,
            Some(_) => return Err(AuthError::unauthenticated("unknown token key id")),
            None => {
                let mut fit = self.keys.iter().filter(|k| k.allows(alg));
                match (fit.next(), fit.next()) {
                    (Some(only), None) => std::slice::from_ref(only),
                    (None, _) => {
                        return Err(AuthError::unauthenticated(
                            "no key for the token's algorithm",
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(AuthError::unauthenticated(
                            "token has no key id and several keys fit",
                        ));
                    }
                }
            }
        };
        Ok(keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid() == Some(kid))))
    }
}

/// What the authenticator asks a [`KeySource`] for: the token header's `kid` and
/// `alg`, and, read on request from the not yet verified payload, its `iss`.
///
/// ```
/// use grpc_auth::authn::jwt::KeyQuery;
/// use jsonwebtoken::Algorithm;
/// let q = KeyQuery::new(Some("k1"), Algorithm::RS256).with_issuer("https://issuer.example");
/// assert_eq!(q.kid(), Some("k1"));
/// assert_eq!(q.unverified_issuer().unwrap().as_deref(), Some("https://issuer.example"));
/// ```
#[derive(Clone, Copy)]
pub struct KeyQuery<'a> {
    kid: Option<&'a str>,
    alg: Algorithm,
    issuer: Issuer<'a>,
}

impl fmt::Debug for KeyQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KeyQuery");
        d.field("kid", &self.kid).field("alg", &self.alg);
        match self.issuer {
            Issuer::Given(iss) => d.field("iss", &iss),
            // Not the payload: it is part of a credential.
            Issuer::Payload(_) => d.field("iss", &format_args!("(in the token)")),
        };
        d.finish()
    }
}

#[derive(Clone, Copy)]
enum Issuer<'a> {
    Given(Option<&'a str>),
    /// The token's base64url payload, decoded only if a source asks.
    Payload(&'a str),
}

impl<'a> KeyQuery<'a> {
    /// A query for a token whose header has `kid` and `alg`, without an issuer.
    pub fn new(kid: Option<&'a str>, alg: Algorithm) -> Self {
        Self {
            kid,
            alg,
            issuer: Issuer::Given(None),
        }
    }

    /// Sets the issuer the query reports.
    pub fn with_issuer(mut self, iss: &'a str) -> Self {
        self.issuer = Issuer::Given(Some(iss));
        self
    }

    /// A query for a token with this header and base64url `payload`.
    pub(crate) fn from_token(kid: Option<&'a str>, alg: Algorithm, payload: &'a str) -> Self {
        Self {
            kid,
            alg,
            issuer: Issuer::Payload(payload),
        }
    }

    /// The token's key id.
    pub fn kid(&self) -> Option<&'a str> {
        self.kid
    }

    /// The token's algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The token's `iss`, read from its payload before the signature is checked:
    /// good for picking keys, never for trusting. `Ok(None)` if it has none; an
    /// `UNAUTHENTICATED` error if the payload is not a JSON object or `iss` is not a
    /// string.
    pub fn unverified_issuer(&self) -> Result<Option<String>, AuthError> {
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<serde_json::Value>,
        }
        let payload = match self.issuer {
            Issuer::Given(iss) => return Ok(iss.map(str::to_owned)),
            Issuer::Payload(payload) => payload,
        };
        let malformed = || AuthError::unauthenticated("malformed token");
        let json = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| malformed())?;
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(malformed());
        }
        match serde_json::from_slice::<Iss>(&json)
            .map_err(|_| malformed())?
            .iss
        {
            None => Ok(None),
            Some(serde_json::Value::String(iss)) => Ok(Some(iss)),
            Some(_) => Err(AuthError::unauthenticated("invalid token issuer")),
        }
    }
}

/// Where the JWT authenticator gets its keys: [`StaticKeys`], a JWKS URL or OpenID
/// Connect discovery ([`JwksKeys`](super::JwksKeys)), several issuers
/// ([`IssuerKeys`](super::IssuerKeys)), or your own.
pub trait KeySource: Send + Sync + 'static {
    /// The current keys for a token described by `query`: a remote source refetches
    /// when it does not know the `kid`; a multi-issuer source picks by the issuer. A
    /// source whose keys cannot be had fails `UNAVAILABLE`.
    fn keys(
        &self,
        query: KeyQuery<'_>,
    ) -> impl Future<Output = Result<Arc<KeySet>, AuthError>> + Send;

    /// A number that changes whenever the set of usable keys changes (a key added or
    /// removed), and not on a refresh that finds the same keys; `0` for keys that
    /// never change. A cache of verified tokens re-verifies when it moved.
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
    async fn keys(&self, _query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
        Ok(self.0.clone())
    }
}
