//! The server layer: [`AuthLayer`] wraps a service, [`AuthService`] authenticates
//! each request against the [`Policy`], and [`ResponseFuture`]
//! drives authentication then the inner call.
//!
//! ```
//! use grpc_auth::authn::ApiKeyAuthenticator;
//! use grpc_auth::{AuthLayer, Policy, Principal};
//! use tonic::body::Body;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = AuthLayer::new(ApiKeyAuthenticator::new().key("k-123", "svc-a"))
//!     .policy(Policy::new().public("/grpc.health.v1.Health/*"));
//! // With tonic: `Server::builder().layer(layer).add_routes(routes)`. Here, a handler
//! // that answers with the caller it was given:
//! let svc = ServiceBuilder::new().layer(layer).service_fn(|req: http::Request<Body>| async move {
//!     let who = req.extensions().get::<Principal>().map(|p| p.subject().to_owned());
//!     let mut res = http::Response::new(Body::default());
//!     res.headers_mut().insert("x-caller", who.unwrap_or_default().parse().unwrap());
//!     Ok::<_, std::convert::Infallible>(res)
//! });
//!
//! let call = |key: Option<&str>| {
//!     let mut req = http::Request::builder().uri("/helloworld.Greeter/SayHello");
//!     if let Some(key) = key {
//!         req = req.header("x-api-key", key);
//!     }
//!     svc.clone().oneshot(req.body(Body::default()).unwrap())
//! };
//! let ok = call(Some("k-123")).await?;
//! assert_eq!(ok.headers()["x-caller"], "svc-a");
//! let refused = call(Some("wrong")).await?; // trailers-only gRPC error, handler not called
//! assert_eq!(refused.headers()["grpc-status"], "16");
//! assert_eq!(refused.headers()["grpc-message"], "invalid%20API%20key");
//! # Ok(()) }
//! ```

mod drain;
mod future;
mod service;

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

pub use future::ResponseFuture;
pub use service::AuthService;
#[cfg(feature = "ext-authz")]
pub(crate) use service::{judge, log_rejection, method_denied, public_check};

use crate::Policy;
use crate::authn::{Authenticator, DEFAULT_MAX_VALUE_LEN};

/// Wraps services in [`AuthService`]. `Clone` and cheap to clone.
pub struct AuthLayer<A> {
    pub(crate) authenticator: Arc<A>,
    pub(crate) config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) policy: Policy,
    pub(crate) max_value_len: usize,
    pub(crate) authz: Option<crate::authz::SharedPolicy>,
    pub(crate) metrics: bool,
}

impl<A: Authenticator> AuthLayer<A> {
    /// Authenticates with `authenticator`; every method needs an authenticated caller
    /// until a [`Policy`] says otherwise.
    pub fn new(authenticator: A) -> Self {
        Self {
            authenticator: Arc::new(authenticator),
            config: Arc::new(Config {
                policy: Policy::new(),
                max_value_len: DEFAULT_MAX_VALUE_LEN,
                authz: None,
                metrics: false,
            }),
        }
    }

    /// Sets the per-method policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        Arc::make_mut(&mut self.config).policy = policy;
        self
    }

    /// Also checks every call against a gRPC authorization policy (gRFC A43), after the
    /// per-method [`Policy`] and authentication: a call it denies is refused
    /// `PERMISSION_DENIED` "unauthorized RPC request rejected". A public method's call
    /// is checked as from an unauthenticated peer. An authenticated caller is named in
    /// the policy's `principals` as `{scheme}:{subject}` (`jwt:ada`, `api-key:billing`,
    /// `basic:ada`, `hmac:svc-a`); see [`authz::Peer`](crate::authz::Peer).
    ///
    /// Takes an [`AuthorizationPolicy`](crate::authz::AuthorizationPolicy), or a
    /// [`SharedPolicy`](crate::authz::SharedPolicy) to replace it while serving.
    pub fn authorization_policy(mut self, policy: impl Into<crate::authz::SharedPolicy>) -> Self {
        Arc::make_mut(&mut self.config).authz = Some(policy.into());
        self
    }

    /// Records every decision and the authentication time through the `metrics` facade
    /// (see [`crate::metrics`] for the names and labels), for the recorder your
    /// application installs (Prometheus, OpenTelemetry, ...). Off by default: the
    /// facade cannot tell whether a recorder is installed, and recording costs tens of
    /// nanoseconds per call (the clock read for the histogram most of it); off, it
    /// costs one branch.
    pub fn metrics(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).metrics = on;
        self
    }

    /// Bounds the size of a credential-bearing metadata value (default 8 KiB).
    pub fn max_value_len(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.config).max_value_len = max;
        self
    }
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        Self {
            authenticator: self.authenticator.clone(),
            config: self.config.clone(),
        }
    }
}

impl<A> fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authenticator", &std::any::type_name::<A>())
            .field("policy", &self.config.policy)
            .field("max_value_len", &self.config.max_value_len)
            .field("metrics", &self.config.metrics)
            .field(
                "authorization_policy",
                &self
                    .config
                    .authz
                    .as_ref()
                    .map(|p| p.current().name().to_owned()),
            )
            .finish()
    }
}

impl<S, A> Layer<S> for AuthLayer<A> {
    type Service = AuthService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, self.authenticator.clone(), self.config.clone())
    }
}
