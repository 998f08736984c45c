//! [`BasicCredentials`]: `authorization: Basic base64(user:password)`.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use tonic::Status;

use super::{CallContext, CallCredentials, StaticCallCredentials, StaticEntry};
use crate::wire;

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
        let value = wire::basic::value(user.as_ref(), password.as_ref());
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

    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        Some(self)
    }
}

impl StaticCallCredentials for BasicCredentials {
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply(metadata)
    }
}
