//! [`TokenExchange`]: a login (HTTP Basic, or any [`Authenticator`]) answered with
//! `authorization: Bearer <token>` in the response headers; later calls present that
//! bearer. This is Arrow Flight's Basic-to-Bearer exchange (`Handshake`), and works for
//! any gRPC method.
//!
//! ```
//! use grpc_auth::authn::BasicAuthenticator;
//! use grpc_auth::authn::token_exchange::{SignedTokens, TokenExchange, TokenKeys};
//! use grpc_auth::AuthLayer;
//! use std::time::Duration;
//!
//! // Every replica shares the key, so any of them accepts a token another issued.
//! let keys = TokenKeys::hs256("2024-06", b"a-shared-secret-of-at-least-32-bytes!".as_slice())?;
//! // Tokens are bound to this service ("flight-sql"): another service sharing the keys
//! // refuses them.
//! let tokens = SignedTokens::new(keys.clone(), "flight-sql").ttl(Duration::from_secs(15 * 60));
//! let exchange = TokenExchange::new(BasicAuthenticator::new().user("ada", "lovelace"), tokens)
//!     .login_method("/arrow.flight.protocol.FlightService/Handshake");
//! let layer = AuthLayer::new(exchange);
//! // Later: keys.rotate("2024-07", new_secret)?; tokens signed with "2024-06" still verify
//! // until keys.drop_previous().
//! # let _ = layer; Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it does with a call:
//! - `authorization: Bearer <t>` where `t` is one of its tokens (by [`TokenIssuer::recognizes`]:
//!   a signed token's unverified `iss`, an opaque token's prefix): verified strictly, the
//!   principal is the one the token carries (scheme `"token"`); a bad one is refused, never
//!   passed on to another scheme. A bearer that is not ours is *absent*, so
//!   `exchange.or(jwt)` can accept an identity provider's tokens on the same server.
//! - On a login method (every method unless [`TokenExchange::login_method`] names some):
//!   the login authenticator decides; when it accepts, the call proceeds as its principal
//!   and the response's initial headers carry `authorization: Bearer <new token>`.
//! - On any other method, the login credential is *absent* (`Ok(None)`): alone, the layer
//!   answers `UNAUTHENTICATED` "unsupported authorization scheme"; composed as
//!   `exchange.or(basic)`, Basic is still accepted there, without a token being issued.
//!
//! Tokens are [`SignedTokens`] (stateless HS256 JWTs: any replica verifies them, a
//! restart logs nobody out, [`TokenKeys`] rotate while the previous key still verifies)
//! or [`OpaqueTokens`] (random strings looked up in a [`TokenStore`], revocable).

mod signed;
mod store;

use std::fmt;
use std::future::Future;

use http::HeaderValue;
use http::header::AUTHORIZATION;

pub use signed::{SignedTokens, TokenKeyError, TokenKeys};
pub use store::{
    MemoryTokenStore, OpaqueTokens, StoreTokens, StoredToken, TokenDigest, TokenStore,
};

use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::{AuthError, Principal, Secret};

/// Issues and verifies the tokens a [`TokenExchange`] hands out.
pub trait TokenIssuer: Send + Sync + 'static {
    /// A new token for `principal`.
    fn issue(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<Secret, AuthError>> + Send;

    /// Whether `token` looks like one of ours (unverified; routing only).
    fn recognizes(&self, token: &str) -> bool;

    /// Verifies one of our tokens and returns who it proves.
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send;
}

/// A login answered with a bearer token. See the [module docs](self).
#[derive(Clone)]
pub struct TokenExchange<L, T = SignedTokens> {
    login: L,
    tokens: T,
    login_methods: Vec<String>,
}

impl<L: Authenticator, T: TokenIssuer> TokenExchange<L, T> {
    /// Exchanges whatever `login` accepts for a token from `tokens`, on every method
    /// until [`login_method`](Self::login_method) restricts it.
    pub fn new(login: L, tokens: T) -> Self {
        Self {
            login,
            tokens,
            login_methods: Vec::new(),
        }
    }

    /// Logs in only on `path` (`/package.Service/Method`, e.g. Arrow Flight's
    /// `/arrow.flight.protocol.FlightService/Handshake`); repeat for several.
    pub fn login_method(mut self, path: impl Into<String>) -> Self {
        self.login_methods.push(path.into());
        self
    }

    /// The token issuer (for [`TokenKeys::rotate`] or [`OpaqueTokens::revoke`]).
    pub fn tokens(&self) -> &T {
        &self.tokens
    }

    fn is_login_method(&self, method: &str) -> bool {
        self.login_methods.is_empty() || self.login_methods.iter().any(|m| m == method)
    }
}

/// `Bearer <token>` as a sensitive header value.
fn bearer_value(token: &Secret) -> Result<HeaderValue, AuthError> {
    crate::wire::bearer::value(token.expose())
        .ok_or_else(|| AuthError::unavailable("issued token is not a valid metadata value"))
}

impl<L: Authenticator, T: TokenIssuer> Authenticator for TokenExchange<L, T> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        if let Some(auth) = req.authorization()?
            && auth.is_scheme("Bearer")
            && self.tokens.recognizes(auth.credentials())
        {
            let principal = self.tokens.verify(auth.credentials()).await?;
            // A token exchanged for a certificate-bound login (RFC 8705 `cnf`) stays bound.
            crate::authn::mtls::check_binding(&principal, req)?;
            return Ok(Some(Authenticated::by(
                principal,
                http::header::AUTHORIZATION,
            )));
        }
        if !self.is_login_method(req.method()) {
            // Not a login here, but a credential the login scheme owns is still judged:
            // a wrong password never rides along another scheme's valid credential.
            self.login.authenticate(req).await?;
            return Ok(None);
        }
        let Some(found) = self.login.authenticate(req).await? else {
            return Ok(None);
        };
        let token = self.tokens.issue(&bound(&found.principal, req)).await?;
        tracing::debug!(
            method = req.method(),
            subject = found.principal.subject(),
            "grpc-auth: token issued"
        );
        Ok(Some(found.with_response_header(
            AUTHORIZATION,
            bearer_value(&token)?,
        )))
    }
}

/// The principal a token is issued for, with the certificate binding (RFC 8705 `cnf`)
/// the token keeps: the login's own `cnf` (a bound JWT, checked when it logged in), else,
/// for a login over a connection with a verified client certificate (mTLS alone, or with
/// Basic), that certificate's thumbprint. Read from the connection, never from a claim a
/// login brought, so no token can name another certificate.
fn bound(principal: &crate::Principal, req: &AuthRequest<'_>) -> crate::Principal {
    if principal.claims().contains_key("cnf") {
        return principal.clone();
    }
    let Some(x5t) = req
        .peer_certificates()
        .and_then(|certs| certs.leaf_thumbprint())
    else {
        return principal.clone();
    };
    let mut claims = principal.claims().clone();
    claims.insert("cnf".into(), serde_json::json!({ "x5t#S256": x5t }));
    principal.clone().with_claims(claims)
}

impl<L: fmt::Debug, T: fmt::Debug> fmt::Debug for TokenExchange<L, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("login", &self.login)
            .field("tokens", &self.tokens)
            .field("login_methods", &self.login_methods)
            .finish()
    }
}

#[cfg(test)]
mod tests;
