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
mod claims;
mod compose;
mod failures;
pub mod hmac;
#[cfg(feature = "jwks")]
mod introspection;
pub mod jwt;
pub(crate) mod mtls;
pub(crate) mod request;
pub mod revocation;
pub mod token_exchange;
mod verified;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use api_key::ApiKeyAuthenticator;
pub use basic::{BasicAuthenticator, PasswordHashError};
pub use compose::{AllOf, AnyOf};
pub use failures::FailureLimits;
pub use hmac::{HmacAuthenticator, HmacVerifier};
#[cfg(feature = "jwks")]
pub use introspection::{
    IntrospectionAuthenticator, IntrospectionAuthenticatorBuilder, IntrospectionError,
};
pub use jwt::JwtAuthenticator;
pub use mtls::MtlsAuthenticator;
pub(crate) use request::DEFAULT_MAX_VALUE_LEN;
pub use request::{AuthRequest, Authorization, PeerCertificates};
pub use token_exchange::TokenExchange;

use crate::secret::RedactedHeaders;
use crate::{AuthError, Principal};

/// A successful authentication: the principal, metadata to add to the response
/// (a token exchange answers a login with `authorization: Bearer ...`), and the
/// metadata keys whose credentials it accepted.
///
/// The accepted keys matter in an [`AnyOf`]: every credential a request presents must
/// be valid, so after one scheme accepts, the next schemes still judge the request,
/// with the accepted entries hidden. A custom scheme names what it accepted with
/// [`with_credential`](Self::with_credential); one that does not leaves its entry
/// visible to the schemes after it, which then refuse it if it is not theirs (fail
/// closed).
#[derive(Clone)]
#[non_exhaustive]
pub struct Authenticated {
    /// Who the caller is.
    pub principal: Principal,
    /// Metadata added to the response's initial headers (boxed: rare, and this type
    /// travels through every accepted call).
    response_headers: Option<Box<HeaderMap>>,
    credentials: Credentials,
}

/// The metadata keys a successful authentication accepted; one without allocating.
#[derive(Debug, Clone, Default)]
enum Credentials {
    #[default]
    None,
    /// Proved by the connection (a client certificate), no metadata entry: any
    /// `authorization` entry is left for another scheme to judge, or refused.
    Connection,
    One(HeaderName),
    Many(Vec<HeaderName>),
}

impl Credentials {
    fn as_slice(&self) -> &[HeaderName] {
        match self {
            Self::None | Self::Connection => &[],
            Self::One(name) => std::slice::from_ref(name),
            Self::Many(names) => names,
        }
    }

    fn push(&mut self, name: HeaderName) {
        if let Self::None | Self::Connection = self {
            *self = Self::One(name);
            return;
        }
        if self.as_slice().contains(&name) {
            return;
        }
        *self = match std::mem::take(self) {
            Self::None | Self::Connection => Self::One(name),
            Self::One(first) => Self::Many(vec![first, name]),
            Self::Many(mut names) => {
                names.push(name);
                Self::Many(names)
            }
        };
    }
}

impl Authenticated {
    /// `principal`, with no response metadata and no accepted key named yet.
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            response_headers: None,
            credentials: Credentials::None,
        }
    }

    /// `principal`, proved by the connection itself (a verified client certificate), not
    /// by any metadata: an `authorization` entry the call also carries must then be
    /// judged by another scheme, or the layer refuses it.
    pub fn by_connection(principal: Principal) -> Self {
        Self {
            principal,
            response_headers: None,
            credentials: Credentials::Connection,
        }
    }

    /// Whether only the connection proved this (see [`by_connection`](Self::by_connection)).
    pub(crate) fn connection_only(&self) -> bool {
        matches!(self.credentials, Credentials::Connection)
    }

    /// `principal`, proved by the credential in metadata `name`: built in place (the hot
    /// path of every built-in scheme).
    #[inline]
    pub(crate) fn by(principal: Principal, name: HeaderName) -> Self {
        Self {
            principal,
            response_headers: None,
            credentials: Credentials::One(name),
        }
    }

    /// Names a metadata key whose credential this authentication accepted (for
    /// example `authorization`), so the other schemes of an any-of do not judge it.
    pub fn with_credential(mut self, name: HeaderName) -> Self {
        self.credentials.push(name);
        self
    }

    /// Adds `name: value` to the response's initial headers.
    pub fn with_response_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.response_headers
            .get_or_insert_with(Box::default)
            .insert(name, value);
        self
    }

    /// The metadata added to the response's initial headers, if any.
    pub fn response_headers(&self) -> Option<&HeaderMap> {
        self.response_headers.as_deref()
    }

    /// The response metadata, taken out (the layer adds it to the response).
    pub(crate) fn take_response_headers(&mut self) -> Option<Box<HeaderMap>> {
        self.response_headers.take()
    }

    /// The metadata keys whose credentials were accepted.
    pub fn credentials(&self) -> &[HeaderName] {
        self.credentials.as_slice()
    }

    /// Adds what `other` accepted to what `self` accepted.
    fn absorb_credentials(&mut self, other: Credentials) {
        match other {
            Credentials::None | Credentials::Connection => {}
            Credentials::One(name) => self.credentials.push(name),
            Credentials::Many(names) => names.into_iter().for_each(|n| self.credentials.push(n)),
        }
    }
}

/// Shows response metadata keys only: a token exchange's response carries a bearer.
impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("principal", &self.principal)
            .field(
                "response_headers",
                &self.response_headers.as_deref().map(RedactedHeaders),
            )
            .field("credentials", &self.credentials())
            .finish()
    }
}

impl From<Principal> for Authenticated {
    fn from(principal: Principal) -> Self {
        Self::new(principal)
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

    /// Accepts a request whose credentials `self` or `other` accept: the first whose
    /// credential is present authenticates, and every other credential present must be
    /// valid too (see [`AnyOf`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_debug_shows_no_response_credential() {
        let a = Authenticated::new(Principal::new("ada", "basic"))
            .with_response_header(
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Bearer sekrit-token"),
            )
            .with_credential(http::header::AUTHORIZATION);
        let shown = format!("{a:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(
            shown.contains("ada") && shown.contains("authorization"),
            "{shown}"
        );
    }
}
