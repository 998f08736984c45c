//! Client side: call credentials that attach authorization metadata to each RPC, like
//! gRPC's `AuthMetadataPlugin` / `PerRPCCredentials` / `CallCredentials`.
//!
//! ```no_run
//! use grpc_auth::credentials::{BearerToken, CredentialsLayer};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let target: http::Uri = "https://greeter.example:443".parse()?;
//! let channel = tonic::transport::Endpoint::from(target.clone()).connect().await?;
//! let channel = tower::ServiceBuilder::new()
//!     .layer(CredentialsLayer::new(BearerToken::new("eyJ..."), target))
//!     .service(channel);
//! // let mut client = GreeterClient::new(channel);
//! # let _ = channel; Ok(()) }
//! ```
//!
//! - Credentials: [`BearerToken`], [`BasicCredentials`], [`ApiKeyCredentials`],
//!   [`TokenSourceCredentials`] (a refreshing, single-flight cache over your
//!   [`TokenSource`]), [`JwtAccessCredentials`] (self-signed JWTs per audience),
//!   [`HmacSigner`] (a Tyk-compatible HMAC signature over the method and date), and
//!   [`Composite`].
//! - Attach them with [`CredentialsLayer`] (any credential, async) or
//!   [`CredentialsInterceptor`] (static ones, as a tonic `Interceptor`); give one call its
//!   own with [`PerCallCredentials`].
//! - A credential that needs a secure transport is refused on an `http://` target
//!   before anything is sent (`UNAUTHENTICATED`), unless the caller opts in with
//!   `allow_plaintext()`.
//! - A failing credential fails the call without sending it: `UNAVAILABLE` when a token
//!   source could not be reached, `UNAUTHENTICATED` otherwise; control-plane codes are
//!   rewritten to `INTERNAL` as gRFC A54 requires.

mod api_key;
mod basic;
mod bearer;
mod composite;
mod hmac;
mod interceptor;
mod jwt_access;
mod layer;
mod login;
mod refresh;
mod token_source;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tonic::{Code, Status};

use crate::secret::RedactedHeaders;

pub use api_key::ApiKeyCredentials;
pub use basic::BasicCredentials;
pub use bearer::BearerToken;
pub use composite::Composite;
pub use hmac::{DEFAULT_NONCE_HEADER, HmacSigner};
pub use interceptor::CredentialsInterceptor;
pub use jwt_access::JwtAccessCredentials;
pub use layer::{CredentialsLayer, CredentialsService, PerCallCredentials};
pub use login::BasicLogin;
pub use token_source::{
    DEFAULT_MAX_BACKOFF, DEFAULT_MIN_BACKOFF, DEFAULT_REFRESH_AHEAD, Token, TokenError,
    TokenSource, TokenSourceCredentials,
};

/// What a credential is told about the call (gRPC's `AuthMetadataContext`).
///
/// Borrowed from the request: building one allocates nothing; the service URL is
/// formed only when a credential asks for it.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    origin: &'a str,
    service: &'a str,
    method_name: &'a str,
    /// The whole request path when known (`for_path`), else empty.
    path: &'a str,
    secure: bool,
    /// Which call this is (observed calls through the layer), 0 when unknown.
    call: u64,
}

impl<'a> CallContext<'a> {
    /// A context for `method_name` on `service_url` (`scheme://authority/package.Service`).
    pub fn new(service_url: &'a str, method_name: &'a str, secure: bool) -> Self {
        Self {
            origin: service_url,
            service: "",
            method_name,
            path: "",
            secure,
            call: 0,
        }
    }

    /// A context for the request path `/package.Service/Method` on `origin`
    /// (`scheme://authority`).
    pub(crate) fn for_path(origin: &'a str, path: &'a str, secure: bool) -> Self {
        let (service, method_name) = path.rsplit_once('/').unwrap_or(("", path));
        Self {
            origin,
            service,
            method_name,
            path,
            secure,
            call: 0,
        }
    }

    /// The same context for call `id` (see [`call_id`](Self::call_id)).
    pub(crate) fn with_call_id(mut self, id: u64) -> Self {
        self.call = id;
        self
    }

