//! Eleventh adversarial review: what changed since 4907caf. The ext_authz server's
//! canonical-path check, its header bound and the principal's edge spaces; the config
//! loader's refusals (empty mTLS rule lists, scopes and roles with whitespace); the
//! token source's refresh pacing (half-life refresh ahead, the 1 s floor, tokens expired
//! on arrival, refusals in a row paced by the backoff); the verified-result cache's
//! monotonic deadline; introspection's counted flights and fixed outage message; URLs
//! shown with the whole userinfo redacted.
//!
//! Every test asserts the secure outcome. `/// Finding:` tests FAIL at the reviewed
//! commit and prove a bug; `/// Guard:` tests are attacks the code withstood, kept as
//! regression guards. The ext_authz server is called in process through its
//! `Authorization` trait (helpers from tests/adversarial_review_10.rs); the token source
//! through `TokenSourceCredentials::apply`/`on_response` with a `ManualClock`; the
//! introspection endpoint is a loopback listener that never answers, or a closed port.
#![cfg(all(feature = "ext-authz", feature = "config"))]

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_auth::authn::{
    AuthRequest, Authenticator, BoxAuthenticator, IntrospectionAuthenticator, JwtAuthenticator,
    jwt::{Algorithm, JwtKey, StaticKeys},
};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::config::AuthConfig;
use grpc_auth::credentials::{
    CallContext, CallCredentials, CallOutcome, Token, TokenError, TokenSource,
    TokenSourceCredentials,
};
use grpc_auth::ext_authz::ExtAuthzServer;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Request as AttrRequest,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse,
};
use grpc_auth::oauth::ClientAuth;
use grpc_auth::{AuthError, Principal};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;

const HELLO: &str = "/helloworld.Greeter/SayHello";
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
const DUMP: &str = "/internal.Debug/Dump";
const SECRET: &str = "review-11-jwt-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const GRPC: (&str, &str) = ("content-type", "application/grpc");
const ORIGIN: &str = "/review11/auth.toml";
const NOT_CANONICAL: &str = "path is not in canonical form";

// ---------------------------------------------------------------------------------------
// The ext_authz server, in process (from tests/adversarial_review_10.rs)
// ---------------------------------------------------------------------------------------

/// JWT, API keys, a public health service, a scope-restricted admin method and a denied
/// debug method.
fn toml() -> String {
    format!(
        r#"
[jwt]
hs256_secret = "{SECRET}"
issuer = "{ISS}"
audience = "{AUD}"

[api_keys]
keys = {{ billing = "k-1", ops = "k-2" }}

[policy]
public = ["/grpc.health.v1.Health/*"]
deny = ["{DUMP}"]
require_scope = {{ "{ADMIN}" = "greeter.admin" }}
"#
    )
}

fn config(text: &str) -> AuthConfig {
    AuthConfig::from_toml_str(text, ORIGIN).unwrap_or_else(|e| panic!("{e}"))
}

fn server() -> ExtAuthzServer<BoxAuthenticator> {
    ExtAuthzServer::new(config(&toml()).layer().unwrap())
}

fn jwt(sub: &str, extra: Value) -> String {
    format!(
        "Bearer {}",
        tokens::hs256(SECRET, &tokens::claims(sub, ISS, AUD, extra))
    )
}

