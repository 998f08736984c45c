//! [`CredentialsLayer`]: attaches call credentials to every request through a
//! `tonic::transport::Channel` (or any `Service<http::Request<B>>`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use http::{Request, Response, Uri};
use pin_project_lite::pin_project;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    BoxCallCredentials, CallContext, CallCredentials, CallOutcome, origin, plaintext_refused,
    sanitize_status,
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
    /// `creds.observes_responses()`, asked once.
    observes: bool,
}

impl<C: CallCredentials> CredentialsLayer<C> {
    /// Attaches `creds` to calls to `target` (`https://host:port`); the target's scheme
    /// says whether the channel is TLS, its authority forms the service URL.
    pub fn new(creds: C, target: Uri) -> Self {
        let (origin, secure) = origin(&target);
        Self {
            observes: creds.observes_responses(),
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
            observes: self.observes,
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
            .field("observes", &self.observes)
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

pin_project! {
    /// Response future of [`CredentialsService`]: the channel's own future when the
    /// credentials answered without waiting, a ready refusal, or a boxed future that
    /// awaits asynchronous credentials first.
    pub struct ResponseFuture<F, R, E> {
        #[pin]
        state: State<F, R, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R, E> {
        // Credentials attached in `call`: the inner service's future.
        Called {
            #[pin]
            future: F,
        },
        // The credentials failed in `call`: this refusal, nothing sent.
        Refused {
            response: Option<R>,
        },
        // Asynchronous or observing credentials.
        Awaiting {
            future: BoxFuture<Result<R, E>>,
        },
    }
}

impl<F, R, E> ResponseFuture<F, R, E> {
    fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    fn refused(response: R) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    fn awaiting(future: BoxFuture<Result<R, E>>) -> Self {
        Self {
            state: State::Awaiting { future },
        }
    }
}

impl<F, R, E> Future for ResponseFuture<F, R, E>
where
    F: Future<Output = Result<R, E>>,
    R: Default,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Called { future } => future.poll(cx),
            // Polled again after completion: an empty response, never a panic.
            StateProj::Refused { response } => Poll::Ready(Ok(response.take().unwrap_or_default())),
            StateProj::Awaiting { future } => {
                let out = ready!(future.as_mut().poll(cx));
                // The boxed future must not be polled again once it completed.
                state.set(State::Refused { response: None });
                Poll::Ready(out)
            }
        }
    }
}

impl<F, R, E> fmt::Debug for ResponseFuture<F, R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Called { .. } => "ResponseFuture::Called",
            State::Refused { .. } => "ResponseFuture::Refused",
            State::Awaiting { .. } => "ResponseFuture::Awaiting",
        })
    }
}

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
    type Future = ResponseFuture<S::Future, Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let per_call = req.extensions_mut().remove::<PerCallCredentials>();
        // Static channel credentials, nothing per call: attach now, call in place.
        if per_call.is_none()
            && let Some(creds) = self.config.creds.as_static()
        {
            let config = &self.config;
            if config.creds.requires_transport_security()
                && !config.secure
                && !config.allow_plaintext
            {
                let refusal = refuse(req.uri().path(), plaintext_refused());
                return ResponseFuture::refused(refusal);
            }
            return match creds.apply_now(req.headers_mut()) {
                Ok(()) => ResponseFuture::called(self.inner.call(req)),
                Err(status) => ResponseFuture::refused(refuse(req.uri().path(), status)),
            };
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        if observes(&config, per_call.as_ref()) {
            // A future of its own, so that calls without observers do not carry its state.
            return ResponseFuture::awaiting(Box::pin(async move {
                call_observed(&config, per_call, inner, req).await
            }));
        }
        ResponseFuture::awaiting(Box::pin(async move {
            // The context borrows the path while the credentials write the headers.
            let mut headers = std::mem::take(req.headers_mut());
            let ctx = CallContext::for_path(&config.origin, req.uri().path(), config.secure);
            let result = attach(&config, per_call.as_ref(), ctx, &mut headers).await;
            *req.headers_mut() = headers;
            match result {
                Ok(()) => inner.call(req).await,
                Err(status) => Ok(refuse(req.uri().path(), status)),
            }
        }))
    }
}

/// Whether a credential of this call observes responses.
fn observes<C: CallCredentials>(
    config: &CredentialsLayer<C>,
    per_call: Option<&PerCallCredentials>,
) -> bool {
    match per_call {
        None => config.observes,
        Some(p) => (config.observes && !p.replace) || p.creds.observes_responses(),
    }
}

/// The trailers-only answer to a call whose credentials failed.
fn refuse<ResBody: Default>(path: &str, status: Status) -> Response<ResBody> {
    let status = sanitize_status(status);
    tracing::debug!(method = path, code = ?status.code(), reason = status.message(), "grpc-auth: call credentials failed; call not sent");
    status.into_http()
}

