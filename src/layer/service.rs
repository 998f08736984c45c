//! [`AuthService`]: authenticates each request before the inner service sees it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response, header::AUTHORIZATION};
use tonic::{Code, Status};
use tower_service::Service;

use super::Config;
use super::drain::drain;
use super::future::ResponseFuture;
use crate::authn::{AuthRequest, Authenticated, Authenticator};
use crate::authz::{Peer, SharedPolicy};
use crate::metrics::{self, Scheme};
use crate::{AuthError, Rule};

/// The middleware [`AuthLayer`](super::AuthLayer) produces. See the [module docs](super).
pub struct AuthService<S, A> {
    inner: S,
    authenticator: Arc<A>,
    config: Arc<Config>,
}

impl<S, A> AuthService<S, A> {
    pub(crate) fn new(inner: S, authenticator: Arc<A>, config: Arc<Config>) -> Self {
        Self {
            inner,
            authenticator,
            config,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    A: Authenticator,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let policy = &self.config.policy;
        let rule = policy.shared_rule_for(req.uri().path());
        // Whether a pattern of the policy names the method or its service: the rule
        // for "" is the default one (every pattern starts with '/', "" has none).
        // Metrics only when the layer was asked to record them: otherwise no label, no
        // clock read, no call into the facade.
        let label = self.config.metrics.then(|| {
            metrics::Method::of(req.uri().path(), || {
                !Arc::ptr_eq(rule, policy.shared_rule_for(""))
            })
        });
        if rule.is_public() {
            let checked = public_check(&self.config, req.uri().path(), req.headers(), || {
                Peer::for_call(None, req.extensions())
            });
            if let Err(e) = checked {
                let status = rejected(req.uri().path(), &e);
                record(label, req.uri().path(), Scheme::NONE, status.code());
                let peer = remote_ip(req.extensions());
                drain(req.into_body(), peer);
                return ResponseFuture::rejected(status.into_http());
            }
            record(label, req.uri().path(), Scheme::NONE, Code::Ok);
            return ResponseFuture::call(self.inner.call(req));
        }
        if matches!(**rule, Rule::Deny) {
            let e = method_denied();
            let status = rejected(req.uri().path(), &e);
            record(label, req.uri().path(), Scheme::NONE, status.code());
            let peer = remote_ip(req.extensions());
            drain(req.into_body(), peer);
            return ResponseFuture::rejected(status.into_http());
        }
        let rule = rule.clone();
        // The service made ready by `poll_ready` is the one that will be called.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let authorize = authorize(
            self.authenticator.clone(),
            self.config.max_value_len,
            rule,
            self.config.authz.clone(),
            label,
            req,
        );
        ResponseFuture::authorize(Box::pin(authorize), ready)
    }
}

/// Authenticates `req` and checks the policy; on success the principal is in the
/// request's extensions and the headers to add to the response are returned.
async fn authorize<A, B>(
    authenticator: Arc<A>,
    max_value_len: usize,
    rule: Arc<Rule>,
    authz: Option<SharedPolicy>,
    label: Option<metrics::Method>,
    mut req: Request<B>,
) -> Result<(Request<B>, Option<Box<HeaderMap>>), Status>
where
    A: Authenticator,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let ctx = AuthRequest::new(req.uri().path(), req.headers())
        .with_extensions(req.extensions())
        .with_max_value_len(max_value_len);
    let started = label.is_some().then(Instant::now);
    let authenticated = authenticator.authenticate(&ctx).await;
    let took = started.map(|t| t.elapsed());
    // The caller's scheme once authentication established one (also when the policy
    // then denies it).
    let mut scheme = Scheme::NONE;
    if let Ok(Some(found)) = &authenticated {
        scheme = Scheme::of(found.principal.scheme());
    }
    let outcome = judge(
        authenticated,
        &rule,
        authz.as_ref(),
        req.uri().path(),
        req.headers(),
        |p| Peer::for_call(Some(p), req.extensions()),
    );
    let code = match &outcome {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    };
    if let (Some(label), Some(took)) = (label, took) {
        metrics::authentication(scheme, code, took);
        metrics::decision(label, req.uri().path(), scheme, code);
    }
    let method = req.uri().path();
    match outcome {
        Ok(mut found) => {
            tracing::trace!(
                method,
                subject = found.principal.subject(),
                scheme = found.principal.scheme(),
                "grpc-auth: accepted"
            );
            let headers = found.take_response_headers();
            req.extensions_mut().insert(found.principal);
            Ok((req, headers))
        }
        Err(e) => {
            let status = rejected(method, &e);
            let peer = remote_ip(req.extensions());
            drain(req.into_body(), peer);
            Err(status)
        }
    }
}

