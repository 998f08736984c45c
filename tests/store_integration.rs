//! The store-backed protections end to end, in process, without Redis: HMAC replay,
//! failed-login limits, JWT revocations and opaque exchange tokens on a `MemoryStore`
//! shared by several authenticators ("replicas"), and on stores that cannot answer
//! (a `DownStore`, and a `Switch` that delegates to a `MemoryStore` until it is turned
//! off). Calls go through the real `AuthLayer` over a tower service that hands the
//! principal back; every case asserts the exact gRPC code and message, or the
//! principal's subject and scheme.

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
use grpc_auth::authn::revocation::Revocations;
use grpc_auth::authn::token_exchange::{
    OpaqueTokens, StoreTokens, TokenDigest, TokenExchange, TokenIssuer,
};
use grpc_auth::authn::{ApiKeyAuthenticator, BasicAuthenticator, FailureLimits, JwtAuthenticator};
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::HmacSigner;
use grpc_auth::store::{Counted, Key, Kind, MemoryStore, Store, StoreError, StoreFuture};
use grpc_auth::{AuthLayer, Authenticator, Principal, Secret};
use http::{HeaderMap, HeaderValue, Request, Response};
use serde_json::json;
use tonic::Code;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

const METHOD: &str = "/helloworld.Greeter/SayHello";
const HMAC_SECRET: &str = "store-integration-hmac-secret";
const JWT_SECRET: &str = "store-integration-jwt-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const DOWN: &str = "test store unavailable: down";

// ---------------------------------------------------------------------------------
// Stores that cannot answer.
// ---------------------------------------------------------------------------------

/// Every method fails: `test store unavailable: down`.
#[derive(Debug, Clone, Copy, Default)]
struct DownStore;

fn down<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Err(StoreError::unavailable(
        "test", "down",
    ))))
}

impl Store for DownStore {
    fn name(&self) -> &'static str {
        "test"
    }
    fn insert_new<'a>(&'a self, _: Key, _: &'a [u8], _: Option<Duration>) -> StoreFuture<'a, bool> {
        down()
    }
    fn put<'a>(&'a self, _: Key, _: &'a [u8], _: Option<Duration>) -> StoreFuture<'a, ()> {
        down()
    }
    fn get<'a>(&'a self, _: &'a [Key]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        down()
    }
    fn remove(&self, _: Key) -> StoreFuture<'_, bool> {
        down()
    }
    fn count<'a>(&'a self, _: &'a [(Key, u32)], _: Duration) -> StoreFuture<'a, Counted> {
        down()
    }
    fn uncount<'a>(&'a self, _: &'a [Key], _: &'a [Key]) -> StoreFuture<'a, ()> {
        down()
    }
}

/// A `MemoryStore` behind a switch: while `down`, every method fails like
/// [`DownStore`]. Counts the calls made to it (down or up). Clones share it all.
#[derive(Debug, Clone)]
struct Switch {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Switch {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(1_000),
            down: Arc::default(),
            calls: Arc::default(),
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call; whether it must fail.
    fn is_down(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.down.load(Ordering::SeqCst)
    }
}

impl Store for Switch {
    fn name(&self) -> &'static str {
        "test"
    }
    fn insert_new<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        if self.is_down() {
            return down();
        }
        self.inner.insert_new(key, value, ttl)
    }
    fn put<'a>(&'a self, key: Key, value: &'a [u8], ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        if self.is_down() {
            return down();
        }
        self.inner.put(key, value, ttl)
    }
    fn get<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        if self.is_down() {
            return down();
        }
        self.inner.get(keys)
    }
    fn remove(&self, key: Key) -> StoreFuture<'_, bool> {
        if self.is_down() {
            return down();
        }
        self.inner.remove(key)
    }
    fn count<'a>(
        &'a self,
        counters: &'a [(Key, u32)],
        window: Duration,
    ) -> StoreFuture<'a, Counted> {
        if self.is_down() {
            return down();
        }
        self.inner.count(counters, window)
    }
    fn uncount<'a>(&'a self, one: &'a [Key], all: &'a [Key]) -> StoreFuture<'a, ()> {
        if self.is_down() {
            return down();
        }
        self.inner.uncount(one, all)
    }
}

// ---------------------------------------------------------------------------------
// The layer over a tower service that hands the principal back.
// ---------------------------------------------------------------------------------

/// The handler: puts the principal it was given in the response extensions.
#[derive(Clone, Default)]
struct Echo;

impl Service<Request<Body>> for Echo {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let mut res = Response::new(Body::empty());
        if let Some(p) = req.extensions().get::<Principal>() {
            res.extensions_mut().insert(p.clone());
        }
        std::future::ready(Ok(res))
    }
}

/// What a call came to: the principal the handler saw, or the status.
struct Reply {
    outcome: Result<Principal, (Code, String)>,
    headers: HeaderMap,
}

