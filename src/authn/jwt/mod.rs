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

mod keys;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde_json::{Map, Value};

pub use keys::{JwtKey, KeyError, KeySet, KeySource, StaticKeys};

use super::{AuthRequest, AuthResult, Authenticator};
use crate::clock::{self, Clock};
use crate::{AuthError, Principal};

/// Default leeway for `exp` and `nbf`: 60 s.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Verifies bearer JWTs. See the [module docs](self).
#[derive(Clone)]
pub struct JwtAuthenticator<K = StaticKeys> {
    keys: K,
    issuers: Vec<String>,
    audiences: Vec<String>,
    required: Vec<String>,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    validations: Arc<[Validation; 4]>,
}

impl<K: KeySource> JwtAuthenticator<K> {
    /// Verifies tokens with keys from `keys`.
    pub fn new(keys: K) -> Self {
        install_crypto_provider();
        let mut me = Self {
            keys,
            issuers: Vec::new(),
            audiences: Vec::new(),
            required: vec!["exp".into(), "sub".into()],
            leeway: DEFAULT_LEEWAY,
            clock: clock::system(),
            validations: Arc::new(std::array::from_fn(|_| Validation::default())),
        };
        me.rebuild();
        me
    }

    /// Accepts tokens whose `iss` is `issuer` (repeat to accept several).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self.rebuild();
        self
    }

    /// Accepts tokens whose `aud` contains `audience` (repeat to accept several).
    /// Without one, `aud` is not checked.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self.rebuild();
        self
    }

    /// Sets the claims a token must carry (of `exp`, `nbf`, `iss`, `aud`, `sub`).
    pub fn required_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = claims.into_iter().map(Into::into).collect();
        self.rebuild();
        self
    }

    /// Sets the leeway for `exp` and `nbf`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The key source.
    pub fn key_source(&self) -> &K {
        &self.keys
    }

    fn rebuild(&mut self) {
        let families = [
            AlgorithmFamily::Hmac,
            AlgorithmFamily::Rsa,
            AlgorithmFamily::Ec,
            AlgorithmFamily::Ed,
        ];
        self.validations = Arc::new(families.map(|family| {
            let mut v = Validation::default();
            v.algorithms = family.algorithms().to_vec();
            // exp and nbf are checked against our clock in `principal_from`.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.leeway = 0;
            v.required_spec_claims = self.required.iter().cloned().collect::<HashSet<_>>();
            if self.issuers.is_empty() {
                v.iss = None;
            } else {
                v.set_issuer(&self.issuers);
            }
            if self.audiences.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&self.audiences);
            }
            v
        }));
    }

    fn validation(&self, alg: Algorithm) -> &Validation {
        let i = match alg.family() {
            AlgorithmFamily::Hmac => 0,
            AlgorithmFamily::Rsa => 1,
            AlgorithmFamily::Ec => 2,
            AlgorithmFamily::Ed => 3,
        };
        &self.validations[i]
    }

    /// Verifies `token` and returns its principal and `exp` (seconds since the epoch).
    ///
    /// Usable outside the layer: it needs only the token.
    pub async fn verify(&self, token: &str) -> Result<(Principal, Option<u64>), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        let kid = header.kid.as_deref();
        let keys = self.keys.keys(kid).await?;
        let mut failure = None;
        for key in keys.candidates(kid, header.alg) {
            if !key.allows(header.alg) {
                failure.get_or_insert(AuthError::unauthenticated("token algorithm not allowed"));
                continue;
            }
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                key.decoding_key(),
                self.validation(header.alg),
            ) {
                Ok(data) => return self.principal_from(data.claims),
                Err(e) => failure = Some(map_error(e.kind())),
            }
        }
        Err(failure.unwrap_or_else(|| match kid {
            Some(_) => AuthError::unauthenticated("unknown token key id"),
            None => AuthError::unauthenticated("no key for the token's algorithm"),
        }))
    }

    fn principal_from(
        &self,
        claims: Map<String, Value>,
    ) -> Result<(Principal, Option<u64>), AuthError> {
        let now = self.clock.unix_seconds();
        let leeway = self.leeway.as_secs();
        let exp = numeric_claim(&claims, "exp")?;
        if let Some(exp) = exp {
            if now > exp.saturating_add(leeway) {
                return Err(AuthError::unauthenticated("token expired"));
            }
        }
        if let Some(nbf) = numeric_claim(&claims, "nbf")? {
            if now.saturating_add(leeway) < nbf {
                return Err(AuthError::unauthenticated("token not yet valid"));
            }
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut scopes: Vec<String> = Vec::new();
        if let Some(Value::String(s)) = claims.get("scope") {
            scopes.extend(s.split_whitespace().map(str::to_owned));
        }
        scopes.extend(strings(claims.get("scp")));
        let roles: Vec<String> = strings(claims.get("roles")).collect();
        let principal = Principal::new(subject, "jwt")
            .with_scopes(scopes)
            .with_roles(roles)
            .with_claims(claims);
        Ok((principal, exp))
    }
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    let (one, many) = match v {
        Some(Value::String(s)) => (Some(s.split_whitespace()), None),
        Some(Value::Array(a)) => (None, Some(a.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter()
        .flatten()
        .chain(many.into_iter().flatten())
        .map(str::to_owned)
}

fn numeric_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| {
                AuthError::unauthenticated(format!("token has an invalid {name} claim"))
            }),
    }
}

fn malformed() -> AuthError {
    AuthError::unauthenticated("malformed token")
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::unauthenticated("invalid token signature"),
        ErrorKind::ExpiredSignature => AuthError::unauthenticated("token expired"),
        ErrorKind::ImmatureSignature => AuthError::unauthenticated("token not yet valid"),
        ErrorKind::InvalidIssuer => AuthError::unauthenticated("invalid token issuer"),
        ErrorKind::InvalidAudience => AuthError::unauthenticated("invalid token audience"),
        ErrorKind::InvalidSubject => AuthError::unauthenticated("invalid token subject"),
        ErrorKind::MissingRequiredClaim(c) => {
            AuthError::unauthenticated(format!("token lacks required claim: {}", sanitize(c)))
        }
        ErrorKind::InvalidClaimFormat(c) => {
            AuthError::unauthenticated(format!("token has an invalid {} claim", sanitize(c)))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::unauthenticated("token algorithm not allowed")
        }
        _ => malformed(),
    }
}

/// Claim names in messages are limited to the spec names we configured.
fn sanitize(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "claim",
    }
}

impl<K: KeySource> Authenticator for JwtAuthenticator<K> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Bearer") {
            return Ok(None);
        }
        let (principal, _exp) = self.verify(auth.credentials()).await?;
        Ok(Some(principal.into()))
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
            .finish_non_exhaustive()
    }
}

/// Installs jsonwebtoken's process-wide crypto provider from this crate's features:
/// `aws-lc-rs` (default) wins over `rust-crypto` when feature unification enables
/// both, so jsonwebtoken never panics for want of a provider. A provider the
/// application installed first is left alone.
pub fn install_crypto_provider() {
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
