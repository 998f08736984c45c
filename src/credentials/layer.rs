//! [`CredentialsLayer`]: attaches call credentials to every request through a
//! `tonic::transport::Channel` (or any `Service<http::Request<B>>`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    BoxCallCredentials, CallContext, CallCredentials, origin, plaintext_refused, sanitize_status,
};

/// Credentials for one call, put in its extensions:
/// `request.extensions_mut().insert(PerCallCredentials::replace(creds))`.
#[derive(Debug, Clone)]
pub struct PerCallCredentials {
    creds: BoxCallCredentials,
    replace: bool,
}

impl PerCallCredentials {
    /// Use `creds` instead of the channel's credentials.
    pub fn replace(creds: impl CallCredentials) -> Self {
        Self {
            creds: creds.boxed(),
            replace: true,
        }
    }

    /// Use `creds` after the channel's credentials (its entries win on conflict).
    pub fn add(creds: impl CallCredentials) -> Self {
        Self {
            creds: creds.boxed(),
            replace: false,
        }
    }
}

/// Wraps a channel so every call carries `creds`. See the [module docs](super).
pub struct CredentialsLayer<C> {
    creds: Arc<C>,
    origin: Arc<str>,
    secure: bool,
    allow_plaintext: bool,
}

impl<C: CallCredentials> CredentialsLayer<C> {
    /// Attaches `creds` to calls to `target` (`https://host:port`); the target's scheme
    /// says whether the channel is TLS, its authority forms the service URL.
    pub fn new(creds: C, target: Uri) -> Self {
        let (origin, secure) = origin(&target);
        Self {
            creds: Arc::new(creds),
            origin: origin.into(),
            secure,
            allow_plaintext: false,
        }
    }

    /// Allows secure-only credentials over plaintext (loopback, a trusted mesh), like
    /// gRPC's local channel credentials.
    pub fn allow_plaintext(mut self) -> Self {
        self.allow_plaintext = true;
        self
    }
}

impl<C> Clone for CredentialsLayer<C> {
    fn clone(&self) -> Self {
        Self {
            creds: self.creds.clone(),
            origin: self.origin.clone(),
            secure: self.secure,
            allow_plaintext: self.allow_plaintext,
        }
    }
}

impl<C> fmt::Debug for CredentialsLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsLayer")
            .field("credentials", &std::any::type_name::<C>())
            .field("origin", &self.origin)
            .field("secure", &self.secure)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl<S, C> Layer<S> for CredentialsLayer<C> {
    type Service = CredentialsService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CredentialsService {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`CredentialsLayer`] produces.
pub struct CredentialsService<S, C> {
    inner: S,
    config: CredentialsLayer<C>,
}

impl<S: Clone, C> Clone for CredentialsService<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CredentialsService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, C, B, ResBody> Service<Request<B>> for CredentialsService<S, C>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    C: CallCredentials,
    B: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let per_call = req.extensions_mut().remove::<PerCallCredentials>();
            match attach(&config, per_call, &mut req).await {
                Ok(()) => inner.call(req).await,
                Err(status) => {
                    let status = sanitize_status(status);
                    tracing::debug!(method = req.uri().path(), code = ?status.code(), reason = status.message(), "grpc-auth: call credentials failed; call not sent");
                    Ok(status.into_http())
                }
            }
        })
    }
}

async fn attach<C: CallCredentials, B>(
    config: &CredentialsLayer<C>,
    per_call: Option<PerCallCredentials>,
    req: &mut Request<B>,
) -> Result<(), Status> {
    let channel = (!per_call.as_ref().is_some_and(|p| p.replace)).then_some(&*config.creds);
    let per_call = per_call.map(|p| p.creds);
    let needs_tls = channel.is_some_and(|c| c.requires_transport_security())
        || per_call
            .as_ref()
            .is_some_and(|c| c.requires_transport_security());
    if needs_tls && !config.secure && !config.allow_plaintext {
        return Err(plaintext_refused());
    }
    // The context borrows the path while the credentials write the headers.
    let mut headers = std::mem::take(req.headers_mut());
    let ctx = CallContext::for_path(&config.origin, req.uri().path(), config.secure);
    let mut result = Ok(());
    if let Some(c) = channel {
        result = c.apply(&ctx, &mut headers).await;
    }
    if let (Ok(()), Some(c)) = (&result, &per_call) {
        result = c.apply(&ctx, &mut headers).await;
    }
    *req.headers_mut() = headers;
    result
}