impl Reply {
    /// Subject and scheme, or code and message.
    fn who(&self) -> Result<(String, String), (Code, String)> {
        self.outcome
            .as_ref()
            .map(|p| (p.subject().to_owned(), p.scheme().to_owned()))
            .map_err(Clone::clone)
    }

    fn principal(&self) -> &Principal {
        match &self.outcome {
            Ok(p) => p,
            Err(e) => panic!("refused: {e:?}"),
        }
    }

    /// The token a login handed out (`authorization: Bearer <token>`).
    fn bearer(&self) -> String {
        let value = self
            .headers
            .get("authorization")
            .expect("a token in the response metadata")
            .to_str()
            .expect("ASCII");
        value
            .strip_prefix("Bearer ")
            .expect("a Bearer value")
            .to_owned()
    }
}

fn ok(subject: &str, scheme: &str) -> Result<(String, String), (Code, String)> {
    Ok((subject.to_owned(), scheme.to_owned()))
}

fn refused(code: Code, message: &str) -> Result<(String, String), (Code, String)> {
    Err((code, message.to_owned()))
}

/// One server: `AuthLayer::new(auth)` over [`Echo`].
struct Server<A> {
    layer: AuthLayer<A>,
}

impl<A: Authenticator> Server<A> {
    fn new(auth: A) -> Self {
        Self {
            layer: AuthLayer::new(auth),
        }
    }

    async fn call(&self, headers: &HeaderMap) -> Reply {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("http://localhost{METHOD}"))
            .body(Body::empty())
            .expect("request");
        *req.headers_mut() = headers.clone();
        let res = self
            .layer
            .layer(Echo)
            .oneshot(req)
            .await
            .expect("infallible");
        let outcome = match tonic::Status::from_header_map(res.headers()) {
            Some(status) if status.code() != Code::Ok => {
                Err((status.code(), status.message().to_owned()))
            }
            _ => Ok(res
                .extensions()
                .get::<Principal>()
                .cloned()
                .expect("an accepted call carries the principal")),
        };
        Reply {
            outcome,
            headers: res.headers().clone(),
        }
    }
}

fn metadata(entries: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in entries {
        h.append(*k, HeaderValue::from_str(v).expect("ASCII value"));
    }
    h
}

fn basic(user: &str, password: &str) -> HeaderMap {
    let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    metadata(&[("authorization", &value)])
}

fn bearer(token: &str) -> HeaderMap {
    metadata(&[("authorization", &format!("Bearer {token}"))])
}

/// An issued token as text.
fn text(token: &Secret) -> String {
    String::from_utf8(token.expose().to_vec()).expect("a token is ASCII")
}

/// An argon2id PHC string cheap enough for debug-build tests (4 MiB, 1 pass).
fn cheap_phc(password: &str) -> String {
    let params = argon2::Params::new(4096, 1, 1, None).expect("argon2 params");
    let salt = SaltString::encode_b64(b"store-integration").expect("salt");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hash")
        .to_string()
}

// ---------------------------------------------------------------------------------
// HMAC.
// ---------------------------------------------------------------------------------

fn hmac_keys() -> StaticHmacKeys {
    StaticHmacKeys::new().key("svc-a", HMAC_SECRET)
}

/// A call signed by `svc-a` with `secret` (date, nonce, request target).
fn signed(secret: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    HmacSigner::new("svc-a", secret)
        .sign(METHOD, &mut h)
        .expect("sign");
    h
}

#[tokio::test]
async fn hmac_replay_store_down_refuses_unless_it_fails_open() {
    let closed = Server::new(HmacAuthenticator::new(
        HmacVerifier::new(hmac_keys()).replay_store(DownStore),
    ));
    assert_eq!(
        closed.call(&signed(HMAC_SECRET)).await.who(),
        refused(
            Code::Unavailable,
            "HMAC replay check unavailable: test store unavailable: down"
        )
    );

    let open = Server::new(HmacAuthenticator::new(
        HmacVerifier::new(hmac_keys())
            .replay_store(DownStore)
            .replay_fails_open(true),
    ));
    let call = signed(HMAC_SECRET);
    assert_eq!(open.call(&call).await.who(), ok("svc-a", "hmac"));
    // Nothing could be recorded, so the same signature passes again while it is down.
    assert_eq!(open.call(&call).await.who(), ok("svc-a", "hmac"));
    // Failing open covers the replay check only: a bad signature is still refused.
    assert_eq!(
        open.call(&signed("not-the-secret")).await.who(),
        refused(Code::Unauthenticated, "HMAC signature mismatch")
    );
    // The order of the builder calls does not matter.
    let open_first = Server::new(HmacAuthenticator::new(
        HmacVerifier::new(hmac_keys())
            .replay_fails_open(true)
            .replay_store(DownStore),
    ));
    assert_eq!(
        open_first.call(&signed(HMAC_SECRET)).await.who(),
        ok("svc-a", "hmac")
    );
}

