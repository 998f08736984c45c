//! Server-side authenticators: the [`Authenticator`] trait, the built-in schemes and
//! their composition.
//!
//! An authenticator looks at an [`AuthRequest`] and gives one of three outcomes:
//! `Ok(Some(_))` authenticated, `Ok(None)` "my credential is not here" (so an
//! [`AnyOf`] tries the next scheme), or `Err(_)` rejected with a reason.
//!
//! ```
//! use grpc_auth::authn::{AuthRequest, Authenticated, Authenticator, ApiKeyAuthenticator};
//! use grpc_auth::{AuthError, Principal};
//!
//! // A custom check, e.g. a database lookup.
//! struct Header;
//! impl Authenticator for Header {
//!     async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<Authenticated>, AuthError> {
//!         let Some(user) = req.single_value(&http::HeaderName::from_static("x-user"))? else {
//!             return Ok(None);
//!         };
//!         Ok(Some(Principal::new(user, "x-user").into()))
//!     }
//! }
//!
//! // Compose: an API key, else the custom header.
//! let auth = ApiKeyAuthenticator::new().key("k-123", "svc-a").or(Header);
//! # let _ = auth;
//! ```

mod api_key;
mod basic;
mod compose;
pub mod hmac;
pub mod jwt;
mod request;
pub mod token_exchange;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;

pub use api_key::ApiKeyAuthenticator;
pub use basic::{BasicAuthenticator, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL};
pub use compose::{AllOf, AnyOf};
pub use hmac::{HmacAuthenticator, HmacVerifier};
pub use jwt::JwtAuthenticator;
pub use request::{AuthRequest, Authorization, DEFAULT_MAX_VALUE_LEN};
pub use token_exchange::TokenExchange;

use crate::{AuthError, Principal};

/// A successful authentication: the principal, and metadata to add to the response
/// (a token exchange answers a login with `authorization: Bearer ...`).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who the caller is.
    pub principal: Principal,
    /// Metadata added to the response's initial headers.
    pub response_headers: HeaderMap,
}

impl From<Principal> for Authenticated {
    fn from(principal: Principal) -> Self {
        Self {
            principal,
            response_headers: HeaderMap::new(),
        }
    }
}

/// What an authenticator returns: authenticated, absent (`Ok(None)`), or rejected.
pub type AuthResult = Result<Option<Authenticated>, AuthError>;

/// Checks a request's credentials.
///
/// Implement it with `async fn`. Return `Ok(None)` when the request does not carry
/// this scheme's credential at all, and `Err` when it carries one that is bad: that
/// difference is what lets [`AnyOf`] fall through without letting a bad token slip
/// through to a weaker scheme.
pub trait Authenticator: Send + Sync + 'static {
    /// Authenticates `req`.
    fn authenticate(&self, req: &AuthRequest<'_>) -> impl Future<Output = AuthResult> + Send;

    /// Accepts the first of `self` and `other` whose credential is present.
    fn or<B: Authenticator>(self, other: B) -> AnyOf<Self, B>
    where
        Self: Sized,
    {
        AnyOf::new(self, other)
    }

    /// Requires both `self` and `other`.
    fn and<B: Authenticator>(self, other: B) -> AllOf<Self, B>
    where
        Self: Sized,
    {
        AllOf::new(self, other)
    }

    /// Erases the type, for authenticators chosen at run time.
    fn boxed(self) -> BoxAuthenticator
    where
        Self: Sized,
    {
        BoxAuthenticator(Box::new(self))
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn authenticate(&self, req: &AuthRequest<'_>) -> impl Future<Output = AuthResult> + Send {
        (**self).authenticate(req)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait DynAuthenticator: Send + Sync + 'static {
    fn authenticate_boxed<'a>(&'a self, req: &'a AuthRequest<'a>) -> BoxFuture<'a, AuthResult>;
}

impl<A: Authenticator> DynAuthenticator for A {
    fn authenticate_boxed<'a>(&'a self, req: &'a AuthRequest<'a>) -> BoxFuture<'a, AuthResult> {
        Box::pin(self.authenticate(req))
    }
}

/// A type-erased [`Authenticator`], for composing schemes chosen at run time.
pub struct BoxAuthenticator(Box<dyn DynAuthenticator>);

impl Authenticator for BoxAuthenticator {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        self.0.authenticate_boxed(req).await
    }

    fn boxed(self) -> BoxAuthenticator {
        self
    }
}

impl std::fmt::Debug for BoxAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxAuthenticator")
    }
}

/// Never authenticates anyone: every request is "absent". A starting point for
/// folding optional schemes with [`Authenticator::or`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuthenticator;

impl Authenticator for NoAuthenticator {
    async fn authenticate(&self, _req: &AuthRequest<'_>) -> AuthResult {
        Ok(None)
    }
}
