//! Seventh adversarial review: OAuth 2.0 token introspection (RFC 7662,
//! `IntrospectionAuthenticator`), the shared `oauth` module (`ClientAuth`, `Endpoint`),
//! the discovery reader, and `AuthError::Unrecognized` in compositions.
//!
//! Every test asserts the secure outcome. `/// Finding:` tests FAIL at the reviewed
//! commit and prove a bug; `/// Guard:` tests are attacks the code withstood, kept as
//! regression guards. The provider is an in-process hyper endpoint on 127.0.0.1 whose
//! answers each test scripts; the server side runs through `AuthLayer` with
//! `tower::ServiceExt::oneshot`, or the authenticator's own `introspect`.
#![cfg(feature = "jwks")]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use grpc_auth::authn::{
    AuthRequest, AuthResult, Authenticated, Authenticator, IntrospectionAuthenticator,
};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::credentials::{ClientCredentials, TokenSource};
use grpc_auth::oauth::ClientAuth;
use grpc_auth::{AuthError, Principal};
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tonic::Code;

// ---------------------------------------------------------------------------------------
// The provider: an in-process HTTP/1 endpoint with scripted answers
// ---------------------------------------------------------------------------------------

#[path = "support/idp.rs"]
mod idp;
use idp::{Got, Idp, Reply, Script, form_decode, json_reply, raw};
#[path = "support/oauth_calls.rs"]
mod oauth_calls;
use oauth_calls::*;

/// A custom scheme that reads no metadata: callers from loopback are the "internal"
/// service (an IP allow-list, as a deployment behind a mesh might write).
struct Loopback;

impl Authenticator for Loopback {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        match req.remote_addr() {
            Some(a) if a.ip().is_loopback() => Ok(Some(Principal::new("internal", "ip").into())),
            _ => Ok(None),
        }
    }
}

/// A custom scheme proved by the connection only (as mTLS is).
struct ByConnection;

impl Authenticator for ByConnection {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        match req.remote_addr() {
            Some(_) => Ok(Some(Authenticated::by_connection(Principal::new(
                "workload", "conn",
            )))),
            None => Ok(None),
        }
    }
}

const LOCAL: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

// =======================================================================================
// FINDINGS: each test fails on the reviewed code.
// =======================================================================================