#[tokio::test]
async fn hmac_signature_refused_while_the_store_is_down_is_accepted_once_it_is_back() {
    let store = Switch::new();
    let server = Server::new(HmacAuthenticator::new(
        HmacVerifier::new(hmac_keys()).replay_store(store.clone()),
    ));
    let call = signed(HMAC_SECRET);
    store.set_down(true);
    assert_eq!(
        server.call(&call).await.who(),
        refused(
            Code::Unavailable,
            "HMAC replay check unavailable: test store unavailable: down"
        )
    );
    store.set_down(false);
    assert_eq!(server.call(&call).await.who(), ok("svc-a", "hmac"));
    assert_eq!(
        server.call(&call).await.who(),
        refused(
            Code::Unauthenticated,
            "HMAC signature already used (replay)"
        )
    );
    // A bad signature never reaches the store.
    let before = store.calls();
    assert_eq!(
        server.call(&signed("not-the-secret")).await.who(),
        refused(Code::Unauthenticated, "HMAC signature mismatch")
    );
    assert_eq!(store.calls(), before);
}

#[tokio::test]
async fn hmac_replay_is_shared_by_two_verifiers_over_one_store() {
    let store = MemoryStore::new(1_000);
    let one = Server::new(HmacAuthenticator::new(
        HmacVerifier::new(hmac_keys()).replay_store(store.clone()),
    ));
    let two = Server::new(HmacAuthenticator::new(
        HmacVerifier::new(hmac_keys()).replay_store(store.clone()),
    ));
    let call = signed(HMAC_SECRET);
    assert_eq!(one.call(&call).await.who(), ok("svc-a", "hmac"));
    assert_eq!(
        two.call(&call).await.who(),
        refused(
            Code::Unauthenticated,
            "HMAC signature already used (replay)"
        )
    );
    assert_eq!(
        one.call(&call).await.who(),
        refused(
            Code::Unauthenticated,
            "HMAC signature already used (replay)"
        )
    );
    // A fresh signature is accepted by the other replica, once.
    let fresh = signed(HMAC_SECRET);
    assert_eq!(two.call(&fresh).await.who(), ok("svc-a", "hmac"));
    assert_eq!(
        one.call(&fresh).await.who(),
        refused(
            Code::Unauthenticated,
            "HMAC signature already used (replay)"
        )
    );
    assert_eq!(store.len(), 2, "one entry per accepted signature");
}

/// BUG (src/authn/hmac/mod.rs, `HmacVerifier::replay_cache_size`, lines 167-174): it
/// always replaces the replay check with a new private `MemoryStore`, so
/// `.replay_store(shared).replay_cache_size(n)` silently drops the shared store and
/// each replica accepts a signature the other already accepted. The other setters keep
/// a store the user gave (`clock` keeps it; `BasicAuthenticator::failure_limits` keeps
/// a `failure_store`), and nothing in the docs says the order matters.
#[tokio::test]
async fn hmac_replay_cache_size_after_replay_store_keeps_the_shared_store() {
    let store = MemoryStore::new(1_000);
    let verifier = || {
        HmacVerifier::new(hmac_keys())
            .replay_store(store.clone())
            .replay_cache_size(10_000)
    };
    let one = Server::new(HmacAuthenticator::new(verifier()));
    let two = Server::new(HmacAuthenticator::new(verifier()));
    let call = signed(HMAC_SECRET);
    assert_eq!(one.call(&call).await.who(), ok("svc-a", "hmac"));
    assert_eq!(
        two.call(&call).await.who(),
        refused(
            Code::Unauthenticated,
            "HMAC signature already used (replay)"
        ),
        "the replay check must still be the shared store's"
    );
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn hmac_clock_and_skew_after_replay_store_keep_the_shared_store() {
    let store = MemoryStore::new(1_000);
    let verifier = || {
        HmacVerifier::new(hmac_keys())
            .replay_store(store.clone())
            .clock(grpc_auth::clock::SystemClock)
            .max_skew(Duration::from_secs(120))
    };
    let one = Server::new(HmacAuthenticator::new(verifier()));
    let two = Server::new(HmacAuthenticator::new(verifier()));
    let call = signed(HMAC_SECRET);
    assert_eq!(one.call(&call).await.who(), ok("svc-a", "hmac"));
    assert_eq!(
        two.call(&call).await.who(),
        refused(
            Code::Unauthenticated,
            "HMAC signature already used (replay)"
        )
    );
    assert_eq!(store.len(), 1);
}

// ---------------------------------------------------------------------------------
// Basic: failed-login limits.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn basic_failure_store_down_refuses_logins_that_need_a_count() {
    let server = Server::new(
        BasicAuthenticator::new()
            .user("ada", "lovelace")
            .failure_store(DownStore),
    );
    let limits_down = "failed-login limits unavailable: test store unavailable: down";
    assert_eq!(
        server.call(&basic("ada", "lovelace")).await.who(),
        refused(Code::Unavailable, limits_down)
    );
    assert_eq!(
        server.call(&basic("ada", "wrong")).await.who(),
        refused(Code::Unavailable, limits_down)
    );
    assert_eq!(
        server.call(&basic("nobody", "x")).await.who(),
        refused(Code::Unavailable, limits_down),
        "an unknown user is answered like a known one"
    );
}

