//! Remote JWT keys against an in-process JWKS / discovery server: fetch, rotation,
//! generation, Cache-Control, provider failures, size and time limits, unknown-kid
//! floods, single-flight, the no-kid rule and several issuers. The sources read a
//! `ManualClock`; every case asserts the exact outcome and the server's fetch counts.
#![cfg(feature = "jwks")]

#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grpc_auth::authn::jwt::{
    IssuerKeys, JwksError, JwksKeys, JwksKeysBuilder, JwtAuthenticator, KeySource,
};
use grpc_auth::clock::{Clock, ManualClock};
use jwks_server::{JwksServer, Mode, TestKey, ec256, jwks, rsa, rsa2};
use serde_json::{Value, json};
use tonic::Code;

const ISS: &str = "https://issuer.test";
const UNAVAILABLE: &str = "JWT signing keys unavailable";

fn claims(iss: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({ "sub": "ada", "iss": iss, "exp": now + 3600 })
}

/// A source for `server`'s key set reading `clock`.
fn source(server: &JwksServer, clock: &ManualClock) -> JwksKeysBuilder {
    JwksKeys::builder(server.jwks_url()).clock(clock.clone())
}

fn auth(keys: JwksKeys) -> JwtAuthenticator<JwksKeys> {
    JwtAuthenticator::new(keys).issuer(ISS)
}

/// The subject, or the code and message of the refusal.
async fn check<K: KeySource>(
    auth: &JwtAuthenticator<K>,
    token: &str,
) -> Result<String, (Code, String)> {
    auth.verify(token)
        .await
        .map(|v| v.principal.subject().to_owned())
        .map_err(|e| (e.code(), e.to_string()))
}

fn ok() -> Result<String, (Code, String)> {
    Ok("ada".into())
}

fn unauth(msg: &str) -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, msg.into()))
}

fn unavailable() -> Result<String, (Code, String)> {
    Err((Code::Unavailable, UNAVAILABLE.into()))
}

/// Waits (bounded) for a condition another task makes true.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("gave up waiting for {what}");
}

fn kids(keys: &JwksKeys) -> Vec<String> {
    let set = keys.current().expect("current keys");
    set.keys()
        .iter()
        .map(|k| k.kid().unwrap_or("-").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Fetching
// ---------------------------------------------------------------------------

#[tokio::test]
async fn keys_from_a_jwks_url_verify_tokens_by_kid() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a, &b])).await;
    let clock = ManualClock::now();
    let keys = source(&server, &clock).build().unwrap();
    assert_eq!(keys.generation(), 0);
    assert!(keys.current().is_none());
    let auth = auth(keys.clone());
    for _ in 0..3 {
        assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
        assert_eq!(check(&auth, &b.sign(&claims(ISS))).await, ok());
    }
    assert_eq!(server.jwks_fetches(), 1);
    assert_eq!(keys.generation(), 1);
    assert_eq!(kids(&keys), ["a", "b"]);
    // The signature still decides: b's kid on a token a signed.
    assert_eq!(
        check(&auth, &a.sign_as("b", &claims(ISS))).await,
        unauth("token algorithm not allowed")
    );
    assert_eq!(
        check(&auth, &rsa2("a").sign(&claims(ISS))).await,
        unauth("invalid token signature")
    );
    assert_eq!(server.jwks_fetches(), 1);
}

#[tokio::test]
async fn ready_waits_for_the_first_fetch() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let keys = source(&server, &ManualClock::now()).build().unwrap();
    assert_eq!(server.jwks_fetches(), 0, "built lazily");
    keys.ready().await.unwrap();
    assert_eq!(server.jwks_fetches(), 1);
    assert_eq!(kids(&keys), ["a"]);
    keys.ready().await.unwrap();
    assert_eq!(server.jwks_fetches(), 1, "ready with keys does not fetch");
    assert_eq!(check(&auth(keys), &a.sign(&claims(ISS))).await, ok());
    assert_eq!(server.jwks_fetches(), 1);
}

