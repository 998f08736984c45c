//! Adversarial review of the hardening pass (062722a..HEAD), through the public API.
//!
//! Each `finding_*` test FAILS on the reviewed code and passes once the defect it names
//! is fixed; each `withstood_*` test is an attack the code resisted (kept few).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use grpc_auth::authn::hmac::{HmacError, HmacKeyStore, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
use grpc_auth::authn::token_exchange::{SignedTokens, TokenExchange, TokenKeys};
use grpc_auth::authn::{
    ApiKeyAuthenticator, AuthRequest, AuthResult, Authenticator, BasicAuthenticator, FailureLimits,
    JwtAuthenticator, NoAuthenticator,
};
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::{BasicLogin, CredentialsLayer, HmacSigner};
use grpc_auth::{AuthError, AuthLayer, Principal, Secret};
use http::{Extensions, HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service, ServiceExt};

// ---------------------------------------------------------------------------------------
// Helpers (test-only)
// ---------------------------------------------------------------------------------------

const JWT_SECRET: &[u8] = b"adversarial-jwt-secret-0123456789abcdef";
const TOKEN_SECRET: &[u8] = b"adversarial-token-secret-0123456789abcd";
const PATH: &str = "/helloworld.Greeter/SayHello";
const NOW: u64 = 1_700_000_000;

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

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn run<A: Authenticator>(auth: &A, pairs: &[(&'static str, &str)]) -> AuthResult {
    let h = headers(pairs);
    auth.authenticate(&AuthRequest::new(PATH, &h)).await
}

/// A request from `peer`, as tonic's server reports it.
fn from_peer(peer: IpAddr) -> Extensions {
    let mut ext = Extensions::new();
    ext.insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(SocketAddr::new(peer, 40_000)),
    });
    ext
}

async fn run_from<A: Authenticator>(
    auth: &A,
    peer: IpAddr,
    pairs: &[(&'static str, &str)],
) -> AuthResult {
    let h = headers(pairs);
    let ext = from_peer(peer);
    auth.authenticate(&AuthRequest::new(PATH, &h).with_extensions(&ext))
        .await
}

fn code_and_message(r: &AuthResult) -> (Code, String) {
    match r {
        Ok(Some(a)) => (Code::Ok, a.principal.subject().to_owned()),
        Ok(None) => (Code::Ok, "absent".to_owned()),
        Err(e) => (e.code(), e.to_string()),
    }
}

/// An argon2id PHC string cheap enough for debug-build tests (4 MiB, 1 pass).
fn cheap_phc(password: &str) -> String {
    let params = argon2::Params::new(4096, 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(b"adversarial-salt").unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn hs256(claims: &serde_json::Value) -> String {
    install_jwt_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .unwrap()
}

fn jwt_auth() -> JwtAuthenticator<StaticKeys> {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, JWT_SECRET).unwrap(),
    ))
}

fn idp_token(sub: &str) -> String {
    hs256(&json!({ "sub": sub, "exp": 4_000_000_000u64 }))
}

fn api_keys() -> ApiKeyAuthenticator {
    ApiKeyAuthenticator::new().key("k-valid", "billing")
}

/// The inner gRPC service behind the layer: counts calls, answers OK.
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

fn hmac_headers(signer: &HmacSigner) -> HeaderMap {
    let mut h = HeaderMap::new();
    signer.sign(PATH, &mut h).unwrap();
    h
}

// =======================================================================================
// FINDINGS: each test fails on the reviewed code.
// =======================================================================================

/// Finding: `FailureLimiter::check` and `failed` are separate critical sections with
/// the argon2 check awaited in between, so N concurrent guesses all pass `check`
/// before the first failure is counted: per window a guesser gets about
/// `running + queued` (5 per CPU by default) guesses instead of `per_user`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_concurrent_wrong_guesses_are_held_to_the_per_user_failure_limit() {
    let auth = Arc::new(
        BasicAuthenticator::new()
            .hashed_user("bob", &cheap_phc("correct horse battery staple"))
            .unwrap()
            .max_concurrent_hashes(32, 32)
            .failure_limits(FailureLimits::new().per_user(3).per_peer(0)),
    );
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let auth = auth.clone();
            tokio::spawn(async move {
                let guess = basic("bob", &format!("guess-{i}"));
                run(&*auth, &[("authorization", &guess)]).await
            })
        })
        .collect();
    let (mut hashed, mut limited) = (0, 0);
    for g in guesses {
        match code_and_message(&g.await.unwrap()) {
            (Code::Unauthenticated, m) if m == "invalid username or password" => hashed += 1,
            (Code::ResourceExhausted, _) => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (hashed, limited),
        (3, 17),
        "per_user(3): only 3 of 20 concurrent guesses may be checked"
    );
}