/// Finding: the positive cache ignores a fractional `exp`. `check` accepts an RFC 7519
/// NumericDate with a fraction (`exp: 1700000010.5`, as Python-based providers write
/// `time.time() + ttl`), but `remember` reads `exp` with `Value::as_u64` only, which is
/// `None` for a JSON float, so the entry is kept for the whole TTL (30 s): the token is
/// accepted for up to 30 s past its expiry without asking the provider. Fix
/// (src/authn/introspection.rs `remember`): read `exp` with the same number rule as
/// `check` (or have `check` return the parsed exp and cache with it).
#[tokio::test]
async fn finding_a_fractional_exp_bounds_the_positive_cache() {
    let clock = ManualClock::now();
    let exp = format!("{}.5", clock.unix_seconds() + 10);
    let body = format!(r#"{{"active":true,"sub":"ada","token_type":"Bearer","exp":{exp}}}"#);
    let idp = Idp::start(move |_| raw(200, &body)).await;
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .clock(clock.clone())
        .build()
        .unwrap();
    let token = tok("fractional-exp");
    assert_eq!(subject(&auth.introspect(&token).await), Ok("ada".into()));
    // 20 s later: past exp, within the default 30 s TTL.
    clock.advance(Duration::from_secs(20));
    let again = auth.introspect(&token).await;
    assert_eq!(
        subject(&again),
        Err((Code::Unauthenticated, "token expired".into())),
        "an expired token was served from the cache ({} request(s) made)",
        idp.introspections()
    );
}

/// Finding: an answer whose `sub` is not a string (a number, an object) silently
/// becomes the principal of its `client_id`: the user token of application
/// `frontend` is accepted as the client `frontend` itself (its client-credentials
/// identity, which policies may grant more), because `text("sub")` is `None` for a
/// non-string and the `client_id` fallback applies. The JWT scheme refuses the same
/// claim ("token has an invalid sub claim"). Fix (`principal`): fall back to
/// `client_id` only when `sub` is absent (or null); refuse any other non-string `sub`.
#[tokio::test]
async fn finding_a_non_string_sub_does_not_become_the_client_principal() {
    for sub in [json!(12345), json!({"id": "ada"}), json!(["ada"])] {
        let answer = json!({
            "active": true,
            "sub": sub,
            "client_id": "frontend",
            "token_type": "Bearer",
            "exp": now() + 600,
        });
        let idp = Idp::start(move |_| json_reply(answer.clone())).await;
        let got = introspection(&idp).introspect(&tok("numeric-sub")).await;
        assert!(
            !matches!(&got, Ok(p) if p.subject() == "frontend"),
            "sub {sub}: a user's token was accepted as the client \"frontend\""
        );
    }
}

/// Finding: a refresh token presented as a bearer token is accepted as an access
/// token. `token_type_hint=access_token` is only a hint: oidc-provider (the provider
/// this project tests against, lib/helpers/token_find.js) falls back to refresh tokens
/// and answers `active: true` with `sub`, `client_id`, `scope`, `exp`, `iss` and NO
/// `token_type` (lib/actions/introspection.js: `token_type: token.kind !==
/// 'RefreshToken' ? token.tokenType : undefined`); Ory Hydra marks it
/// `token_use: "refresh_token"`. `check` accepts a missing `token_type` and ignores
/// `token_use`, so a long-lived refresh token (never meant for a resource server,
/// RFC 6749 10.4) authenticates calls. Fix (`check`): refuse `token_use` other than
/// `access_token`; require `token_type` (bearer) by default, with an explicit opt-out
/// for providers that never send it.
#[tokio::test]
async fn finding_a_refresh_token_is_not_accepted_as_an_access_token() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let issuer = idp.base.clone();
    let t = now();
    // oidc-provider 9's answer for a RefreshToken.
    let oidc_provider = json!({
        "active": true,
        "sub": "ada",
        "client_id": "webapp",
        "exp": t + 14 * 86_400,
        "iat": t,
        "iss": issuer,
        "jti": "Rt-jti-1",
        "scope": "openid offline_access greeter.read",
    });
    // Ory Hydra's answer for a refresh token.
    let hydra = json!({
        "active": true,
        "sub": "ada",
        "client_id": "webapp",
        "exp": t + 30 * 86_400,
        "iat": t,
        "iss": issuer,
        "scope": "offline_access greeter.read",
        "token_type": "Bearer",
        "token_use": "refresh_token",
    });
    let mut accepted = Vec::new();
    for (name, answer) in [("oidc-provider", oidc_provider), ("hydra", hydra)] {
        idp.set(move |_| json_reply(answer.clone()));
        let auth = introspection(&idp);
        if let Ok(p) = auth.introspect(&tok(&format!("refresh-{name}"))).await {
            accepted.push(format!("{name} -> {}", p.subject()));
        }
    }
    assert!(
        accepted.is_empty(),
        "refresh tokens accepted as access tokens: {accepted:?}"
    );
}

/// Finding: `jwt.or(custom)` ignores a bad bearer when the custom scheme accepts
/// without reading metadata (here an IP allow-list returning `principal.into()`, as
/// the README's custom-scheme example does), while `custom.or(jwt)` refuses the same request. `AnyOf`'s new
/// `Unrecognized` branch returns the second scheme's acceptance whatever it covers, so
/// the bearer nobody recognized is dropped; the layer's backstop
/// (`judged_authorization`) takes an acceptance naming no credential as having judged
/// the request. Before this change the JWT scheme's "malformed token" stood in both
/// orders; the docs still promise "a request that presents a bad credential to either
/// scheme is rejected, whatever the order" and "when no scheme claims it, the refusal
/// stands". Fix (src/authn/compose.rs): when `A` is `Unrecognized` and `B` accepts,
/// keep `A`'s refusal unless `B`'s credentials include what `A` read (here
/// `authorization`); equivalently re-judge `A` with `B`'s credentials claimed.
#[tokio::test]
async fn finding_an_unrecognized_bearer_is_refused_beside_a_scheme_reading_no_metadata() {
    let garbage = bearer("not-a-jwt-garbage");
    let h = [("authorization", garbage.as_str())];
    let reverse = call(Loopback.or(jwt()), &h, LOCAL).await;
    assert_eq!(
        reverse,
        Err((Code::Unauthenticated, "malformed token".into())),
        "custom.or(jwt)"
    );
    let forward = call(jwt().or(Loopback), &h, LOCAL).await;
    assert_eq!(
        forward,
        Err((Code::Unauthenticated, "malformed token".into())),
        "jwt.or(custom): the garbage bearer was ignored"
    );
}