/// A check as Envoy sends it by default: the `headers` map, pseudo-headers included.
fn check(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in headers {
        map.entry((*k).to_owned())
            .and_modify(|old| {
                old.push(',');
                old.push_str(v);
            })
            .or_insert_with(|| (*v).to_owned());
    }
    map.insert(":path".into(), path.into());
    map.insert(":method".into(), "POST".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: path.into(),
                    headers: map,
                    protocol: "HTTP/2".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn ask<A: Authenticator>(server: &ExtAuthzServer<A>, req: CheckRequest) -> CheckResponse {
    server
        .check(tonic::Request::new(req))
        .await
        .unwrap()
        .into_inner()
}

fn code(r: &CheckResponse) -> i32 {
    r.status.as_ref().map_or(-1, |s| s.code)
}

fn message(r: &CheckResponse) -> &str {
    r.status.as_ref().map_or("", |s| s.message.as_str())
}

/// `(gRPC code, HTTP status, message)` of a denial; `(0, 200, "")` for an acceptance.
fn verdict(r: &CheckResponse) -> (i32, u32, String) {
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (
            code(r),
            d.status.map_or(0, |s| s.code as u32),
            message(r).to_owned(),
        ),
        Some(HttpResponse::OkResponse(_)) if code(r) == 0 => (0, 200, String::new()),
        _ => panic!("neither allowed nor denied: {r:?}"),
    }
}

fn refused_as_not_canonical() -> (i32, u32, String) {
    (Code::PermissionDenied as i32, 403, NOT_CANONICAL.into())
}

// ---------------------------------------------------------------------------------------
// The token source, scripted
// ---------------------------------------------------------------------------------------

/// Tokens `tok-1`, `tok-2`, ... living `life` from each fetch (by `clock`).
struct Counting {
    clock: ManualClock,
    life: Duration,
    fetches: AtomicUsize,
}

impl TokenSource for Counting {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Token::new(
            format!("tok-{n}"),
            Some(self.clock.now() + self.life),
        ))
    }
}

fn counting(life: Duration) -> (ManualClock, Arc<Counting>) {
    let clock = ManualClock::at_unix(1_700_000_000);
    let source = Arc::new(Counting {
        clock: clock.clone(),
        life,
        fetches: AtomicUsize::new(0),
    });
    (clock, source)
}

fn ctx() -> CallContext<'static> {
    CallContext::new(
        "https://greeter.example/helloworld.Greeter",
        "SayHello",
        true,
    )
}

/// The metadata one call sends.
async fn send<S: TokenSource>(creds: &TokenSourceCredentials<S>) -> HeaderMap {
    let mut sent = HeaderMap::new();
    creds.apply(&ctx(), &mut sent).await.unwrap();
    sent
}

fn bearer_of(sent: &HeaderMap) -> &str {
    sent["authorization"].to_str().unwrap()
}

/// A trailers-only UNAUTHENTICATED answer.
fn refused() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static("16"));
    h
}

/// The initial headers of a call the server answered normally.
fn taken() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h
}

fn observe<S: TokenSource>(
    creds: &TokenSourceCredentials<S>,
    sent: &HeaderMap,
    answer: Option<&HeaderMap>,
) {
    creds.on_response(&CallOutcome::new(ctx(), sent, answer));
}

// =======================================================================================
// FINDINGS: each test fails on the reviewed code.
// =======================================================================================

/// Finding (low-medium): the refusal pacing that stops "a server refusing every token
/// drives a fetch per call" (the ninth review's finding) is undone by ANY response
/// without `grpc-status: 16`, because `on_response` clears `refusals` for a call with
/// the current token that got initial headers and another status (or none). That is not
/// "a call the server takes" with the token: a public method (the gRPC health check
/// every load-balanced channel runs, reflection, a `Policy::public` method) never reads
/// the token, and a trailers-only PERMISSION_DENIED / UNAVAILABLE / RESOURCE_EXHAUSTED
/// from a proxy or rate limiter says nothing of it either. A client whose tokens a
/// server refuses (a wrong audience) and that also calls a public method on the same
/// channel fetches a new token for every refused call again: here 10 refused calls
/// interleaved with 10 public ones, the clock standing still, cost 11 token requests
/// instead of 2. Fix (src/credentials/token_source.rs `on_response`): do not reset the
/// pacing on a response; forget a streak by time instead (a refusal more than the
/// backoff's `max` after the previous one starts a new count), or reset it only when the
/// server answers OK for a call whose method is known to read the token.
#[tokio::test]
async fn finding_a_public_call_does_not_reset_the_refusal_pacing() {
    let (clock, source) = counting(Duration::from_secs(3600));
    let creds = TokenSourceCredentials::new(source.clone()).clock(clock);
    let mut protected = Vec::new();
    for _ in 0..10 {
        let sent = send(&creds).await;
        protected.push(bearer_of(&sent).to_owned());
        observe(&creds, &sent, Some(&refused()));
        // A health check on the same channel: public, answered OK.
        let sent = send(&creds).await;
        observe(&creds, &sent, Some(&taken()));
    }
    assert!(
        source.fetches.load(Ordering::SeqCst) <= 2,
        "{} token fetches for 10 refused calls within one instant: {protected:?}",
        source.fetches.load(Ordering::SeqCst)
    );
}

