//! The layer's tower contract, in process: trailers-only rejections, the inner
//! service untouched on rejection, the principal in the extensions, response
//! metadata, readiness (clone-and-swap), NamedService, Clone and Debug.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use grpc_auth::authn::{
    ApiKeyAuthenticator, AuthRequest, AuthResult, Authenticated, Authenticator,
};
use grpc_auth::{AuthError, AuthLayer, Policy, Principal};
use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

/// Echoes the principal's subject in a header; counts calls.
#[derive(Clone, Default)]
struct Inner {
    calls: Arc<AtomicUsize>,
}

impl Service<Request<Body>> for Inner {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(Body::empty());
        if let Some(p) = req.extensions().get::<Principal>() {
            res.headers_mut()
                .insert("x-subject", p.subject().parse().unwrap());
        }
        std::future::ready(Ok(res))
    }
}

fn request(path: &str, md: &[(&'static str, &'static str)]) -> Request<Body> {
    let mut b = Request::builder().uri(format!("http://localhost{path}"));
    for (k, v) in md {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

fn layer() -> AuthLayer<ApiKeyAuthenticator> {
    AuthLayer::new(
        ApiKeyAuthenticator::new()
            .key_for("k1", Principal::new("svc", "api-key").with_scopes(["read"])),
    )
    .policy(
        Policy::new()
            .public("/grpc.health.v1.Health/*")
            .require_scope("/a.B/Write", "write"),
    )
}

#[tokio::test]
async fn rejection_is_trailers_only_and_the_inner_service_is_not_called() {
    let inner = Inner::default();
    let svc = layer().layer(inner.clone());
    let res = svc.oneshot(request("/a.B/Read", &[])).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(
        res.headers()["grpc-message"],
        "missing%20authorization%20metadata"
    );
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn permission_denied_is_code_7() {
    let inner = Inner::default();
    let res = layer()
        .layer(inner.clone())
        .oneshot(request("/a.B/Write", &[("x-api-key", "k1")]))
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "7");
    assert_eq!(res.headers()["grpc-message"], "missing%20scope:%20write");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn accepted_request_reaches_the_inner_service_with_the_principal() {
    let inner = Inner::default();
    let res = layer()
        .layer(inner.clone())
        .oneshot(request("/a.B/Read", &[("x-api-key", "k1")]))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-subject"], "svc");
    assert!(res.headers().get("grpc-status").is_none());
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn public_methods_skip_authentication() {
    let inner = Inner::default();
    let res = layer()
        .layer(inner.clone())
        .oneshot(request(
            "/grpc.health.v1.Health/Check",
            &[("x-api-key", "wrong")],
        ))
        .await
        .unwrap();
    assert!(res.headers().get("grpc-status").is_none());
    assert!(res.headers().get("x-subject").is_none());
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
}

struct Failing;
impl Authenticator for Failing {
    async fn authenticate(&self, _: &AuthRequest<'_>) -> AuthResult {
        Err(AuthError::unavailable("user store unreachable"))
    }
}

#[tokio::test]
async fn a_failing_dependency_is_unavailable() {
    let res = AuthLayer::new(Failing)
        .layer(Inner::default())
        .oneshot(request("/a.B/C", &[]))
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], "user%20store%20unreachable");
}

struct Login;
impl Authenticator for Login {
    async fn authenticate(&self, _: &AuthRequest<'_>) -> AuthResult {
        Ok(Some(
            Authenticated::new(Principal::new("ada", "basic")).with_response_header(
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Bearer issued"),
            ),
        ))
    }
}

#[tokio::test]
async fn response_metadata_from_the_authenticator_is_added() {
    let res = AuthLayer::new(Login)
        .layer(Inner::default())
        .oneshot(request("/a.B/C", &[]))
        .await
        .unwrap();
    assert_eq!(res.headers()["authorization"], "Bearer issued");
    assert_eq!(res.headers()["x-subject"], "ada");
}

/// Each clone has its own readiness; calling an instance that was not polled ready panics.
struct Strict {
    ready: bool,
    clones: Arc<AtomicUsize>,
}

impl Clone for Strict {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            ready: false,
            clones: self.clones.clone(),
        }
    }
}