    /// Identifies the call: for calls through [`CredentialsLayer`] whose credentials
    /// observe responses, [`CallCredentials::apply`] and
    /// [`CallCredentials::on_response`] of one call see the same non-zero id, and no
    /// other call has it. 0 for a context made with [`CallContext::new`].
    pub fn call_id(&self) -> u64 {
        self.call
    }

    /// `scheme://authority/package.Service`, `:443` dropped for https (as gRPC core forms it).
    pub fn service_url(&self) -> String {
        format!("{}{}", self.origin, self.service)
    }

    /// The method's name, e.g. `SayHello`.
    pub fn method_name(&self) -> &'a str {
        self.method_name
    }

    /// The method path, `/package.Service/Method` (what HMAC signs as the request target).
    ///
    /// Borrowed for calls through [`CredentialsLayer`]; formed from the service URL for a
    /// context made with [`CallContext::new`].
    pub fn method_path(&self) -> Cow<'a, str> {
        if !self.path.is_empty() {
            return Cow::Borrowed(self.path);
        }
        // `new`: the origin is the whole service URL; its path starts after the authority.
        let after_scheme = self
            .origin
            .split_once("://")
            .map_or(self.origin, |(_, rest)| rest);
        let service = after_scheme
            .find('/')
            .map_or("", |i| after_scheme.split_at(i).1);
        Cow::Owned(format!("{service}/{}", self.method_name))
    }

    /// Whether the channel is secure (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether the call is to `path` (`/package.Service/Method`).
    pub fn is_path(&self, path: &str) -> bool {
        if self.service.is_empty() {
            // A context made with `new`: compare with the path formed from its URL.
            return self.method_path() == path;
        }
        path.strip_prefix(self.service)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(self.method_name)
    }
}

/// `scheme://authority` of a target, with `:443` dropped for https; and whether it is TLS.
pub(crate) fn origin(target: &Uri) -> (String, bool) {
    let secure = target.scheme_str() == Some("https");
    let scheme = target.scheme_str().unwrap_or("http");
    let host = target.host().unwrap_or("");
    let origin = match target.port_u16() {
        Some(443) if secure => format!("{scheme}://{host}"),
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    };
    (origin, secure)
}

/// Produces metadata for each call. Implement it with `async fn`.
pub trait CallCredentials: Send + Sync + 'static {
    /// Adds this credential's entries to `metadata`, or fails the call.
    fn apply(
        &self,
        ctx: &CallContext<'_>,
        metadata: &mut HeaderMap,
    ) -> impl Future<Output = Result<(), Status>> + Send;

    /// Whether the credential may only travel over TLS (default: yes).
    fn requires_transport_security(&self) -> bool {
        true
    }

    /// Whether [`on_response`](Self::on_response) wants to be called (default: no).
    /// Asked once per call; a credential that says no costs the call nothing more.
    fn observes_responses(&self) -> bool {
        false
    }

    /// Shown each call's outcome when [`observes_responses`](Self::observes_responses):
    /// what was sent, and the response's initial headers (a login's bearer token, or an
    /// `UNAUTHENTICATED` status: auth failures arrive trailers-only, in these headers).
    /// A status that comes later, in the trailers, is not observed.
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        let _ = outcome;
    }

    /// Erases the type.
    fn boxed(self) -> BoxCallCredentials
    where
        Self: Sized,
    {
        BoxCallCredentials(Arc::new(self))
    }
}

/// A call's outcome, as shown to [`CallCredentials::on_response`]. Its `Debug` shows
/// metadata keys, never values (they carry credentials: the bearer a login returned).
#[derive(Clone, Copy)]
pub struct CallOutcome<'a> {
    ctx: CallContext<'a>,
    sent: &'a HeaderMap,
    response: Option<&'a HeaderMap>,
}

impl fmt::Debug for CallOutcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOutcome")
            .field("ctx", &self.ctx)
            .field("sent", &RedactedHeaders(self.sent))
            .field("response", &self.response.map(RedactedHeaders))
            .finish()
    }
}

impl<'a> CallOutcome<'a> {
    /// An outcome: `response` is the response's initial headers, `None` when no
    /// response arrived (a transport error, or the call was dropped first).
    pub fn new(ctx: CallContext<'a>, sent: &'a HeaderMap, response: Option<&'a HeaderMap>) -> Self {
        Self {
            ctx,
            sent,
            response,
        }
    }

