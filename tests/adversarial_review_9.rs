//! Ninth adversarial review: the OAuth 2.0 code once more, as an attacker would: token
//! introspection (RFC 7662, `IntrospectionAuthenticator`: its caches, flights and
//! discovery), the client's token sources (`ClientCredentials`, `TokenExchangeSource`,
//! `FileTokenSource`) under `TokenSourceCredentials` (refresh ahead, refresh after a
//! rejection), `oauth.rs` / `fetch.rs` (discovery, redirects, sizes) and `AnyOf`'s
//! hand-on of `AuthError::Unrecognized`.
//!
//! Every test asserts the secure outcome. `/// Finding:` tests FAIL at the reviewed
//! commit and prove a bug; `/// Guard:` tests are attacks the code withstood, kept as
//! regression guards. The provider is an in-process hyper endpoint on 127.0.0.1 whose
//! answers each test scripts (copied from tests/adversarial_review_7.rs); the server side
//! runs through `AuthLayer` with `tower::ServiceExt::oneshot`, or the authenticator's own
//! `introspect`; the client side through `TokenSourceCredentials::apply`/`on_response`.
#![cfg(feature = "jwks")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
use grpc_auth::authn::{Authenticator, IntrospectionAuthenticator, JwtAuthenticator};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::credentials::{
    CallContext, CallCredentials, CallOutcome, ClientCredentials, Token, TokenError,
    TokenExchangeSource, TokenSource, TokenSourceCredentials,
};
use grpc_auth::oauth::ClientAuth;
use grpc_auth::{AuthError, Principal};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;

#[path = "support/idp.rs"]
mod idp;
use idp::{Got, Idp, Reply, Script, json_reply, raw};
#[path = "support/oauth_calls.rs"]
mod oauth_calls;
use oauth_calls::*;

fn json_token(i: usize, expires_in: u64) -> Reply {
    json_reply(json!({
        "access_token": format!("at-{i}"),
        "token_type": "Bearer",
        "expires_in": expires_in,
    }))
}

/// A token endpoint at `{idp.base}/token` handing out `at-1`, `at-2`, ... valid
/// `expires_in` seconds.
fn issue_tokens(idp: &Idp, expires_in: u64) {
    let issued = Arc::new(AtomicUsize::new(0));
    idp.set(move |_| json_token(issued.fetch_add(1, Ordering::SeqCst) + 1, expires_in));
}

fn token_url(idp: &Idp) -> String {
    format!("{}/token", idp.base)
}

/// POSTs to the token path received.
fn token_requests(idp: &Idp) -> usize {
    idp.seen()
        .iter()
        .filter(|g| g.method == "POST" && g.path == "/token")
        .count()
}

fn ctx() -> CallContext<'static> {
    CallContext::new(
        "https://greeter.example/helloworld.Greeter",
        "SayHello",
        true,
    )
}

fn unauthenticated() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from_static("16"));
    h
}

fn code(r: &Result<Principal, AuthError>) -> Option<Code> {
    r.as_ref().err().map(AuthError::code)
}

// =======================================================================================
// FINDINGS: each test fails on the reviewed code.
// =======================================================================================

/// Finding (medium): a token whose lifetime is not longer than `refresh_ahead` (60 s by
/// default) is fetched anew on EVERY call, forever. `Shared::cached` calls a token
/// "stale" as soon as `now + refresh_ahead >= exp`, and each stale hit starts a
/// background refresh (`refreshing` only serialises them); the fresh token is stale
/// again the moment it arrives, so every call costs the identity provider one token
/// request (here 30 s tokens: 20 calls in half a second make ~20 requests). Providers
/// that issue short tokens (Keycloak realms with a 1-minute access-token lifespan, an
/// STS handing out 60 s tokens) are hammered at the client's call rate; the same holds
/// for `FileTokenSource` (a file re-read per call) near the end of a token's life. No
/// backoff applies, since every fetch succeeds. Fix (src/credentials/token_source.rs
/// `Shared::cached`): refresh ahead by at most a fraction of the token's lifetime (e.g.
/// `min(refresh_ahead, lifetime / 2)`, remembering when the token was fetched), or
/// never start a refresh for a token fetched less than a minimum interval ago.
#[tokio::test]
async fn finding_a_short_lived_token_is_not_fetched_on_every_call() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    issue_tokens(&idp, 30);
    let source = ClientCredentials::builder(token_url(&idp), basic_auth())
        .build()
        .unwrap();
    let creds = TokenSourceCredentials::new(source);
    for _ in 0..20 {
        creds.header_value().await.unwrap();
        // Lets a background refresh finish, as calls spread over time would.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        token_requests(&idp) <= 2,
        "{} token requests for 20 calls within half a second of a 30 s token",
        token_requests(&idp)
    );
}

