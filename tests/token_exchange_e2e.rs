//! End to end for the Basic-to-Bearer exchange: the greeter started with `issue_tokens`
//! (a `TokenExchange` over its Basic users) and this crate's `BasicLogin` credential,
//! over TLS. The server counts Basic verifications; the client's clock is a ManualClock.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_auth::authn::token_exchange::TokenKeys;
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::{BasicLogin, CredentialsLayer, CredentialsService};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use tonic::Code;
use tonic::transport::Channel;

const S1: &[u8] = b"e2e-token-secret-one-0123456789abcdef";
const S2: &[u8] = b"e2e-token-secret-two-0123456789abcdef";

struct Server {
    port: u16,
    ca_pem: String,
    logins: Arc<AtomicUsize>,
    keys: TokenKeys,
}

impl Server {
    fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }
}

async fn server() -> Server {
    let pki = tls::test_pki();
    let logins = Arc::new(AtomicUsize::new(0));
    let keys = TokenKeys::hs256("k1", S1).unwrap();
    let addr = greeter::spawn(greeter::ServerConfig {
        basic_users: vec![("grace".into(), "hopper".into())],
        issue_tokens: true,
        token_keys: Some(keys.clone()),
        basic_verifications: Some(logins.clone()),
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        ..Default::default()
    })
    .await;
    Server {
        port: addr.port(),
        ca_pem: pki.ca_pem,
        logins,
        keys,
    }
}

type Client = GreeterClient<CredentialsService<Channel, BasicLogin>>;

async fn client(s: &Server, creds: &BasicLogin) -> Client {
    let channel = tls::channel(s.port, &s.ca_pem).await;
    let target = format!("https://127.0.0.1:{}", s.port).parse().unwrap();
    GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(CredentialsLayer::new(creds.clone(), target))
            .service(channel),
    )
}

async fn hello(client: &Client) -> Result<String, (Code, String)> {
    client
        .clone()
        .say_hello(HelloRequest { name: "Ada".into() })
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn ok(via: &str) -> Result<String, (Code, String)> {
    Ok(format!("Hello Ada, authenticated as grace via {via}"))
}

#[tokio::test]
async fn eight_concurrent_first_calls_make_one_login_then_calls_use_the_bearer() {
    let s = server().await;
    let creds = BasicLogin::new("grace", "hopper").clock(ManualClock::now());
    let c = client(&s, &creds).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { hello(&c).await })
        })
        .collect();
    let mut replies = Vec::new();
    for call in calls {
        replies.push(call.await.unwrap());
    }
    replies.sort_by_key(|r| format!("{r:?}"));
    let mut want = vec![ok("basic")];
    want.extend(std::iter::repeat_n(ok("token"), 7));
    want.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        replies, want,
        "one call was the login, the others waited for its token"
    );
    assert_eq!(s.logins(), 1);
    for _ in 0..3 {
        assert_eq!(hello(&c).await, ok("token"));
    }
    assert_eq!(s.logins(), 1);
}

#[tokio::test]
async fn nearing_expiry_one_call_logs_in_again() {
    let s = server().await;
    let clock = ManualClock::now();
    let creds = BasicLogin::new("grace", "hopper").clock(clock.clone());
    let c = client(&s, &creds).await;
    assert_eq!(hello(&c).await, ok("basic"));
    assert_eq!(hello(&c).await, ok("token"));
    // The token lasts 15 minutes; with 30 s left (refresh-ahead is 60 s) the next call
    // renews it, riding on a real call; the server still accepts the old token meanwhile.
    clock.advance(Duration::from_secs(15 * 60 - 30));
    assert_eq!(hello(&c).await, ok("basic"));
    assert_eq!(s.logins(), 2);
    for _ in 0..3 {
        assert_eq!(hello(&c).await, ok("token"));
    }
    assert_eq!(s.logins(), 2);
}

#[tokio::test]
async fn a_dropped_signing_key_makes_the_client_log_in_again_exactly_once() {
    let s = server().await;
    let creds = BasicLogin::new("grace", "hopper").clock(ManualClock::now());
    let c = client(&s, &creds).await;
    assert_eq!(hello(&c).await, ok("basic"));
    assert_eq!(hello(&c).await, ok("token"));
    // Rotation: k2 signs, the k1 token still verifies.
    s.keys.rotate("k2", S2).unwrap();
    assert_eq!(hello(&c).await, ok("token"));
    assert_eq!(s.logins(), 1);
    // k1 dropped: the server refuses the token; that call fails, the next one logs in.
    s.keys.drop_previous();
    assert_eq!(
        hello(&c).await,
        Err((Code::Unauthenticated, "unknown token key id".into()))
    );
    assert!(!creds.has_token());
    assert_eq!(hello(&c).await, ok("basic"));
    for _ in 0..3 {
        assert_eq!(hello(&c).await, ok("token"));
    }
    assert_eq!(s.logins(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_unauthenticated_without_a_login_loop() {
    let s = server().await;
    let clock = ManualClock::now();
    let creds = BasicLogin::new("grace", "wrong").clock(clock.clone());
    let c = client(&s, &creds).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { hello(&c).await })
        })
        .collect();
    let mut replies = Vec::new();
    for call in calls {
        replies.push(call.await.unwrap());
    }
    replies.sort_by_key(|r| format!("{r:?}"));
    let server_says = Err((Code::Unauthenticated, "invalid username or password".into()));
    let cached = Err((
        Code::Unauthenticated,
        "login failed: invalid username or password".into(),
    ));
    let mut want = vec![server_says.clone()];
    want.extend(std::iter::repeat_n(cached.clone(), 7));
    want.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(replies, want);
    assert_eq!(s.logins(), 1, "one login for eight calls");
    // Within the backoff (1 s) calls fail without being sent.
    assert_eq!(hello(&c).await, cached);
    assert_eq!(s.logins(), 1);
    // After it, one call tries again, and the backoff doubles.
    clock.advance(Duration::from_secs(1));
    assert_eq!(hello(&c).await, server_says);
    assert_eq!(hello(&c).await, cached);
    clock.advance(Duration::from_secs(1));
    assert_eq!(hello(&c).await, cached, "2 s now");
    assert_eq!(s.logins(), 2);
}

#[tokio::test]
async fn tokens_survive_a_restart_and_work_on_another_replica() {
    // Two replicas sharing the key: a token from one is accepted by the other.
    let a = server().await;
    let pki = tls::test_pki();
    let logins_b = Arc::new(AtomicUsize::new(0));
    let addr_b = greeter::spawn(greeter::ServerConfig {
        basic_users: vec![("grace".into(), "hopper".into())],
        issue_tokens: true,
        token_keys: Some(TokenKeys::hs256("k1", S1).unwrap()),
        basic_verifications: Some(logins_b.clone()),
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        ..Default::default()
    })
    .await;
    let b = Server {
        port: addr_b.port(),
        ca_pem: pki.ca_pem,
        logins: logins_b,
        keys: a.keys.clone(),
    };
    let creds = BasicLogin::new("grace", "hopper").clock(ManualClock::now());
    assert_eq!(hello(&client(&a, &creds).await).await, ok("basic"));
    assert_eq!(hello(&client(&b, &creds).await).await, ok("token"));
    assert_eq!((a.logins(), b.logins()), (1, 0));
}
