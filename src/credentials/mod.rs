//! Client side: call credentials that attach authorization metadata to each RPC, like
//! gRPC's `AuthMetadataPlugin` / `PerRPCCredentials` / `CallCredentials`.
//!
//! ```
//! use grpc_auth::credentials::{BearerToken, CredentialsLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let target: http::Uri = "https://greeter.example".parse()?;
//! // With tonic: `.service(channel)` for a `tonic::transport::Channel` to `target`, then
//! // `GreeterClient::new(svc)`. Here, a stand-in channel that echoes what it was sent:
//! let svc = ServiceBuilder::new()
//!     .layer(CredentialsLayer::new(BearerToken::new("eyJ..."), target))
//!     .service_fn(|req: http::Request<()>| async move {
//!         let sent = req.headers()["authorization"].to_str().unwrap_or("").to_owned();
//!         Ok::<_, std::convert::Infallible>(http::Response::new(sent))
//!     });
//! let call = http::Request::builder().uri("/helloworld.Greeter/SayHello").body(())?;
//! assert_eq!(svc.oneshot(call).await?.into_body(), "Bearer eyJ...");
//! # Ok(()) }
//! ```
//!
//! - Credentials: [`BearerToken`], [`BasicCredentials`], [`ApiKeyCredentials`],
//!   [`TokenSourceCredentials`] (a refreshing, single-flight cache over your
//!   [`TokenSource`]), [`JwtAccessCredentials`] (self-signed JWTs per audience),
//!   [`HmacSigner`] (a Tyk-compatible HMAC signature over the method and date), and
//!   [`Composite`].
//! - Attach them with [`CredentialsLayer`] (any credential, async) or
//!   [`CredentialsInterceptor`] (static ones, as a tonic `Interceptor`); give one call its
//!   own with [`PerCallCredentials`].
//! - A credential that needs a secure transport is refused on an `http://` target
//!   before anything is sent (`UNAUTHENTICATED`), unless the caller opts in with
//!   `allow_plaintext()`.
//! - A failing credential fails the call without sending it: `UNAVAILABLE` when a token
//!   source could not be reached, `UNAUTHENTICATED` otherwise; control-plane codes are
//!   rewritten to `INTERNAL` as gRFC A54 requires.

mod api_key;
mod basic;
mod bearer;
mod boxed;
#[cfg(feature = "jwks")]
mod client_credentials;
mod composite;
mod context;
mod hmac;
mod interceptor;
mod jwt_access;
mod layer;
mod login;
mod outcome;
mod refresh;
mod static_entry;
mod status;
#[cfg(feature = "jwks")]
mod sts;
mod token_file;
mod token_source;

use std::future::Future;
use std::sync::Arc;

use http::HeaderMap;
use tonic::Status;

pub use api_key::ApiKeyCredentials;
pub use basic::BasicCredentials;
pub use bearer::BearerToken;
pub use boxed::BoxCallCredentials;
#[cfg(feature = "jwks")]
pub use client_credentials::{ClientCredentials, ClientCredentialsBuilder};
pub use composite::Composite;
pub use context::CallContext;
pub(crate) use context::origin;
pub use hmac::HmacSigner;
pub use interceptor::CredentialsInterceptor;
pub use jwt_access::JwtAccessCredentials;
#[cfg(feature = "jwks")]
pub(crate) use jwt_access::signing_key;
pub use layer::{CredentialsLayer, CredentialsService, PerCallCredentials, ResponseFuture};
pub use login::BasicLogin;
pub use outcome::CallOutcome;
pub(crate) use static_entry::StaticEntry;
pub(crate) use status::{plaintext_refused, sanitize_status};
#[cfg(feature = "jwks")]
pub use sts::{TokenExchangeSource, TokenExchangeSourceBuilder};
pub use token_file::FileTokenSource;
pub(crate) use token_source::{DEFAULT_MAX_BACKOFF, DEFAULT_MIN_BACKOFF, DEFAULT_REFRESH_AHEAD};
pub use token_source::{Token, TokenError, TokenSource, TokenSourceCredentials};

