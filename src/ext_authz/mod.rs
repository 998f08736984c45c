//! Envoy external authorization (`envoy.service.auth.v3.Authorization/Check`, v3),
//! crate feature `ext-authz`: [`ExtAuthzServer`] answers Envoy's checks with any
//! authenticator and policy, so services behind Envoy in any language get the same
//! checks as a tonic service behind [`AuthLayer`](crate::AuthLayer); and the other
//! direction, [`ExtAuthz`], an authenticator that asks such a service (an OPA-Envoy
//! sidecar, or an `ExtAuthzServer`).
//!
//! The protos are the `envoy-types` crate's (generated from Envoy's own, for tonic 0.14
//! and prost 0.14): exact field numbers with nothing to maintain, at the cost of
//! compiling every Envoy type (about 65 s of CPU in a debug build, once).

mod client;
mod server;

pub use client::ExtAuthz;
/// The `envoy-types` crate this module speaks through (`pb::envoy::service::auth::v3`:
/// `CheckRequest`, `CheckResponse`, the client and server), re-exported so a caller of
/// the service needs no dependency of its own.
pub use envoy_types;
pub use server::ExtAuthzServer;

/// The headers that name the principal between the ext_authz server and the upstream
/// (and an `ExtAuthz` authenticator reading the answer).
#[derive(Debug, Clone)]
struct PrincipalNames {
    subject: http::HeaderName,
    scheme: http::HeaderName,
    scopes: http::HeaderName,
}

impl Default for PrincipalNames {
    fn default() -> Self {
        Self {
            subject: http::HeaderName::from_static("x-auth-subject"),
            scheme: http::HeaderName::from_static("x-auth-scheme"),
            scopes: http::HeaderName::from_static("x-auth-scopes"),
        }
    }
}