/// Finding (medium): a server that refuses every token (a wrong audience or issuer at
/// the resource server, or a hostile server the channel also reaches) makes each call
/// fetch a new token: "a token the server refuses before its expiry fetched anew once,
/// never in a loop" (README) holds only for a source that returns the SAME token.
/// `on_response` remembers just the last refused value; a client-credentials endpoint
/// hands out a new token each time, so every UNAUTHENTICATED drops the current one and
/// the next call fetches again, with no backoff: 10 refused calls, 10 token requests.
/// Fix (src/credentials/token_source.rs `on_response`/`fetch_now`): count refusal-driven
/// refetches in `Failures`: after a refetched token is refused too, keep it and let the
/// next refetch wait for the backoff (1 s doubling to 30 s), cleared when a call with
/// the token succeeds.
#[tokio::test]
async fn finding_a_server_refusing_every_token_does_not_drive_a_fetch_per_call() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    issue_tokens(&idp, 3600);
    let source = ClientCredentials::builder(token_url(&idp), basic_auth())
        .build()
        .unwrap();
    let creds = TokenSourceCredentials::new(source);
    let refused = unauthenticated();
    let mut sent_values = Vec::new();
    for _ in 0..10 {
        let mut sent = HeaderMap::new();
        creds.apply(&ctx(), &mut sent).await.unwrap();
        sent_values.push(sent["authorization"].to_str().unwrap().to_owned());
        creds.on_response(&CallOutcome::new(ctx(), &sent, Some(&refused)));
    }
    assert!(
        token_requests(&idp) <= 2,
        "{} token requests for 10 refused calls: {sent_values:?}",
        token_requests(&idp)
    );
}

/// Finding (low): the positive introspection cache's TTL runs on the wall clock only,
/// so a wall clock stepped back (an NTP correction of a fast clock, a restored VM
/// snapshot) stretches it by the size of the step: here a token revoked at the provider
/// is still accepted from the cache 60 s (twice the 30 s TTL) after it was cached,
/// because the clock was stepped back an hour in between; it would be for an hour.
/// "An active answer serves at most this long ... a token revoked at the provider is
/// refused once its entry expires" is the revocation bound introspection is chosen
/// for. The negative cache already uses `Instant` and the `MemoryStore` both clocks.
/// Fix (src/authn/verified.rs, used by src/authn/introspection.rs `cached`/`remember`):
/// keep a monotonic deadline (`Clock::monotonic` + TTL) beside the wall one and serve an
/// entry only while both hold.
#[tokio::test]
async fn finding_a_wall_clock_stepped_back_does_not_stretch_the_cache_ttl() {
    let clock = ManualClock::now();
    let t0 = clock.unix_seconds();
    let idp = Idp::start(|_| json_reply(active("ada"))).await;
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .clock(clock.clone())
        .cache_ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    let token = tok("stepped-back");
    assert_eq!(subject(&auth.introspect(&token).await), Ok("ada".into()));
    // Revoked at the provider.
    idp.set(|_| json_reply(json!({"active": false})));
    // The wall clock is stepped back an hour, then 60 s pass.
    clock.set_unix(t0 - 3600);
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        subject(&auth.introspect(&token).await),
        Err((Code::Unauthenticated, "inactive token".into())),
        "a revoked token served from the cache 60 s after it was cached ({} request(s))",
        idp.introspections()
    );
}

