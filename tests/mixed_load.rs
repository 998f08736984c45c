//! Mixed concurrent load: one real tonic server on 127.0.0.1:0 over TLS with every
//! scheme on (JWT, Basic, API key, HMAC), driven by 64 concurrent callers for a bounded
//! time. Each call takes the next case of a fixed list (valid and invalid calls of every
//! kind), knows its expected status code and message, or for a success the principal
//! the greeter echoes ("Hello Ada, authenticated as <subject> via <scheme>"), and every
//! call whose outcome differs is counted. The count must be 0 and every case must run.
//!
//! ```text
//! cargo test --test mixed_load -- --nocapture              # 2 s (CI's short form)
//! MIXED_LOAD_SECS=60 cargo test --release --test mixed_load -- --nocapture
//! MIXED_LOAD_CASES=jwtvalid,apikeybad cargo test --test mixed_load -- --nocapture
//! ```
//!
//! `HmacReplayed` counts both calls of each pair (the first use must pass, the second
//! is the replay).

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use greeter::MyGreeter;
use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::{ApiKeyAuthenticator, BasicAuthenticator};
use grpc_auth::credentials::HmacSigner;
use grpc_auth::{AuthLayer, Authenticator, Policy};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

const CALLERS: usize = 64;
const SECRET: &[u8] = b"mixed-load-secret-0123456789abcdef0123";
const OTHER_SECRET: &[u8] = b"not-the-server-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const PATH: &str = "/helloworld.Greeter/SayHello";
/// Distinct valid tokens (subjects `user-0` ..), so a principal served to the wrong
/// call would show.
const VALID_TOKENS: usize = 32;

/// One kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    NoCredentials,
    JwtValid,
    JwtExpired,
    JwtWrongAudience,
    JwtBadSignature,
    JwtPaddedSignature,
    JwtPaddedPayloadSigned,
    JwtCrit,
    BasicGood,
    BasicBadPassword,
    BasicUnknownUser,
    ApiKeyGood,
    ApiKeyBad,
    HmacFresh,
    HmacReplayed,
    HmacWrongSecret,
    BearerPlusBadApiKey,
    BearerPlusTwoApiKeys,
}

const CASES: [Case; 18] = [
    Case::NoCredentials,
    Case::JwtValid,
    Case::JwtExpired,
    Case::JwtWrongAudience,
    Case::JwtBadSignature,
    Case::JwtPaddedSignature,
    Case::JwtPaddedPayloadSigned,
    Case::JwtCrit,
    Case::BasicGood,
    Case::BasicBadPassword,
    Case::BasicUnknownUser,
    Case::ApiKeyGood,
    Case::ApiKeyBad,
    Case::HmacFresh,
    Case::HmacReplayed,
    Case::HmacWrongSecret,
    Case::BearerPlusBadApiKey,
    Case::BearerPlusTwoApiKeys,
];

/// What a call must give.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// OK, with the principal's subject and scheme in the greeting.
    Ok {
        subject: String,
        scheme: &'static str,
    },
    /// This code; and this message when given.
    Err(Code, Option<&'static str>),
}

fn unauthenticated(message: &'static str) -> Expected {
    Expected::Err(Code::Unauthenticated, Some(message))
}

fn ok(subject: impl Into<String>, scheme: &'static str) -> Expected {
    Expected::Ok {
        subject: subject.into(),
        scheme,
    }
}

/// A call's outcome, as compared.
type Outcome = Result<String, (Code, String)>;

fn matches(expected: &Expected, got: &Outcome) -> bool {
    match (expected, got) {
        (Expected::Ok { subject, scheme }, Ok(message)) => {
            *message == format!("Hello Ada, authenticated as {subject} via {scheme}")
        }
        (Expected::Err(code, message), Err((c, m))) => {
            code == c && message.is_none_or(|message| message == m)
        }
        _ => false,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn claims(sub: &str, aud: &str, exp: u64) -> Value {
    json!({ "sub": sub, "iss": ISS, "aud": aud, "iat": now(), "exp": exp })
}

fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
    install_jwt_provider();
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).expect("sign HS256")
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    sign(&Header::new(Algorithm::HS256), claims, secret)
}