/// Finding: the per-peer limit keys an IPv6 peer by its full /128, so one host with
/// an ordinary /64 presents as 2^64 peers and is never limited.
#[tokio::test]
async fn finding_the_per_peer_failure_limit_counts_an_ipv6_64_as_one_peer() {
    let auth = BasicAuthenticator::new()
        .user("ada", "lovelace")
        .failure_limits(FailureLimits::new().per_user(0).per_peer(3));
    for host in 1..=3u16 {
        let peer: IpAddr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
        let r = run_from(&auth, peer, &[("authorization", &basic("ada", "guess"))]).await;
        assert_eq!(
            code_and_message(&r),
            (Code::Unauthenticated, "invalid username or password".into())
        );
    }
    let next: IpAddr = "2001:db8:1:2::4".parse().unwrap();
    let r = run_from(&auth, next, &[("authorization", &basic("ada", "guess"))]).await;
    assert_eq!(
        code_and_message(&r),
        (
            Code::ResourceExhausted,
            "too many failed logins; retry later".into()
        ),
        "the 4th failure from the same /64 must be limited"
    );
}

/// Finding (same root, worse effect): each failure from a fresh /128 with a fresh user
/// name adds two live entries, so one /64 fills the table, after which every caller
/// not already tracked (every user with a clean record) is refused UNAVAILABLE for
/// the whole window: a legitimate user with the right password is locked out.
#[tokio::test]
async fn finding_one_ipv6_64_cannot_fill_the_failure_table_and_lock_out_other_users() {
    let auth = BasicAuthenticator::new()
        .user("ada", "lovelace")
        .failure_limits(FailureLimits::new().per_user(10).per_peer(5).capacity(20));
    for i in 0..30u16 {
        let peer: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
        let user = format!("u{i}");
        let _ = run_from(&auth, peer, &[("authorization", &basic(&user, "x"))]).await;
    }
    let ada: IpAddr = "192.0.2.7".parse().unwrap();
    let r = run_from(&auth, ada, &[("authorization", &basic("ada", "lovelace"))]).await;
    assert_eq!(
        code_and_message(&r),
        (Code::Ok, "ada".into()),
        "a /64 limited after 5 failures cannot fill a 20-entry table"
    );
}

/// Finding: `max_concurrent_hashes(running, 0)` ("no waiting room") refuses every
/// hashed login: `verify_hash` needs a `queued` permit even to take a free running
/// slot, and the `queued` semaphore has 0 permits.
#[tokio::test]
async fn finding_max_concurrent_hashes_without_a_queue_still_checks_a_password() {
    let auth = BasicAuthenticator::new()
        .hashed_user("bob", &cheap_phc("pw"))
        .unwrap()
        .max_concurrent_hashes(1, 0);
    let r = run(&auth, &[("authorization", &basic("bob", "pw"))]).await;
    assert_eq!(code_and_message(&r), (Code::Ok, "bob".into()));
}

/// Finding: clones share the replay cache but each computes an entry's expiry from
/// its own skew. An entry recorded by a strict clone (10 s) is purged after 10 s, and
/// a lax clone (300 s) then accepts the same signature again.
#[tokio::test]
async fn finding_a_signature_used_on_a_strict_clone_is_not_replayable_on_a_lax_clone() {
    let clock = ManualClock::at_unix(NOW);
    let signer = HmacSigner::new("svc-a", "s3cret").clock(clock.clone());
    let base = HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret")).clock(clock.clone());
    let strict = base.clone().max_skew(Duration::from_secs(10));
    let lax = base.clone();
    let h = hmac_headers(&signer);
    strict.verify("POST", PATH, &h).await.unwrap();
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        lax.verify("POST", PATH, &h).await.unwrap_err(),
        HmacError::Replay
    );
}

