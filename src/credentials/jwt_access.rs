//! [`JwtAccessCredentials`]: self-signed JWTs whose audience is the service URL, like
//! grpc-go's `NewJWTAccessFromKey`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Status;

use super::{CallContext, CallCredentials};
use crate::authn::jwt::KeyError;
use crate::clock::{self, Clock};

/// Bound on the audiences cached at once; past it the cache starts over.
const MAX_AUDIENCES: usize = 256;

/// Signs a short JWT per audience (the call's service URL) with a private key
/// (RS256, ES256 or EdDSA), and reuses it until shortly before it expires.
///
/// Claims: `iss` and `sub` = the configured issuer, `aud` = the service URL, `iat`, `exp`
/// (lifetime 1 h by default; re-signed 5 min before expiry).
///
/// ```no_run
/// use grpc_auth::credentials::JwtAccessCredentials;
/// use grpc_auth::authn::jwt::Algorithm;
/// let pem = std::fs::read("service-account.pem").unwrap();
/// let creds = JwtAccessCredentials::from_pem(Algorithm::ES256, &pem, "svc@example.com")
///     .unwrap()
///     .kid("key-1");
/// # let _ = creds;
/// ```
#[derive(Clone)]
pub struct JwtAccessCredentials {
    key: Arc<EncodingKey>,
    header: Header,
    issuer: String,
    lifetime: Duration,
    margin: Duration,
    clock: Arc<dyn Clock>,
    cache: Arc<Mutex<HashMap<String, (HeaderValue, SystemTime)>>>,
}

impl JwtAccessCredentials {
    /// Signs with a PEM private key for `alg` (RS*/PS*: RSA, ES*: EC, EdDSA: Ed25519).
    pub fn from_pem(
        alg: Algorithm,
        pem: &[u8],
        issuer: impl Into<String>,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            key: Arc::new(signing_key(alg, pem)?),
            header: Header::new(alg),
            issuer: issuer.into(),
            lifetime: Duration::from_secs(3600),
            margin: Duration::from_secs(300),
            clock: clock::system(),
            cache: Arc::default(),
        })
    }

    /// Sets the `kid` header.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.header.kid = Some(kid.into());
        self
    }

    /// Sets the token lifetime (default 1 h); tokens are re-signed when less than a
    /// tenth of it (at most 5 min) remains.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self.margin = (lifetime / 10).min(Duration::from_secs(300));
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn sign(&self, audience: &str, now: SystemTime) -> Result<(HeaderValue, SystemTime), Status> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let exp = clock::add(now, self.lifetime);
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": self.issuer, "aud": audience,
            "iat": iat, "exp": iat.saturating_add(self.lifetime.as_secs()),
        });
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|_| Status::unauthenticated("could not sign the JWT access token"))?;
        let value = crate::wire::bearer::value(token.as_bytes())
            .ok_or_else(|| Status::unauthenticated("signed JWT is not a valid metadata value"))?;
        Ok((value, exp))
    }

    /// The `authorization` value for `audience`, cached until shortly before expiry.
    pub fn header_value(&self, audience: &str) -> Result<HeaderValue, Status> {
        let now = self.clock.now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((value, exp)) = cache.get(audience)
            && clock::add(now, self.margin) < *exp
        {
            return Ok(value.clone());
        }
        let (value, exp) = self.sign(audience, now)?;
        if cache.len() >= MAX_AUDIENCES {
            cache.clear();
        }
        cache.insert(audience.to_owned(), (value.clone(), exp));
        Ok(value)
    }
}

/// A private key for signing JWTs with `alg` (RS*/PS*: RSA, ES*: EC, EdDSA: Ed25519)
/// from PEM; HMAC algorithms are refused (a signature others verify needs a key pair).
pub(crate) fn signing_key(alg: Algorithm, pem: &[u8]) -> Result<EncodingKey, KeyError> {
    crate::authn::jwt::install_crypto_provider();
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return Err(KeyError::AlgorithmMismatch(alg));
        }
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .map_err(|e| KeyError::Invalid(e.to_string()))
}

impl CallCredentials for JwtAccessCredentials {
    async fn apply(&self, ctx: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        metadata.insert(AUTHORIZATION, self.header_value(&ctx.service_url())?);
        Ok(())
    }
}

impl fmt::Debug for JwtAccessCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAccessCredentials")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn a_huge_lifetime_does_not_panic() {
        let pem = include_bytes!("../../tests/keys/ec256_private.pem");
        let creds = JwtAccessCredentials::from_pem(Algorithm::ES256, pem, "svc")
            .unwrap()
            .lifetime(Duration::MAX);
        assert!(creds.header_value("https://a.example/s.S").is_ok());
        assert!(creds.header_value("https://a.example/s.S").is_ok());
    }
}