#[tokio::test]
async fn discovery_finds_the_jwks_uri() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let issuer = server.issuer();
    let keys = JwksKeys::builder_for_issuer(&issuer)
        .clock(ManualClock::now())
        .build()
        .unwrap();
    let auth = JwtAuthenticator::new(keys.clone()).issuer(&issuer);
    assert_eq!(check(&auth, &a.sign(&claims(&issuer))).await, ok());
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (1, 1));
    // Every fetch discovers again; a trailing slash on the issuer is not doubled.
    keys.refresh().await.unwrap();
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (2, 2));
    let slash = JwksKeys::builder_for_issuer(format!("{issuer}/"))
        .build()
        .unwrap();
    assert_eq!(
        slash.ready().await,
        Err(JwksError::IssuerMismatch {
            expected: format!("{issuer}/"),
            found: issuer.clone(),
        })
    );
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (3, 2));
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    server.set_discovered_issuer("https://evil.example");
    let keys = JwksKeys::builder_for_issuer(server.issuer())
        .build()
        .unwrap();
    let err = keys.ready().await.unwrap_err();
    assert_eq!(
        err,
        JwksError::IssuerMismatch {
            expected: server.issuer(),
            found: "https://evil.example".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "discovery document of {} names issuer \"https://evil.example\"",
            server.issuer()
        )
    );
    let auth = JwtAuthenticator::new(keys);
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, unavailable());
    assert_eq!(server.jwks_fetches(), 0, "the key set is never fetched");
}

#[tokio::test]
async fn https_key_url_is_verified_against_the_configured_roots() {
    let pki = tls::test_pki();
    let a = rsa("a");
    let server = JwksServer::start_tls(jwks(&[&a]), &pki.cert_pem, &pki.key_pem).await;
    assert!(server.jwks_url().starts_with("https://127.0.0.1:"));

    let keys = JwksKeys::builder(server.jwks_url())
        .root_certificates_pem(pki.ca_pem.as_bytes())
        .build()
        .unwrap();
    assert_eq!(check(&auth(keys), &a.sign(&claims(ISS))).await, ok());
    assert_eq!(server.jwks_fetches(), 1);

    // Without the test CA the certificate is refused before any request is made.
    let untrusted = JwksKeys::builder(server.jwks_url()).build().unwrap();
    match untrusted.ready().await {
        Err(JwksError::Fetch(msg)) => {
            assert!(
                msg.starts_with(&format!("GET {}: ", server.jwks_url())),
                "{msg}"
            );
            assert!(msg.contains("UnknownIssuer"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.jwks_fetches(), 1);
}

// ---------------------------------------------------------------------------
// Rotation and generation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rotation_adds_and_removes_keys_and_moves_the_generation() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = source(&server, &clock).build().unwrap();
    let auth = auth(keys.clone());
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    assert_eq!((server.jwks_fetches(), keys.generation()), (1, 1));

    // The provider adds b: its first token refetches at once.
    server.set_jwks(jwks(&[&a, &b]));
    assert_eq!(check(&auth, &b.sign(&claims(ISS))).await, ok());
    assert_eq!((server.jwks_fetches(), keys.generation()), (2, 2));
    assert_eq!(kids(&keys), ["a", "b"]);

    // Then removes a: the next refresh drops it, and a's tokens fail.
    server.set_jwks(jwks(&[&b]));
    keys.refresh().await.unwrap();
    assert_eq!((server.jwks_fetches(), keys.generation()), (3, 3));
    assert_eq!(kids(&keys), ["b"]);
    assert_eq!(
        check(&auth, &a.sign(&claims(ISS))).await,
        unauth("unknown token key id")
    );
    assert_eq!(check(&auth, &b.sign(&claims(ISS))).await, ok());
}

#[tokio::test]
async fn an_identical_refetch_keeps_the_generation() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a, &b])).await;
    let keys = source(&server, &ManualClock::now()).build().unwrap();
    keys.ready().await.unwrap();
    let first = keys.current().unwrap();
    assert_eq!(keys.generation(), 1);

    keys.refresh().await.unwrap();
    assert_eq!((server.jwks_fetches(), keys.generation()), (2, 1));
    assert!(
        Arc::ptr_eq(&first, &keys.current().unwrap()),
        "same set kept"
    );

    // The same keys in another order, with other Cache-Control: still the same set.
    server.set_jwks(jwks(&[&b, &a]));
    server.set_cache_control(Some("max-age=300"));
    keys.refresh().await.unwrap();
    assert_eq!((server.jwks_fetches(), keys.generation()), (3, 1));

    // A key whose material changes under the same kid is a change.
    server.set_jwks(jwks(&[&rsa2("a"), &b]));
    keys.refresh().await.unwrap();
    assert_eq!((server.jwks_fetches(), keys.generation()), (4, 2));
    assert!(!Arc::ptr_eq(&first, &keys.current().unwrap()));
}

