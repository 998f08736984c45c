//! [`CredentialsInterceptor`]: static credentials as a tonic `Interceptor`.

use std::sync::Arc;

use http::Uri;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::{CallCredentials, StaticCallCredentials, plaintext_refused, sanitize_status};

/// Attaches static credentials from a tonic interceptor, e.g.
/// `GreeterClient::with_interceptor(channel, CredentialsInterceptor::new(creds, target))`.
///
/// The target tells whether the channel is TLS: a credential that needs a secure
/// transport fails every call on an `http://` target unless [`allow_plaintext`](Self::allow_plaintext).
///
/// ```
/// use grpc_auth::credentials::{BearerToken, CredentialsInterceptor};
/// let target: http::Uri = "https://greeter.example".parse().unwrap();
/// let interceptor = CredentialsInterceptor::new(BearerToken::new("t"), target);
/// # let _ = interceptor;
/// ```
#[derive(Debug)]
pub struct CredentialsInterceptor<C> {
    creds: Arc<C>,
    secure: bool,
    allow_plaintext: bool,
}

impl<C: CallCredentials + StaticCallCredentials> CredentialsInterceptor<C> {
    /// Attaches `creds` to calls on `target`.
    pub fn new(creds: C, target: Uri) -> Self {
        Self {
            creds: Arc::new(creds),
            secure: target.scheme_str() == Some("https"),
            allow_plaintext: false,
        }
    }

    /// Allows sending the credentials over plaintext (loopback, a trusted mesh).
    pub fn allow_plaintext(mut self) -> Self {
        self.allow_plaintext = true;
        self
    }
}

impl<C> Clone for CredentialsInterceptor<C> {
    fn clone(&self) -> Self {
        Self {
            creds: self.creds.clone(),
            secure: self.secure,
            allow_plaintext: self.allow_plaintext,
        }
    }
}

impl<C: CallCredentials + StaticCallCredentials> Interceptor for CredentialsInterceptor<C> {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if !self.secure && !self.allow_plaintext && self.creds.requires_transport_security() {
            return Err(plaintext_refused());
        }
        let mut headers = std::mem::take(req.metadata_mut()).into_headers();
        let result = self.creds.apply_now(&mut headers);
        *req.metadata_mut() = MetadataMap::from_headers(headers);
        result.map_err(sanitize_status)?;
        Ok(req)
    }
}