/// Finding: the composition itself accepts `jwt.or(api_key)` with an opaque bearer
/// nobody recognizes beside a valid API key (`api_key.or(jwt)` refuses it). Through
/// `AuthLayer` the layer's `authorization` backstop happens to refuse it, but the
/// `Authenticator` contract (`AnyOf` docs: "when no scheme claims it, the refusal
/// stands") is what custom interceptors and nested compositions rely on. Same root
/// cause and fix as above.
#[tokio::test]
async fn finding_jwt_or_api_key_does_not_drop_an_unrecognized_bearer() {
    let garbage = bearer("opaque-nobody-knows");
    let mut h = HeaderMap::new();
    h.insert("authorization", garbage.parse().unwrap());
    h.insert("x-api-key", "k-valid-7".parse().unwrap());
    let req = AuthRequest::new(PATH, &h);
    let reverse = api_key().or(jwt()).authenticate(&req).await;
    assert!(
        matches!(reverse, Err(AuthError::Unrecognized(_))),
        "api_key.or(jwt): {reverse:?}"
    );
    let forward = jwt().or(api_key()).authenticate(&req).await;
    assert!(
        forward.is_err(),
        "jwt.or(api_key) accepted {:?} beside an unrecognized bearer",
        forward
            .ok()
            .flatten()
            .map(|a| a.principal.subject().to_owned())
    );
}

/// Finding: a WRONG API key rides along a valid introspected token in
/// `jwt.and(api_key).or(introspection)` ("JWT plus key, or an opaque token"): `AllOf`
/// returns the JWT scheme's `Unrecognized` before the API key is judged, and `AnyOf`
/// hands the request to introspection, whose acceptance covers only `authorization`.
/// The wrong `x-api-key` is never judged and the call runs; with the schemes of the
/// `and` swapped it is refused ("invalid API key"). Fix: `AllOf` should judge its
/// second scheme too when the first is `Unrecognized` and prefer any other refusal;
/// `AnyOf`'s `Unrecognized` branch should re-judge `A` with `B`'s credentials claimed.
#[tokio::test]
async fn finding_a_wrong_api_key_does_not_ride_along_an_introspected_token() {
    let idp = Idp::start(|_| json_reply(active("grace"))).await;
    let token = bearer(&tok("valid-opaque"));
    let h = [
        ("authorization", token.as_str()),
        ("x-api-key", "WRONG-KEY"),
    ];
    let swapped = call(api_key().and(jwt()).or(introspection(&idp)), &h, None).await;
    assert_eq!(
        swapped,
        Err((Code::Unauthenticated, "invalid API key".into())),
        "api_key.and(jwt).or(introspection)"
    );
    let got = call(jwt().and(api_key()).or(introspection(&idp)), &h, None).await;
    assert_eq!(
        got,
        Err((Code::Unauthenticated, "invalid API key".into())),
        "jwt.and(api_key).or(introspection): the wrong API key was never judged"
    );
}

/// Finding: a caller that joined another's flight can wait well past the configured
/// timeout ("the bound on one check ... past it the call is UNAVAILABLE"). The timeout
/// wraps only the leader's request; when the leader is cancelled (its client's
/// deadline) a waiter takes over and starts a fresh request with a fresh timeout, so
/// each cancelled leader adds up to one more timeout to a waiter's wait. Fix
/// (`introspect`): bound each caller's wait on the flight by its own deadline
/// (`tokio::time::timeout(timeout, flight.get_or_init(..))`, measured from the call's
/// start).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_a_waiter_is_bounded_by_the_timeout_when_its_leader_is_cancelled() {
    let idp = Idp::start(|_| Reply::Hang).await;
    let timeout = Duration::from_millis(300);
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(timeout)
        .build()
        .unwrap();
    let token = tok("shared-flight");
    let leader = {
        let (auth, token) = (auth.clone(), token.clone());
        tokio::spawn(async move { auth.introspect(&token).await })
    };
    idp.wait_for(1).await;
    let waiter = {
        let (auth, token) = (auth.clone(), token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = auth.introspect(&token).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    leader.abort();
    let (r, waited) = waiter.await.unwrap();
    assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
    assert!(
        waited < timeout + Duration::from_millis(100),
        "the waiter waited {waited:?} with a {timeout:?} timeout"
    );
}

/// Finding (low): `ClientCredentials::builder_for_issuer` documents "the call to 5 s",
/// but discovery and the token request are each bounded by the 5 s client timeout and
/// nothing bounds the pair: a provider slow at both (3.5 s each here) makes the first
/// fetch take 7 s, and one that stalls both up to 10 s (plus connects). Introspection
/// wraps both in its one timeout; the token sources do not. Fix
/// (src/credentials/client_credentials.rs `TokenEndpoint::request`): wrap
/// `Endpoint::post` (discovery included) in `tokio::time::timeout(TOKEN_LIMITS.timeout)`.
#[tokio::test]
async fn finding_a_discovered_token_endpoint_is_bounded_by_one_timeout() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let (issuer, token_url) = (idp.base.clone(), format!("{}/token", idp.base));
    let slow = Duration::from_millis(3_500);
    idp.set(move |g| {
        if g.method == "GET" {
            let doc = json!({"issuer": issuer, "token_endpoint": token_url});
            Reply::Late(slow, 200, doc.to_string())
        } else {
            let t = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300});
            Reply::Late(slow, 200, t.to_string())
        }
    });
    let source = ClientCredentials::builder_for_issuer(idp.base.clone(), basic_auth())
        .build()
        .unwrap();
    let started = Instant::now();
    let got = source.fetch().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(5_500),
        "the first fetch took {took:?} (documented bound 5 s): {:?}",
        got.map(|t| t.expires_at())
    );
}