    /// The call's context.
    pub fn context(&self) -> &CallContext<'a> {
        &self.ctx
    }

    /// The request metadata as sent, the credentials' entries included.
    pub fn sent(&self) -> &'a HeaderMap {
        self.sent
    }

    /// The response's initial headers; `None` when no response arrived.
    pub fn headers(&self) -> Option<&'a HeaderMap> {
        self.response
    }

    /// The `grpc-status` in the initial headers (a trailers-only response), if any.
    pub fn status(&self) -> Option<Code> {
        self.response?
            .get("grpc-status")
            .map(|v| Code::from_bytes(v.as_bytes()))
    }

    /// The `grpc-message` in the initial headers, percent-decoded.
    pub fn message(&self) -> Option<String> {
        let raw = self.response?.get("grpc-message")?;
        Some(
            percent_encoding::percent_decode(raw.as_bytes())
                .decode_utf8_lossy()
                .into_owned(),
        )
    }
}

/// Credentials that answer without waiting: usable in a tonic [`Interceptor`](tonic::service::Interceptor).
pub trait StaticCallCredentials: CallCredentials {
    /// Adds this credential's entries to `metadata` now.
    fn apply_now(&self, metadata: &mut HeaderMap) -> Result<(), Status>;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait DynCallCredentials: Send + Sync + 'static {
    fn apply_boxed<'a>(
        &'a self,
        ctx: &'a CallContext<'a>,
        metadata: &'a mut HeaderMap,
    ) -> BoxFuture<'a, Result<(), Status>>;
    fn requires_transport_security_dyn(&self) -> bool;
    fn observes_responses_dyn(&self) -> bool;
    fn on_response_dyn(&self, outcome: &CallOutcome<'_>);
}

impl<C: CallCredentials> DynCallCredentials for C {
    fn apply_boxed<'a>(
        &'a self,
        ctx: &'a CallContext<'a>,
        metadata: &'a mut HeaderMap,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(self.apply(ctx, metadata))
    }
    fn requires_transport_security_dyn(&self) -> bool {
        self.requires_transport_security()
    }
    fn observes_responses_dyn(&self) -> bool {
        self.observes_responses()
    }
    fn on_response_dyn(&self, outcome: &CallOutcome<'_>) {
        self.on_response(outcome)
    }
}

/// A type-erased, cheaply cloned [`CallCredentials`].
#[derive(Clone)]
pub struct BoxCallCredentials(Arc<dyn DynCallCredentials>);

impl CallCredentials for BoxCallCredentials {
    async fn apply(&self, ctx: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply_boxed(ctx, metadata).await
    }
    fn requires_transport_security(&self) -> bool {
        self.0.requires_transport_security_dyn()
    }
    fn observes_responses(&self) -> bool {
        self.0.observes_responses_dyn()
    }
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        self.0.on_response_dyn(outcome)
    }
    fn boxed(self) -> BoxCallCredentials {
        self
    }
}

impl fmt::Debug for BoxCallCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxCallCredentials")
    }
}

impl<C: CallCredentials> CallCredentials for Arc<C> {
    fn apply(
        &self,
        ctx: &CallContext<'_>,
        metadata: &mut HeaderMap,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        (**self).apply(ctx, metadata)
    }
    fn requires_transport_security(&self) -> bool {
        (**self).requires_transport_security()
    }
    fn observes_responses(&self) -> bool {
        (**self).observes_responses()
    }
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        (**self).on_response(outcome)
    }
}

/// gRFC A54: codes a credential must not produce are rewritten to `INTERNAL`, the
/// original code kept in the message, so a control-plane failure is never mistaken
/// for an application error.
pub fn sanitize_status(status: Status) -> Status {
    match status.code() {
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Status::internal(format!(
            "call credentials failed with illegal status code {:?}: {}",
            status.code(),
            status.message()
        )),
        _ => status,
    }
}