#[tokio::test]
async fn cache_control_sets_the_refresh_time_within_bounds() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = source(&server, &clock).build().unwrap();
    let bounded = source(&server, &clock)
        .cache_control_bounds(Duration::from_secs(3600), Duration::from_secs(10))
        .refresh_interval(Duration::from_secs(42))
        .build()
        .unwrap();
    let cases = [
        (None, 600, 42),
        (Some("public, max-age=120"), 120, 120),
        (Some("max-age=5"), 60, 10),
        (Some("max-age=999999"), 86_400, 3600),
        (Some("no-store"), 60, 10),
        (Some("max-age=soon"), 600, 42),
    ];
    for (cache_control, secs, bounded_secs) in cases {
        server.set_cache_control(cache_control);
        keys.refresh().await.unwrap();
        bounded.refresh().await.unwrap();
        let next = |s: u64| Some(clock.now() + Duration::from_secs(s));
        assert_eq!(keys.next_refresh(), next(secs), "{cache_control:?}");
        assert_eq!(
            bounded.next_refresh(),
            next(bounded_secs),
            "{cache_control:?}"
        );
    }
}

#[tokio::test]
async fn keys_found_due_are_refreshed_in_the_background_while_they_serve() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a])).await;
    server.set_cache_control(Some("max-age=120"));
    let clock = ManualClock::now();
    let keys = source(&server, &clock).build().unwrap();
    let auth = auth(keys.clone());
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());

    server.set_jwks(jwks(&[&b]));
    clock.advance(Duration::from_secs(119));
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    clock.advance(Duration::from_secs(1));
    // Due: the call is answered with the current keys and wakes the refresh task.
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    eventually("the background refresh", || keys.generation() == 2).await;
    assert_eq!(server.jwks_fetches(), 2);
    assert_eq!(kids(&keys), ["b"]);
    assert_eq!(check(&auth, &b.sign(&claims(ISS))).await, ok());
    assert_eq!(server.jwks_fetches(), 2);
}

// ---------------------------------------------------------------------------
// Provider failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn provider_down_stale_keys_serve_until_max_stale_then_unavailable() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = source(&server, &clock)
        .max_stale(Duration::from_secs(3600))
        .build()
        .unwrap();
    let auth = auth(keys.clone());
    keys.ready().await.unwrap();

    server.set_mode(Mode::Status(500));
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        keys.refresh().await,
        Err(JwksError::Fetch(format!(
            "GET {}: HTTP 500 Internal Server Error",
            server.jwks_url()
        )))
    );
    // Due and failing, the last good keys keep serving...
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    clock.advance(Duration::from_secs(3599));
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    // ...until max_stale past their refresh time.
    clock.advance(Duration::from_secs(1));
    assert!(keys.current().is_none());
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, unavailable());
    assert_eq!(keys.generation(), 1, "expiry is not a key change");

    // Back up: once the retry wait is over, the next call fetches and succeeds.
    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(60));
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    assert_eq!(kids(&keys), ["a"]);
}

