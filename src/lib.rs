//! # grpc-auth
//!
//! Authentication for [tonic] gRPC servers: a tower layer that checks each call's
//! metadata (JWT, Basic, API keys, HMAC signatures, or your own check), applies a per-method policy,
//! puts the authenticated [`Principal`] in the request extensions, and answers
//! failures with the status codes gRPC prescribes.
//!
//! ```no_run
//! use grpc_auth::{AuthLayer, Authenticator, Policy, Principal};
//! use grpc_auth::authn::{ApiKeyAuthenticator, BasicAuthenticator, JwtAuthenticator};
//! use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
//! use jsonwebtoken::Algorithm;
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
//! | the authenticator's dependency failed | `UNAVAILABLE` |
//!
//! Modules: [`authn`] (server authenticators), [`layer`] (the tower layer),
//! [`policy`] (per-method rules), [`Principal`], [`AuthError`], [`Secret`], [`clock`].
//!
//! ## Crate features
//! - `aws-lc-rs` (default): jsonwebtoken verifies with aws-lc-rs, and rustls fetches
//!   remote keys (JWKS) with it.
//! - `rust-crypto`: jsonwebtoken's pure-Rust backend (slower; RS256 about 4x), and
//!   rustls's ring provider for JWKS. When both are enabled, aws-lc-rs is used.
//! - `jwks` (default): remote keys (`JwksKeys`, `IssuerKeys`), with reqwest and rustls.
//!   Without it, static keys only, and none of the HTTP client is built.

#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod authn;
pub mod clock;
pub mod credentials;
mod error;
#[cfg(feature = "jwks")]
mod fetch;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod layer;
pub mod policy;
mod principal;
mod secret;
mod wire;

pub use authn::Authenticator;
pub use error::AuthError;
pub use layer::AuthLayer;
pub use policy::{Policy, Rule};
pub use principal::Principal;
pub use secret::Secret;
/// The JSON types [`Principal::claims`] returns (serde_json's), re-exported so reading
/// claims needs no dependency of your own.
pub use serde_json;