/// Finding: the replay cache purges by wall-clock `now`; a clock stepped forward (a
/// VM resume, an NTP step) purges every live entry, and once stepped back a captured
/// signature verifies again.
#[tokio::test]
async fn finding_a_replay_is_refused_after_the_clock_steps_forward_and_back() {
    let clock = ManualClock::at_unix(NOW);
    let signer = HmacSigner::new("svc-a", "s3cret").clock(clock.clone());
    let v = HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret")).clock(clock.clone());
    let captured = hmac_headers(&signer);
    v.verify("POST", PATH, &captured).await.unwrap();

    clock.set_unix(NOW + 1_000);
    let later = hmac_headers(&signer);
    v.verify("POST", PATH, &later).await.unwrap(); // purges the captured entry

    clock.set_unix(NOW + 10);
    assert_eq!(
        v.verify("POST", PATH, &captured).await.unwrap_err(),
        HmacError::Replay
    );
}

/// A key store that looks ids up case-insensitively (a SQL column with a
/// case-insensitive collation, the default in MySQL).
struct CaseInsensitiveKeys(StaticHmacKeys);

impl HmacKeyStore for CaseInsensitiveKeys {
    async fn secret(&self, key_id: &str) -> Result<Option<Secret>, HmacError> {
        self.0.secret(&key_id.to_ascii_lowercase()).await
    }
}

/// Finding: the replay cache keys on `keyId` as sent plus the MAC, but `keyId` is not
/// signed. With a store that maps several spellings to one secret, a captured request
/// replays once per spelling (and authenticates as the spelling sent).
#[tokio::test]
async fn finding_a_replay_under_another_spelling_of_the_key_id_is_refused() {
    let v = HmacVerifier::new(CaseInsensitiveKeys(
        StaticHmacKeys::new().key("svc-a", "s3cret"),
    ));
    let signer = HmacSigner::new("svc-a", "s3cret");
    let mut h = hmac_headers(&signer);
    v.verify("POST", PATH, &h).await.unwrap();
    let respelled = h["authorization"]
        .to_str()
        .unwrap()
        .replace("keyId=\"svc-a\"", "keyId=\"SVC-A\"");
    h.insert("authorization", respelled.parse().unwrap());
    assert_eq!(
        v.verify("POST", PATH, &h).await.unwrap_err(),
        HmacError::Replay
    );
}

/// Finding: AnyOf only judges entries some scheme reads as its own. `authorization`
/// that every scheme reports absent rides along an accepted API key: here a WRONG
/// Basic password for a configured user (TokenExchange in login-only mode reports
/// Basic absent off its login method), never checked nor counted, and the call runs.
/// The layer already refuses an unclaimed `authorization` when nothing accepts
/// ("unsupported authorization scheme"); it does not when something else accepts.
#[tokio::test]
async fn finding_an_unjudged_authorization_entry_does_not_ride_along_a_valid_api_key() {
    let exchange = TokenExchange::new(
        BasicAuthenticator::new().user("ada", "lovelace"),
        SignedTokens::new(TokenKeys::hs256("k1", TOKEN_SECRET).unwrap(), "svc"),
    )
    .login_method("/svc.Auth/Login");
    let inner = Inner::default();
    let svc = AuthLayer::new(exchange.or(api_keys())).layer(inner.clone());
    let req = Request::builder()
        .uri("http://localhost/svc.Data/Get")
        .header("authorization", basic("ada", "WRONG-PASSWORD"))
        .header("x-api-key", "k-valid")
        .body(tonic::body::Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(grpc_code(&res), Code::Unauthenticated);
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
}

/// A custom scheme written exactly as the README's "Your own check" bullet says
/// (`Ok(Some(principal.into()))`): introspects opaque bearers, leaves others alone.
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

/// Finding (regression): since AnyOf re-judges after acceptance, a custom scheme
/// that does not name its entry with `with_credential` leaves it visible, and the JWT
/// scheme after it refuses the same (valid, opaque) bearer as "malformed token".
/// Every such composition broke silently on upgrade.
#[tokio::test]
async fn finding_a_custom_scheme_written_as_the_readme_shows_still_composes_before_jwt() {
    let auth = Introspection.or(jwt_auth());
    let r = run(&auth, &[("authorization", &bearer("opq_valid"))]).await;
    assert_eq!(code_and_message(&r), (Code::Ok, "ada".into()));
    // The JWT path is unaffected.
    let r = run(&auth, &[("authorization", &bearer(&idp_token("bob")))]).await;
    assert_eq!(code_and_message(&r), (Code::Ok, "bob".into()));
}

/// Finding: `ResponseFuture` returns the rejection from the `Authorizing` state
/// without leaving it, so a second poll resumes the finished `authorize` future and
/// panics ("`async fn` resumed after completion"). The `Rejected` state was made
/// re-poll safe; this path was not.
#[tokio::test]
async fn finding_a_rejected_response_future_polled_again_does_not_panic() {
    let mut svc = AuthLayer::new(api_keys()).layer(Inner::default());
    let req = Request::builder()
        .uri(format!("http://localhost{PATH}"))
        .body(tonic::body::Body::empty())
        .unwrap();
    let fut = ServiceExt::<Request<tonic::body::Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(req);
    let mut fut = Box::pin(fut);
    let res = (&mut fut).await.unwrap();
    assert_eq!(grpc_code(&res), Code::Unauthenticated);
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        fut.as_mut().poll(&mut cx).is_ready()
    }));
    assert!(again.is_ok(), "polling a completed rejection panicked");
}