#[tokio::test]
async fn no_keys_ever_is_unavailable_and_retries_back_off() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    server.set_mode(Mode::Status(503));
    let clock = ManualClock::now();
    let keys = source(&server, &clock).build().unwrap();
    let auth = auth(keys.clone());
    let token = a.sign(&claims(ISS));

    assert_eq!(check(&auth, &token).await, unavailable());
    assert_eq!(server.jwks_fetches(), 1);
    // Within the retry wait (1 s after one failure) calls fail without fetching.
    assert_eq!(check(&auth, &token).await, unavailable());
    assert_eq!(server.jwks_fetches(), 1);
    // `ready` does not wait: it fetches and says why it failed.
    assert_eq!(
        keys.ready().await,
        Err(JwksError::Fetch(format!(
            "GET {}: HTTP 503 Service Unavailable",
            server.jwks_url()
        )))
    );
    assert_eq!(server.jwks_fetches(), 2);

    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_millis(1999));
    assert_eq!(
        check(&auth, &token).await,
        unavailable(),
        "2 s after two failures"
    );
    assert_eq!(server.jwks_fetches(), 2);
    clock.advance(Duration::from_millis(1));
    assert_eq!(check(&auth, &token).await, ok());
    assert_eq!(server.jwks_fetches(), 3);
}