/// Finding (low): the refusal pacing runs on the wall clock (`Failures::retry_at` is a
/// `SystemTime` of `config.clock.now()`), so a wall clock stepped back (an NTP
/// correction, a resumed VM: the case `Clock::monotonic` exists for, and which the
/// ninth review fixed for the verified cache) stretches a 1 s pause by the size of the
/// step: here a token the server refused, kept for the pacing's first second, is still
/// sent (and refused) on every call 5 s later because the clock went back an hour in
/// between; it would be for the whole hour (or until the token's own expiry), every
/// call failing UNAUTHENTICATED with a token the server revoked. Fix
/// (src/credentials/token_source.rs `on_response`, src/credentials/refresh.rs
/// `Failures`): keep the refusals' retry deadline on `Clock::monotonic()` (or beside
/// the wall one, honouring whichever passes first).
#[tokio::test]
async fn finding_a_wall_clock_stepped_back_does_not_stretch_the_refusal_pacing() {
    let (clock, source) = counting(Duration::from_secs(7 * 24 * 3600));
    let t0 = clock.unix_seconds();
    let creds = TokenSourceCredentials::new(source.clone()).clock(clock.clone());
    let first = send(&creds).await;
    observe(&creds, &first, Some(&refused()));
    let second = send(&creds).await;
    assert_eq!(bearer_of(&second), "Bearer tok-2");
    observe(&creds, &second, Some(&refused()));
    assert_eq!(bearer_of(&send(&creds).await), "Bearer tok-2", "paced: 1 s");
    // The wall clock goes back an hour; then 5 s pass.
    clock.set_unix(t0 - 3_600);
    clock.advance(Duration::from_secs(5));
    observe(&creds, &second, Some(&refused()));
    assert_eq!(
        bearer_of(&send(&creds).await),
        "Bearer tok-3",
        "a refused token still sent 5 s after a 1 s pause began"
    );
}

// =======================================================================================
// GUARDS: attacks the code withstood.
// =======================================================================================

// ---------------------------------------------------------------------------------------
// ext_authz: the canonical-path check
// ---------------------------------------------------------------------------------------

/// Guard: forms of a denied method the tenth review did not list are refused too
/// (`/.` and `/..` at the end, a leading `//`, a backslash, a lone `%`, controls, tabs,
/// spaces, non-ASCII bytes, a path without its leading `/`, an absolute URL, `*`), each
/// with the exact PERMISSION_DENIED / 403 "path is not in canonical form".
#[tokio::test]
async fn guard_more_non_canonical_forms_of_a_denied_method_are_refused() {
    let s = server();
    for path in [
        "/internal.Debug/Dump/.",
        "/internal.Debug/Dump/..",
        "/internal.Debug/Dump/x/..",
        "//internal.Debug/Dump",
        "/internal.Debug\\Dump",
        "/internal.Debug/Dump%",
        "/internal.Debug/Du%6Dp",
        "/internal.Debug/Dump\t",
        "/internal.Debug/Dump ",
        "/internal.Debug/Dump\u{0}",
        "/internal.Debug/Dump\u{7f}",
        "/internal.Debug/D\u{fc}mp",
        "/internal.Debug/Dump\u{ff0f}",
        "/internal.Debug/Dump;",
        "internal.Debug/Dump",
        "http://greeter.example/internal.Debug/Dump",
        "*",
        "",
    ] {
        let r = ask(&s, check(path, &[GRPC, ("x-api-key", "k-1")])).await;
        assert_eq!(verdict(&r), refused_as_not_canonical(), "{path:?}");
    }
    // The canonical form keeps its rule: denied to everyone.
    let r = ask(&s, check(DUMP, &[GRPC, ("x-api-key", "k-1")])).await;
    assert_eq!(
        verdict(&r),
        (
            Code::PermissionDenied as i32,
            403,
            "method is not allowed".into()
        )
    );
}