/// A request body for the drain test: `Stalled` never ends (a client that opens a
/// stream and never finishes it); `Victim` is one small DATA frame, then the end,
/// and records that it was read to the end.
enum TestBody {
    Stalled,
    Victim {
        sent: bool,
        read_to_end: Arc<AtomicBool>,
    },
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Stalled => Poll::Pending,
            TestBody::Victim { sent, read_to_end } => {
                if !*sent {
                    *sent = true;
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"hello")))))
                } else {
                    read_to_end.store(true, Ordering::SeqCst);
                    Poll::Ready(None)
                }
            }
        }
    }
}

/// Finding: the rejected-body drain has ONE process-wide budget (1024 bodies, 2 s
/// each). One peer that opens rejected streams and never ends them holds every slot,
/// re-arming every 2 s; every other client's rejected bodies are then dropped unread,
/// i.e. the h2 reset / `GOAWAY ENHANCE_YOUR_CALM` failure the drain was added to stop
/// comes back for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_one_peer_cannot_take_every_rejected_body_drain_slot() {
    let svc = AuthLayer::new(api_keys()).layer(Inner::default());
    let attacker: IpAddr = "198.51.100.1".parse().unwrap();
    let victim: IpAddr = "192.0.2.7".parse().unwrap();
    let request = |body: TestBody, peer: IpAddr| {
        let mut req = Request::builder()
            .uri(format!("http://localhost{PATH}"))
            .body(body)
            .unwrap();
        *req.extensions_mut() = from_peer(peer);
        req
    };
    let victim_body_is_drained =
        |svc: grpc_auth::layer::AuthService<Inner, ApiKeyAuthenticator>| async move {
            let read_to_end = Arc::new(AtomicBool::new(false));
            let body = TestBody::Victim {
                sent: false,
                read_to_end: read_to_end.clone(),
            };
            let res = svc.oneshot(request(body, victim)).await.unwrap();
            assert_eq!(grpc_code(&res), Code::Unauthenticated);
            tokio::time::sleep(Duration::from_millis(300)).await;
            read_to_end.load(Ordering::SeqCst)
        };
    // Control: with the slots free, the victim's rejected body is read to its end.
    assert!(victim_body_is_drained(svc.clone()).await);
    for _ in 0..1_100 {
        let res = svc
            .clone()
            .oneshot(request(TestBody::Stalled, attacker))
            .await
            .unwrap();
        assert_eq!(grpc_code(&res), Code::Unauthenticated);
    }
    assert!(
        victim_body_is_drained(svc.clone()).await,
        "another client's rejected body was dropped unread"
    );
}

// =======================================================================================
// WITHSTOOD: attacks the code resisted.
// =======================================================================================