#[tokio::test]
async fn slow_provider_times_out_unavailable() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    server.set_mode(Mode::Hang);
    let keys = JwksKeys::builder(server.jwks_url())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let auth = auth(keys.clone());
    // Bounded: the guard only fails the test if the timeout did not work.
    let outcome =
        tokio::time::timeout(Duration::from_secs(30), check(&auth, &a.sign(&claims(ISS))))
            .await
            .expect("the fetch timeout bounds the call");
    assert_eq!(outcome, unavailable());
    assert_eq!(server.jwks_fetches(), 1);

    let later = JwksKeys::builder(server.jwks_url())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(30), later.ready())
        .await
        .expect("bounded")
    {
        Err(JwksError::Fetch(msg)) => {
            assert!(
                msg.starts_with(&format!("GET {}: ", server.jwks_url())),
                "{msg}"
            );
            assert!(msg.contains("timed out"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn garbage_and_oversized_responses_are_refused_and_the_last_keys_kept() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let url = server.jwks_url();
    let cases = [
        (
            Mode::Garbage,
            JwksError::Invalid(format!(
                "{url}: not a JWK set: expected ident at line 1 column 2"
            )),
        ),
        (
            Mode::Oversized(2 << 20),
            JwksError::Fetch(format!("GET {url}: response larger than 1048576 bytes")),
        ),
        (
            Mode::OversizedChunked(2 << 20),
            JwksError::Fetch(format!("GET {url}: response larger than 1048576 bytes")),
        ),
        (
            Mode::Status(404),
            JwksError::Fetch(format!("GET {url}: HTTP 404 Not Found")),
        ),
    ];
    for (mode, want) in cases {
        // With no keys yet: the call is UNAVAILABLE and `ready` says why.
        server.set_mode(mode.clone());
        let fresh = source(&server, &ManualClock::now()).build().unwrap();
        assert_eq!(
            check(&auth(fresh.clone()), &a.sign(&claims(ISS))).await,
            unavailable(),
            "{mode:?}"
        );
        assert_eq!(fresh.refresh().await, Err(want.clone()), "{mode:?}");

        // With keys: a bad answer changes nothing.
        server.set_mode(Mode::Serve);
        let keys = source(&server, &ManualClock::now()).build().unwrap();
        keys.ready().await.unwrap();
        server.set_mode(mode.clone());
        assert_eq!(keys.refresh().await, Err(want), "{mode:?}");
        assert_eq!(
            check(&auth(keys.clone()), &a.sign(&claims(ISS))).await,
            ok()
        );
        assert_eq!(keys.generation(), 1, "{mode:?}");
    }

    // The limit is configurable; a body just within it is read.
    server.set_mode(Mode::Oversized(1000));
    let small = source(&server, &ManualClock::now())
        .max_response_bytes(999)
        .build()
        .unwrap();
    assert_eq!(
        small.refresh().await,
        Err(JwksError::Fetch(format!(
            "GET {url}: response larger than 999 bytes"
        )))
    );
    let exact = source(&server, &ManualClock::now())
        .max_response_bytes(1000)
        .build()
        .unwrap();
    assert_eq!(
        exact.refresh().await,
        Err(JwksError::Invalid(format!("{url}: no usable keys"))),
        "read, parsed: an empty set"
    );
}

#[tokio::test]
async fn unusable_keys_are_skipped_while_good_ones_load() {
    let a = rsa("a");
    let mut enc = rsa2("enc").jwk;
    enc["use"] = json!("enc");
    let body = json!({ "keys": [
        { "kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldA" },
        { "kty": "RSA", "kid": "broken", "alg": "RS256", "n": "!!", "e": "AQAB" },
        { "kty": "EC", "kid": "no-curve", "x": "AA", "y": "AA" },
        42,
        enc,
        a.jwk.clone(),
    ]});
    let server = JwksServer::start(body).await;
    let keys = source(&server, &ManualClock::now()).build().unwrap();
    keys.ready().await.unwrap();
    assert_eq!(kids(&keys), ["a"]);
    let auth = auth(keys);
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    // The skipped oct key is not a way in: an HS256 token naming it is unknown.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("hmac".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims(ISS),
        &jsonwebtoken::EncodingKey::from_secret(b"secret-secret"),
    )
    .unwrap();
    assert_eq!(check(&auth, &forged).await, unauth("unknown token key id"));
}

// ---------------------------------------------------------------------------
// Unknown kids, single-flight, the no-kid rule
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_interval() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = source(&server, &clock).build().unwrap();
    let auth = Arc::new(auth(keys.clone()));
    keys.ready().await.unwrap();

    for i in 0..100 {
        let forged = a.sign_as(&format!("forged-{i}"), &claims(ISS));
        assert_eq!(check(&auth, &forged).await, unauth("unknown token key id"));
    }
    assert_eq!(server.jwks_fetches(), 2, "one refetch for 100 unknown kids");

    clock.advance(Duration::from_secs(29));
    let forged = a.sign_as("forged-late", &claims(ISS));
    assert_eq!(check(&auth, &forged).await, unauth("unknown token key id"));
    assert_eq!(server.jwks_fetches(), 2);

    // 30 s after the last refetch: 100 concurrent unknown kids, one more fetch.
    clock.advance(Duration::from_secs(1));
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let auth = auth.clone();
            let forged = a.sign_as(&format!("forged-again-{i}"), &claims(ISS));
            tokio::spawn(async move { check(&auth, &forged).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), unauth("unknown token key id"));
    }
    assert_eq!(server.jwks_fetches(), 3);
    // Known kids never refetch.
    assert_eq!(check(&auth, &a.sign(&claims(ISS))).await, ok());
    assert_eq!(server.jwks_fetches(), 3);
}