// =======================================================================================
// GUARDS: attacks the code withstood.
// =======================================================================================

/// Guard: cancelled calls leave no flight behind. With `max_in_flight(1)`, 50 calls on
/// distinct hanging tokens are each cancelled mid-request (alone, and as leader and
/// waiter of one flight); a new token afterwards is introspected, not refused "too many
/// token introspections in progress". A waiter whose leader is cancelled gets an
/// answer rather than hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guard_cancelled_calls_do_not_leak_flights_or_strand_waiters() {
    let idp = Idp::start(|g| {
        if g.field("token").is_some_and(|t| t.contains("hang")) {
            Reply::Hang
        } else {
            json_reply(active("ada"))
        }
    })
    .await;
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .max_in_flight(1)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..50 {
        let n = idp.arrived();
        let token = tok(&format!("hang-{i}"));
        let a = {
            let (auth, token) = (auth.clone(), token.clone());
            tokio::spawn(async move { auth.introspect(&token).await })
        };
        let b = (i % 2 == 0).then(|| {
            let (auth, token) = (auth.clone(), token.clone());
            tokio::spawn(async move { auth.introspect(&token).await })
        });
        idp.wait_for(n + 1).await;
        a.abort();
        let _ = a.await;
        if let Some(b) = b {
            b.abort();
            let _ = b.await;
        }
    }
    let fresh = tokio::time::timeout(Duration::from_secs(2), auth.introspect(&tok("fresh")))
        .await
        .expect("not hung");
    assert_eq!(subject(&fresh), Ok("ada".into()));

    // A waiter whose leader is cancelled finishes: it takes the flight over and its
    // own request times out.
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let token = tok("hang-lead");
    let n = idp.arrived();
    let leader = {
        let (auth, token) = (auth.clone(), token.clone());
        tokio::spawn(async move { auth.introspect(&token).await })
    };
    idp.wait_for(n + 1).await;
    let waiter = {
        let (auth, token) = (auth.clone(), token.clone());
        tokio::spawn(async move { auth.introspect(&token).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let r = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("the waiter hung after its leader was cancelled")
        .unwrap();
    assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
}

/// Guard: the provider's unavailability or a misconfiguration is never cached as
/// inactive: after a 5xx, a 401/403 `invalid_client`, a 400 `invalid_request`, garbage,
/// a non-boolean `active` and a timeout, the same token is accepted as soon as the
/// provider answers `active: true`. A 400 `unsupported_token_type` is a refusal.
#[tokio::test]
async fn guard_failures_are_unavailable_and_never_cached_as_inactive() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let token = tok("flaky");
    let failures: Vec<Reply> = vec![
        raw(500, r#"{"active":false}"#),
        raw(503, "down"),
        raw(401, r#"{"error":"invalid_client"}"#),
        raw(403, r#"{"error":"access_denied"}"#),
        raw(400, r#"{"error":"invalid_request"}"#),
        raw(404, r#"{"active":false}"#),
        raw(200, "not json"),
        raw(200, "[true]"),
        raw(200, r#"{"active":"true","sub":"mallory"}"#),
        raw(200, r#"{"active":1,"sub":"mallory"}"#),
        raw(200, r#"{"sub":"mallory"}"#),
        Reply::Full(
            307,
            vec![("location", "http://127.0.0.1:9/x".into())],
            String::new(),
        ),
        Reply::Hang,
    ];
    for f in failures {
        idp.set(move |_| f.clone());
        let r = auth.introspect(&token).await;
        assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
    }
    idp.set(|_| json_reply(active("ada")));
    assert_eq!(subject(&auth.introspect(&token).await), Ok("ada".into()));

    let other = tok("jwt-like");
    idp.set(|_| raw(400, r#"{"error":"unsupported_token_type"}"#));
    assert_eq!(
        auth.introspect(&other).await.map_err(|e| e.code()).err(),
        Some(Code::Unauthenticated)
    );
}

/// Guard: odd members of an active answer are refused, not guessed: `exp` as a string,
/// negative, in the past (also as a float), `nbf` in the future, a non-bearer or
/// non-string `token_type`, an `iss` of another issuer or not a string, `aud` without
/// the audience (non-strings ignored), an empty `sub` with no client, a `cnf` the
/// connection cannot satisfy. Duplicate `active` keys: the last wins (serde_json), so
/// `false` last is refused. Huge `exp` values do not panic.
#[tokio::test]
async fn guard_odd_answers_are_refused() {
    let t = now();
    let base = |extra: Value| {
        let mut v =
            json!({"active": true, "sub": "ada", "aud": "greeter", "iss": "https://idp.test"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v.to_string()
    };
    let refused = [
        base(json!({"exp": (t + 600).to_string()})),
        base(json!({"exp": -5})),
        base(json!({"exp": t - 1})),
        format!(
            r#"{{"active":true,"sub":"ada","aud":"greeter","exp":{}.9}}"#,
            t - 2
        ),
        base(json!({"exp": true})),
        base(json!({"nbf": t + 600})),
        base(json!({"token_type": "DPoP"})),
        base(json!({"token_type": "refresh_token"})),
        base(json!({"token_type": ["Bearer"]})),
        base(json!({"token_type": null})),
        base(json!({"iss": "https://evil.test"})),
        base(json!({"iss": ["https://idp.test"]})),
        base(json!({"aud": ["other", 1, {"a": "greeter"}]})),
        base(json!({"aud": "GREETER"})),
        base(json!({"aud": null})),
        base(json!({"sub": ""})),
        base(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})),
        base(json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}})),
        r#"{"active":true,"sub":"ada","aud":"greeter","active":false}"#.to_owned(),
    ];
    let idp = Idp::start(|_| raw(500, "{}")).await;
    for (i, body) in refused.into_iter().enumerate() {
        let b = body.clone();
        idp.set(move |_| raw(200, &b));
        let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .issuer("https://idp.test")
            .audience("greeter")
            .build()
            .unwrap();
        let token = tok(&format!("odd-{i}"));
        let got = call(auth, &[("authorization", &bearer(&token))], None).await;
        assert!(
            matches!(&got, Err((Code::Unauthenticated, _))),
            "{body}: {got:?}"
        );
    }
    for exp in ["1e300", "18446744073709551615", "18446744073709551616"] {
        let body = format!(r#"{{"active":true,"sub":"ada","token_type":"Bearer","exp":{exp}}}"#);
        idp.set(move |_| raw(200, &body));
        let auth = introspection(&idp);
        assert_eq!(
            subject(&auth.introspect(&tok(&format!("huge-{exp}"))).await),
            Ok("ada".into()),
            "exp {exp}"
        );
    }
}

/// Guard: an answer cached by one authenticator never serves another configuration:
/// two authenticators on one provider, the second requiring an audience the token
/// lacks, each ask for themselves; a negative answer of one does not block the other.
#[tokio::test]
async fn guard_caches_are_per_authenticator() {
    let idp = Idp::start(|g| {
        if g.field("token").is_some_and(|t| t.contains("dead")) {
            json_reply(json!({"active": false}))
        } else {
            json_reply(json!({"active": true, "sub": "ada", "aud": "billing", "exp": now() + 600, "token_type": "Bearer"}))
        }
    })
    .await;
    let lax = introspection(&idp);
    let strict = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .audience("greeter")
        .build()
        .unwrap();
    let token = tok("aud-billing");
    assert_eq!(subject(&lax.introspect(&token).await), Ok("ada".into()));
    assert_eq!(
        subject(&strict.introspect(&token).await),
        Err((
            Code::Unauthenticated,
            "token not issued for this service".into()
        ))
    );
    // The strict one's refusal did not poison the lax one, nor the clone.
    assert_eq!(
        subject(&lax.clone().introspect(&token).await),
        Ok("ada".into())
    );
    assert_eq!(idp.introspections(), 2);

    // A negative entry concerns its token only.
    let dead = tok("dead");
    assert!(lax.introspect(&dead).await.is_err());
    assert_eq!(
        subject(&lax.introspect(&tok("alive")).await),
        Ok("ada".into())
    );
}

/// Guard: the introspection request follows no redirect: a 307 to another host makes
/// the call UNAVAILABLE, and neither the token nor the client secret (post or basic)
/// reaches that host.
#[tokio::test]
async fn guard_a_redirect_does_not_resend_the_token_or_the_secret() {
    let thief = Idp::start(|_| json_reply(active("mallory"))).await;
    let to = format!("{}/steal", thief.base);
    let idp =
        Idp::start(move |_| Reply::Full(307, vec![("location", to.clone())], String::new())).await;
    for auth in [
        ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
        ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET),
    ] {
        let a = IntrospectionAuthenticator::builder(idp.url(), auth)
            .build()
            .unwrap();
        let r = a.introspect(&tok("redirected")).await;
        assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
    }
    assert!(thief.seen().is_empty(), "{:?}", thief.seen());
}

/// A local address that is not loopback, if the host has one.
fn non_loopback_ip() -> Option<IpAddr> {
    for target in ["192.0.2.1:9", "10.255.255.1:9", "8.8.8.8:53"] {
        let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") else {
            continue;
        };
        if s.connect(target).is_ok()
            && let Ok(a) = s.local_addr()
            && !a.ip().is_loopback()
            && !a.ip().is_unspecified()
        {
            return Some(a.ip());
        }
    }
    None
}

/// Guard: plain http off loopback is refused (without showing a password in the URL):
/// configured (builder and builder_for_issuer), and discovered (a loopback discovery document naming an
/// `http://<non-loopback>` introspection endpoint makes no request there).
#[tokio::test]
async fn guard_plain_http_off_loopback_is_refused() {
    for url in [
        "http://idp.example/introspect",
        "http://10.1.2.3/introspect",
    ] {
        let e = IntrospectionAuthenticator::builder(url, basic_auth())
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("plain http is refused"), "{e}");
    }
    assert!(
        IntrospectionAuthenticator::builder_for_issuer("http://idp.example", basic_auth())
            .build()
            .is_err()
    );
    assert!(
        IntrospectionAuthenticator::builder("ftp://idp.example/x", basic_auth())
            .build()
            .is_err()
    );
    // A password in a refused or unparsable URL is not shown.
    for url in [
        "http://svc:Pw-In-Url-9@10.1.2.3/introspect",
        "https://svc:Pw-In-Url-9@[bad/introspect",
    ] {
        let e = IntrospectionAuthenticator::builder(url, basic_auth())
            .build()
            .unwrap_err();
        assert!(!e.to_string().contains("Pw-In-Url-9"), "{e}");
    }

    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address: discovered case skipped");
        return;
    };
    let far = Idp::on(&format!("{ip}:0"), |_| json_reply(active("mallory"))).await;
    let far_url = far.url();
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let issuer = idp.base.clone();
    idp.set(move |_| json_reply(json!({"issuer": issuer, "introspection_endpoint": far_url})));
    let auth = IntrospectionAuthenticator::builder_for_issuer(idp.base.clone(), basic_auth())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let r = auth.introspect(&tok("downgrade")).await;
    assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
    assert!(far.seen().is_empty(), "{:?}", far.seen());
}

/// Guard: discovery is checked and bounded: a document of another issuer, one whose
/// issuer differs by a trailing slash, one without the field, and one that never
/// arrives are UNAVAILABLE within the timeout, no introspection is sent, and a failed
/// discovery is tried again.
#[tokio::test]
async fn guard_discovery_is_checked_and_bounded() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let issuer = idp.base.clone();
    let url = idp.url();
    let docs: Vec<Reply> = vec![
        json_reply(json!({"issuer": "https://evil.test", "introspection_endpoint": url})),
        json_reply(json!({"issuer": format!("{issuer}/"), "introspection_endpoint": url})),
        json_reply(json!({"issuer": issuer})),
        json_reply(json!({"issuer": issuer, "introspection_endpoint": 7})),
        Reply::Hang,
        Reply::Drip {
            every: Duration::from_millis(50),
            chunk: " ",
            count: 1000,
        },
    ];
    let auth = IntrospectionAuthenticator::builder_for_issuer(issuer.clone(), basic_auth())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for doc in docs {
        idp.set(move |g| {
            if g.method == "GET" {
                doc.clone()
            } else {
                json_reply(active("mallory"))
            }
        });
        let started = Instant::now();
        let r = auth.introspect(&tok("discovered")).await;
        assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
        assert!(started.elapsed() < Duration::from_millis(900));
    }
    assert_eq!(idp.introspections(), 0);
    // Retried, and now right.
    let (i, u) = (issuer.clone(), url.clone());
    idp.set(move |g| {
        if g.method == "GET" {
            json_reply(json!({"issuer": i, "introspection_endpoint": u}))
        } else {
            json_reply(active("ada"))
        }
    });
    assert_eq!(
        subject(&auth.introspect(&tok("discovered")).await),
        Ok("ada".into())
    );
}

/// Guard: a slow-drip answer is cut at the timeout and a huge one at 64 KiB (with or
/// without a content-length); both UNAVAILABLE.
#[tokio::test]
async fn guard_slow_or_huge_answers_are_bounded() {
    let idp = Idp::start(|_| Reply::Drip {
        every: Duration::from_millis(20),
        chunk: " ",
        count: 10_000,
    })
    .await;
    let auth = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = auth.introspect(&tok("drip")).await;
    assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
    assert!(started.elapsed() < Duration::from_millis(800));

    let pad = " ".repeat(70 * 1024);
    let huge = format!(r#"{{"active":true,"sub":"ada","pad":"{pad}"}}"#);
    let h = huge.clone();
    idp.set(move |_| raw(200, &h));
    let r = auth.introspect(&tok("huge")).await;
    assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
    idp.set(|_| Reply::Chunked {
        chunk: " ".repeat(8 * 1024),
        count: 64,
    });
    let r = auth.introspect(&tok("huge-chunked")).await;
    assert_eq!(r.map_err(|e| e.code()).err(), Some(Code::Unavailable));
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Guard: neither the token nor the client secret reaches a log line (TRACE), an error
/// message or `Debug`, whatever the provider echoes back (`error` codes, descriptions,
/// 5xx bodies, discovery documents of another issuer).
#[test]
fn guard_no_token_or_secret_in_logs_messages_or_debug() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = tok("leak-probe");
    let mut messages = Vec::new();
    rt.block_on(async {
        let idp = Idp::start(|_| raw(500, "{}")).await;
        let echo = |g: &Got| {
            let t = g.field("token").unwrap_or_default().to_owned();
            let s = g.field("client_secret").unwrap_or_default().to_owned();
            format!("{t} {s} {:?}", g.authorization)
        };
        let replies: Vec<Script> = vec![
            Arc::new(move |g| raw(401, &json!({"error": echo(g)}).to_string())),
            Arc::new(move |g| {
                raw(
                    400,
                    &json!({"error": "invalid_request", "error_description": echo(g)}).to_string(),
                )
            }),
            Arc::new(move |g| raw(500, &echo(g))),
            Arc::new(move |g| raw(200, &echo(g))),
            Arc::new(move |g| raw(200, &json!({"active": false, "why": echo(g)}).to_string())),
        ];
        for auth in [
            ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
            ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET),
        ] {
            for reply in &replies {
                let reply = reply.clone();
                idp.set(move |g| reply(g));
                let a = IntrospectionAuthenticator::builder(idp.url(), auth.clone())
                    .build()
                    .unwrap();
                let got = call(a.clone(), &[("authorization", &bearer(&token))], None).await;
                messages.push(format!("{got:?} {a:?}"));
            }
        }
        // Discovery of another issuer that echoes nothing secret, but check anyway.
        let issuer = idp.base.clone();
        idp.set(|_| {
            json_reply(json!({"issuer": "https://evil.test/", "introspection_endpoint": "x"}))
        });
        let a = IntrospectionAuthenticator::builder_for_issuer(issuer, basic_auth())
            .build()
            .unwrap();
        let got = call(a.clone(), &[("authorization", &bearer(&token))], None).await;
        messages.push(format!("{got:?} {a:?}"));
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    for (what, text) in [("logs", logs.as_str()), ("messages", &messages.join("\n"))] {
        for needle in [token.as_str(), CLIENT_SECRET, basic.as_str(), "Kq2sEcReT"] {
            assert!(!text.contains(needle), "{needle} in {what}:\n{text}");
        }
    }
    assert!(
        logs.contains("refused this server's client authentication"),
        "{logs}"
    );
}

/// Guard: `client_secret_basic` form-urlencodes id and secret before base64 (RFC 6749
/// 2.3.1), so a ':' in the id cannot shift the split, and a `private_key_jwt`
/// assertion for a discovered endpoint names that endpoint as `aud`, the client as
/// `iss`/`sub`, lives 60 s and has a fresh `jti` per request.
#[tokio::test]
async fn guard_client_authentication_encoding_and_assertions() {
    let idp = Idp::start(|_| raw(500, "{}")).await;
    let (issuer, url) = (idp.base.clone(), idp.url());
    idp.set(move |g| {
        if g.method == "GET" {
            json_reply(json!({"issuer": issuer, "introspection_endpoint": url}))
        } else {
            json_reply(active("ada"))
        }
    });
    let id = "evil:admin";
    let secret = "p:w%20+&=é";
    let a = IntrospectionAuthenticator::builder(idp.url(), ClientAuth::secret_basic(id, secret))
        .build()
        .unwrap();
    a.introspect(&tok("b1")).await.unwrap();
    let got = idp.seen().last().cloned().unwrap();
    let pair = String::from_utf8(
        STANDARD
            .decode(got.authorization.unwrap().strip_prefix("Basic ").unwrap())
            .unwrap(),
    )
    .unwrap();
    let (i, s) = pair.split_once(':').unwrap();
    assert_eq!(
        (form_decode(i).as_str(), form_decode(s).as_str()),
        (id, secret)
    );

    let pk = ClientAuth::private_key_jwt(
        CLIENT_ID,
        Algorithm::RS256,
        include_bytes!("keys/rsa_private.pem"),
    )
    .unwrap();
    let a = IntrospectionAuthenticator::builder_for_issuer(idp.base.clone(), pk)
        .build()
        .unwrap();
    a.introspect(&tok("pk1")).await.unwrap();
    a.introspect(&tok("pk2")).await.unwrap();
    let posts: Vec<Got> = idp
        .seen()
        .into_iter()
        .filter(|g| g.method == "POST")
        .collect();
    let claims: Vec<Value> = posts[posts.len() - 2..]
        .iter()
        .map(|g| {
            assert_eq!(g.field("client_secret"), None);
            assert_eq!(g.authorization, None);
            let jwt = g.field("client_assertion").unwrap();
            let payload = jwt.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
        })
        .collect();
    for c in &claims {
        assert_eq!(c["aud"], json!(idp.url()));
        assert_eq!(c["iss"], json!(CLIENT_ID));
        assert_eq!(c["sub"], json!(CLIENT_ID));
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    }
    assert_ne!(claims[0]["jti"], claims[1]["jti"]);
}

/// Guard: compositions with `Unrecognized` that must refuse do so through the layer:
/// `api_key.or(jwt)` and `jwt.or(api_key)` with a valid key and an opaque bearer (the
/// layer's `authorization` backstop), `jwt.or(conn)` where `conn` accepts by
/// connection only, `jwt.and(api_key)`, and a nested
/// `jwt.or(api_key).or(introspection)` whose opaque bearer is inactive. And
/// `jwt.or(introspection)` still verifies a JWT locally, refuses a forged JWT without
/// asking the provider, and introspects an opaque token.
#[tokio::test]
async fn guard_unrecognized_compositions_that_hold() {
    let idp = Idp::start(|g| {
        if g.field("token").is_some_and(|t| t.contains("dead")) {
            json_reply(json!({"active": false}))
        } else {
            json_reply(active("grace"))
        }
    })
    .await;
    let opaque = bearer("opaque-unknown");
    let with_key = [
        ("authorization", opaque.as_str()),
        ("x-api-key", "k-valid-7"),
    ];
    let unauth = |r: &Result<String, (Code, String)>| matches!(r, Err((Code::Unauthenticated, _)));
    let r = call(api_key().or(jwt()), &with_key, None).await;
    assert!(unauth(&r), "api_key.or(jwt): {r:?}");
    let r = call(jwt().or(api_key()), &with_key, None).await;
    assert!(unauth(&r), "jwt.or(api_key): {r:?}");
    let r = call(jwt().or(ByConnection), &[("authorization", &opaque)], LOCAL).await;
    assert!(unauth(&r), "jwt.or(by_connection): {r:?}");
    let r = call(ByConnection.or(jwt()), &[("authorization", &opaque)], LOCAL).await;
    assert!(unauth(&r), "by_connection.or(jwt): {r:?}");
    let r = call(jwt().and(api_key()), &with_key, None).await;
    assert!(unauth(&r), "jwt.and(api_key): {r:?}");
    let dead = bearer(&tok("dead"));
    let r = call(
        jwt().or(api_key()).or(introspection(&idp)),
        &[("authorization", &dead), ("x-api-key", "k-valid-7")],
        None,
    )
    .await;
    assert_eq!(r, Err((Code::Unauthenticated, "inactive token".into())));
    let r = call(
        api_key().or(jwt()).or(introspection(&idp)),
        &[("authorization", &dead), ("x-api-key", "k-valid-7")],
        None,
    )
    .await;
    assert_eq!(r, Err((Code::Unauthenticated, "inactive token".into())));

    let before = idp.introspections();
    let good = hs256(&json!({"sub": "ada", "exp": now() + 600}));
    let r = call(
        jwt().or(introspection(&idp)),
        &[("authorization", &bearer(&good))],
        None,
    )
    .await;
    assert_eq!(r, Ok("ada".into()));
    let mut forged = good.clone();
    forged.push('A');
    let r = call(
        jwt().or(introspection(&idp)),
        &[("authorization", &bearer(&forged))],
        None,
    )
    .await;
    assert!(unauth(&r), "{r:?}");
    // A JWT-looking token the JWT scheme cannot parse stays its refusal.
    let r = call(
        jwt().or(introspection(&idp)),
        &[("authorization", &bearer("a.b.c"))],
        None,
    )
    .await;
    assert!(unauth(&r), "{r:?}");
    assert_eq!(
        idp.introspections(),
        before,
        "no JWT was sent to the provider"
    );
    let r = call(
        jwt().or(introspection(&idp)),
        &[("authorization", &bearer(&tok("live")))],
        None,
    )
    .await;
    assert_eq!(r, Ok("grace".into()));
}