/// AnyOf: a bad, case-changed or repeated API key beside a valid bearer is refused in
/// nested, boxed, and-inside-or and token-exchange shapes; header-name case is moot
/// (HeaderMap lower-cases).
#[tokio::test]
async fn withstood_a_bad_api_key_beside_a_valid_bearer_is_refused_in_every_shape() {
    let exchange = || {
        TokenExchange::new(
            BasicAuthenticator::new().user("ada", "lovelace"),
            SignedTokens::new(TokenKeys::hs256("k1", TOKEN_SECRET).unwrap(), "svc"),
        )
    };
    let shapes = [
        ("jwt|key", jwt_auth().or(api_keys()).boxed()),
        ("key|jwt", api_keys().or(jwt_auth()).boxed()),
        (
            "(jwt|none)|key",
            jwt_auth().or(NoAuthenticator).or(api_keys()).boxed(),
        ),
        (
            "jwt|(none|key)",
            jwt_auth().or(NoAuthenticator.or(api_keys())).boxed(),
        ),
        ("boxed", jwt_auth().boxed().or(api_keys().boxed()).boxed()),
        (
            "(jwt&x-b)|key",
            jwt_auth()
                .and(
                    ApiKeyAuthenticator::new()
                        .header(http::HeaderName::from_static("x-b"))
                        .key("kb", "b"),
                )
                .or(api_keys())
                .boxed(),
        ),
        (
            "exchange|jwt|key",
            exchange().or(jwt_auth()).or(api_keys()).boxed(),
        ),
    ];
    let token = idp_token("bob");
    for (name, auth) in &shapes {
        for bad in [&["k-wrong"][..], &["K-VALID"], &["k-valid", "k-valid"]] {
            let mut h = headers(&[("authorization", &bearer(&token)), ("x-b", "kb")]);
            for k in bad {
                h.append("X-Api-Key", k.parse::<HeaderValue>().unwrap());
            }
            let r = auth.authenticate(&AuthRequest::new(PATH, &h)).await;
            assert_eq!(
                r.as_ref().map(|_| ()).unwrap_err().code(),
                Code::Unauthenticated,
                "{name} with {bad:?}"
            );
        }
    }
    // exchange.or(jwt) still accepts both kinds of bearer (no valid credential refused).
    let exchange_or_jwt = exchange().or(jwt_auth());
    let ours = exchange()
        .tokens()
        .sign(&Principal::new("ada", "basic"))
        .unwrap();
    for (t, who) in [(ours, "ada"), (token, "bob")] {
        let r = run(&exchange_or_jwt, &[("authorization", &bearer(&t))]).await;
        assert_eq!(code_and_message(&r), (Code::Ok, who.into()));
    }
}

/// JWT: a claim repeated under an escaped spelling, and a signature whose unused
/// trailing base64 bits are set (a second spelling of one token), are refused.
#[tokio::test]
async fn withstood_jwt_escaped_duplicate_claims_and_non_canonical_signatures() {
    let auth = jwt_auth();
    install_jwt_provider();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"ada","s\u0075b":"admin","exp":4000000000}"#);
    let signing_input = format!("{header}.{payload}");
    let sig = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(JWT_SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    let dup = format!("{signing_input}.{sig}");
    let r = run(&auth, &[("authorization", &bearer(&dup))]).await;
    assert_eq!(code_and_message(&r).0, Code::Unauthenticated);

    // A valid token, its signature's last character changed in the 2 unused bits only.
    let good = idp_token("ada");
    let (msg, sig) = good.rsplit_once('.').unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.as_bytes()[sig.len() - 1];
    let idx = alphabet.iter().position(|c| *c == last).unwrap();
    assert_eq!(
        idx & 0b11,
        0,
        "a canonical 32-byte signature leaves 2 bits unused"
    );
    let twin_char = alphabet[idx | 0b11] as char;
    let twin = format!("{msg}.{}{twin_char}", &sig[..sig.len() - 1]);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&twin[msg.len() + 1..]).ok(),
        None,
        "the strict decoder sees the twin as non-canonical"
    );
    let r = run(&auth, &[("authorization", &bearer(&twin))]).await;
    assert_eq!(code_and_message(&r).0, Code::Unauthenticated);
    let r = run(&auth, &[("authorization", &bearer(&good))]).await;
    assert_eq!(code_and_message(&r), (Code::Ok, "ada".into()));
}

/// HMAC: the URL-encoded spelling of a used signature is the same replay entry, and a
/// signature dated up to the skew in the future stays remembered until date + skew.
#[tokio::test]
async fn withstood_hmac_respelled_and_future_dated_replays() {
    let clock = ManualClock::at_unix(NOW);
    let v = HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret")).clock(clock.clone());
    // Signed plain, replayed URL-encoded.
    let signer = HmacSigner::new("svc-a", "s3cret")
        .plain_base64()
        .clock(clock.clone());
    let mut h = hmac_headers(&signer);
    v.verify("POST", PATH, &h).await.unwrap();
    let auth = h["authorization"].to_str().unwrap().to_owned();
    let (head, sig) = auth.rsplit_once("signature=\"").unwrap();
    let sig = sig.trim_end_matches('"');
    let encoded = sig
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    assert_ne!(encoded, sig);
    h.insert(
        "authorization",
        format!("{head}signature=\"{encoded}\"").parse().unwrap(),
    );
    assert_eq!(
        v.verify("POST", PATH, &h).await.unwrap_err(),
        HmacError::Replay
    );

    // Dated 299 s ahead, replayed 598 s later (still inside the window): refused.
    let ahead = ManualClock::at_unix(NOW + 299);
    let h = hmac_headers(&HmacSigner::new("svc-a", "s3cret").clock(ahead));
    v.verify("POST", PATH, &h).await.unwrap();
    clock.set_unix(NOW + 598);
    assert_eq!(
        v.verify("POST", PATH, &h).await.unwrap_err(),
        HmacError::Replay
    );
}