#[tokio::test]
async fn unknown_kid_refetch_interval_is_configurable() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = source(&server, &clock)
        .unknown_kid_refetch_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    let auth = auth(keys.clone());
    keys.ready().await.unwrap();
    assert_eq!(
        check(&auth, &b.sign(&claims(ISS))).await,
        unauth("unknown token key id")
    );
    assert_eq!(server.jwks_fetches(), 2);
    server.set_jwks(jwks(&[&a, &b]));
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        check(&auth, &b.sign(&claims(ISS))).await,
        unauth("unknown token key id")
    );
    assert_eq!(server.jwks_fetches(), 2);
    clock.advance(Duration::from_secs(1));
    assert_eq!(check(&auth, &b.sign(&claims(ISS))).await, ok());
    assert_eq!(server.jwks_fetches(), 3);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let a = rsa("a");
    let server = JwksServer::start(jwks(&[&a])).await;
    server.hold();
    let keys = source(&server, &ManualClock::now()).build().unwrap();
    let auth = Arc::new(auth(keys.clone()));
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let auth = auth.clone();
            // Every fifth names an unknown kid: it waits for the same fetch.
            let token = match i % 5 {
                0 => a.sign_as("other", &claims(ISS)),
                _ => a.sign(&claims(ISS)),
            };
            tokio::spawn(async move { (i, check(&auth, &token).await) })
        })
        .collect();
    eventually("the first fetch to reach the server", || {
        server.jwks_fetches() == 1
    })
    .await;
    server.release();
    for call in calls {
        let (i, outcome) = call.await.unwrap();
        let want = match i % 5 {
            0 => unauth("unknown token key id"),
            _ => ok(),
        };
        assert_eq!(outcome, want, "call {i}");
    }
    assert_eq!(server.jwks_fetches(), 1);
    assert_eq!(keys.generation(), 1);
}

#[tokio::test]
async fn a_token_without_kid_is_tried_only_against_a_single_key_of_its_type() {
    let (a, b, c) = (rsa("a"), ec256("b"), rsa2("c"));
    let server = JwksServer::start(jwks(&[&a, &b])).await;
    let keys = source(&server, &ManualClock::now()).build().unwrap();
    let auth = auth(keys.clone());
    assert_eq!(check(&auth, &a.sign_without_kid(&claims(ISS))).await, ok());
    assert_eq!(check(&auth, &b.sign_without_kid(&claims(ISS))).await, ok());

    server.set_jwks(jwks(&[&a, &b, &c]));
    keys.refresh().await.unwrap();
    for rsa_key in [&a, &c] {
        assert_eq!(
            check(&auth, &rsa_key.sign_without_kid(&claims(ISS))).await,
            unauth("token has no key id and several keys fit")
        );
    }
    assert_eq!(check(&auth, &b.sign_without_kid(&claims(ISS))).await, ok());
    assert_eq!(server.jwks_fetches(), 2, "a missing kid does not refetch");
}

// ---------------------------------------------------------------------------
// Several issuers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn two_issuers_are_routed_by_iss() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server_a = JwksServer::start(jwks(&[&a])).await;
    let server_b = JwksServer::start(jwks(&[&b])).await;
    let (iss_a, iss_b) = (server_a.issuer(), server_b.issuer());
    let discover = |iss: &str| JwksKeys::builder_for_issuer(iss).build().unwrap();
    let keys = IssuerKeys::new()
        .issuer(&iss_a, discover(&iss_a))
        .issuer(&iss_b, discover(&iss_b));
    let auth = JwtAuthenticator::new(keys.clone());

    assert_eq!(check(&auth, &a.sign(&claims(&iss_a))).await, ok());
    assert_eq!(check(&auth, &b.sign(&claims(&iss_b))).await, ok());
    assert_eq!((server_a.jwks_fetches(), server_b.jwks_fetches()), (1, 1));
    assert_eq!(keys.generation(), 2);

    // A's key claiming to be from B is looked up in B's keys only.
    assert_eq!(
        check(&auth, &a.sign(&claims(&iss_b))).await,
        unauth("unknown token key id")
    );
    assert_eq!(
        check(&auth, &a.sign(&claims("https://unknown.example"))).await,
        unauth("unknown token issuer")
    );
    let no_iss = json!({ "sub": "ada", "exp": claims(ISS)["exp"] });
    assert_eq!(
        check(&auth, &a.sign(&no_iss)).await,
        unauth("token lacks required claim: iss")
    );
    assert_eq!(server_a.jwks_fetches(), 1, "unrouted tokens fetch nothing");

    // The authenticator's own issuer check still applies on top.
    let only_a = JwtAuthenticator::new(keys).issuer(&iss_a);
    assert_eq!(check(&only_a, &a.sign(&claims(&iss_a))).await, ok());
    assert_eq!(
        check(&only_a, &b.sign(&claims(&iss_b))).await,
        unauth("invalid token issuer")
    );
}