impl Service<Request<Body>> for Strict {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        assert!(self.ready, "called a service that was not polled ready");
        self.ready = false;
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

#[tokio::test]
async fn the_service_polled_ready_is_the_one_called() {
    let mut svc = layer().layer(Strict {
        ready: false,
        clones: Arc::default(),
    });
    for _ in 0..3 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(request("/a.B/Read", &[("x-api-key", "k1")]))
            .await
            .unwrap();
        assert!(res.headers().get("grpc-status").is_none());
    }
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request("/grpc.health.v1.Health/Check", &[]))
        .await
        .unwrap();
    assert!(res.headers().get("grpc-status").is_none());
}

#[test]
fn named_service_clone_and_debug_pass_through() {
    use grpc_auth_protos::helloworld::greeter_server::{Greeter, GreeterServer};
    use tonic::server::NamedService;

    #[derive(Debug, Default)]
    struct G;
    #[tonic::async_trait]
    impl Greeter for G {
        async fn say_hello(
            &self,
            _: tonic::Request<grpc_auth_protos::helloworld::HelloRequest>,
        ) -> Result<tonic::Response<grpc_auth_protos::helloworld::HelloReply>, tonic::Status>
        {
            Err(tonic::Status::unimplemented(""))
        }
        async fn say_hello_admin(
            &self,
            _: tonic::Request<grpc_auth_protos::helloworld::HelloRequest>,
        ) -> Result<tonic::Response<grpc_auth_protos::helloworld::HelloReply>, tonic::Status>
        {
            Err(tonic::Status::unimplemented(""))
        }
    }
    let wrapped = layer().layer(GreeterServer::new(G));
    assert_eq!(
        <grpc_auth::layer::AuthService<GreeterServer<G>, ApiKeyAuthenticator> as NamedService>::NAME,
        "helloworld.Greeter"
    );
    // A wrapped generated service still goes into `add_service`.
    let _router = tonic::transport::Server::builder().add_service(wrapped.clone());
    let l = layer();
    let shown = format!("{:?} {:?}", l.clone(), wrapped);
    assert!(
        shown.contains("AuthLayer") && shown.contains("AuthService"),
        "{shown}"
    );
    assert!(!shown.contains("k1"), "{shown}");
}

#[tokio::test]
async fn policy_is_checked_on_every_call_when_the_token_is_cached() {
    use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let secret = b"a-long-random-secret-for-the-cache-test";
    let key = JwtKey::secret(Algorithm::HS256, secret).unwrap();
    let layer = AuthLayer::new(JwtAuthenticator::new(StaticKeys::from(key)))
        .policy(Policy::new().require_scope("/a.B/Write", "write"));
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({ "sub": "ada", "exp": exp, "scope": "read" });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let bearer: &'static str = Box::leak(format!("Bearer {token}").into_boxed_str());
    let inner = Inner::default();
    let svc = layer.layer(inner.clone());
    for _ in 0..3 {
        let res = svc
            .clone()
            .oneshot(request("/a.B/Read", &[("authorization", bearer)]))
            .await
            .unwrap();
        assert_eq!(res.headers()["x-subject"], "ada");
        let res = svc
            .clone()
            .oneshot(request("/a.B/Write", &[("authorization", bearer)]))
            .await
            .unwrap();
        assert_eq!(res.headers()["grpc-status"], "7");
        assert_eq!(res.headers()["grpc-message"], "missing%20scope:%20write");
    }
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
}

/// Counts authentications: a denied method must never reach the authenticator.
#[derive(Clone, Default)]
struct CountingAuth(Arc<AtomicUsize>);
impl Authenticator for CountingAuth {
    async fn authenticate(&self, _: &AuthRequest<'_>) -> AuthResult {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(Principal::new("ada", "test").into()))
    }
}

#[tokio::test]
async fn a_denied_method_is_answered_before_authentication_and_the_inner_service() {
    let auth = CountingAuth::default();
    let inner = Inner::default();
    let mut svc = AuthLayer::new(auth.clone())
        .policy(Policy::new().deny("/internal.Debug/*"))
        .layer(inner.clone());
    for _ in 0..2 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(request("/internal.Debug/Dump", &[("x-api-key", "k1")]))
            .await
            .unwrap();
        assert_eq!(res.headers()["grpc-status"], "7");
        assert_eq!(res.headers()["grpc-message"], "method%20is%20not%20allowed");
    }
    assert_eq!(
        auth.0.load(Ordering::SeqCst),
        0,
        "no authentication for a denied method"
    );
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
    // Other methods still authenticate and call through.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request("/a.B/C", &[]))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-subject"], "ada");
    assert_eq!(auth.0.load(Ordering::SeqCst), 1);
}
