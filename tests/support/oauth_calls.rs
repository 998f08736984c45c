//! The server side of the OAuth 2.0 reviews (7 and 9): an introspection authenticator
//! over the scripted endpoint (`idp.rs`), a call through `AuthLayer` to an echo service,
//! and the JWT and API-key schemes composed with it. Include it after `idp.rs`:
//! `#[path = "support/oauth_calls.rs"] mod oauth_calls;`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
use grpc_auth::authn::{
    ApiKeyAuthenticator, Authenticator, IntrospectionAuthenticator, JwtAuthenticator,
};
use grpc_auth::oauth::ClientAuth;
use grpc_auth::{AuthError, AuthLayer, Principal};
use http::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service, ServiceExt};

use crate::idp::Idp;

pub(crate) const CLIENT_ID: &str = "rs-greeter";
pub(crate) const CLIENT_SECRET: &str = "cl1ent-s3cret-Wq9Zx";
pub(crate) const JWT_SECRET: &[u8] = b"review-jwt-secret-0123456789abcdef";
pub(crate) const PATH: &str = "/helloworld.Greeter/SayHello";

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A distinctive opaque token (no dots), so a leak cannot go unnoticed.
pub(crate) fn tok(name: &str) -> String {
    format!("opq-Rv-{name}-Kq2sEcReT")
}

pub(crate) fn active(sub: &str) -> Value {
    json!({
        "active": true,
        "sub": sub,
        "scope": "greeter.read",
        "token_type": "Bearer",
        "exp": now() + 3600,
    })
}

pub(crate) fn basic_auth() -> ClientAuth {
    ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET)
}

pub(crate) fn introspection(idp: &Idp) -> IntrospectionAuthenticator {
    IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap()
}

pub(crate) fn subject(r: &Result<Principal, AuthError>) -> Result<String, (Code, String)> {
    match r {
        Ok(p) => Ok(p.subject().to_owned()),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

// ---------------------------------------------------------------------------------------
// The server side: AuthLayer through oneshot
// ---------------------------------------------------------------------------------------

/// The service behind the layer: answers OK with the principal's subject in `x-subject`.
#[derive(Clone, Default)]
pub(crate) struct Echo {
    calls: Arc<AtomicUsize>,
}

impl<B> Service<Request<B>> for Echo {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(tonic::body::Body::empty());
        if let Some(p) = req.extensions().get::<Principal>() {
            res.headers_mut()
                .insert("x-subject", p.subject().parse().unwrap());
        }
        std::future::ready(Ok(res))
    }
}

/// The layer's verdict: the subject the service saw, or the gRPC code and message.
pub(crate) async fn call<A: Authenticator>(
    auth: A,
    pairs: &[(&'static str, &str)],
    peer: Option<IpAddr>,
) -> Result<String, (Code, String)> {
    let echo = Echo::default();
    let svc = AuthLayer::new(auth).layer(echo.clone());
    let mut req = Request::builder().uri(format!("http://localhost{PATH}"));
    for (k, v) in pairs {
        req = req.header(*k, *v);
    }
    let mut req = req.body(tonic::body::Body::empty()).unwrap();
    if let Some(ip) = peer {
        req.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(ip, 40_000)),
        });
    }
    let res = svc.oneshot(req).await.unwrap();
    let code = res
        .headers()
        .get("grpc-status")
        .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()));
    if code == Code::Ok {
        assert_eq!(echo.calls.load(Ordering::SeqCst), 1);
        let sub = res.headers().get("x-subject").unwrap().to_str().unwrap();
        return Ok(sub.to_owned());
    }
    assert_eq!(echo.calls.load(Ordering::SeqCst), 0, "refused, yet called");
    let msg = res
        .headers()
        .get("grpc-message")
        .map(|v| {
            percent_encoding::percent_decode(v.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Err((code, msg))
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(crate) fn jwt() -> JwtAuthenticator<StaticKeys> {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, JWT_SECRET).unwrap(),
    ))
}

pub(crate) fn hs256(claims: &Value) -> String {
    let _ = jwt(); // installs jsonwebtoken's crypto provider
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap()
}

pub(crate) fn api_key() -> ApiKeyAuthenticator {
    ApiKeyAuthenticator::new().key("k-valid-7", "billing")
}