/// Produces metadata for each call. Implement it with `async fn`.
pub trait CallCredentials: Send + Sync + 'static {
    /// Adds this credential's entries to `metadata`, or fails the call.
    fn apply(
        &self,
        ctx: &CallContext<'_>,
        metadata: &mut HeaderMap,
    ) -> impl Future<Output = Result<(), Status>> + Send;

    /// Whether the credential may only travel over TLS (default: yes).
    fn requires_transport_security(&self) -> bool {
        true
    }

    /// Whether [`on_response`](Self::on_response) wants to be called (default: no).
    /// Asked once per call; a credential that says no costs the call nothing more.
    fn observes_responses(&self) -> bool {
        false
    }

    /// Shown each call's outcome when [`observes_responses`](Self::observes_responses):
    /// what was sent, and the response's initial headers (a login's bearer token, or an
    /// `UNAUTHENTICATED` status: auth failures arrive trailers-only, in these headers).
    /// A status that comes later, in the trailers, is not observed.
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        let _ = outcome;
    }

    /// This credential as [`StaticCallCredentials`] when it answers without waiting
    /// (default: `None`). [`CredentialsLayer`] then attaches it inside `call`: no boxed
    /// future, no clone, as a tonic interceptor would.
    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        None
    }

    /// Erases the type.
    fn boxed(self) -> BoxCallCredentials
    where
        Self: Sized,
    {
        BoxCallCredentials(Arc::new(self))
    }
}

/// Credentials that answer without waiting: usable in a tonic
/// [`Interceptor`](tonic::service::Interceptor), and attached by [`CredentialsLayer`]
/// without a boxed future (through [`CallCredentials::as_static`]).
pub trait StaticCallCredentials: Send + Sync + 'static {
    /// Adds this credential's entries to `metadata` now.
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Uri;
    use std::borrow::Cow;
    use tonic::Code;

    #[test]
    fn origin_drops_443_for_https_only() {
        let u: Uri = "https://greeter.example:443".parse().unwrap();
        assert_eq!(origin(&u), ("https://greeter.example".into(), true));
        let u: Uri = "http://127.0.0.1:50051".parse().unwrap();
        assert_eq!(origin(&u), ("http://127.0.0.1:50051".into(), false));
        let u: Uri = "http://h:443".parse().unwrap();
        assert_eq!(origin(&u), ("http://h:443".into(), false));
    }

    #[test]
    fn service_url_is_the_path_up_to_its_last_slash() {
        let ctx = CallContext::for_path("https://g.example", "/helloworld.Greeter/SayHello", true);
        assert_eq!(
            (ctx.service_url().as_str(), ctx.method_name()),
            ("https://g.example/helloworld.Greeter", "SayHello")
        );
        assert_eq!(ctx.method_path(), "/helloworld.Greeter/SayHello");
        assert!(matches!(ctx.method_path(), Cow::Borrowed(_)));
    }

    #[test]
    fn method_path_is_formed_from_a_service_url() {
        let ctx = CallContext::new(
            "https://g.example:8443/helloworld.Greeter",
            "SayHello",
            true,
        );
        assert_eq!(ctx.method_path(), "/helloworld.Greeter/SayHello");
        let ctx = CallContext::new("https://g.example", "SayHello", true);
        assert_eq!(ctx.method_path(), "/SayHello");
    }

    #[test]
    fn is_path_holds_for_both_kinds_of_context() {
        let path = "/helloworld.Greeter/SayHello";
        let made = CallContext::new("https://g.example/helloworld.Greeter", "SayHello", true);
        assert!(made.is_path(path));
        assert!(!made.is_path("/helloworld.Greeter/SayHelloAdmin"));
        let through_layer = CallContext::for_path("https://g.example", path, true);
        assert!(through_layer.is_path(path));
        assert!(!through_layer.is_path("/other.Service/SayHello"));
    }

    #[test]
    fn control_plane_codes_become_internal() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::DataLoss,
        ] {
            let s = sanitize_status(Status::new(code, "boom"));
            assert_eq!(s.code(), Code::Internal);
            assert!(s.message().contains(&format!("{code:?}")) && s.message().contains("boom"));
        }
        for code in [
            Code::Unauthenticated,
            Code::Unavailable,
            Code::PermissionDenied,
        ] {
            assert_eq!(sanitize_status(Status::new(code, "x")).code(), code);
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn call_outcome_debug_shows_no_credential() {
        let ctx = CallContext::new("https://svc.example/a.B", "C", true);
        let mut sent = HeaderMap::new();
        sent.insert(
            "authorization",
            HeaderValue::from_static("Basic c2VrcmV0OnB3"),
        );
        let mut response = HeaderMap::new();
        response.insert(
            "authorization",
            HeaderValue::from_static("Bearer sekrit-token"),
        );
        let shown = format!("{:?}", CallOutcome::new(ctx, &sent, Some(&response)));
        assert!(
            !shown.contains("sekrit") && !shown.contains("c2VrcmV0"),
            "{shown}"
        );
        assert!(shown.contains("authorization"), "{shown}");
    }
}
