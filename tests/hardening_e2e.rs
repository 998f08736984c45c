//! End to end for the security hardening pass: each defect fixed there, checked through a
//! real tonic server on 127.0.0.1:0 over TLS behind `AuthLayer`, called by a real tonic
//! client. Every case asserts the exact gRPC code and message, or the principal the
//! handler saw.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
use grpc_auth::authn::token_exchange::{SignedTokens, TokenExchange, TokenKeys};
use grpc_auth::authn::{
    ApiKeyAuthenticator, AuthRequest, AuthResult, BasicAuthenticator, FailureLimits,
    JwtAuthenticator,
};
use grpc_auth::credentials::{
    BasicLogin, CallContext, CallCredentials, CredentialsLayer, CredentialsService, HmacSigner,
};
use grpc_auth::{AuthLayer, Authenticator};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Identity, ServerTlsConfig};

const JWT_SECRET: &str = "hardening-jwt-secret-0123456789abcdef";
const HMAC_SECRET: &str = "hardening-hmac-secret";
const TOKEN_SECRET: &[u8] = b"hardening-token-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";

type Reply = Result<String, (Code, String)>;

/// A TLS greeter server behind `AuthLayer::new(auth)`.
struct Server {
    port: u16,
    ca_pem: String,
}

impl Server {
    async fn start<A: Authenticator>(auth: A) -> Self {
        let pki = tls::test_pki();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let identity = Identity::from_pem(&pki.cert_pem, &pki.key_pem);
        let router = tonic::transport::Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .expect("server tls config")
            .timeout(Duration::from_secs(30))
            .layer(AuthLayer::new(auth))
            .add_service(GreeterServer::new(greeter::MyGreeter));
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            if let Err(e) = router.serve_with_incoming(incoming).await {
                eprintln!("test server failed: {e}");
            }
        });
        Self {
            port,
            ca_pem: pki.ca_pem,
        }
    }

    async fn channel(&self) -> Channel {
        tls::channel(self.port, &self.ca_pem).await
    }

    fn target(&self) -> http::Uri {
        format!("https://127.0.0.1:{}", self.port)
            .parse()
            .expect("target URI")
    }
}

/// SayHello with `metadata`; the full response (for its headers) or the status.
async fn say_hello(
    ch: &Channel,
    metadata: MetadataMap,
) -> Result<tonic::Response<grpc_auth_protos::helloworld::HelloReply>, tonic::Status> {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    *req.metadata_mut() = metadata;
    GreeterClient::new(ch.clone()).say_hello(req).await
}