/// The tokens and keys every caller draws from.
struct Fixtures {
    valid: Vec<String>,
    expired: String,
    wrong_audience: String,
    bad_signature: String,
    padded_signature: String,
    padded_payload: String,
    crit: String,
}

impl Fixtures {
    fn new() -> Self {
        let exp = now() + 3600;
        let valid: Vec<String> = (0..VALID_TOKENS)
            .map(|i| hs256(&claims(&format!("user-{i}"), AUD, exp), SECRET))
            .collect();
        let good = valid.first().cloned().unwrap_or_default();

        // The valid token's signature re-encoded with `=` padding.
        let (message, signature) = good.rsplit_once('.').expect("three segments");
        let sig = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
        let padded_signature = format!("{message}.{}", URL_SAFE.encode(sig));
        assert!(padded_signature.ends_with('='));

        // A payload segment with `=` padding, the whole signed validly: the signature
        // covers the padded text, so only the encoding rule can refuse it.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let mut payload = claims("padded", AUD, exp).to_string();
        while payload.len().is_multiple_of(3) {
            payload.insert(1, ' ');
        }
        let message = format!("{header}.{}", URL_SAFE.encode(payload.as_bytes()));
        assert!(message.ends_with('='));
        install_jwt_provider();
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .expect("sign");
        let padded_payload = format!("{message}.{sig}");

        let mut crit = Header::new(Algorithm::HS256);
        crit.crit = Some(vec!["b64".to_owned()]);
        let crit = sign(&crit, &claims("crit", AUD, exp), SECRET);

        Self {
            valid,
            expired: hs256(&claims("expired", AUD, now() - 3600), SECRET),
            wrong_audience: hs256(&claims("wrong-aud", "someone-else", exp), SECRET),
            bad_signature: hs256(&claims("forged", AUD, exp), OTHER_SECRET),
            padded_signature,
            padded_payload,
            crit,
        }
    }
}

fn value(v: &str) -> HeaderValue {
    HeaderValue::try_from(v).expect("ASCII metadata")
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        value(&format!("Bearer {token}")),
    );
    h
}

fn basic(user: &str, password: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let creds = STANDARD.encode(format!("{user}:{password}"));
    h.insert(
        http::header::AUTHORIZATION,
        value(&format!("Basic {creds}")),
    );
    h
}

fn api_keys(keys: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for k in keys {
        h.append(HeaderName::from_static("x-api-key"), value(k));
    }
    h
}

fn hmac(signer: &HmacSigner) -> HeaderMap {
    let mut h = HeaderMap::new();
    signer.sign(PATH, &mut h).expect("sign");
    h
}

async fn call(channel: &Channel, metadata: HeaderMap) -> Outcome {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    *req.metadata_mut() = MetadataMap::from_headers(metadata);
    let mut client = GreeterClient::new(channel.clone());
    match tokio::time::timeout(Duration::from_secs(20), client.say_hello(req)).await {
        Ok(Ok(reply)) => Ok(reply.into_inner().message),
        Ok(Err(status)) => Err((status.code(), status.message().to_owned())),
        Err(_) => Err((Code::DeadlineExceeded, "client timeout (20 s)".to_owned())),
    }
}

/// Calls made and mismatches, per case.
#[derive(Debug, Default, Clone)]
struct Tally {
    calls: u64,
    mismatches: u64,
    /// The first few mismatches: what was expected, what came back.
    samples: Vec<String>,
}

