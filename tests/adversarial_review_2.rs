//! Adversarial review of 13ca58b..HEAD, through the public API.
//!
//! Each `finding_*` test FAILS on the reviewed code and passes once the defect it names
//! is fixed; each `withstood_*` test is an attack the code resisted.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
use grpc_auth::authn::{
    ApiKeyAuthenticator, AuthRequest, AuthResult, Authenticator, BasicAuthenticator,
    JwtAuthenticator,
};
use grpc_auth::{AuthError, AuthLayer, Principal};
use http::{HeaderMap, HeaderName, Request, Response};
use tonic::Code;
use tower::{Layer, Service, ServiceExt};

const JWT_SECRET: &[u8] = b"adversarial-jwt-secret-0123456789abcdef";
const PATH: &str = "/helloworld.Greeter/SayHello";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn run<A: Authenticator>(auth: &A, pairs: &[(&'static str, &str)]) -> AuthResult {
    let h = headers(pairs);
    auth.authenticate(&AuthRequest::new(PATH, &h)).await
}

fn code_and_message(r: &AuthResult) -> (Code, String) {
    match r {
        Ok(Some(a)) => (Code::Ok, a.principal.subject().to_owned()),
        Ok(None) => (Code::Ok, "absent".to_owned()),
        Err(e) => (e.code(), e.to_string()),
    }
}

fn jwt_auth() -> JwtAuthenticator<StaticKeys> {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, JWT_SECRET).unwrap(),
    ))
}

fn basic_auth() -> BasicAuthenticator {
    BasicAuthenticator::new().user("ada", "lovelace")
}

fn api_keys() -> ApiKeyAuthenticator {
    ApiKeyAuthenticator::new().key("k-valid", "billing")
}

/// A custom scheme as the README suggests: reads its own header through
/// `single_value`, accepts with `Principal::into()` (names no credential).
struct SessionHeader;

impl Authenticator for SessionHeader {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(v) = req.single_value(&HeaderName::from_static("x-session"))? else {
            return Ok(None);
        };
        if v == "s-valid" {
            Ok(Some(Principal::new("sess", "session").into()))
        } else {
            Err(AuthError::unauthenticated("bad session"))
        }
    }
}

/// Introspects opaque bearers (README style), leaves other schemes alone.
struct Introspection;

impl Authenticator for Introspection {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(auth) = req.authorization()? else {
            return Ok(None);
        };
        if !auth.is_scheme("Bearer") || !auth.credentials().starts_with("opq_") {
            return Ok(None);
        }
        if auth.credentials() == "opq_valid" {
            Ok(Some(Principal::new("ada", "introspection").into()))
        } else {
            Err(AuthError::unauthenticated("unknown or revoked token"))
        }
    }
}

/// Introspection that also reads four context entries through `single_value`
/// (tenant, trace ids...): five reads in all.
struct ChattyIntrospection;

impl Authenticator for ChattyIntrospection {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        for name in ["x-tenant", "x-request-id", "traceparent", "x-region"] {
            let _ = req.single_value(&HeaderName::from_static(name))?;
        }
        Introspection.authenticate(req).await
    }
}

#[derive(Clone, Default)]
struct Inner {
    calls: Arc<AtomicUsize>,
}

impl<B> Service<Request<B>> for Inner {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(tonic::body::Body::empty())))
    }
}

fn grpc_code<B>(res: &Response<B>) -> Code {
    res.headers()
        .get("grpc-status")
        .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()))
}

