//! [`Composite`]: several credentials whose metadata is merged.

use http::HeaderMap;
use tonic::Status;

use super::{BoxCallCredentials, CallContext, CallCredentials, CallOutcome, StaticCallCredentials};

/// Applies every credential in order (`grpc.composite_call_credentials`); if one fails,
/// the call fails. Needs a secure transport if any part does.
///
/// ```
/// use grpc_auth::credentials::{ApiKeyCredentials, BearerToken, Composite};
/// let creds = Composite::new().with(ApiKeyCredentials::new("k-123")).with(BearerToken::new("t"));
/// # let _ = creds;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Composite {
    parts: Vec<BoxCallCredentials>,
}

impl Composite {
    /// No credentials yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a credential.
    pub fn with(mut self, creds: impl CallCredentials) -> Self {
        self.parts.push(creds.boxed());
        self
    }
}

impl CallCredentials for Composite {
    async fn apply(&self, ctx: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        for part in &self.parts {
            part.apply(ctx, metadata).await?;
        }
        Ok(())
    }

    fn requires_transport_security(&self) -> bool {
        self.parts
            .iter()
            .any(CallCredentials::requires_transport_security)
    }

    fn observes_responses(&self) -> bool {
        self.parts.iter().any(CallCredentials::observes_responses)
    }

    fn on_response(&self, outcome: &CallOutcome<'_>) {
        for part in self.parts.iter().filter(|p| p.observes_responses()) {
            part.on_response(outcome);
        }
    }

    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        self.parts
            .iter()
            .all(|p| p.as_static().is_some())
            .then_some(self)
    }
}

/// Every part answers without waiting (what [`as_static`](CallCredentials::as_static)
/// checked).
impl StaticCallCredentials for Composite {
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        for part in &self.parts {
            match part.as_static() {
                Some(part) => part.apply_now(metadata)?,
                None => {
                    return Err(Status::internal(
                        "a credential of the composite cannot answer without waiting",
                    ));
                }
            }
        }
        Ok(())
    }
}