/// Finding (low): a user name in an endpoint URL's userinfo (`https://KEY@idp/...`, the
/// API-key-as-user-name form reqwest sends as Basic `KEY:`) is shown to anyone: `Shown`
/// (src/fetch.rs) redacts only a password, so an introspection outage answers every
/// caller of the server, unauthenticated ones included, `UNAVAILABLE "token
/// introspection unavailable: POST http://svc-key-SECRET@127.0.0.1:1/introspect: error
/// sending request: ... Connection refused"`, and `Debug` of the authenticator and of a
/// built `ClientCredentials` shows it too, while `ClientCredentialsBuilder`'s `Debug`
/// (`fetch::shown_str`) already redacts the whole userinfo. The same message also hands
/// callers the provider's internal address and transport details, which the JWKS path
/// keeps to `tracing` ("JWT signing keys unavailable"). Fix (src/fetch.rs `Shown`): redact
/// the whole userinfo (user name too), as `shown_str` does; and
/// (src/authn/introspection.rs `unavailable`) log the details, answer callers a fixed
/// "token introspection unavailable".
#[tokio::test]
async fn finding_a_user_name_in_an_endpoint_url_is_never_shown() {
    let auth = IntrospectionAuthenticator::builder(
        "http://svc-key-SECRET@127.0.0.1:1/introspect",
        basic_auth(),
    )
    .build()
    .unwrap();
    let got = call(
        auth.clone(),
        &[("authorization", &bearer(&tok("outage")))],
        None,
    )
    .await;
    let cc = ClientCredentials::builder("http://svc-key-SECRET@127.0.0.1:1/token", basic_auth())
        .build()
        .unwrap();
    let e = cc.fetch().await.unwrap_err();
    assert!(matches!(e, TokenError::Unavailable(_)), "{e}");
    assert!(matches!(&got, Err((Code::Unavailable, _))), "{got:?}");
    let shown = format!("{got:?}\n{auth:?}\n{e}\n{cc:?}");
    assert!(!shown.contains("svc-key-SECRET"), "{shown}");
}

// =======================================================================================
// GUARDS: attacks the code withstood.
// =======================================================================================

/// Guard: a discovery document answered with a redirect is not followed, for
/// introspection nor for the client-credentials token endpoint: a 302 from the issuer's
/// `/.well-known/openid-configuration` to a host serving a document that claims the
/// same issuer and names itself as the endpoints makes the call UNAVAILABLE, and that
/// host never sees a request (neither the document fetch nor the token or the secret).
#[tokio::test]
async fn guard_a_redirected_discovery_document_is_not_followed() {
    let thief = Idp::start(|_| raw(500, "{}")).await;
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let issuer = idp.base.clone();
    let (i, steal, steal_token) = (issuer.clone(), thief.url(), token_url(&thief));
    thief.set(move |g| {
        if g.method == "GET" {
            json_reply(json!({
                "issuer": i,
                "introspection_endpoint": steal,
                "token_endpoint": steal_token,
            }))
        } else if g.path == "/token" {
            json_token(1, 300)
        } else {
            json_reply(active("mallory"))
        }
    });
    let to = format!("{}/.well-known/openid-configuration", thief.base);
    idp.set(move |_| Reply::Full(302, vec![("location", to.clone())], String::new()));
    let auth = IntrospectionAuthenticator::builder_for_issuer(issuer.clone(), basic_auth())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let r = auth.introspect(&tok("redirected-discovery")).await;
    assert_eq!(code(&r), Some(Code::Unavailable), "{r:?}");
    let cc = ClientCredentials::builder_for_issuer(issuer, basic_auth())
        .build()
        .unwrap();
    let e = cc.fetch().await.unwrap_err();
    assert!(matches!(e, TokenError::Unavailable(_)), "{e}");
    assert!(!e.to_string().contains(CLIENT_SECRET), "{e}");
    assert!(thief.seen().is_empty(), "{:?}", thief.seen());
    assert_eq!(idp.seen().iter().filter(|g| g.method == "POST").count(), 0);
}