impl Tally {
    fn record(&mut self, expected: &Expected, got: &Outcome) {
        self.calls += 1;
        if !matches(expected, got) {
            self.mismatches += 1;
            if self.samples.len() < 3 {
                self.samples
                    .push(format!("expected {expected:?}, got {got:?}"));
            }
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.mismatches += other.mismatches;
        for s in &other.samples {
            if self.samples.len() < 3 {
                self.samples.push(s.clone());
            }
        }
    }
}

/// One caller: case after case, round-robin from its own offset, until `deadline`.
async fn caller(
    id: usize,
    channel: Channel,
    fx: std::sync::Arc<Fixtures>,
    cases: std::sync::Arc<[Case]>,
    deadline: Instant,
) -> BTreeMap<Case, Tally> {
    let signer = HmacSigner::new("svc-a", "s3cret-a");
    let wrong_signer = HmacSigner::new("svc-a", "not-the-secret");
    let mut tallies: BTreeMap<Case, Tally> = BTreeMap::new();
    let mut n = id;
    while Instant::now() < deadline {
        let case = cases[n % cases.len()];
        let valid_index = (n / cases.len()) % VALID_TOKENS;
        let valid = &fx.valid[valid_index];
        let valid_subject = format!("user-{valid_index}");
        n += 1;
        let tally = tallies.entry(case).or_default();
        let (metadata, expected) = match case {
            Case::NoCredentials => (HeaderMap::new(), Expected::Err(Code::Unauthenticated, None)),
            Case::JwtValid => (bearer(valid), ok(valid_subject, "jwt")),
            Case::JwtExpired => (bearer(&fx.expired), unauthenticated("token expired")),
            Case::JwtWrongAudience => (
                bearer(&fx.wrong_audience),
                unauthenticated("invalid token audience"),
            ),
            Case::JwtBadSignature => (
                bearer(&fx.bad_signature),
                unauthenticated("invalid token signature"),
            ),
            Case::JwtPaddedSignature => (
                bearer(&fx.padded_signature),
                unauthenticated("malformed token"),
            ),
            Case::JwtPaddedPayloadSigned => (
                bearer(&fx.padded_payload),
                unauthenticated("malformed token"),
            ),
            Case::JwtCrit => (
                bearer(&fx.crit),
                unauthenticated("token has unsupported critical header parameters"),
            ),
            Case::BasicGood => (basic("grace", "hopper"), ok("grace", "basic")),
            Case::BasicBadPassword => (
                basic("grace", "wrong"),
                unauthenticated("invalid username or password"),
            ),
            Case::BasicUnknownUser => (
                basic("mallory", "hopper"),
                unauthenticated("invalid username or password"),
            ),
            Case::ApiKeyGood => (api_keys(&["k-123"]), ok("billing", "api-key")),
            Case::ApiKeyBad => (api_keys(&["k-999"]), unauthenticated("invalid API key")),
            Case::HmacFresh => (hmac(&signer), ok("svc-a", "hmac")),
            Case::HmacReplayed => {
                // The first use is a fresh call and must pass; the same headers again
                // are the replay this case is about.
                let h = hmac(&signer);
                let first = call(&channel, h.clone()).await;
                tally.record(&ok("svc-a", "hmac"), &first);
                (h, unauthenticated("HMAC signature already used (replay)"))
            }
            Case::HmacWrongSecret => (
                hmac(&wrong_signer),
                unauthenticated("HMAC signature mismatch"),
            ),
            Case::BearerPlusBadApiKey => {
                let mut h = bearer(valid);
                h.extend(api_keys(&["k-999"]));
                (h, unauthenticated("invalid API key"))
            }
            Case::BearerPlusTwoApiKeys => {
                let mut h = bearer(valid);
                h.extend(api_keys(&["k-123", "k-123"]));
                (h, unauthenticated("multiple x-api-key metadata entries"))
            }
        };
        let got = call(&channel, metadata).await;
        tally.record(&expected, &got);
    }
    tallies
}

/// The server: every scheme on, Basic with plaintext users and no failed-login limits
/// (the bad-Basic cases would trip them), a replay cache sized for long local runs.
async fn spawn_server(cert_pem: &str, key_pem: &str) -> u16 {
    let jwt = JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, SECRET).expect("HS256 key"),
    ))
    .issuer(ISS)
    .audience(AUD);
    let basic = BasicAuthenticator::new()
        .user("grace", "hopper")
        .no_failure_limits();
    let api_key = ApiKeyAuthenticator::new().key("k-123", "billing");
    let hmac = HmacAuthenticator::new(
        HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret-a"))
            .replay_cache_size(1 << 20),
    );
    let layer = AuthLayer::new(jwt.or(basic).or(api_key).or(hmac))
        .policy(Policy::new().public("/grpc.health.v1.Health/*"));

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .expect("server TLS")
        .layer(layer)
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            eprintln!("server failed: {e}");
        }
    });
    port
}

