//! End to end for call credentials: this crate's client credentials over TLS (rcgen
//! certificates made at test time) against the greeter behind this crate's server layer.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::{
    ApiKeyCredentials, BasicCredentials, BearerToken, CallContext, CallCredentials, Composite,
    CredentialsInterceptor, CredentialsLayer, JwtAccessCredentials, PerCallCredentials, Token,
    TokenError, TokenSource, TokenSourceCredentials,
};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::{Code, Status};

const SECRET: &str = "client-e2e-secret-0123456789abcdef0123";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";

struct Server {
    port: u16,
    ca_pem: String,
}

fn config() -> greeter::ServerConfig {
    greeter::ServerConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        jwt_issuer: Some(ISS.into()),
        basic_users: vec![("grace".into(), "hopper".into())],
        api_keys: vec![("k-123".into(), "billing".into())],
        ..Default::default()
    }
}

async fn tls_server(mut config: greeter::ServerConfig) -> Server {
    let pki = tls::test_pki();
    config.tls = Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes()));
    let addr = greeter::spawn(config).await;
    Server {
        port: addr.port(),
        ca_pem: pki.ca_pem,
    }
}

fn target(port: u16) -> http::Uri {
    format!("https://127.0.0.1:{port}").parse().unwrap()
}

async fn hello<C: CallCredentials>(s: &Server, creds: C) -> Result<String, (Code, String)> {
    let channel = tls::channel(s.port, &s.ca_pem).await;
    let svc = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(creds, target(s.port)))
        .service(channel);
    say(
        GreeterClient::new(svc),
        tonic::Request::new(HelloRequest { name: "Ada".into() }),
    )
    .await
}

async fn say<T>(
    mut client: GreeterClient<T>,
    req: tonic::Request<HelloRequest>,
) -> Result<String, (Code, String)>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    client
        .say_hello(req)
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn ok(who: &str) -> Result<String, (Code, String)> {
    Ok(format!("Hello Ada, authenticated as {who}"))
}

fn jwt(sub: &str) -> String {
    tokens::hs256(SECRET, &tokens::claims(sub, ISS, AUD, json!({})))
}

#[tokio::test]
async fn static_credentials_over_tls() {
    let s = tls_server(config()).await;
    assert_eq!(
        hello(&s, BearerToken::new(jwt("ada"))).await,
        ok("ada via jwt")
    );
    assert_eq!(
        hello(&s, BasicCredentials::new("grace", "hopper")).await,
        ok("grace via basic")
    );
    assert_eq!(
        hello(&s, ApiKeyCredentials::new("k-123")).await,
        ok("billing via api-key")
    );
    assert_eq!(
        hello(&s, BasicCredentials::new("grace", "wrong")).await,
        Err((Code::Unauthenticated, "invalid username or password".into()))
    );
}

#[tokio::test]
async fn interceptor_attaches_static_credentials() {
    let s = tls_server(config()).await;
    let channel = tls::channel(s.port, &s.ca_pem).await;
    let client = GreeterClient::with_interceptor(
        channel,
        CredentialsInterceptor::new(ApiKeyCredentials::new("k-123"), target(s.port).clone()),
    );
    assert_eq!(
        say(
            client,
            tonic::Request::new(HelloRequest { name: "Ada".into() })
        )
        .await,
        ok("billing via api-key")
    );
}

#[tokio::test]
async fn self_signed_jwt_uses_the_service_url_as_audience() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let pki = tls::test_pki();
    let service_url = format!("https://127.0.0.1:{port}/helloworld.Greeter");
    let config = greeter::ServerConfig {
        jwt_public_keys: vec![include_bytes!("keys/ec256_public.pem").to_vec()],
        jwt_issuer: Some("svc@example.com".into()),
        jwt_audience: Some(service_url),
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        ..Default::default()
    };
    tokio::spawn(async move { greeter::serve(listener, &config).await.unwrap() });
    let s = Server {
        port,
        ca_pem: pki.ca_pem,
    };
    let creds = JwtAccessCredentials::from_pem(
        Algorithm::ES256,
        include_bytes!("keys/ec256_private.pem"),
        "svc@example.com",
    )
    .unwrap();
    assert_eq!(
        hello(&s, creds.clone()).await,
        ok("svc@example.com via jwt")
    );
    // Cached per audience: the same value until near expiry, a different one per audience.
    let a = creds.header_value("https://a/x.Y").unwrap();
    assert_eq!(a, creds.header_value("https://a/x.Y").unwrap());
    assert_ne!(a, creds.header_value("https://b/x.Y").unwrap());
    assert!(a.is_sensitive());
}