/// Guard: a discovery document past 64 KiB is refused before it is parsed, announced
/// (a valid document, padded, with its content-length) or not (chunked), for
/// introspection and for client credentials: UNAVAILABLE, no token or secret POSTed.
#[tokio::test]
async fn guard_a_huge_discovery_document_is_refused() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let doc = json!({
        "issuer": idp.base,
        "introspection_endpoint": idp.url(),
        "token_endpoint": token_url(&idp),
        "pad": " ".repeat(70 * 1024),
    })
    .to_string();
    let huge: [Reply; 2] = [
        raw(200, &doc),
        Reply::Chunked {
            chunk: " ".repeat(8 * 1024),
            count: 9,
        },
    ];
    for reply in huge {
        idp.set(move |g| {
            if g.method == "GET" {
                reply.clone()
            } else if g.path == "/token" {
                json_token(1, 300)
            } else {
                json_reply(active("mallory"))
            }
        });
        let auth = IntrospectionAuthenticator::builder_for_issuer(idp.base.clone(), basic_auth())
            .build()
            .unwrap();
        let r = auth.introspect(&tok("huge-doc")).await;
        assert_eq!(code(&r), Some(Code::Unavailable), "{r:?}");
        let e = ClientCredentials::builder_for_issuer(idp.base.clone(), basic_auth())
            .build()
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        assert!(matches!(e, TokenError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    }
    assert_eq!(idp.seen().iter().filter(|g| g.method == "POST").count(), 0);
}

/// Guard: calls cancelled while the introspection endpoint is still being discovered
/// leave neither a flight nor a half-done discovery behind: with `max_in_flight(1)`, 20
/// calls cancelled during a hanging discovery, then the document is served and a new
/// token is introspected (discovery retried), not refused "too many token
/// introspections in progress".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_calls_cancelled_during_discovery_leave_nothing_behind() {
    let idp = Idp::start(|_| Reply::Hang).await;
    let auth = IntrospectionAuthenticator::builder_for_issuer(idp.base.clone(), basic_auth())
        .max_in_flight(1)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..20 {
        let n = idp.arrived();
        let task = {
            let (auth, token) = (auth.clone(), tok(&format!("discovering-{i}")));
            tokio::spawn(async move { auth.introspect(&token).await })
        };
        idp.wait_for(n + 1).await;
        task.abort();
        let _ = task.await;
    }
    assert_eq!(idp.introspections(), 0);
    let (issuer, url) = (idp.base.clone(), idp.url());
    idp.set(move |g| {
        if g.method == "GET" {
            json_reply(json!({"issuer": issuer, "introspection_endpoint": url}))
        } else {
            json_reply(active("ada"))
        }
    });
    let fresh = tokio::time::timeout(Duration::from_secs(3), auth.introspect(&tok("after")))
        .await
        .expect("not hung");
    assert_eq!(subject(&fresh), Ok("ada".into()));
}

/// Guard: extreme durations and bounds neither panic nor fail open: with a zero timeout
/// an inactive token is never accepted; `Duration::MAX` for the timeout and both cache
/// TTLs, and zero capacities and in-flight bounds (raised to 1), still accept an active
/// token, serve it from the cache and refuse an inactive one.
#[tokio::test]
async fn guard_extreme_durations_fail_closed_without_panic() {
    let idp = Idp::start(|g| {
        if g.field("token").is_some_and(|t| t.contains("live")) {
            json_reply(active("ada"))
        } else {
            json_reply(json!({"active": false}))
        }
    })
    .await;
    // A zero timeout: whatever wins the race (a loopback provider may answer before the
    // timer fires), an inactive token is never accepted and nothing panics.
    let zero = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..5 {
        let r = zero.introspect(&tok("dead-zero")).await;
        assert!(
            matches!(code(&r), Some(Code::Unauthenticated | Code::Unavailable)),
            "{r:?}"
        );
        let r = zero.introspect(&tok("live-zero")).await;
        assert!(
            matches!(&r, Ok(p) if p.subject() == "ada") || code(&r) == Some(Code::Unavailable),
            "{r:?}"
        );
    }

    let max = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(Duration::MAX)
        .cache_ttl(Duration::MAX)
        .negative_cache_ttl(Duration::MAX)
        .cache_capacity(0)
        .max_in_flight(0)
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            subject(&max.introspect(&tok("live-max")).await),
            Ok("ada".into())
        );
        assert_eq!(
            subject(&max.introspect(&tok("dead-max")).await),
            Err((Code::Unauthenticated, "inactive token".into()))
        );
    }
}