#[tokio::test]
async fn basic_cached_login_goes_on_while_the_failure_store_is_down() {
    let store = Switch::new();
    let server = Server::new(
        BasicAuthenticator::new()
            .user("ada", "lovelace")
            .hashed_user("bob", &cheap_phc("builder"))
            .expect("PHC")
            .failure_store(store.clone()),
    );
    // Verified (and cached) while the store is up.
    assert_eq!(
        server.call(&basic("bob", "builder")).await.who(),
        ok("bob", "basic")
    );
    // Let the success's uncount (spawned beside the call on a shared store) run.
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.set_down(true);
    let before = store.calls();
    assert_eq!(
        server.call(&basic("bob", "builder")).await.who(),
        ok("bob", "basic"),
        "a cached login needs no count"
    );
    assert_eq!(
        store.calls(),
        before,
        "a cached login does not touch the store"
    );
    let limits_down = "failed-login limits unavailable: test store unavailable: down";
    assert_eq!(
        server.call(&basic("bob", "wrong")).await.who(),
        refused(Code::Unavailable, limits_down),
        "a guess is never made uncounted"
    );
    assert_eq!(
        server.call(&basic("ada", "lovelace")).await.who(),
        refused(Code::Unavailable, limits_down),
        "plaintext passwords are never cached"
    );
    store.set_down(false);
    assert_eq!(
        server.call(&basic("ada", "lovelace")).await.who(),
        ok("ada", "basic")
    );
}

/// A replica: ada and bob, 10 failures per user, peers not counted, over `store`.
fn replica(store: &MemoryStore, limits_first: bool) -> Server<BasicAuthenticator> {
    let limits = FailureLimits::new().per_user(10).per_peer(0);
    let auth = BasicAuthenticator::new()
        .user("ada", "lovelace")
        .user("bob", "builder");
    // Either order keeps the limits and the shared store.
    let auth = if limits_first {
        auth.failure_limits(limits).failure_store(store.clone())
    } else {
        auth.failure_store(store.clone()).failure_limits(limits)
    };
    Server::new(auth)
}

#[tokio::test]
async fn failed_login_limits_are_shared_by_two_replicas_over_one_store() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store, true);
    let b = replica(&store, false);
    let bad = "invalid username or password";
    let limited = "too many failed logins; retry later";
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            server.call(&basic("ada", "guess")).await.who(),
            refused(Code::Unauthenticated, bad),
            "failure {}",
            i + 1
        );
    }
    for server in [&a, &b] {
        assert_eq!(
            server.call(&basic("ada", "lovelace")).await.who(),
            refused(Code::ResourceExhausted, limited),
            "the right password after 10 failures across both"
        );
        assert_eq!(
            server.call(&basic("ada", "guess")).await.who(),
            refused(Code::ResourceExhausted, limited)
        );
    }
    // Another user is not limited, on either replica.
    assert_eq!(
        a.call(&basic("bob", "builder")).await.who(),
        ok("bob", "basic")
    );
    assert_eq!(
        b.call(&basic("bob", "builder")).await.who(),
        ok("bob", "basic")
    );
}

#[tokio::test]
async fn a_success_on_one_replica_clears_the_count_on_the_other() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store, true);
    let b = replica(&store, true);
    let bad = "invalid username or password";
    for _ in 0..9 {
        assert_eq!(
            b.call(&basic("ada", "guess")).await.who(),
            refused(Code::Unauthenticated, bad)
        );
    }
    assert_eq!(
        a.call(&basic("ada", "lovelace")).await.who(),
        ok("ada", "basic")
    );
    // The clearing runs beside the call on a shared store.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..10 {
        assert_eq!(
            b.call(&basic("ada", "guess")).await.who(),
            refused(Code::Unauthenticated, bad),
            "failure {} after the success",
            i + 1
        );
    }
    assert_eq!(
        a.call(&basic("ada", "lovelace")).await.who(),
        refused(
            Code::ResourceExhausted,
            "too many failed logins; retry later"
        )
    );
}

// ---------------------------------------------------------------------------------
// JWT revocations.
// ---------------------------------------------------------------------------------