/// Guard: a public method written in a non-canonical form is refused too (not waved
/// through as public), a non-canonical path refused anyway keeps the layer's answer
/// (no credentials: UNAUTHENTICATED / 401), `/` alone and the public method as written
/// still pass, and a query holding dot segments or a `%` is not the method: the query is
/// dropped, the method's rule (scope) applies.
#[tokio::test]
async fn guard_public_methods_and_queries_meet_the_canonical_check() {
    let s = server();
    let no_creds = (
        Code::Unauthenticated as i32,
        401,
        "missing authorization metadata".to_owned(),
    );
    // A public method spelt otherwise: refused as not canonical.
    for path in [
        "/grpc.health.v1.Health/%43heck",
        "/grpc.health.v1.Health/Check;x",
        "/grpc.health.v1.Health/..",
    ] {
        let r = ask(&s, check(path, &[GRPC])).await;
        assert_eq!(verdict(&r), refused_as_not_canonical(), "{path:?}");
    }
    // Not a public pattern as written, no credentials: the layer's answer.
    for path in [
        "/grpc.health.v1.Health//Check",
        "/grpc.health.v1.Health/./Check",
    ] {
        let r = ask(&s, check(path, &[GRPC])).await;
        assert_eq!(verdict(&r), no_creds, "{path:?}");
    }
    // The public method and `/`.
    let r = ask(&s, check("/grpc.health.v1.Health/Check", &[GRPC])).await;
    assert_eq!(verdict(&r), (0, 200, String::new()));
    let r = ask(&s, check("/", &[("x-api-key", "k-1")])).await;
    assert_eq!(verdict(&r), (0, 200, String::new()));
    let r = ask(&s, check("/", &[])).await;
    assert_eq!(verdict(&r), no_creds);
    // A query never names another method.
    let reader = jwt("ada", json!({"scope": "greeter.read"}));
    for path in [
        "/helloworld.Greeter/SayHelloAdmin?x=/../SayHello",
        "/helloworld.Greeter/SayHelloAdmin?%2e%2e;",
        "/helloworld.Greeter/SayHelloAdmin#/../SayHello",
    ] {
        let r = ask(&s, check(path, &[GRPC, ("authorization", &reader)])).await;
        let got = verdict(&r);
        assert_eq!(
            (got.0, got.1),
            (Code::PermissionDenied as i32, 403),
            "{path:?}"
        );
        assert_ne!(got.2, NOT_CANONICAL, "{path:?}: the scope rule answers");
    }
    let r = ask(
        &s,
        check(
            "/helloworld.Greeter/SayHello?a=%2F..%2F;",
            &[GRPC, ("authorization", &reader)],
        ),
    )
    .await;
    assert_eq!(verdict(&r), (0, 200, String::new()));
}

/// Guard: a principal value with a tab or a space at either end (a crafted `sub`) is
/// not passed on; a subject with an inner space is, unchanged.
#[tokio::test]
async fn guard_edge_whitespace_in_a_subject_is_refused_inner_space_kept() {
    let s = server();
    for sub in ["ada ", " ada", "ada\t", "\tada", "ada\r\n"] {
        let r = ask(
            &s,
            check(HELLO, &[GRPC, ("authorization", &jwt(sub, json!({})))]),
        )
        .await;
        assert_eq!(
            verdict(&r),
            (
                Code::Unauthenticated as i32,
                401,
                "the principal cannot be passed on in a header".into()
            ),
            "{sub:?}"
        );
    }
    let r = ask(
        &s,
        check(
            HELLO,
            &[GRPC, ("authorization", &jwt("ada lovelace", json!({})))],
        ),
    )
    .await;
    assert_eq!(verdict(&r), (0, 200, String::new()));
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        unreachable!()
    };
    assert!(
        ok.headers
            .iter()
            .filter_map(|o| o.header.as_ref())
            .any(|h| h.value == "ada lovelace"),
        "{ok:?}"
    );
}

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