fn request(pairs: &[(&'static str, &str)]) -> Request<tonic::body::Body> {
    let mut b = Request::builder().uri(format!("http://localhost{PATH}"));
    for (k, v) in pairs {
        b = b.header(*k, *v);
    }
    b.body(tonic::body::Body::empty()).unwrap()
}

// =======================================================================================
// FINDINGS
// =======================================================================================

/// Finding: in a nested any-of, the inner recorder forwards every read to the outer
/// one, including reads of an inner scheme that DECLINED (JWT peeks at a Basic
/// `authorization` and returns None). When the inner any-of falls through to a scheme
/// that names no credential, the outer any-of claims all of those reads for it, so the
/// Basic scheme after it never sees `authorization`: a WRONG password rides along a
/// valid session header, and the layer accepts (the claim names `authorization`).
#[tokio::test]
async fn finding_a_declined_read_in_a_nested_any_of_does_not_hide_a_wrong_password() {
    let auth = jwt_auth().or(SessionHeader).or(basic_auth());
    let r = run(
        &auth,
        &[
            ("authorization", &basic("ada", "WRONG")),
            ("x-session", "s-valid"),
        ],
    )
    .await;
    assert_eq!(
        code_and_message(&r),
        (Code::Unauthenticated, "invalid username or password".into())
    );
}

/// Finding 1 through the layer: the wrong password reaches the service.
#[tokio::test]
async fn finding_a_declined_read_in_a_nested_any_of_reaches_the_service_through_the_layer() {
    let inner = Inner::default();
    let svc = AuthLayer::new(jwt_auth().or(SessionHeader).or(basic_auth())).layer(inner.clone());
    let res = svc
        .oneshot(request(&[
            ("authorization", &basic("ada", "WRONG")),
            ("x-session", "s-valid"),
        ]))
        .await
        .unwrap();
    assert_eq!(grpc_code(&res), Code::Unauthenticated);
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
}

/// Same root cause, other direction: Basic declines a Bearer, the session accepts,
/// and a garbage JWT is never judged.
#[tokio::test]
async fn finding_a_declined_read_in_a_nested_any_of_does_not_hide_a_garbage_bearer() {
    let auth = basic_auth().or(SessionHeader).or(jwt_auth());
    let r = run(
        &auth,
        &[
            ("authorization", "Bearer not-a-jwt"),
            ("x-session", "s-valid"),
        ],
    )
    .await;
    assert_eq!(
        r.as_ref().err().map(AuthError::code),
        Some(Code::Unauthenticated)
    );
}

/// Finding (wrong refusal): `and` does not apply the "names nothing, judged what it
/// read" rule. A README-style introspection scheme AND an API key, both valid: the
/// merged outcome names only `x-api-key`, so the layer refuses the introspected
/// bearer as "unsupported authorization scheme".
#[tokio::test]
async fn finding_all_of_with_a_custom_authorization_scheme_is_accepted_by_the_layer() {
    let inner = Inner::default();
    let svc = AuthLayer::new(Introspection.and(api_keys())).layer(inner.clone());
    let res = svc
        .oneshot(request(&[
            ("authorization", "Bearer opq_valid"),
            ("x-api-key", "k-valid"),
        ]))
        .await
        .unwrap();
    assert_eq!(grpc_code(&res), Code::Ok);
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
}

/// Finding (low, wrong refusal): past four distinct reads the recorder gives up and
/// claims nothing, so the regression the previous review fixed comes back for a
/// custom scheme that reads a few context entries: the JWT scheme after it refuses
/// the valid opaque bearer as malformed.
#[tokio::test]
async fn finding_a_custom_scheme_reading_five_entries_still_composes_before_jwt() {
    let auth = ChattyIntrospection.or(jwt_auth());
    let r = run(&auth, &[("authorization", "Bearer opq_valid")]).await;
    assert_eq!(code_and_message(&r), (Code::Ok, "ada".into()));
}

// =======================================================================================
// WITHSTOOD
// =======================================================================================

/// Flat any-of: the session scheme did not read `authorization`, so Basic judges it.
#[tokio::test]
async fn withstood_flat_any_of_wrong_password_beside_custom_scheme() {
    for auth in [
        SessionHeader.or(basic_auth()).boxed(),
        basic_auth().or(SessionHeader).boxed(),
    ] {
        let r = run(
            &auth,
            &[
                ("authorization", &basic("ada", "WRONG")),
                ("x-session", "s-valid"),
            ],
        )
        .await;
        assert_eq!(
            code_and_message(&r),
            (Code::Unauthenticated, "invalid username or password".into())
        );
    }
}

/// Layer: an `authorization` no accepting scheme named, beside a valid API key, is refused.
#[tokio::test]
async fn withstood_unnamed_authorization_beside_api_key_is_refused_by_the_layer() {
    let inner = Inner::default();
    let svc = AuthLayer::new(api_keys().or(jwt_auth())).layer(inner.clone());
    let res = svc
        .oneshot(request(&[
            ("authorization", "Custom whatever"),
            ("x-api-key", "k-valid"),
        ]))
        .await
        .unwrap();
    assert_eq!(grpc_code(&res), Code::Unauthenticated);
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
}

/// Basic decoding: multi-byte UTF-8 on both sides of ':' (and ':' inside the
/// password) splits on the first ASCII ':' without panicking.
#[tokio::test]
async fn withstood_basic_multibyte_around_the_separator() {
    let auth = BasicAuthenticator::new().user("é☃", "ü:ñ𝄞");
    let ok = run(&auth, &[("authorization", &basic("é☃", "ü:ñ𝄞"))]).await;
    assert_eq!(code_and_message(&ok), (Code::Ok, "é☃".into()));
    for raw in ["é:", ":ü", "\u{10FFFF}:\u{10FFFF}:", "é☃:ü"] {
        let v = format!("Basic {}", STANDARD.encode(raw));
        let r = run(&auth, &[("authorization", &v)]).await;
        assert_eq!(
            r.as_ref().err().map(AuthError::code),
            Some(Code::Unauthenticated),
            "{raw}"
        );
    }
}