fn jwt() -> JwtAuthenticator {
    let key = JwtKey::secret(Algorithm::HS256, JWT_SECRET.as_bytes()).expect("HS256 key");
    JwtAuthenticator::new(StaticKeys::new().with(key))
        .issuer(ISS)
        .audience(AUD)
}

/// An HS256 JWT for `sub` valid for an hour, with `jti` and `iat` when given.
fn token(sub: &str, jti: Option<&str>, iat: Option<u64>) -> String {
    let now = tokens::now();
    let mut claims = json!({ "sub": sub, "iss": ISS, "aud": AUD, "exp": now + 3600 });
    if let Some(jti) = jti {
        claims["jti"] = json!(jti);
    }
    if let Some(iat) = iat {
        claims["iat"] = json!(iat);
    }
    tokens::hs256(JWT_SECRET, &claims)
}

fn now_secs() -> u64 {
    u64::try_from(tokens::now()).expect("after the epoch")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn revocation_store_down_refuses_jwts_and_only_jwts_with_revocations() {
    let store = Switch::new();
    let revoking = Server::new(jwt().revocations(Revocations::new(store.clone())));
    let plain = Server::new(jwt());
    let composed = Server::new(
        jwt()
            .revocations(Revocations::new(store.clone()))
            .or(ApiKeyAuthenticator::new().key("k-123", "billing")),
    );
    let t = token("ada", Some("j-1"), Some(now_secs()));

    assert_eq!(revoking.call(&bearer(&t)).await.who(), ok("ada", "jwt"));
    store.set_down(true);
    let unavailable = "revocation check unavailable: test store unavailable: down";
    assert_eq!(
        revoking.call(&bearer(&t)).await.who(),
        refused(Code::Unavailable, unavailable),
        "a cached token is checked too"
    );
    assert_eq!(
        revoking
            .call(&bearer(&token("bob", None, None)))
            .await
            .who(),
        refused(Code::Unavailable, unavailable),
        "a token without jti is checked for its subject"
    );
    assert_eq!(plain.call(&bearer(&t)).await.who(), ok("ada", "jwt"));
    assert_eq!(
        composed
            .call(&metadata(&[("x-api-key", "k-123")]))
            .await
            .who(),
        ok("billing", "api-key"),
        "an API key goes on while the store is down"
    );
    assert_eq!(
        composed.call(&bearer(&t)).await.who(),
        refused(Code::Unavailable, unavailable),
        "a bearer does not fall through to the API key"
    );
    store.set_down(false);
    assert_eq!(revoking.call(&bearer(&t)).await.who(), ok("ada", "jwt"));
}

#[tokio::test]
async fn a_revocation_check_is_one_store_call_per_request() {
    let store = Switch::new();
    let server = Server::new(jwt().revocations(Revocations::new(store.clone())));
    let t = token("ada", Some("j-1"), Some(now_secs()));
    for expected in 1..=3 {
        assert_eq!(server.call(&bearer(&t)).await.who(), ok("ada", "jwt"));
        assert_eq!(store.calls(), expected);
    }
    // A token that does not verify never reaches the store.
    let forged = tokens::hs256(
        "another-secret-of-at-least-32-bytes!!",
        &json!({ "sub": "ada", "iss": ISS, "aud": AUD, "exp": tokens::now() + 60 }),
    );
    assert_eq!(
        server.call(&bearer(&forged)).await.who(),
        refused(Code::Unauthenticated, "invalid token signature")
    );
    assert_eq!(store.calls(), 3);
}

#[tokio::test]
async fn revoked_jti_and_subject_end_to_end() {
    let store = MemoryStore::new(1_000);
    let revocations = Revocations::new(store.clone());
    // Two replicas, each with its own verified-token cache, one revocation list.
    let one = Server::new(jwt().revocations(revocations.clone()));
    let two = Server::new(jwt().revocations(Revocations::new(store.clone())));
    let now = now_secs();
    let t1 = token("ada", Some("j-1"), Some(now - 10));
    let t2 = token("ada", Some("j-2"), Some(now - 10));

    // t1 verified and cached on both before it is revoked.
    assert_eq!(one.call(&bearer(&t1)).await.who(), ok("ada", "jwt"));
    assert_eq!(two.call(&bearer(&t1)).await.who(), ok("ada", "jwt"));
    revocations
        .revoke_jti("j-1", at(now + 3600))
        .await
        .expect("revoke jti");
    let revoked = refused(Code::Unauthenticated, "token revoked");
    assert_eq!(one.call(&bearer(&t1)).await.who(), revoked);
    assert_eq!(two.call(&bearer(&t1)).await.who(), revoked);
    assert_eq!(
        one.call(&bearer(&t2)).await.who(),
        ok("ada", "jwt"),
        "another jti of the same subject"
    );

    // Everything ada holds now.
    revocations
        .revoke_subject("ada", at(now))
        .await
        .expect("revoke subject");
    for iat in [now - 10, now] {
        let t = token("ada", Some("j-3"), Some(iat));
        assert_eq!(one.call(&bearer(&t)).await.who(), revoked, "iat {iat}");
        assert_eq!(two.call(&bearer(&t)).await.who(), revoked, "iat {iat}");
    }
    assert_eq!(two.call(&bearer(&t2)).await.who(), revoked);
    assert_eq!(
        one.call(&bearer(&token("ada", Some("j-4"), None)))
            .await
            .who(),
        revoked,
        "no iat"
    );
    assert_eq!(
        one.call(&bearer(&token("ada", Some("j-5"), Some(now + 2))))
            .await
            .who(),
        ok("ada", "jwt"),
        "issued after the instant"
    );
    assert_eq!(
        two.call(&bearer(&token("bob", None, Some(now - 10))))
            .await
            .who(),
        ok("bob", "jwt"),
        "another subject"
    );

    assert_eq!(revocations.unrevoke_subject("ada").await, Ok(true));
    assert_eq!(revocations.unrevoke_subject("ada").await, Ok(false));
    assert_eq!(one.call(&bearer(&t2)).await.who(), ok("ada", "jwt"));
    assert_eq!(
        two.call(&bearer(&token("ada", None, None))).await.who(),
        ok("ada", "jwt")
    );
    assert_eq!(
        one.call(&bearer(&t1)).await.who(),
        revoked,
        "the jti revocation stays"
    );
}

#[tokio::test]
async fn revocation_writes_to_a_down_store_fail_with_the_store_error() {
    let r = Revocations::new(DownStore);
    let err = StoreError::unavailable("test", "down");
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(r.revoke_jti("j", later).await, Err(err.clone()));
    assert_eq!(r.revoke_subject("ada", later).await, Err(err.clone()));
    assert_eq!(r.unrevoke_subject("ada").await, Err(err.clone()));
    assert_eq!(r.revoke_token("gat_x").await, Err(err));
    assert_eq!(r.store_name(), "test");
    // A jti already past its expiry and slack needs no entry: nothing is written.
    assert_eq!(r.revoke_jti("old", at(1_000)).await, Ok(()));
}

// ---------------------------------------------------------------------------------
// Opaque tokens on a store.
// ---------------------------------------------------------------------------------

fn basic_login() -> BasicAuthenticator {
    BasicAuthenticator::new()
        .user("ada", "lovelace")
        .grant("ada", ["greeter.read", "greeter.write"])
}

#[tokio::test]
async fn opaque_tokens_on_a_down_store_are_unavailable() {
    let server = Server::new(TokenExchange::new(
        basic_login(),
        OpaqueTokens::new(StoreTokens::new(DownStore), "greeter"),
    ));
    assert_eq!(
        server.call(&basic("ada", "lovelace")).await.who(),
        refused(Code::Unavailable, DOWN),
        "issuing"
    );
    assert_eq!(
        server
            .call(&bearer("gat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .await
            .who(),
        refused(Code::Unavailable, DOWN),
        "verifying"
    );
    assert_eq!(
        server.call(&basic("ada", "wrong")).await.who(),
        refused(Code::Unauthenticated, "invalid username or password"),
        "a failed login issues nothing"
    );
    let tokens = OpaqueTokens::new(StoreTokens::new(DownStore), "greeter");
    let err = tokens
        .verify("gat_x")
        .await
        .expect_err("a down store verifies nothing");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unavailable, DOWN.into())
    );
    let err = tokens
        .issue(&Principal::new("ada", "basic"))
        .await
        .expect_err("a down store issues nothing");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unavailable, DOWN.into())
    );
    let err = tokens.revoke("gat_x").await.expect_err("down");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unavailable, DOWN.into())
    );
}