/// Guard: whitespace the tenth review did not try is refused at load with a line: a
/// scope holding a no-break space, an em space or a tab, a role with a tab or a space
/// at either end, an empty rule list beside a non-empty one; a role with an inner space
/// loads.
#[test]
fn guard_unicode_whitespace_in_scopes_and_roles_is_refused_at_load() {
    let key = "[api_keys]\nkeys = { a = \"k-aaaa\" }\n";
    let refused = [
        format!("{key}[policy]\nrequire_scope = {{ \"/a.B/C\" = \"greeter\\u00A0admin\" }}\n"),
        format!("{key}[policy]\nrequire_scope = {{ \"/a.B/C\" = [\"a\", \"b\\tc\"] }}\n"),
        format!("{key}[policy]\nrequire_role = {{ \"/a.B/C\" = \"admin\\t\" }}\n"),
        format!("{key}[policy]\nrequire_role = {{ \"/a.B/C\" = [\"ops\", \" admin\"] }}\n"),
        format!("{key}[policy]\nrequire_role = {{ \"/a.B/C\" = \"admin\\u2003\" }}\n"),
        "[basic]\nusers = { ada = \"lovelace-pw-0123\" }\nscopes = { ada = [\"a\\u2003b\"] }\n"
            .to_owned(),
        format!("[mtls]\ntrust_domains = [\"example.org\"]\nids = []\n{key}"),
        format!("[mtls]\nprefixes = []\n{key}"),
    ];
    for text in &refused {
        match AuthConfig::from_toml_str(text, ORIGIN) {
            Ok(_) => panic!("loaded:\n{text}"),
            Err(e) => assert!(e.line().is_some(), "{e}"),
        }
    }
    let ok = format!("{key}[policy]\nrequire_role = {{ \"/a.B/C\" = \"site admin\" }}\n");
    assert!(AuthConfig::from_toml_str(&ok, ORIGIN).is_ok());
}

// ---------------------------------------------------------------------------------------
// The token source: refusal pacing and refresh
// ---------------------------------------------------------------------------------------

/// Guard: the pacing never keeps a refused token past its expiry: a token kept because
/// the refusal backoff lasts (60 s here) is still replaced by a fetch once it expires
/// (10 s), the refused-and-expired token is never sent again, and a refusal of it then
/// does not touch the new one.
#[tokio::test]
async fn guard_a_refused_token_kept_by_the_pacing_still_expires() {
    let (clock, source) = counting(Duration::from_secs(10));
    let creds = TokenSourceCredentials::new(source.clone())
        .clock(clock.clone())
        .backoff(Duration::from_secs(60), Duration::from_secs(60));
    let first = send(&creds).await;
    assert_eq!(bearer_of(&first), "Bearer tok-1");
    observe(&creds, &first, Some(&refused()));
    let second = send(&creds).await;
    assert_eq!(bearer_of(&second), "Bearer tok-2");
    observe(&creds, &second, Some(&refused()));
    assert_eq!(
        bearer_of(&send(&creds).await),
        "Bearer tok-2",
        "kept: paced"
    );
    clock.advance(Duration::from_secs(11));
    let third = send(&creds).await;
    assert_eq!(bearer_of(&third), "Bearer tok-3", "tok-2 expired");
    observe(&creds, &second, Some(&refused()));
    assert_eq!(bearer_of(&send(&creds).await), "Bearer tok-3");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
}

