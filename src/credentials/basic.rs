//! [`BasicCredentials`]: `authorization: Basic base64(user:password)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use tonic::Status;

use super::{CallContext, CallCredentials, StaticCallCredentials, StaticEntry};

/// HTTP Basic credentials.
///
/// ```
/// use grpc_auth::credentials::BasicCredentials;
/// let creds = BasicCredentials::new("ada", "lovelace");
/// assert!(!format!("{creds:?}").contains("lovelace"));
/// ```
#[derive(Debug, Clone)]
pub struct BasicCredentials(StaticEntry);

impl BasicCredentials {
    /// Sends `authorization: Basic base64(user:password)`.
    pub fn new(user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        let pair = zeroize::Zeroizing::new(format!("{}:{}", user.as_ref(), password.as_ref()));
        let value = zeroize::Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())));
        Self(StaticEntry::new(
            AUTHORIZATION,
            value.as_bytes(),
            "Basic credential",
        ))
    }
}

impl CallCredentials for BasicCredentials {
    async fn apply(&self, _: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }
}

impl StaticCallCredentials for BasicCredentials {
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }
}