fn reply(
    res: Result<tonic::Response<grpc_auth_protos::helloworld::HelloReply>, tonic::Status>,
) -> Reply {
    res.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

/// SayHello with the metadata entries `md`, appended in order (a key may repeat).
async fn call(ch: &Channel, md: &[(&'static str, &str)]) -> Reply {
    let mut metadata = MetadataMap::new();
    for (k, v) in md {
        metadata.append(*k, v.parse().expect("ASCII metadata value"));
    }
    reply(say_hello(ch, metadata).await)
}

fn hello(subject_via_scheme: &str) -> Reply {
    Ok(format!("Hello Ada, authenticated as {subject_via_scheme}"))
}

fn err(code: Code, message: &str) -> Reply {
    Err((code, message.to_owned()))
}

fn unauth(message: &str) -> Reply {
    err(Code::Unauthenticated, message)
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// argon2id PHC of `password` with the crate's default parameters.
fn phc(password: &str) -> String {
    let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hash")
        .to_string()
}

fn hs256_jwt() -> JwtAuthenticator<StaticKeys> {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, JWT_SECRET.as_bytes()).expect("HS256 key"),
    ))
}

// 1. HMAC replay cache under traffic: full means refused, never forgetting a live one.

#[tokio::test]
async fn hmac_replay_cache_full_refuses_new_signatures_and_still_catches_the_replay() {
    let verifier =
        HmacVerifier::new(StaticHmacKeys::new().key("k1", HMAC_SECRET)).replay_cache_size(50);
    let s = Server::start(HmacAuthenticator::new(verifier)).await;
    let ch = s.channel().await;
    let signer = HmacSigner::new("k1", HMAC_SECRET);
    let service_url = format!("https://127.0.0.1:{}/helloworld.Greeter", s.port);
    let signed = || async {
        let mut headers = http::HeaderMap::new();
        let ctx = CallContext::new(&service_url, "SayHello", true);
        signer.apply(&ctx, &mut headers).await.expect("sign");
        MetadataMap::from_headers(headers)
    };

    let captured = signed().await;
    assert_eq!(
        reply(say_hello(&ch, captured.clone()).await),
        hello("k1 via hmac"),
        "the captured request is accepted once"
    );
    // The 200 replies in order, as runs of equal replies.
    let mut runs: Vec<(Reply, usize)> = Vec::new();
    for _ in 0..200 {
        let r = reply(say_hello(&ch, signed().await).await);
        match runs.last_mut() {
            Some((last, n)) if *last == r => *n += 1,
            _ => runs.push((r, 1)),
        }
    }
    assert_eq!(
        runs,
        [
            (hello("k1 via hmac"), 49),
            (err(Code::Unavailable, "HMAC replay cache full"), 151)
        ],
        "49 more fill the 50 entries, the rest are refused"
    );
    assert_eq!(
        reply(say_hello(&ch, captured).await),
        unauth("HMAC signature already used (replay)"),
        "the captured signature was not evicted to make room"
    );
}

// 2. The verified-token cache is shared by clones but keyed by configuration.

#[tokio::test]
async fn jwt_clones_with_different_audiences_do_not_share_cached_tokens() {
    let base = hs256_jwt();
    let a = Server::start(base.clone().audience("svc-a")).await;
    let b = Server::start(base.clone().audience("svc-b")).await;
    let (ch_a, ch_b) = (a.channel().await, b.channel().await);
    let token = tokens::hs256(JWT_SECRET, &tokens::claims("ada", ISS, "svc-a", json!({})));
    let auth = bearer(&token);
    for _ in 0..2 {
        assert_eq!(
            call(&ch_a, &[("authorization", &auth)]).await,
            hello("ada via jwt")
        );
    }
    assert_eq!(
        call(&ch_b, &[("authorization", &auth)]).await,
        unauth("invalid token audience"),
        "server B never accepts the token server A cached"
    );
}

// 3. Basic with argon2: failed-login limits per user and per peer, bounded hashing.

#[tokio::test]
async fn basic_failures_per_user_are_limited_even_for_the_right_password() {
    let auth = BasicAuthenticator::new()
        .hashed_user("bob", &phc("builder"))
        .expect("PHC")
        .failure_limits(FailureLimits::new().per_user(3).per_peer(0));
    let s = Server::start(auth).await;
    let ch = s.channel().await;
    for guess in ["guess-1", "guess-2", "guess-3"] {
        assert_eq!(
            call(&ch, &[("authorization", &basic("bob", guess))]).await,
            unauth("invalid username or password")
        );
    }
    assert_eq!(
        call(&ch, &[("authorization", &basic("bob", "builder"))]).await,
        err(
            Code::ResourceExhausted,
            "too many failed logins; retry later"
        ),
        "limited: the right password is not even checked"
    );
}

#[tokio::test]
async fn basic_failures_per_peer_are_limited_through_tls() {
    let auth = BasicAuthenticator::new()
        .user("ada", "lovelace")
        .user("grace", "hopper")
        .user("alan", "turing")
        .failure_limits(FailureLimits::new().per_user(0).per_peer(2));
    let s = Server::start(auth).await;
    let ch = s.channel().await;
    assert_eq!(
        call(&ch, &[("authorization", &basic("ada", "wrong"))]).await,
        unauth("invalid username or password")
    );
    assert_eq!(
        call(&ch, &[("authorization", &basic("grace", "wrong"))]).await,
        unauth("invalid username or password")
    );
    assert_eq!(
        call(&ch, &[("authorization", &basic("alan", "turing"))]).await,
        err(
            Code::ResourceExhausted,
            "too many failed logins; retry later"
        ),
        "the peer 127.0.0.1 is limited: the server read the TCP peer through TLS"
    );
}

#[tokio::test]
async fn basic_concurrent_hashes_beyond_the_bound_are_unavailable() {
    let auth = BasicAuthenticator::new()
        .hashed_user("bob", &phc("builder"))
        .expect("PHC")
        .no_failure_limits()
        .max_concurrent_hashes(1, 1);
    let s = Server::start(auth).await;
    let ch = s.channel().await;
    let wrong = basic("bob", "wrong");
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (ch, wrong) = (ch.clone(), wrong.clone());
            tokio::spawn(async move { call(&ch, &[("authorization", &wrong)]).await })
        })
        .collect();
    let mut replies = Vec::new();
    for c in calls {
        replies.push(c.await.expect("call task"));
    }
    replies.sort_by_key(|r| format!("{r:?}"));
    let mut want = vec![unauth("invalid username or password"); 2];
    want.extend(vec![
        err(
            Code::Unavailable,
            "too many password checks in progress; retry later"
        );
        6
    ]);
    want.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        replies, want,
        "one hashing, one queued, six refused at once"
    );
}