/// Guard: the positive cache serves only the exact token it was asked about: once
/// `tok` is cached and the provider is down, `tok` itself (also re-spaced, with a
/// lower-case scheme) is served, but its upper-case form, a prefix, an extension and a
/// second word are asked of the provider (UNAVAILABLE), never taken for the cached one.
#[tokio::test]
async fn guard_the_positive_cache_serves_only_the_exact_token() {
    let idp = Idp::start(|_| json_reply(active("ada"))).await;
    let auth = introspection(&idp);
    let token = tok("exact");
    let h = bearer(&token);
    assert_eq!(
        call(auth.clone(), &[("authorization", &h)], None).await,
        Ok("ada".into())
    );
    idp.set(|_| raw(503, "{}"));
    let respaced = format!("bearer   {token}  ");
    assert_eq!(
        call(auth.clone(), &[("authorization", &respaced)], None).await,
        Ok("ada".into())
    );
    for variant in [
        token.to_uppercase(),
        token[..token.len() - 1].to_owned(),
        format!("{token}x"),
        format!("{token} x"),
        format!("x{token}"),
    ] {
        let got = call(auth.clone(), &[("authorization", &bearer(&variant))], None).await;
        assert!(
            matches!(&got, Err((Code::Unavailable, _))),
            "{variant}: {got:?}"
        );
    }
}

/// Guard: a bearer token cannot inject form parameters into the introspection request
/// (nor override the client's own): `&`, `=`, `+` and `%` in the token are encoded, the
/// provider reads one `token` (the whole value), one `client_id`, one `client_secret`
/// and one `token_type_hint`.
#[tokio::test]
async fn guard_a_token_cannot_inject_form_parameters() {
    let idp = Idp::start(|_| json_reply(active("ada"))).await;
    let auth = IntrospectionAuthenticator::builder(
        idp.url(),
        ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
    )
    .build()
    .unwrap();
    let token = "x&client_id=evil&client_secret=guess&token_type_hint=refresh_token&token=y+%41";
    assert_eq!(subject(&auth.introspect(token).await), Ok("ada".into()));
    let got = idp.seen().pop().unwrap();
    let count = |name: &str| got.form.iter().filter(|(k, _)| k == name).count();
    for name in ["token", "client_id", "client_secret", "token_type_hint"] {
        assert_eq!(count(name), 1, "{name}: {:?}", got.form.len());
    }
    assert_eq!(
        got.authorization, None,
        "client_secret_post sends no Basic header"
    );
    assert_eq!(got.field("token"), Some(token));
    assert_eq!(got.field("client_id"), Some(CLIENT_ID));
    assert_eq!(got.field("client_secret"), Some(CLIENT_SECRET));
    assert_eq!(got.field("token_type_hint"), Some("access_token"));
}

fn jwt2() -> JwtAuthenticator<StaticKeys> {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, b"review-9-other-secret-0123456789abcd").unwrap(),
    ))
}

