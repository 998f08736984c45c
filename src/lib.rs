//! # grpc-auth
//!
//! Authentication for [tonic] gRPC servers and clients.
//!
//! - **Server:** a tower layer ([`AuthLayer`]) that checks each call's metadata (JWT,
//!   Basic, API keys, HMAC signatures, a token exchange, or your own check), applies a
//!   per-method [`Policy`], puts the authenticated [`Principal`] in the request
//!   extensions, and answers failures with the status codes gRPC prescribes.
//! - **Client:** call credentials ([`credentials`]) that attach authorization metadata to
//!   each RPC through a tower layer over the channel, never over plaintext unless asked.
//!
//! ```
//! use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
//! use grpc_auth::authn::{ApiKeyAuthenticator, BasicAuthenticator, JwtAuthenticator};
//! use grpc_auth::{AuthLayer, Authenticator, Policy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = JwtAuthenticator::new(StaticKeys::from(JwtKey::secret(Algorithm::HS256, b"secret")?))
//!     .issuer("https://issuer.example");
//! let authenticator = jwt
//!     .or(BasicAuthenticator::new().user("ada", "lovelace"))
//!     .or(ApiKeyAuthenticator::new().key("k-123", "svc-a"));
//! let layer = AuthLayer::new(authenticator).policy(
//!     Policy::new()
//!         .public("/grpc.health.v1.Health/*")
//!         .require_scope("/helloworld.Greeter/SayHelloAdmin", "greeter.admin"),
//! );
//! // tonic::transport::Server::builder().layer(layer).add_service(...)
//! # let _ = layer; Ok(()) }
//! ```
//!
//! | outcome | gRPC status |
//! |---|---|
//! | no, malformed, invalid, expired credentials | `UNAUTHENTICATED` |
//! | authenticated but lacking a scope or role | `PERMISSION_DENIED` |
//! | the check cannot be made now (a dependency down, too busy) | `UNAVAILABLE` |
//! | too many failed logins | `RESOURCE_EXHAUSTED` |
//!
//! Modules: [`authn`] (server authenticators), [`layer`] (the tower layer),
//! [`policy`] (per-method rules), [`credentials`] (client call credentials), [`clock`];
//! and [`Principal`], [`AuthError`], [`Secret`].
//!
//! ## Crate features
//! - `aws-lc-rs` (default): jsonwebtoken verifies with aws-lc-rs, and rustls fetches
//!   remote keys (JWKS) with it.
//! - `rust-crypto`: jsonwebtoken's pure-Rust backend (slower; RS256 about 4x), and
//!   rustls's ring provider for JWKS. When both are enabled, aws-lc-rs is used.
//! - `jwks` (default): remote keys (`JwksKeys`, `IssuerKeys`), with reqwest and rustls.
//!   Without it, static keys only, and none of the HTTP client is built.

// Lints: the workspace's `[lints]` in Cargo.toml, and for the library's own code:
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod authn;
pub mod authz;
pub mod clock;
#[cfg(feature = "config")]
pub mod config;
pub mod credentials;
mod error;
#[cfg(feature = "ext-authz")]
pub mod ext_authz;
#[cfg(feature = "jwks")]
mod fetch;
mod file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod layer;
pub mod metrics;
#[cfg(feature = "jwks")]
pub mod oauth;
pub mod policy;
mod principal;
mod secret;
pub mod store;
mod wire;

/// The README's examples, compiled as doc tests so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

pub use authn::Authenticator;
pub use error::AuthError;
pub use layer::AuthLayer;
pub use policy::{Policy, Rule};
pub use principal::Principal;
pub use secret::Secret;
/// The JSON types [`Principal::claims`] returns (serde_json's), re-exported so reading
/// claims needs no dependency of your own.
pub use serde_json;