/// The refusal of a secure-only credential on a plaintext channel.
pub(crate) fn plaintext_refused() -> Status {
    Status::unauthenticated(
        "cannot send call credentials that require transport security over a plaintext (http://) \
         channel: use https:// with TLS, or call allow_plaintext() for loopback or a trusted mesh",
    )
}

/// One precomputed metadata entry, marked sensitive; the value is checked at construction.
#[derive(Clone)]
pub(crate) struct StaticEntry {
    name: HeaderName,
    value: Result<HeaderValue, &'static str>,
}

impl StaticEntry {
    pub(crate) fn new(name: HeaderName, value: &[u8], what: &'static str) -> Self {
        let value = HeaderValue::from_bytes(value)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| what);
        Self { name, value }
    }

    pub(crate) fn apply(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        match &self.value {
            Ok(v) => {
                metadata.insert(self.name.clone(), v.clone());
                Ok(())
            }
            Err(what) => Err(Status::unauthenticated(format!(
                "{what} is not a valid metadata value"
            ))),
        }
    }
}

impl fmt::Debug for StaticEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: [redacted]", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_drops_443_for_https_only() {
        let u: Uri = "https://greeter.example:443".parse().unwrap();
        assert_eq!(origin(&u), ("https://greeter.example".into(), true));
        let u: Uri = "http://127.0.0.1:50051".parse().unwrap();
        assert_eq!(origin(&u), ("http://127.0.0.1:50051".into(), false));
        let u: Uri = "http://h:443".parse().unwrap();
        assert_eq!(origin(&u), ("http://h:443".into(), false));
    }

    #[test]
    fn service_url_is_the_path_up_to_its_last_slash() {
        let ctx = CallContext::for_path("https://g.example", "/helloworld.Greeter/SayHello", true);
        assert_eq!(
            (ctx.service_url().as_str(), ctx.method_name()),
            ("https://g.example/helloworld.Greeter", "SayHello")
        );
        assert_eq!(ctx.method_path(), "/helloworld.Greeter/SayHello");
        assert!(matches!(ctx.method_path(), Cow::Borrowed(_)));
    }

    #[test]
    fn method_path_is_formed_from_a_service_url() {
        let ctx = CallContext::new(
            "https://g.example:8443/helloworld.Greeter",
            "SayHello",
            true,
        );
        assert_eq!(ctx.method_path(), "/helloworld.Greeter/SayHello");
        let ctx = CallContext::new("https://g.example", "SayHello", true);
        assert_eq!(ctx.method_path(), "/SayHello");
    }

    #[test]
    fn is_path_holds_for_both_kinds_of_context() {
        let path = "/helloworld.Greeter/SayHello";
        let made = CallContext::new("https://g.example/helloworld.Greeter", "SayHello", true);
        assert!(made.is_path(path));
        assert!(!made.is_path("/helloworld.Greeter/SayHelloAdmin"));
        let through_layer = CallContext::for_path("https://g.example", path, true);
        assert!(through_layer.is_path(path));
        assert!(!through_layer.is_path("/other.Service/SayHello"));
    }

    #[test]
    fn control_plane_codes_become_internal() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::DataLoss,
        ] {
            let s = sanitize_status(Status::new(code, "boom"));
            assert_eq!(s.code(), Code::Internal);
            assert!(s.message().contains(&format!("{code:?}")) && s.message().contains("boom"));
        }
        for code in [
            Code::Unauthenticated,
            Code::Unavailable,
            Code::PermissionDenied,
        ] {
            assert_eq!(sanitize_status(Status::new(code, "x")).code(), code);
        }
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn call_outcome_debug_shows_no_credential() {
        let ctx = CallContext::new("https://svc.example/a.B", "C", true);
        let mut sent = HeaderMap::new();
        sent.insert(
            "authorization",
            HeaderValue::from_static("Basic c2VrcmV0OnB3"),
        );
        let mut response = HeaderMap::new();
        response.insert(
            "authorization",
            HeaderValue::from_static("Bearer sekrit-token"),
        );
        let shown = format!("{:?}", CallOutcome::new(ctx, &sent, Some(&response)));
        assert!(
            !shown.contains("sekrit") && !shown.contains("c2VrcmV0"),
            "{shown}"
        );
        assert!(shown.contains("authorization"), "{shown}");
    }
}
