//! [`HmacKeyStore`]: where a verifier finds the secret for a `keyId`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::HmacError;
use crate::Secret;

/// Looks up the shared secret for a key id. Implement it with `async fn` for a database
/// or a remote lookup; [`StaticHmacKeys`] is the in-memory map.
///
/// The secret's bytes are the HMAC key as given: the Tyk demo's secret `c2VjcmV0` is
/// used as those eight ASCII bytes, not base64-decoded.
///
/// ```
/// use grpc_auth::Secret;
/// use grpc_auth::authn::hmac::{HmacError, HmacKeyStore};
///
/// struct FromEnv;
/// impl HmacKeyStore for FromEnv {
///     async fn secret(&self, key_id: &str) -> Result<Option<Secret>, HmacError> {
///         Ok(std::env::var(format!("HMAC_KEY_{key_id}")).ok().map(Secret::from))
///     }
/// }
/// ```
pub trait HmacKeyStore: Send + Sync + 'static {
    /// The secret for `key_id`: `Ok(None)` when the key is unknown, `Err` (usually
    /// [`HmacError::KeyStore`]) when the store itself failed.
    fn secret(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<Secret>, HmacError>> + Send;
}

impl<S: HmacKeyStore + ?Sized> HmacKeyStore for Arc<S> {
    fn secret(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<Secret>, HmacError>> + Send {
        (**self).secret(key_id)
    }
}

/// Key ids and secrets held in memory; cheap to clone.
///
/// ```
/// use grpc_auth::authn::hmac::StaticHmacKeys;
/// let keys = StaticHmacKeys::new().key("svc-a", "s3cret").key("svc-b", b"\x00\x01binary".as_slice());
/// assert_eq!(keys.len(), 2);
/// assert!(!format!("{keys:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default)]
pub struct StaticHmacKeys(Arc<HashMap<String, Secret>>);

impl StaticHmacKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the secret for `key_id`. An empty secret never verifies.
    pub fn key(mut self, key_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Arc::make_mut(&mut self.0).insert(key_id.into(), secret.into());
        self
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, S: Into<Secret>> FromIterator<(K, S)> for StaticHmacKeys {
    fn from_iter<I: IntoIterator<Item = (K, S)>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Self::new(), |keys, (id, secret)| keys.key(id, secret))
    }
}

impl HmacKeyStore for StaticHmacKeys {
    async fn secret(&self, key_id: &str) -> Result<Option<Secret>, HmacError> {
        Ok(self.0.get(key_id).filter(|s| !s.is_empty()).cloned())
    }
}

impl fmt::Debug for StaticHmacKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.0.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("StaticHmacKeys")
            .field("key_ids", &ids)
            .finish()
    }
}