/// Counts fetches; each token's `sub` is `t<n>`; fails while `fail` holds an error.
#[derive(Clone, Default)]
struct Counting {
    fetches: Arc<AtomicUsize>,
    fail: Arc<std::sync::Mutex<Option<TokenError>>>,
    delay: Duration,
    lifetime: Duration,
    clock: ManualClock,
}

impl TokenSource for Counting {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        let expires = grpc_auth::clock::Clock::now(&self.clock) + self.lifetime;
        Ok(Token::new(jwt(&format!("t{n}")), Some(expires)))
    }
}

fn source(clock: &ManualClock) -> Counting {
    Counting {
        delay: Duration::from_millis(50),
        lifetime: Duration::from_secs(300),
        clock: clock.clone(),
        ..Default::default()
    }
}

#[tokio::test]
async fn concurrent_calls_share_one_fetch() {
    let s = Arc::new(tls_server(config()).await);
    let clock = ManualClock::now();
    let src = source(&clock);
    let creds = TokenSourceCredentials::new(src.clone()).clock(clock);
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let (s, creds) = (s.clone(), creds.clone());
            tokio::spawn(async move { hello(&s, creds).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), ok("t1 via jwt"));
    }
    assert_eq!(src.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn token_is_refreshed_ahead_of_expiry_in_the_background() {
    let s = tls_server(config()).await;
    let clock = ManualClock::now();
    let src = source(&clock);
    let creds = TokenSourceCredentials::new(src.clone())
        .refresh_ahead(Duration::from_secs(60))
        .clock(clock.clone());
    assert_eq!(hello(&s, creds.clone()).await, ok("t1 via jwt"));
    clock.advance(Duration::from_secs(200)); // 100 s left: fresh
    assert_eq!(hello(&s, creds.clone()).await, ok("t1 via jwt"));
    assert_eq!(src.fetches.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(50)); // 50 s left: within refresh-ahead, still valid
    assert_eq!(
        hello(&s, creds.clone()).await,
        ok("t1 via jwt"),
        "the valid token is used while refreshing"
    );
    for _ in 0..100 {
        if src.fetches.load(Ordering::SeqCst) == 2
            && hello(&s, creds.clone()).await == ok("t2 via jwt")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hello(&s, creds.clone()).await, ok("t2 via jwt"));
    assert_eq!(src.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn failing_token_source_fails_calls_then_recovers_with_backoff() {
    let s = tls_server(config()).await;
    let clock = ManualClock::now();
    let src = source(&clock);
    *src.fail.lock().unwrap() = Some(TokenError::Unavailable("connection refused".into()));
    let creds = TokenSourceCredentials::new(src.clone())
        .backoff(Duration::from_secs(1), Duration::from_secs(8))
        .clock(clock.clone());
    let down = Err((
        Code::Unavailable,
        "token source unavailable: connection refused".into(),
    ));
    assert_eq!(hello(&s, creds.clone()).await, down);
    assert_eq!(
        hello(&s, creds.clone()).await,
        down,
        "within backoff: no new fetch"
    );
    assert_eq!(src.fetches.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_millis(1100));
    assert_eq!(hello(&s, creds.clone()).await, down);
    assert_eq!(src.fetches.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_millis(1100)); // backoff doubled to 2 s: still waiting
    assert_eq!(hello(&s, creds.clone()).await, down);
    assert_eq!(src.fetches.load(Ordering::SeqCst), 2);
    *src.fail.lock().unwrap() = None;
    clock.advance(Duration::from_secs(1));
    assert_eq!(hello(&s, creds.clone()).await, ok("t3 via jwt"));
    assert_eq!(src.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn refused_token_source_is_unauthenticated() {
    let s = tls_server(config()).await;
    let clock = ManualClock::now();
    let src = source(&clock);
    *src.fail.lock().unwrap() = Some(TokenError::Refused("invalid_client".into()));
    let creds = TokenSourceCredentials::new(src).clock(clock);
    assert_eq!(
        hello(&s, creds).await,
        Err((
            Code::Unauthenticated,
            "token source refused: invalid_client".into()
        ))
    );
}

#[tokio::test]
async fn plaintext_is_refused_unless_the_caller_opts_in() {
    let addr = greeter::spawn(config()).await; // no TLS
    let uri: http::Uri = format!("http://{addr}").parse().unwrap();
    let channel = tonic::transport::Endpoint::from(uri.clone())
        .connect()
        .await
        .unwrap();
    let req = || tonic::Request::new(HelloRequest { name: "Ada".into() });

    let refused = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(
            BearerToken::new(jwt("ada")),
            uri.clone(),
        ))
        .service(channel.clone());
    let (code, msg) = say(GreeterClient::new(refused), req()).await.unwrap_err();
    assert_eq!(code, Code::Unauthenticated);
    assert!(
        msg.starts_with(
            "cannot send call credentials that require transport security over a plaintext"
        ),
        "{msg}"
    );
    assert!(msg.contains("allow_plaintext()"), "names the fix: {msg}");

    let intercepted = GreeterClient::with_interceptor(
        channel.clone(),
        CredentialsInterceptor::new(BearerToken::new(jwt("ada")), uri.clone()),
    );
    assert_eq!(
        say(intercepted, req()).await.unwrap_err().0,
        Code::Unauthenticated
    );

    let allowed = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(BearerToken::new(jwt("ada")), uri.clone()).allow_plaintext())
        .service(channel.clone());
    assert_eq!(
        say(GreeterClient::new(allowed), req()).await,
        ok("ada via jwt")
    );
    let allowed = GreeterClient::with_interceptor(
        channel,
        CredentialsInterceptor::new(BearerToken::new(jwt("ada")), uri.clone()).allow_plaintext(),
    );
    assert_eq!(say(allowed, req()).await, ok("ada via jwt"));
}

#[tokio::test]
async fn per_call_credentials_replace_or_add() {
    let s = tls_server(config()).await;
    let channel = tls::channel(s.port, &s.ca_pem).await;
    let svc = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(
            ApiKeyCredentials::new("k-123"),
            target(s.port),
        ))
        .service(channel);
    let client = GreeterClient::new(svc);
    let plain = tonic::Request::new(HelloRequest { name: "Ada".into() });
    assert_eq!(say(client.clone(), plain).await, ok("billing via api-key"));
    let mut replaced = tonic::Request::new(HelloRequest { name: "Ada".into() });
    replaced
        .extensions_mut()
        .insert(PerCallCredentials::replace(BasicCredentials::new(
            "grace", "hopper",
        )));
    assert_eq!(say(client.clone(), replaced).await, ok("grace via basic"));
    // Added: the API key and the bearer travel together; the server's first scheme (JWT) wins.
    let mut added = tonic::Request::new(HelloRequest { name: "Ada".into() });
    added
        .extensions_mut()
        .insert(PerCallCredentials::add(BearerToken::new(jwt("ada"))));
    assert_eq!(say(client, added).await, ok("ada via jwt"));
}

/// Records what it sees and returns a configured status.
struct Probe(Option<Status>);
impl CallCredentials for Probe {
    async fn apply(&self, ctx: &CallContext<'_>, md: &mut HeaderMap) -> Result<(), Status> {
        if let Some(s) = &self.0 {
            return Err(s.clone());
        }
        md.insert("x-service-url", ctx.service_url().parse().unwrap());
        md.insert("x-method", ctx.method_name().parse().unwrap());
        Ok(())
    }
}

#[tokio::test]
async fn composite_merges_and_fails_as_a_whole() {
    let s = tls_server(config()).await;
    let both = Composite::new()
        .with(ApiKeyCredentials::new("k-123"))
        .with(BasicCredentials::new("grace", "hopper"));
    assert_eq!(hello(&s, both).await, ok("grace via basic"));
    let failing = Composite::new()
        .with(ApiKeyCredentials::new("k-123"))
        .with(Probe(Some(Status::unavailable("vault down"))));
    assert_eq!(
        hello(&s, failing).await,
        Err((Code::Unavailable, "vault down".into()))
    );
    // Both parts' metadata is present, and the context is gRPC core's.
    let mut md = HeaderMap::new();
    let ctx = CallContext::new("https://g.example/helloworld.Greeter", "SayHello", true);
    Composite::new()
        .with(ApiKeyCredentials::new("k-1"))
        .with(Probe(None))
        .apply(&ctx, &mut md)
        .await
        .unwrap();
    assert_eq!(md["x-api-key"], "k-1");
    assert_eq!(md["x-service-url"], "https://g.example/helloworld.Greeter");
    assert_eq!(md["x-method"], "SayHello");
    assert!(md["x-api-key"].is_sensitive());
}

#[tokio::test]
async fn control_plane_codes_from_credentials_become_internal() {
    let s = tls_server(config()).await;
    let (code, msg) = hello(&s, Probe(Some(Status::invalid_argument("bad scope"))))
        .await
        .unwrap_err();
    assert_eq!(code, Code::Internal);
    assert_eq!(
        msg,
        "call credentials failed with illegal status code InvalidArgument: bad scope"
    );
    let (code, _) = hello(&s, Probe(Some(Status::permission_denied("no"))))
        .await
        .unwrap_err();
    assert_eq!(code, Code::PermissionDenied);
}

#[test]
fn secrets_are_redacted_in_debug() {
    let shown = format!(
        "{:?} {:?} {:?}",
        BearerToken::new("tok-SECRET"),
        BasicCredentials::new("u", "pw-SECRET"),
        ApiKeyCredentials::new("key-SECRET")
    );
    assert!(!shown.contains("SECRET"), "{shown}");
}