/// The cases to run: all, or those whose names contain one of the comma-separated
/// words in `MIXED_LOAD_CASES` (ASCII case ignored), for narrowing a failure down.
fn selected_cases() -> Vec<Case> {
    let Ok(filter) = std::env::var("MIXED_LOAD_CASES") else {
        return CASES.to_vec();
    };
    let words: Vec<String> = filter
        .split(',')
        .map(|w| w.trim().to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    CASES
        .into_iter()
        .filter(|c| {
            let name = format!("{c:?}").to_ascii_lowercase();
            words.iter().any(|w| name.contains(w.as_str()))
        })
        .collect()
}

fn run_secs() -> f64 {
    std::env::var("MIXED_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_valid_and_invalid_calls_under_concurrent_load() {
    let pki = tls::test_pki();
    let port = spawn_server(&pki.cert_pem, &pki.key_pem).await;
    let channel = tls::channel(port, &pki.ca_pem).await;
    let fixtures = std::sync::Arc::new(Fixtures::new());
    let cases: std::sync::Arc<[Case]> = selected_cases().into();
    assert!(!cases.is_empty(), "MIXED_LOAD_CASES matches no case");

    let secs = run_secs();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..CALLERS)
        .map(|id| {
            tokio::spawn(caller(
                id,
                channel.clone(),
                fixtures.clone(),
                cases.clone(),
                deadline,
            ))
        })
        .collect();
    let mut totals: BTreeMap<Case, Tally> = cases.iter().map(|c| (*c, Tally::default())).collect();
    for task in tasks {
        let tallies = task.await.expect("caller task");
        for (case, tally) in &tallies {
            totals.entry(*case).or_default().merge(tally);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let calls: u64 = totals.values().map(|t| t.calls).sum();
    let mismatches: u64 = totals.values().map(|t| t.mismatches).sum();
    println!(
        "mixed load: {CALLERS} callers, {secs} s requested, {elapsed:.2} s taken, \
         {calls} calls ({:.0}/s), {mismatches} mismatches",
        calls as f64 / elapsed
    );
    println!("{:<26} {:>8} {:>10}", "case", "calls", "mismatches");
    for (case, t) in &totals {
        println!(
            "{:<26} {:>8} {:>10}",
            format!("{case:?}"),
            t.calls,
            t.mismatches
        );
        for s in &t.samples {
            println!("    {s}");
        }
    }

    let not_run: Vec<_> = totals
        .iter()
        .filter(|(_, t)| t.calls == 0)
        .map(|(c, _)| c)
        .collect();
    assert!(not_run.is_empty(), "cases that never ran: {not_run:?}");
    let failing: Vec<_> = totals
        .iter()
        .filter(|(_, t)| t.mismatches > 0)
        .map(|(c, t)| format!("{c:?}: {} of {} ({:?})", t.mismatches, t.calls, t.samples))
        .collect();
    assert_eq!(
        mismatches,
        0,
        "calls whose outcome differs from the expected code and principal:\n{}",
        failing.join("\n")
    );
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