// 4. JWT encodings: one accepted spelling per token, no critical header extensions.

/// `header.payload.signature`, HS256 over `header.payload`, from JSON texts; the
/// payload segment with base64 padding when `pad_payload`.
fn hand_made_jwt(
    header: &serde_json::Value,
    payload: &serde_json::Value,
    pad_payload: bool,
) -> String {
    install_jwt_provider();
    let payload = payload.to_string();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        if pad_payload {
            URL_SAFE.encode(payload)
        } else {
            URL_SAFE_NO_PAD.encode(payload)
        }
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

#[tokio::test]
async fn jwt_padded_segments_and_crit_header_are_refused() {
    let s = Server::start(hs256_jwt()).await;
    let ch = s.channel().await;
    let claims = tokens::claims("ada", ISS, "greeter", json!({}));
    let token = tokens::hs256(JWT_SECRET, &claims);
    assert_eq!(
        call(&ch, &[("authorization", &bearer(&token))]).await,
        hello("ada via jwt")
    );
    let (message, signature) = token.rsplit_once('.').expect("three segments");
    let padded = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(signature).expect("base64url"));
    assert!(padded.ends_with('='), "{padded}");
    assert_eq!(
        call(
            &ch,
            &[("authorization", &bearer(&format!("{message}.{padded}")))]
        )
        .await,
        unauth("malformed token")
    );

    // The hand-made path signs correctly: without crit the token is accepted.
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let plain = hand_made_jwt(&header, &claims, false);
    assert_eq!(
        call(&ch, &[("authorization", &bearer(&plain))]).await,
        hello("ada via jwt")
    );
    // A payload segment with padding, signed as sent: the second spelling of a token.
    let claims = (0..3)
        .map(|n| tokens::claims("ada", ISS, "greeter", json!({ "pad": "x".repeat(n) })))
        .find(|c| c.to_string().len() % 3 != 0)
        .expect("a payload whose base64 needs padding");
    let padded_payload = hand_made_jwt(&header, &claims, true);
    assert!(padded_payload.contains('='), "{padded_payload}");
    assert_eq!(
        call(&ch, &[("authorization", &bearer(&padded_payload))]).await,
        unauth("malformed token")
    );
    for b64 in [false, true] {
        let crit = hand_made_jwt(
            &json!({"alg": "HS256", "typ": "JWT", "crit": ["b64"], "b64": b64}),
            &claims,
            false,
        );
        assert_eq!(
            call(&ch, &[("authorization", &bearer(&crit))]).await,
            unauth("token has unsupported critical header parameters"),
            "b64: {b64}"
        );
    }
}

// 5. A valid credential does not carry a bad one past the check, in either order.

async fn valid_bearer_does_not_hide_a_bad_api_key<A: Authenticator>(auth: A, order: &str) {
    let s = Server::start(auth).await;
    let ch = s.channel().await;
    let token = tokens::hs256(
        JWT_SECRET,
        &tokens::claims("ada", ISS, "greeter", json!({})),
    );
    let auth = bearer(&token);
    assert_eq!(
        call(&ch, &[("authorization", &auth), ("x-api-key", "wrong")]).await,
        unauth("invalid API key"),
        "{order}: wrong key"
    );
    assert_eq!(
        call(&ch, &[("authorization", &auth), ("x-api-key", "K-123")]).await,
        unauth("invalid API key"),
        "{order}: case-changed key"
    );
    assert_eq!(
        call(
            &ch,
            &[
                ("authorization", &auth),
                ("x-api-key", "k-123"),
                ("x-api-key", "k-123")
            ]
        )
        .await,
        unauth("multiple x-api-key metadata entries"),
        "{order}: repeated key"
    );
    assert_eq!(
        call(&ch, &[("authorization", &auth)]).await,
        hello("ada via jwt"),
        "{order}: bearer alone"
    );
    assert_eq!(
        call(&ch, &[("x-api-key", "k-123")]).await,
        hello("billing via api-key"),
        "{order}: API key alone"
    );
}