#[tokio::test]
async fn opaque_tokens_round_trip_through_a_basic_login_and_revoke() {
    let store = MemoryStore::new(1_000);
    let server = Server::new(TokenExchange::new(
        basic_login(),
        OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter"),
    ));
    // Another replica over the same store.
    let replica = Server::new(TokenExchange::new(
        basic_login(),
        OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter"),
    ));

    let login = server.call(&basic("ada", "lovelace")).await;
    assert_eq!(login.who(), ok("ada", "basic"));
    let token = login.bearer();
    assert!(token.starts_with("gat_"), "{token}");
    assert_eq!(store.len(), 1, "one record, under the token's digest");
    let key = Key::from_digest(Kind::Token, *TokenDigest::of(&token).as_bytes());
    let record = store.get(&[key]).await.expect("memory answers");
    let record = record[0].as_ref().expect("the record");
    let record = String::from_utf8(record.clone()).expect("JSON text");
    assert!(!record.contains(&token), "the store never holds the token");

    for s in [&server, &replica] {
        let reply = s.call(&bearer(&token)).await;
        assert_eq!(reply.who(), ok("ada", "token"));
        assert_eq!(
            reply.principal().scopes(),
            ["greeter.read".to_owned(), "greeter.write".to_owned()]
        );
        assert!(reply.headers.get("authorization").is_none(), "no new token");
    }

    let revocations = Revocations::new(store.clone());
    assert_eq!(revocations.revoke_token(&token).await, Ok(true));
    assert_eq!(revocations.revoke_token(&token).await, Ok(false));
    for s in [&server, &replica] {
        assert_eq!(
            s.call(&bearer(&token)).await.who(),
            refused(Code::Unauthenticated, "unknown or revoked token")
        );
    }
    // A new login gets a new token.
    let again = replica.call(&basic("ada", "lovelace")).await.bearer();
    assert_ne!(again, token);
    assert_eq!(server.call(&bearer(&again)).await.who(), ok("ada", "token"));
}

