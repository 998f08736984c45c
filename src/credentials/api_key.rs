//! [`ApiKeyCredentials`]: an API key under a metadata key (default `x-api-key`).

use http::{HeaderMap, HeaderName};
use tonic::Status;

use super::{CallContext, CallCredentials, StaticCallCredentials, StaticEntry};

/// An API key.
///
/// ```
/// use grpc_auth::credentials::ApiKeyCredentials;
/// let creds = ApiKeyCredentials::new("k-123");                       // x-api-key
/// let other = ApiKeyCredentials::new("k-123")
///     .header(http::HeaderName::from_static("x-goog-api-key"));
/// # let _ = (creds, other);
/// ```
#[derive(Debug, Clone)]
pub struct ApiKeyCredentials(StaticEntry);

impl ApiKeyCredentials {
    /// Sends `x-api-key: <key>`.
    pub fn new(key: impl AsRef<str>) -> Self {
        Self(StaticEntry::new(
            HeaderName::from_static("x-api-key"),
            key.as_ref().as_bytes(),
            "API key",
        ))
    }

    /// Sends the key under metadata `name` instead (default `x-api-key`).
    pub fn header(self, name: HeaderName) -> Self {
        Self(self.0.renamed(name))
    }
}

impl CallCredentials for ApiKeyCredentials {
    async fn apply(&self, _: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }

    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        Some(self)
    }
}

impl StaticCallCredentials for ApiKeyCredentials {
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }
}