fn api_key() -> ApiKeyAuthenticator {
    ApiKeyAuthenticator::new().key("k-123", "billing")
}

#[tokio::test]
async fn jwt_or_api_key_judges_every_credential() {
    valid_bearer_does_not_hide_a_bad_api_key(hs256_jwt().or(api_key()), "jwt.or(api_key)").await;
}

#[tokio::test]
async fn api_key_or_jwt_judges_every_credential() {
    valid_bearer_does_not_hide_a_bad_api_key(api_key().or(hs256_jwt()), "api_key.or(jwt)").await;
}

// 7. BasicLogin: one login in flight, even when a waiter is cancelled.

/// Counts the calls that carry a Basic credential and holds each for 500 ms before
/// `A` checks it.
#[derive(Debug)]
struct SlowCountingLogin<A>(A, Arc<AtomicUsize>);

impl<A: Authenticator> Authenticator for SlowCountingLogin<A> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        if matches!(req.authorization(), Ok(Some(a)) if a.is_scheme("Basic")) {
            self.1.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.0.authenticate(req).await
    }
}

type LoginClient = GreeterClient<CredentialsService<Channel, BasicLogin>>;

async fn hello_via(client: LoginClient) -> Reply {
    let mut client = client;
    reply(client.say_hello(HelloRequest { name: "Ada".into() }).await)
}

#[tokio::test]
async fn basic_login_stays_single_flight_when_a_waiter_is_cancelled() {
    let logins = Arc::new(AtomicUsize::new(0));
    let login = SlowCountingLogin(
        BasicAuthenticator::new().user("ada", "lovelace"),
        logins.clone(),
    );
    let tokens = SignedTokens::new(
        TokenKeys::hs256("k1", TOKEN_SECRET).expect("token key"),
        "greeter",
    );
    let s = Server::start(TokenExchange::new(login, tokens)).await;
    let channel = s.channel().await;
    let client: LoginClient = GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(CredentialsLayer::new(
                BasicLogin::new("ada", "lovelace"),
                s.target(),
            ))
            .service(channel),
    );

    let call1 = tokio::spawn(hello_via(client.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let call2 = tokio::spawn(hello_via(client.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    call2.abort();
    let aborted = call2.await;
    assert!(
        aborted.as_ref().is_err_and(|e| e.is_cancelled()),
        "call 2 was still waiting for the login when cancelled: {aborted:?}"
    );
    let call3 = tokio::spawn(hello_via(client.clone()));
    assert_eq!(call1.await.expect("call 1"), hello("ada via basic"));
    assert_eq!(call3.await.expect("call 3"), hello("ada via token"));
    assert_eq!(
        logins.load(Ordering::SeqCst),
        1,
        "call 3 waited for call 1's login instead of starting a second one"
    );
}

// 9. Exchanged tokens are bound to the service that issued them.

#[tokio::test]
async fn exchanged_tokens_are_refused_by_another_service_sharing_the_keys() {
    let keys = TokenKeys::hs256("k1", TOKEN_SECRET).expect("token key");
    let users = || BasicAuthenticator::new().user("ada", "lovelace");
    let a = Server::start(TokenExchange::new(
        users(),
        SignedTokens::new(keys.clone(), "svc-a"),
    ))
    .await;
    let b = Server::start(TokenExchange::new(
        users(),
        SignedTokens::new(keys, "svc-b"),
    ))
    .await;
    let (ch_a, ch_b) = (a.channel().await, b.channel().await);

    let mut md = MetadataMap::new();
    md.insert(
        "authorization",
        basic("ada", "lovelace").parse().expect("ASCII"),
    );
    let login = say_hello(&ch_a, md).await.expect("login at A");
    let issued = login
        .metadata()
        .get("authorization")
        .expect("A answered with a bearer")
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(issued.starts_with("Bearer "), "{issued}");
    assert_eq!(
        login.into_inner().message,
        "Hello Ada, authenticated as ada via basic"
    );

    assert_eq!(
        call(&ch_b, &[("authorization", &issued)]).await,
        unauth("invalid token audience"),
        "B shares A's keys but is not the token's audience"
    );
    assert_eq!(
        call(&ch_a, &[("authorization", &issued)]).await,
        hello("ada via token")
    );
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
