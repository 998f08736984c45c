//! [`IssuerKeys`]: several issuers, each with its own key source, picked by the
//! token's `iss`.
//!
//! ```no_run
//! use grpc_auth::authn::jwt::{IssuerKeys, JwksKeys, JwtAuthenticator};
//!
//! # fn main() -> Result<(), grpc_auth::authn::jwt::JwksError> {
//! let keys = IssuerKeys::new()
//!     .issuer("https://accounts.example.com", JwksKeys::builder_for_issuer("https://accounts.example.com").build()?)
//!     .issuer("https://login.example.org", JwksKeys::builder_for_issuer("https://login.example.org").build()?);
//! let auth = JwtAuthenticator::new(keys).audience("greeter");
//! # let _ = auth; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::jwks::JwksKeys;
use super::keys::{KeyQuery, KeySet, KeySource};
use crate::AuthError;

/// Keys for several issuers: a token's `iss`, read before its signature is checked,
/// picks the source; the signature (and the authenticator's own `iss` check, if
/// configured) still decide. A token naming no configured issuer fails
/// `UNAUTHENTICATED` "unknown token issuer"; one without `iss`, "token lacks
/// required claim: iss". [`KeySource::generation`] is the sum of the sources'.
///
/// ```no_run
/// use grpc_auth::authn::jwt::{IssuerKeys, JwksKeys, JwtAuthenticator};
///
/// # fn main() -> Result<(), grpc_auth::authn::jwt::JwksError> {
/// let keys = IssuerKeys::new()
///     .issuer("https://a.example", JwksKeys::builder_for_issuer("https://a.example").build()?)
///     .issuer("https://b.example", JwksKeys::builder("https://b.example/keys").build()?);
/// let auth = JwtAuthenticator::new(keys).audience("greeter");
/// # let _ = auth; Ok(()) }
/// ```
#[derive(Clone)]
pub struct IssuerKeys<K = JwksKeys> {
    by_issuer: HashMap<String, K>,
}

impl<K: KeySource> IssuerKeys<K> {
    /// No issuers yet.
    pub fn new() -> Self {
        Self {
            by_issuer: HashMap::new(),
        }
    }

    /// Adds (or replaces) the source for tokens whose `iss` is exactly `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>, keys: K) -> Self {
        self.by_issuer.insert(issuer.into(), keys);
        self
    }

    /// The source for `issuer`, if configured.
    pub fn get(&self, issuer: &str) -> Option<&K> {
        self.by_issuer.get(issuer)
    }

    /// The configured issuers, in no particular order.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.by_issuer.keys().map(String::as_str)
    }
}

impl<K: KeySource> Default for IssuerKeys<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> fmt::Debug for IssuerKeys<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<&String> = self.by_issuer.keys().collect();
        issuers.sort();
        f.debug_struct("IssuerKeys")
            .field("issuers", &issuers)
            .finish_non_exhaustive()
    }
}

impl<K: KeySource> KeySource for IssuerKeys<K> {
    async fn keys(&self, query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
        let Some(iss) = query.unverified_issuer()? else {
            return Err(AuthError::unauthenticated(
                "token lacks required claim: iss",
            ));
        };
        match self.by_issuer.get(&iss) {
            Some(source) => source.keys(query).await,
            None => Err(AuthError::unauthenticated("unknown token issuer")),
        }
    }

    /// The sum of the sources' generations: it moves when any of them does.
    fn generation(&self) -> u64 {
        self.by_issuer
            .values()
            .fold(0u64, |sum, k| sum.wrapping_add(k.generation()))
    }
}