/// Guard: concurrent calls refused with one token drop it once (one refetch), a late
/// refusal of the old token leaves the new one alone, and a call that got no response
/// at all (a transport error) neither drops the token nor resets the pacing.
#[tokio::test]
async fn guard_concurrent_refusals_and_lost_responses_cost_one_refetch() {
    let (clock, source) = counting(Duration::from_secs(3600));
    let creds = TokenSourceCredentials::new(source.clone()).clock(clock.clone());
    let mut inflight = Vec::new();
    for _ in 0..8 {
        inflight.push(send(&creds).await);
    }
    for sent in &inflight {
        observe(&creds, sent, Some(&refused()));
    }
    let next = send(&creds).await;
    assert_eq!(bearer_of(&next), "Bearer tok-2");
    for sent in &inflight {
        observe(&creds, sent, Some(&refused()));
    }
    // Lost responses: nothing learned.
    observe(&creds, &next, None);
    observe(&creds, &next, Some(&refused()));
    assert_eq!(bearer_of(&send(&creds).await), "Bearer tok-2", "paced");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    // Clones share the pacing.
    let clone = creds.clone().refresh_ahead(Duration::from_secs(1));
    observe(&clone, &next, Some(&refused()));
    assert_eq!(bearer_of(&send(&clone).await), "Bearer tok-2");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    // Once the backoff has passed the next refusal drops it.
    clock.advance(Duration::from_secs(1));
    observe(&clone, &next, Some(&refused()));
    assert_eq!(bearer_of(&send(&creds).await), "Bearer tok-3");
}

/// Guard: a source handing out tokens expired on arrival, or expiring within the
/// first second, never drives a fetch per call: the first is a failed fetch answered
/// UNAVAILABLE with a backoff; a token of 1 s life is refetched once it has expired,
/// not on every call before.
#[tokio::test]
async fn guard_tokens_at_the_end_of_their_life_are_not_fetched_per_call() {
    let (clock, source) = counting(Duration::ZERO);
    let creds = TokenSourceCredentials::new(source.clone()).clock(clock.clone());
    for _ in 0..5 {
        let e = creds.header_value().await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                Code::Unavailable,
                "token source unavailable: the token it returned had expired"
            )
        );
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    let (clock, source) = counting(Duration::from_millis(1_000));
    let creds = TokenSourceCredentials::new(source.clone()).clock(clock.clone());
    for _ in 0..10 {
        assert_eq!(creds.header_value().await.unwrap(), "Bearer tok-1");
        clock.advance(Duration::from_millis(90));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        source.fetches.load(Ordering::SeqCst) <= 2,
        "{} fetches",
        source.fetches.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------------------------------
// The verified-result cache
// ---------------------------------------------------------------------------------------

fn hs256_auth(clock: &ManualClock, ttl: Duration) -> JwtAuthenticator<StaticKeys> {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, SECRET.as_bytes()).unwrap(),
    ))
    .clock(clock.clone())
    .leeway(Duration::ZERO)
    .cache(ttl, 16)
}

async fn verdict_of<A: Authenticator>(auth: &A, token: &str) -> Result<String, Code> {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", token.parse().unwrap());
    match auth.authenticate(&AuthRequest::new(HELLO, &headers)).await {
        Ok(Some(a)) => Ok(a.principal.subject().to_owned()),
        Ok(None) => Err(Code::Unknown),
        Err(e) => Err(AuthError::code(&e)),
    }
}

/// Guard: a `Duration::MAX` cache TTL never outlives the token: the entry ends at `exp`
/// on the wall clock, and a wall clock stepped FORWARD past `exp` (monotonic time
/// standing still) ends it at once too; the monotonic deadline only ever shortens.
#[tokio::test]
async fn guard_a_max_ttl_entry_still_ends_at_the_tokens_exp() {
    let clock = ManualClock::now();
    let t0 = clock.unix_seconds();
    let token = format!(
        "Bearer {}",
        tokens::hs256(SECRET, &json!({"sub": "ada", "exp": t0 + 60, "iat": t0}),)
    );
    let auth = hs256_auth(&clock, Duration::MAX);
    assert_eq!(verdict_of(&auth, &token).await, Ok("ada".into()));
    clock.advance(Duration::from_secs(59));
    assert_eq!(verdict_of(&auth, &token).await, Ok("ada".into()));
    clock.advance(Duration::from_secs(2));
    assert_eq!(verdict_of(&auth, &token).await, Err(Code::Unauthenticated));

    let clock = ManualClock::now();
    let auth = hs256_auth(&clock, Duration::MAX);
    assert_eq!(verdict_of(&auth, &token).await, Ok("ada".into()));
    clock.set_unix(t0 + 3_600);
    assert_eq!(verdict_of(&auth, &token).await, Err(Code::Unauthenticated));
}

