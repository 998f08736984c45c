//! The per-call cost of attaching call credentials through `CredentialsLayer`, in
//! process: no credentials (the bare service), a static bearer, a cached token source,
//! a composite of two, an HMAC signer, and a logged-in `BasicLogin` (a credential that
//! observes responses), in one run. The difference to `no_credentials` is the cost.
//!
//! ```text
//! cargo bench --bench credentials
//! ```

use std::convert::Infallible;
use std::future::Ready;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use grpc_auth::credentials::{
    ApiKeyCredentials, BasicLogin, BearerToken, CallCredentials, Composite, CredentialsLayer,
    HmacSigner, Token, TokenError, TokenSource, TokenSourceCredentials,
};
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

#[derive(Clone)]
struct Sink;

impl Service<Request<Body>> for Sink {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // Keep the attached metadata observable so it is not optimised away.
        let mut res = Response::new(Body::empty());
        *res.status_mut() = if req.headers().is_empty() {
            http::StatusCode::OK
        } else {
            http::StatusCode::ACCEPTED
        };
        std::future::ready(Ok(res))
    }
}

/// Like `Sink`, and answers a Basic login with a bearer token.
#[derive(Clone)]
struct LoginSink;

impl Service<Request<Body>> for LoginSink {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = http::StatusCode::ACCEPTED;
        let login = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes().starts_with(b"Basic "));
        if login {
            res.headers_mut().insert(
                "authorization",
                http::HeaderValue::from_static("Bearer opaque-token"),
            );
        }
        std::future::ready(Ok(res))
    }
}

struct Fixed;
impl TokenSource for Fixed {
    async fn fetch(&self) -> Result<Token, TokenError> {
        Ok(Token::new(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln",
            Some(SystemTime::now() + Duration::from_secs(3600)),
        ))
    }
}

fn request() -> Request<Body> {
    Request::builder()
        .uri("/helloworld.Greeter/SayHello")
        .body(Body::empty())
        .expect("request")
}

fn bench<S>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: S,
    expect: http::StatusCode,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    let res = rt.block_on(svc.clone().oneshot(request())).expect("call");
    assert_eq!(res.status(), expect, "{name}");
    c.bench_function(name, |b| {
        b.to_async(rt).iter(|| {
            let mut svc = svc.clone();
            async move {
                svc.ready()
                    .await
                    .expect("ready")
                    .call(request())
                    .await
                    .expect("call")
            }
        })
    });
}

fn with<C: CallCredentials>(
    creds: C,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    let target: http::Uri = "https://greeter.example".parse().expect("uri");
    CredentialsLayer::new(creds, target).layer(Sink)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let accepted = http::StatusCode::ACCEPTED;
    bench(c, &rt, "no_credentials", Sink, http::StatusCode::OK);
    bench(
        c,
        &rt,
        "static_bearer",
        with(BearerToken::new(
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2ln",
        )),
        accepted,
    );
    bench(
        c,
        &rt,
        "token_source_cached",
        with(TokenSourceCredentials::new(Fixed)),
        accepted,
    );
    let composite = Composite::new()
        .with(ApiKeyCredentials::new("k-123"))
        .with(BearerToken::new("t"));
    bench(c, &rt, "composite_of_two", with(composite), accepted);
    bench(
        c,
        &rt,
        "hmac_signer_sha256_nonce",
        with(HmacSigner::new("svc-a", "bench-secret")),
        accepted,
    );
    let target: http::Uri = "https://greeter.example".parse().expect("uri");
    let login = CredentialsLayer::new(BasicLogin::new("ada", "lovelace"), target).layer(LoginSink);
    bench(c, &rt, "basic_login_token", login, accepted);
    bench(c, &rt, "no_credentials_again", Sink, http::StatusCode::OK);
}

criterion_group!(name = credentials; config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)); targets = benches);
criterion_main!(credentials);
