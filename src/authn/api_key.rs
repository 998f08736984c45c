//! [`ApiKeyAuthenticator`]: a metadata key (default `x-api-key`) mapped to principals.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use http::HeaderName;

use super::{AuthRequest, AuthResult, Authenticated};
use crate::{AuthError, Principal, Secret, authn::Authenticator};

/// Authenticates an API key sent in a metadata entry.
///
/// Keys are bucketed by a SipHash under a random per-instance key, and the presented
/// key is compared with the bucket's keys in constant time ([`Secret::ct_eq`]), so
/// the lookup's timing tells an attacker nothing about how close a guess was.
///
/// ```
/// use grpc_auth::authn::ApiKeyAuthenticator;
/// let auth = ApiKeyAuthenticator::new()          // reads `x-api-key`
///     .key("k-123", "billing-service")
///     .key("k-456", "reporting");
/// # let _ = auth;
/// ```
#[derive(Clone)]
pub struct ApiKeyAuthenticator {
    header: HeaderName,
    hasher: RandomState,
    keys: HashMap<u64, Vec<(Secret, Principal)>>,
}

impl ApiKeyAuthenticator {
    /// An authenticator reading `x-api-key`, with no keys yet.
    pub fn new() -> Self {
        Self {
            header: HeaderName::from_static("x-api-key"),
            hasher: RandomState::new(),
            keys: HashMap::new(),
        }
    }

    /// Reads the key from metadata `name` instead (default `x-api-key`), e.g.
    /// `HeaderName::from_static("x-goog-api-key")`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Accepts `key`, authenticating its caller as `subject` (scheme `"api-key"`).
    pub fn key(self, key: impl AsRef<[u8]>, subject: impl Into<String>) -> Self {
        self.key_for(key, Principal::new(subject, "api-key"))
    }

    /// Accepts `key`, authenticating its caller as `principal` (with its scopes, roles).
    pub fn key_for(mut self, key: impl AsRef<[u8]>, principal: Principal) -> Self {
        let key = key.as_ref();
        let bucket = self.keys.entry(self.hasher.hash_one(key)).or_default();
        bucket.retain(|(k, _)| !k.ct_eq(key));
        bucket.push((Secret::new(key), principal));
        self
    }

    /// The metadata key read.
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }
}

impl Default for ApiKeyAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator for ApiKeyAuthenticator {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(value) = req.single_value(&self.header)? else {
            return Ok(None);
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(AuthError::unauthenticated("empty API key"));
        }
        let presented = value.as_bytes();
        self.keys
            .get(&self.hasher.hash_one(presented))
            .and_then(|bucket| bucket.iter().find(|(k, _)| k.ct_eq(presented)))
            .map(|(_, principal)| Some(Authenticated::by(principal.clone(), self.header.clone())))
            .ok_or_else(|| AuthError::unauthenticated("invalid API key"))
    }
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("header", &self.header)
            .field("keys", &self.keys.values().map(Vec::len).sum::<usize>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn check(auth: &ApiKeyAuthenticator, values: &[&[u8]]) -> AuthResult {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                auth.header_name().clone(),
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        let req = AuthRequest::new("/a.B/C", &h);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(auth.authenticate(&req))
    }

    #[test]
    fn valid_key_maps_to_its_principal() {
        let a = ApiKeyAuthenticator::new()
            .key("k1", "svc-a")
            .key("k2", "svc-b");
        let got = check(&a, &[b"k2"]).unwrap().unwrap();
        assert_eq!(
            (got.principal.subject(), got.principal.scheme()),
            ("svc-b", "api-key")
        );
    }

    #[test]
    fn absent_key_is_none() {
        let a = ApiKeyAuthenticator::new().key("k1", "svc-a");
        assert!(check(&a, &[]).unwrap().is_none());
    }

    #[test]
    fn wrong_empty_repeated_and_non_ascii_keys_are_rejected() {
        let a = ApiKeyAuthenticator::new().key("k1", "svc-a");
        assert_eq!(
            check(&a, &[b"k2"]).unwrap_err().to_string(),
            "invalid API key"
        );
        assert_eq!(
            check(&a, &[b"k1 "]).unwrap().unwrap().principal.subject(),
            "svc-a"
        );
        assert_eq!(check(&a, &[b""]).unwrap_err().to_string(), "empty API key");
        assert_eq!(
            check(&a, &[b"k1", b"k1"]).unwrap_err().to_string(),
            "multiple x-api-key metadata entries"
        );
        assert_eq!(
            check(&a, &[b"k\xff"]).unwrap_err().to_string(),
            "x-api-key metadata is not valid ASCII"
        );
    }

    #[test]
    fn custom_header_and_debug_hides_keys() {
        let a = ApiKeyAuthenticator::new()
            .header(http::HeaderName::from_static("x-token"))
            .key("sekrit", "svc");
        assert_eq!(a.header_name().as_str(), "x-token");
        assert!(!format!("{a:?}").contains("sekrit"));
    }
}