/// The layer's verdict on an authentication outcome for a method whose rule is `rule`:
/// every `authorization` entry judged, the rule's scopes and roles, then the
/// authorization policy with the caller named as `peer` gives it. The one place these
/// steps are written: the layer and the ext_authz server both decide through it.
pub(crate) fn judge(
    authenticated: Result<Option<Authenticated>, AuthError>,
    rule: &Rule,
    authz: Option<&SharedPolicy>,
    path: &str,
    headers: &HeaderMap,
    peer: impl FnOnce(&crate::Principal) -> Peer,
) -> Result<Authenticated, AuthError> {
    match authenticated {
        // Every credential must be judged: an `authorization` entry the accepting schemes
        // did not take (an unknown scheme beside a valid API key) is refused.
        Ok(Some(found)) if !judged_authorization(&found, headers) => Err(
            AuthError::unauthenticated("unsupported authorization scheme"),
        ),
        Ok(Some(found)) => {
            rule.check(&found.principal)?;
            if let Some(policy) = authz {
                let d = policy
                    .current()
                    .check(path, headers, &peer(&found.principal));
                if !d.allowed {
                    return Err(policy_denied());
                }
            }
            Ok(found)
        }
        Ok(None) if headers.contains_key(AUTHORIZATION) => Err(AuthError::unauthenticated(
            "unsupported authorization scheme",
        )),
        Ok(None) => Err(AuthError::Missing),
        Err(e) => Err(e),
    }
}

/// A public method's check: only the authorization policy, the caller named by its
/// connection (`peer`).
pub(crate) fn public_check(
    config: &Config,
    path: &str,
    headers: &HeaderMap,
    peer: impl FnOnce() -> Peer,
) -> Result<(), AuthError> {
    match &config.authz {
        Some(authz) if !authz.current().check(path, headers, &peer()).allowed => {
            Err(policy_denied())
        }
        _ => Ok(()),
    }
}

/// A method the policy denies to everyone.
pub(crate) fn method_denied() -> AuthError {
    AuthError::permission_denied("method is not allowed")
}

/// Counts a decision when the layer records metrics.
fn record(label: Option<metrics::Method>, path: &str, scheme: Scheme, code: Code) {
    if let Some(label) = label {
        metrics::decision(label, path, scheme, code);
    }
}

/// A call the authorization policy denied (grpc-go's words).
fn policy_denied() -> AuthError {
    AuthError::permission_denied("unauthorized RPC request rejected")
}

/// The caller's IP address from tonic's connection info.
fn remote_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<tonic::transport::server::TcpConnectInfo>()?
        .remote_addr()
        .map(|a| a.ip())
}

/// Whether the accepted outcome judged the request's `authorization` entry, if it has
/// one: the accepting schemes named it. A scheme that names no entry (a custom one) is
/// taken to have judged the request (compositions record what it read, see `AnyOf`).
fn judged_authorization(found: &Authenticated, headers: &HeaderMap) -> bool {
    !headers.contains_key(AUTHORIZATION)
        || found.credentials().contains(&AUTHORIZATION)
        || (found.credentials().is_empty() && !found.connection_only())
}

/// Logs a rejection (method, code, reason; `warn` when the check could not be made)
/// and gives its status.
fn rejected(method: &str, e: &AuthError) -> Status {
    log_rejection(method, e);
    e.to_status()
}

/// The `grpc-auth: rejected` event: method, code and reason (`warn` when the check could
/// not be made), never the credential.
pub(crate) fn log_rejection(method: &str, e: &AuthError) {
    match e {
        AuthError::Unavailable(_) => {
            tracing::warn!(method, code = ?e.code(), reason = %e, "grpc-auth: rejected")
        }
        _ => tracing::debug!(method, code = ?e.code(), reason = %e, "grpc-auth: rejected"),
    }
}

impl<S: Clone, A> Clone for AuthService<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            authenticator: self.authenticator.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, A> fmt::Debug for AuthService<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("authenticator", &std::any::type_name::<A>())
            .field("policy", &self.config.policy)
            .finish()
    }
}

impl<S: tonic::server::NamedService, A> tonic::server::NamedService for AuthService<S, A> {
    const NAME: &'static str = S::NAME;
}