// ---------------------------------------------------------------------------------------
// Introspection: counted flights, the fixed outage message
// ---------------------------------------------------------------------------------------

/// A loopback endpoint that accepts connections and never answers.
async fn silent_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://127.0.0.1:{}/introspect", addr.port()), task)
}

fn basic_auth() -> ClientAuth {
    ClientAuth::secret_basic("rs-greeter", "cl1ent-s3cret-Wq9Zx")
}

fn outcome(r: &Result<Principal, AuthError>) -> Result<String, (Code, String)> {
    match r {
        Ok(p) => Ok(p.subject().to_owned()),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

/// Guard: with room for ONE flight, callers cancelled at every point (the leader while
/// it waits on the endpoint, followers joined to it, all of them in turn) leave no
/// flight behind: another token is then asked (and times out) rather than refused as
/// "too many token introspections in progress"; a follower left alone takes the flight
/// over and answers within its own time.
#[tokio::test]
async fn guard_cancelled_introspection_callers_leave_no_flight_behind() {
    let (url, endpoint) = silent_endpoint().await;
    let auth = IntrospectionAuthenticator::builder(url, basic_auth())
        .timeout(Duration::from_millis(300))
        .max_in_flight(1)
        .build()
        .unwrap();
    // The endpoint was asked and did not answer: the transport's timeout or the
    // caller's, whichever fires first (both 300 ms).
    let asked = |r: &Result<Principal, AuthError>| {
        let got = outcome(r);
        assert!(
            [
                "token introspection unavailable: did not answer within 300 ms",
                "token introspection unavailable: no answer from the endpoint",
            ]
            .iter()
            .any(|m| got == Err((Code::Unavailable, (*m).to_owned()))),
            "{got:?}"
        );
    };
    let busy = Err((
        Code::Unavailable,
        "too many token introspections in progress".to_owned(),
    ));

    // The leader cancelled alone.
    let cut = tokio::time::timeout(Duration::from_millis(50), auth.introspect("opq-a")).await;
    assert!(cut.is_err());
    asked(&auth.introspect("opq-b").await);

    // Eight callers on one token, cancelled one after another.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move { auth.introspect("opq-c").await }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(outcome(&auth.introspect("opq-d").await), busy, "bounded");
    for t in &tasks {
        t.abort();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    asked(&auth.introspect("opq-d").await);

    // The leader cancelled, a follower stays: it takes over and answers in its time.
    let leader = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.introspect("opq-e").await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let follower = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.introspect("opq-e").await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let _ = leader.await;
    asked(&follower.await.unwrap());
    asked(&auth.introspect("opq-f").await);
    endpoint.abort();
}

/// Guard: an endpoint that cannot be reached answers every caller the fixed message,
/// never its address or the secrets of its userinfo (user name or password), and many
/// callers of one token plus a second token, racing the `initialized()` removal with
/// new joins, leave no flight behind (room for one).
#[tokio::test]
async fn guard_an_unreachable_endpoint_answers_a_fixed_message_and_leaks_no_flight() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("http://svc-key-SECRET@127.0.0.1:{port}/introspect"),
        format!("http://:pw-SECRET@127.0.0.1:{port}/introspect"),
        format!("http://svc-SECRET:pw-SECRET@127.0.0.1:{port}/introspect"),
    ] {
        let auth = IntrospectionAuthenticator::builder(url, basic_auth())
            .timeout(Duration::from_millis(500))
            .max_in_flight(1)
            .build()
            .unwrap();
        let fixed = Err((
            Code::Unavailable,
            "token introspection unavailable: no answer from the endpoint".to_owned(),
        ));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move { auth.introspect("opq-x").await }));
        }
        for t in tasks {
            assert_eq!(outcome(&t.await.unwrap()), fixed);
        }
        assert_eq!(outcome(&auth.introspect("opq-y").await), fixed);
        let shown = format!("{auth:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