/// Guard: an opaque bearer passes through two JWT schemes that both call it
/// `Unrecognized` (`jwt.or(jwt2).or(introspection)`) to the introspection endpoint, once:
/// active is accepted as the provider's subject, inactive is "inactive token", a wrong
/// API key beside an active one is refused (in either order), a JWT of the first key is
/// verified locally, and one the first scheme refuses (signed with the second key) stays
/// refused: a JWT is never handed on, to the second scheme nor to the provider.
#[tokio::test]
async fn guard_nested_unrecognized_schemes_hand_on_once() {
    let idp = Idp::start(|g| {
        if g.field("token").is_some_and(|t| t.contains("dead")) {
            json_reply(json!({"active": false}))
        } else {
            json_reply(active("grace"))
        }
    })
    .await;
    let live = bearer(&tok("live"));
    let dead = bearer(&tok("dead"));
    let chain = || jwt().or(jwt2()).or(introspection(&idp));
    assert_eq!(
        call(chain(), &[("authorization", &live)], None).await,
        Ok("grace".into())
    );
    assert_eq!(
        call(chain(), &[("authorization", &dead)], None).await,
        Err((Code::Unauthenticated, "inactive token".into()))
    );
    assert_eq!(
        call(
            chain().or(api_key()),
            &[("authorization", &live), ("x-api-key", "WRONG")],
            None
        )
        .await,
        Err((Code::Unauthenticated, "invalid API key".into()))
    );
    assert_eq!(
        call(
            api_key().or(chain()),
            &[("authorization", &live), ("x-api-key", "WRONG")],
            None
        )
        .await,
        Err((Code::Unauthenticated, "invalid API key".into()))
    );
    // `api_key.or(..)` refused the wrong key before asking anyone.
    assert_eq!(idp.introspections(), 3);
    let first = hs256(&json!({"sub": "bob", "exp": now() + 600}));
    assert_eq!(
        call(chain(), &[("authorization", &bearer(&first))], None).await,
        Ok("bob".into())
    );
    let other = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "ada", "exp": now() + 600}),
        &EncodingKey::from_secret(b"review-9-other-secret-0123456789abcd"),
    )
    .unwrap();
    assert_eq!(
        call(chain(), &[("authorization", &bearer(&other))], None).await,
        Err((Code::Unauthenticated, "invalid token signature".into())),
        "the first JWT scheme's refusal stands (never retried with another scheme)"
    );
    assert_eq!(idp.introspections(), 3, "a JWT was sent to the provider");
}

/// A subject token source handing out one distinctive token.
struct Subject;

const SUBJECT: &str = "subj.eyJSECRET-Zq8.sig-Vt3";

impl TokenSource for Subject {
    async fn fetch(&self) -> Result<Token, TokenError> {
        Ok(Token::new(SUBJECT, None))
    }
}

/// Guard: a security token service echoing the subject token (or the client secret)
/// back, in an `error` code, an `error_description`, a 5xx body or a `token_type`,
/// never gets it into the error, the call's status or `Debug`.
#[tokio::test]
async fn guard_token_exchange_never_echoes_the_subject_token() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let echo = |g: &Got| {
        format!(
            "{} {}",
            g.field("subject_token").unwrap_or_default(),
            g.field("client_secret").unwrap_or_default()
        )
    };
    let replies: Vec<Script> = vec![
        Arc::new(move |g| raw(400, &json!({"error": echo(g)}).to_string())),
        Arc::new(move |g| {
            raw(
                400,
                &json!({"error": "invalid_grant", "error_description": echo(g)}).to_string(),
            )
        }),
        Arc::new(move |g| raw(401, &echo(g))),
        Arc::new(move |g| raw(503, &echo(g))),
        Arc::new(move |g| raw(200, &echo(g))),
        Arc::new(move |g| {
            raw(
                200,
                &json!({"access_token": "at", "token_type": echo(g)}).to_string(),
            )
        }),
    ];
    for reply in replies {
        idp.set(move |g| reply(g));
        let sts = TokenExchangeSource::builder(token_url(&idp), Subject)
            .client(ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET))
            .audience("greeter")
            .build()
            .unwrap();
        let shown = format!("{sts:?}");
        let e = sts.fetch().await.unwrap_err();
        let creds = TokenSourceCredentials::new(sts);
        let status = creds.header_value().await.unwrap_err();
        let text = format!("{e} {e:?} {status:?} {shown} {creds:?}");
        for needle in [SUBJECT, "SECRET-Zq8", CLIENT_SECRET] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
    }
    let sent = idp.seen();
    assert!(
        sent.iter()
            .all(|g| g.field("subject_token") == Some(SUBJECT))
    );
}