#[tokio::test]
async fn opaque_tokens_keep_scopes_roles_and_claims() {
    let store = MemoryStore::new(1_000);
    let mut claims = serde_json::Map::new();
    claims.insert("tenant".into(), json!("acme"));
    claims.insert("level".into(), json!(3));
    let ops = Principal::new("ops", "api-key")
        .with_scopes(["a.read", "a.write"])
        .with_roles(["admin", "auditor"])
        .with_claims(claims.clone());
    // The login can be any authenticator: an API key whose principal has it all.
    let server = Server::new(TokenExchange::new(
        ApiKeyAuthenticator::new().key_for("k-ops", ops.clone()),
        OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter"),
    ));
    let login = server.call(&metadata(&[("x-api-key", "k-ops")])).await;
    assert_eq!(login.who(), ok("ops", "api-key"));
    let reply = server.call(&bearer(&login.bearer())).await;
    assert_eq!(reply.who(), ok("ops", "token"));
    let p = reply.principal();
    assert_eq!(p.scopes(), ops.scopes());
    assert_eq!(p.roles(), ["admin".to_owned(), "auditor".to_owned()]);
    assert_eq!(p.claims(), &claims);

    // The same straight through OpaqueTokens, on another instance over the store.
    let tokens = OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter");
    let issued = tokens.issue(&ops).await.expect("issue");
    let other = OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter");
    let p = other.verify(&text(&issued)).await.expect("verify");
    assert_eq!(
        (p.subject(), p.scheme(), p.scopes(), p.roles(), p.claims()),
        ("ops", "token", ops.scopes(), ops.roles(), &claims)
    );
    // Bound to its audience: another service sharing the store refuses it.
    let elsewhere = OpaqueTokens::new(StoreTokens::new(store.clone()), "billing");
    let err = elsewhere
        .verify(&text(&issued))
        .await
        .expect_err("another audience");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unauthenticated, "invalid token audience".to_owned())
    );
}

#[tokio::test]
async fn an_unreadable_token_record_is_no_token() {
    let store = MemoryStore::new(1_000);
    let server = Server::new(TokenExchange::new(
        basic_login(),
        OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter"),
    ));
    let token = server.call(&basic("ada", "lovelace")).await.bearer();
    assert_eq!(server.call(&bearer(&token)).await.who(), ok("ada", "token"));
    let key = Key::from_digest(Kind::Token, *TokenDigest::of(&token).as_bytes());
    store.put(key, b"garbage", None).await.expect("put");
    assert_eq!(
        server.call(&bearer(&token)).await.who(),
        refused(Code::Unauthenticated, "unknown or revoked token")
    );
    // JSON of another shape is no token either.
    store
        .put(key, br#"{"sub":"root","scheme":"basic"}"#, None)
        .await
        .expect("put");
    assert_eq!(
        server.call(&bearer(&token)).await.who(),
        refused(Code::Unauthenticated, "unknown or revoked token")
    );
    // A token never issued.
    assert_eq!(
        server
            .call(&bearer("gat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            .await
            .who(),
        refused(Code::Unauthenticated, "unknown or revoked token")
    );
}

#[tokio::test]
async fn an_expired_opaque_token_is_refused() {
    const T0: u64 = 1_700_000_000;
    // The issuer's clock moves; the store keeps its own (as a Redis server would), so
    // the record is still there when the issuer finds the token expired.
    let clock = ManualClock::at_unix(T0);
    let store = MemoryStore::new(1_000);
    let tokens = OpaqueTokens::new(StoreTokens::new(store.clone()).clock(clock.clone()), "g")
        .ttl(Duration::from_secs(60))
        .clock(clock.clone());
    let t = tokens
        .issue(&Principal::new("ada", "basic"))
        .await
        .expect("issue");
    clock.advance(Duration::from_secs(59));
    let p = tokens.verify(&text(&t)).await.expect("still valid");
    assert_eq!((p.subject(), p.scheme()), ("ada", "token"));
    clock.advance(Duration::from_secs(1));
    let err = tokens.verify(&text(&t)).await.expect_err("expired");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unauthenticated, "token expired".to_owned())
    );
    // Found expired, the record was dropped.
    assert!(store.is_empty());
    let err = tokens.verify(&text(&t)).await.expect_err("gone");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unauthenticated, "unknown or revoked token".to_owned())
    );

    // One clock for issuer and store: the store forgets the record at its expiry, so
    // the token is then unknown (either way it is refused).
    let clock = ManualClock::at_unix(T0);
    let store = MemoryStore::new(1_000).clock(clock.clone());
    let tokens = OpaqueTokens::new(StoreTokens::new(store.clone()).clock(clock.clone()), "g")
        .ttl(Duration::from_secs(60))
        .clock(clock.clone());
    let t = tokens
        .issue(&Principal::new("ada", "basic"))
        .await
        .expect("issue");
    clock.advance(Duration::from_secs(59));
    assert!(tokens.verify(&text(&t)).await.is_ok());
    clock.advance(Duration::from_secs(1));
    let err = tokens.verify(&text(&t)).await.expect_err("expired");
    assert_eq!(
        (err.code(), err.to_string()),
        (Code::Unauthenticated, "unknown or revoked token".to_owned())
    );
}