#[tokio::test]
async fn issuer_keys_route_any_key_source() {
    use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
    let secret =
        |s: &[u8]| StaticKeys::from(JwtKey::secret(jsonwebtoken::Algorithm::HS256, s).unwrap());
    let keys = IssuerKeys::new()
        .issuer(
            "https://one.example",
            secret(b"one-one-one-one-one-one-one-one-1"),
        )
        .issuer(
            "https://two.example",
            secret(b"two-two-two-two-two-two-two-two-2"),
        );
    let mut issuers: Vec<_> = keys.issuers().collect();
    issuers.sort();
    assert_eq!(issuers, ["https://one.example", "https://two.example"]);
    assert!(keys.get("https://one.example").is_some());
    assert_eq!(keys.generation(), 0);
    let auth = JwtAuthenticator::new(keys);
    let sign = |secret: &[u8], iss: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims(iss),
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    assert_eq!(
        check(
            &auth,
            &sign(b"two-two-two-two-two-two-two-two-2", "https://two.example")
        )
        .await,
        ok()
    );
    assert_eq!(
        check(
            &auth,
            &sign(b"one-one-one-one-one-one-one-one-1", "https://two.example")
        )
        .await,
        unauth("invalid token signature")
    );
    assert_eq!(
        check(&auth, "eyJhbGciOiJIUzI1NiJ9.***.c2ln").await,
        unauth("malformed token")
    );
}

/// Unused helper kept honest: every test key kind builds a JWK the source loads.
#[tokio::test]
async fn every_test_key_kind_loads_from_a_jwks() {
    let all: [TestKey; 4] = [rsa("r"), rsa2("r2"), ec256("e"), jwks_server::ed25519("o")];
    let server = JwksServer::start(jwks(&all.iter().collect::<Vec<_>>())).await;
    let keys = source(&server, &ManualClock::now()).build().unwrap();
    let auth = auth(keys.clone());
    for key in &all {
        assert_eq!(
            check(&auth, &key.sign(&claims(ISS))).await,
            ok(),
            "{}",
            key.kid
        );
    }
    assert_eq!(kids(&keys), ["r", "r2", "e", "o"]);
    assert_eq!(server.jwks_fetches(), 1);
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn skipped_keys_and_failed_fetches_are_logged_at_warn_without_key_material() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let secret = "c3VwZXItc2VjcmV0LWhtYWMta2V5LW1hdGVyaWFs";
    let url = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let a = rsa("a");
            let body = json!({ "keys": [
                { "kty": "oct", "kid": "hmac", "alg": "HS256", "k": secret },
                a.jwk.clone(),
            ]});
            let server = JwksServer::start(body).await;
            let keys = source(&server, &ManualClock::now()).build().unwrap();
            keys.ready().await.unwrap();
            server.set_mode(Mode::Garbage);
            keys.refresh().await.unwrap_err();
            server.jwks_url()
        });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{out}"))
            .to_owned()
    };
    let skipped = line("grpc-auth: JWKS key skipped");
    assert!(skipped.contains(" WARN "), "{skipped}");
    assert!(skipped.contains("kid=\"hmac\""), "{skipped}");
    assert!(
        skipped.contains("reason=\"symmetric (oct) keys are not taken from a remote set\""),
        "{skipped}"
    );
    let changed = line("grpc-auth: JWKS keys changed");
    assert!(changed.contains(" INFO "), "{changed}");
    assert!(changed.contains("keys=1 generation=1"), "{changed}");
    let failed = line("grpc-auth: JWKS fetch failed");
    assert!(failed.contains(" WARN "), "{failed}");
    assert!(failed.contains(&format!("source={url}")), "{failed}");
    assert!(failed.contains("not a JWK set"), "{failed}");
    assert!(!out.contains(secret), "{out}");
}
