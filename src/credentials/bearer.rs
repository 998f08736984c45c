//! [`BearerToken`]: a static `authorization: Bearer <token>`.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use tonic::Status;

use super::{CallContext, CallCredentials, StaticCallCredentials, StaticEntry};

/// A fixed bearer token (`grpc.access_token_call_credentials`).
///
/// ```
/// use grpc_auth::credentials::BearerToken;
/// let creds = BearerToken::new("eyJhbGciOi...");
/// assert!(!format!("{creds:?}").contains("eyJ"));
/// ```
#[derive(Debug, Clone)]
pub struct BearerToken(StaticEntry);

impl BearerToken {
    /// Sends `authorization: Bearer <token>`.
    pub fn new(token: impl AsRef<str>) -> Self {
        let value = zeroize::Zeroizing::new(format!("Bearer {}", token.as_ref()));
        Self(StaticEntry::new(
            AUTHORIZATION,
            value.as_bytes(),
            "bearer token",
        ))
    }
}

impl CallCredentials for BearerToken {
    async fn apply(&self, _: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }

    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        Some(self)
    }
}

impl StaticCallCredentials for BearerToken {
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }
}