// ---------------------------------------------------------------------------------
// Keys, and the Redis builder's Debug.
// ---------------------------------------------------------------------------------

#[test]
fn key_names_are_prefix_kind_and_43_base64url_chars() {
    for (kind, name) in [
        (Kind::Replay, "replay"),
        (Kind::Failures, "fail"),
        (Kind::RevokedJti, "jti"),
        (Kind::RevokedSubject, "sub"),
        (Kind::Token, "token"),
    ] {
        assert_eq!(kind.as_str(), name);
        let key = Key::digest(kind, &[b"material"]);
        assert_eq!(key.kind(), kind);
        let full = key.name("p:");
        let digest = full
            .strip_prefix(&format!("p:{name}:"))
            .unwrap_or_else(|| panic!("{full} starts with p:{name}:"));
        assert_eq!(digest.len(), 43, "{full}");
        assert!(
            digest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{full}"
        );
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(digest)
                .expect("base64url"),
            key.as_bytes()
        );
        assert!(!full.contains("material"));
        let debug = format!("{key:?}");
        assert!(
            !debug.contains(digest),
            "Debug shows a short prefix: {debug}"
        );
    }
    let kind = Kind::Replay;
    assert_ne!(
        Key::digest(kind, &[b"ab", b"c"]),
        Key::digest(kind, &[b"a", b"bc"])
    );
    assert_ne!(
        Key::digest(kind, &[b"ab", b"c"]).name(""),
        Key::digest(kind, &[b"a", b"bc"]).name("")
    );
    assert_ne!(
        Key::digest(kind, &[b"abc"]),
        Key::digest(kind, &[b"ab", b"c"])
    );
    assert_eq!(
        Key::digest(kind, &[b"ab", b"c"]),
        Key::digest(kind, &[b"ab", b"c"])
    );
    assert_ne!(
        Key::digest(Kind::RevokedJti, &[b"x"]),
        Key::digest(Kind::RevokedSubject, &[b"x"]),
        "kinds keep apart"
    );
    let d = TokenDigest::of("gat_x");
    assert_eq!(
        Key::from_digest(Kind::Token, *d.as_bytes()).as_bytes(),
        d.as_bytes()
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_debug_and_errors_never_show_the_password() {
    use grpc_auth::store::RedisStore;
    let url = "redis://:hunter2@127.0.0.1:1";
    let builder = RedisStore::builder(url)
        .prefix("p:")
        .timeout(Duration::from_millis(500));
    let debug = format!("{builder:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("RedisStoreBuilder"), "{debug}");
    let store = builder.build().expect("a well-formed URL");
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert_eq!(store.prefix(), "p:");
    // Nothing listens on port 1: the error names the store, not the URL's password.
    let err = store
        .get(&[Key::digest(Kind::Token, &[b"k"])])
        .await
        .expect_err("nothing listens on port 1");
    let StoreError::Unavailable {
        store: name,
        reason,
    } = &err
    else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(*name, "redis");
    assert!(!reason.contains("hunter2"), "{reason}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // And as the protections answer it.
    let server = Server::new(jwt().revocations(Revocations::new(store)));
    let reply = server
        .call(&bearer(&token("ada", None, Some(now_secs()))))
        .await;
    let (code, message) = reply.who().expect_err("refused while Redis is down");
    assert_eq!(code, Code::Unavailable);
    assert!(
        message.starts_with("revocation check unavailable: redis store unavailable: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}