/// Basic: a check whose call is cancelled mid-hash keeps its slot only until argon2
/// returns (no leaked permit), and checks outside any tokio runtime still work.
#[test]
fn withstood_argon2_slots_survive_cancellation_and_work_outside_a_runtime() {
    let auth = BasicAuthenticator::new()
        .hashed_user("bob", &cheap_phc("pw"))
        .unwrap()
        .no_failure_limits()
        .cache(Duration::from_secs(60), 0)
        .max_concurrent_hashes(1, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..5 {
            let a = auth.clone();
            let t =
                tokio::spawn(
                    async move { run(&a, &[("authorization", &basic("bob", "wrong"))]).await },
                );
            tokio::time::sleep(Duration::from_millis(2)).await;
            t.abort();
        }
        // Every permit comes back: sequential checks are never refused as busy.
        for _ in 0..3 {
            let mut r = run(&auth, &[("authorization", &basic("bob", "pw"))]).await;
            for _ in 0..100 {
                if !matches!(&r, Err(e) if e.code() == Code::Unavailable) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                r = run(&auth, &[("authorization", &basic("bob", "pw"))]).await;
            }
            assert_eq!(code_and_message(&r), (Code::Ok, "bob".into()));
        }
    });
    drop(rt);
    // No runtime at all: argon2 runs inline.
    let r = block_on_without_tokio(run(&auth, &[("authorization", &basic("bob", "pw"))]));
    assert_eq!(code_and_message(&r), (Code::Ok, "bob".into()));
}

fn block_on_without_tokio<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// The mock channel for the login test: Basic calls are logins (the first one hangs
/// until cancelled, later ones answer with a bearer); bearer calls answer OK.
#[derive(Clone, Default)]
struct LoginServer {
    logins: Arc<AtomicUsize>,
    logins_in_flight: Arc<AtomicUsize>,
    max_logins_in_flight: Arc<AtomicUsize>,
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Service<Request<tonic::body::Body>> for LoginServer {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let is_login = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes().starts_with(b"Basic "));
        let this = self.clone();
        Box::pin(async move {
            let mut res = Response::new(tonic::body::Body::empty());
            if is_login {
                let n = this.logins.fetch_add(1, Ordering::SeqCst) + 1;
                let now = this.logins_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                this.max_logins_in_flight.fetch_max(now, Ordering::SeqCst);
                let _guard = InFlight(this.logins_in_flight.clone());
                if n == 1 {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                res.headers_mut()
                    .insert("authorization", "Bearer opaque-token".parse().unwrap());
            }
            Ok(res)
        })
    }
}

/// BasicLogin: the login call is cancelled while another call waits for it; the
/// waiter is released, logs in itself, and at no time are two logins in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withstood_basic_login_cancelled_login_releases_waiters_single_flight() {
    let server = LoginServer::default();
    let layer = CredentialsLayer::new(
        BasicLogin::new("ada", "lovelace"),
        "https://greeter.example".parse().unwrap(),
    );
    let svc = layer.layer(server.clone());
    let call = |svc: grpc_auth::credentials::CredentialsService<LoginServer, BasicLogin>| async move {
        let req = Request::builder()
            .uri(format!("https://greeter.example{PATH}"))
            .body(tonic::body::Body::empty())
            .unwrap();
        svc.oneshot(req).await
    };
    let login = tokio::spawn(call(svc.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.logins.load(Ordering::SeqCst), 1);
    let waiters: Vec<_> = (0..4).map(|_| tokio::spawn(call(svc.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    login.abort();
    for w in waiters {
        let res = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a waiter hung")
            .unwrap()
            .unwrap();
        assert_eq!(grpc_code(&res), Code::Ok);
    }
    assert_eq!(server.logins.load(Ordering::SeqCst), 2);
    assert_eq!(server.max_logins_in_flight.load(Ordering::SeqCst), 1);
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