/// Attaches, calls `inner` and shows the outcome to the credentials that observe
/// responses, also when the credentials failed, the call failed in transport, or this
/// future was dropped first (a login in flight is never left waiting).
async fn call_observed<S, C, B, ResBody>(
    config: &CredentialsLayer<C>,
    per_call: Option<PerCallCredentials>,
    mut inner: S,
    mut req: Request<B>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    C: CallCredentials,
    ResBody: Default,
{
    static NEXT_CALL: AtomicU64 = AtomicU64::new(1);
    let mut observer = Observer {
        config,
        path: req.uri().path().to_owned(),
        sent: std::mem::take(req.headers_mut()),
        per_call,
        call: NEXT_CALL.fetch_add(1, Ordering::Relaxed),
        done: false,
    };
    let result = attach(
        config,
        observer.per_call.as_ref(),
        CallContext::for_path(&config.origin, &observer.path, config.secure)
            .with_call_id(observer.call),
        &mut observer.sent,
    )
    .await;
    *req.headers_mut() = observer.sent.clone();
    if let Err(status) = result {
        observer.notify(None);
        return Ok(refuse(&observer.path, status));
    }
    let result = inner.call(req).await;
    observer.notify(result.as_ref().ok().map(Response::headers));
    result
}

/// Tells the observing credentials how a call ended; on drop, that it ended without a
/// response.
struct Observer<'a, C: CallCredentials> {
    config: &'a CredentialsLayer<C>,
    per_call: Option<PerCallCredentials>,
    path: String,
    sent: http::HeaderMap,
    /// The call's id, as its credentials saw it in `apply`.
    call: u64,
    done: bool,
}

impl<C: CallCredentials> Observer<'_, C> {
    fn notify(&mut self, response: Option<&http::HeaderMap>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let ctx = CallContext::for_path(&self.config.origin, &self.path, self.config.secure)
            .with_call_id(self.call);
        let outcome = CallOutcome::new(ctx, &self.sent, response);
        let replace = self.per_call.as_ref().is_some_and(|p| p.replace);
        if !replace && self.config.observes {
            self.config.creds.on_response(&outcome);
        }
        if let Some(p) = &self.per_call
            && p.creds.observes_responses()
        {
            p.creds.on_response(&outcome);
        }
    }
}

impl<C: CallCredentials> Drop for Observer<'_, C> {
    fn drop(&mut self) {
        self.notify(None);
    }
}

async fn attach<C: CallCredentials>(
    config: &CredentialsLayer<C>,
    per_call: Option<&PerCallCredentials>,
    ctx: CallContext<'_>,
    headers: &mut http::HeaderMap,
) -> Result<(), Status> {
    let channel = (!per_call.is_some_and(|p| p.replace)).then_some(&*config.creds);
    let per_call = per_call.map(|p| &p.creds);
    let needs_tls = channel.is_some_and(|c| c.requires_transport_security())
        || per_call.is_some_and(|c| c.requires_transport_security());
    if needs_tls && !config.secure && !config.allow_plaintext {
        return Err(plaintext_refused());
    }
    if let Some(c) = channel {
        c.apply(&ctx, headers).await?;
    }
    if let Some(c) = per_call {
        c.apply(&ctx, headers).await?;
    }
    Ok(())
}

#[cfg(test)]
mod path_tests {
    use std::convert::Infallible;

    use super::*;
    use crate::credentials::{BearerToken, Composite, TokenSourceCredentials};

    /// Answers with the `authorization` it received, in a header.
    #[derive(Clone)]
    struct Echo;
    impl Service<Request<()>> for Echo {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Request<()>) -> Self::Future {
            let got = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            std::future::ready(Ok(Response::new(got)))
        }
    }

    fn req() -> Request<()> {
        Request::builder().uri("/a.B/C").body(()).unwrap()
    }

    fn target() -> Uri {
        "https://svc.example".parse().unwrap()
    }

    #[tokio::test]
    async fn static_credentials_are_attached_in_call_without_a_boxed_future() {
        let mut svc = CredentialsLayer::new(BearerToken::new("t1"), target()).layer(Echo);
        let fut = svc.call(req());
        assert_eq!(format!("{fut:?}"), "ResponseFuture::Called");
        assert_eq!(fut.await.unwrap().into_body(), "Bearer t1");
        // A composite of static parts too.
        let both = Composite::new().with(BearerToken::new("t2"));
        let mut svc = CredentialsLayer::new(both, target()).layer(Echo);
        let fut = svc.call(req());
        assert_eq!(format!("{fut:?}"), "ResponseFuture::Called");
        assert_eq!(fut.await.unwrap().into_body(), "Bearer t2");
    }

    #[tokio::test]
    async fn static_credentials_on_plaintext_are_refused_in_call() {
        let plain: Uri = "http://svc.example".parse().unwrap();
        let mut svc = CredentialsLayer::new(BearerToken::new("t1"), plain).layer(Echo);
        let fut = svc.call(req());
        assert_eq!(format!("{fut:?}"), "ResponseFuture::Refused");
        let res = fut.await.unwrap();
        assert_eq!(res.body(), "", "nothing sent");
        assert_eq!(res.headers()["grpc-status"], "16");
    }

    struct Fixed;
    impl crate::credentials::TokenSource for Fixed {
        async fn fetch(&self) -> Result<crate::credentials::Token, crate::credentials::TokenError> {
            Ok(crate::credentials::Token::new("t3", None))
        }
    }

    #[tokio::test]
    async fn asynchronous_credentials_are_awaited() {
        let mut svc =
            CredentialsLayer::new(TokenSourceCredentials::new(Fixed), target()).layer(Echo);
        let fut = svc.call(req());
        assert_eq!(format!("{fut:?}"), "ResponseFuture::Awaiting");
        assert_eq!(fut.await.unwrap().into_body(), "Bearer t3");
    }
}
