use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderMap;

use super::signed::DEFAULT_TTL;
use super::*;
use crate::authn::{ApiKeyAuthenticator, BasicAuthenticator};
use crate::clock::ManualClock;

const S1: &[u8] = b"first-secret-0123456789abcdef-0123";
const S2: &[u8] = b"second-secret-0123456789abcdef-012";
const HANDSHAKE: &str = "/arrow.flight.protocol.FlightService/Handshake";

fn clock() -> ManualClock {
    ManualClock::at_unix(1_700_000_000)
}

fn signed(clock: &ManualClock) -> SignedTokens {
    SignedTokens::new(TokenKeys::hs256("k1", S1).unwrap(), AUD).clock(clock.clone())
}

fn ada() -> Principal {
    Principal::new("ada", "basic")
        .with_scopes(["greeter.read", "greeter.admin"])
        .with_roles(["ops"])
}

async fn run<A: Authenticator>(a: &A, method: &str, authorization: &str) -> AuthResult {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, authorization.parse().unwrap());
    a.authenticate(&AuthRequest::new(method, &h)).await
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_pass))
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn signed_token_carries_the_principal_and_verifies() {
    let clock = clock();
    let tokens = signed(&clock);
    let token = tokens.sign(&ada()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::HS256, Some("k1"))
    );
    let claims = payload(&token);
    assert_eq!(claims["iss"], "grpc-auth");
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["scope"], "greeter.read greeter.admin");
    assert_eq!(claims["roles"], serde_json::json!(["ops"]));
    assert_eq!(claims["iat"], 1_700_000_000);
    assert_eq!(claims["exp"], 1_700_000_000 + 15 * 60);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
    assert_ne!(claims["jti"], payload(&tokens.sign(&ada()).unwrap())["jti"]);
    let p = tokens.verify(&token).await.unwrap();
    assert_eq!((p.subject(), p.scheme()), ("ada", "token"));
    assert_eq!(p.scopes(), &["greeter.read", "greeter.admin"]);
    assert_eq!(p.roles(), &["ops"]);
}

use jsonwebtoken::Algorithm;

const AUD: &str = "svc-a";

#[tokio::test]
async fn a_token_is_valid_only_at_the_service_it_was_issued_for() {
    // The reported defect: two services sharing the keys accepted each other's tokens.
    let clock = clock();
    let keys = TokenKeys::hs256("k1", S1).unwrap();
    let svc_a = SignedTokens::new(keys.clone(), "svc-a").clock(clock.clone());
    let svc_b = SignedTokens::new(keys, "svc-b").clock(clock.clone());
    let token = svc_a.sign(&ada()).unwrap();
    assert_eq!(svc_a.verify(&token).await.unwrap().subject(), "ada");
    assert!(
        svc_b.recognizes(&token),
        "ours by iss: refused, not passed on"
    );
    let e = svc_b.verify(&token).await.unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        (tonic::Code::Unauthenticated, "invalid token audience")
    );
    // The same for opaque tokens in a store both services share.
    let store = MemoryTokenStore::new(16);
    let op_a = OpaqueTokens::new(store.clone(), "svc-a").clock(clock.clone());
    let op_b = OpaqueTokens::new(store, "svc-b").clock(clock.clone());
    let token = op_a.issue(&ada()).await.unwrap();
    let token = std::str::from_utf8(token.expose()).unwrap();
    assert_eq!(op_a.verify(token).await.unwrap().subject(), "ada");
    assert_eq!(
        op_b.verify(token).await.unwrap_err().to_string(),
        "invalid token audience"
    );
}

#[tokio::test]
async fn expired_token_is_refused_after_ttl_and_leeway() {
    let clock = clock();
    let tokens = signed(&clock)
        .ttl(Duration::from_secs(300))
        .leeway(Duration::from_secs(10));
    let token = tokens.sign(&ada()).unwrap();
    clock.advance(Duration::from_secs(310));
    assert!(tokens.verify(&token).await.is_ok(), "within the leeway");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        tokens.verify(&token).await.unwrap_err(),
        AuthError::unauthenticated("token expired")
    );
}

#[tokio::test]
async fn tampered_token_is_refused() {
    let clock = clock();
    let tokens = signed(&clock);
    let token = tokens.sign(&ada()).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = payload(&token);
    claims["sub"] = "eve".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert_eq!(
        tokens.verify(&parts.join(".")).await.unwrap_err(),
        AuthError::unauthenticated("invalid token signature")
    );
    // Signed by someone else with our issuer and kid.
    let forged = SignedTokens::new(TokenKeys::hs256("k1", S2).unwrap(), AUD)
        .clock(clock.clone())
        .sign(&ada())
        .unwrap();
    assert_eq!(
        tokens.verify(&forged).await.unwrap_err(),
        AuthError::unauthenticated("invalid token signature")
    );
}

#[tokio::test]
async fn rotation_keeps_the_previous_key_until_it_is_dropped() {
    let clock = clock();
    let tokens = signed(&clock);
    let old = tokens.sign(&ada()).unwrap();
    tokens.keys().rotate("k2", S2).unwrap();
    let new = tokens.sign(&ada()).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some("k2")
    );
    assert_eq!(tokens.keys().verifying_kids(), ["k2", "k1"]);
    assert_eq!(tokens.verify(&old).await.unwrap().subject(), "ada");
    assert_eq!(tokens.verify(&new).await.unwrap().subject(), "ada");
    tokens.keys().drop_previous();
    assert_eq!(
        tokens.verify(&old).await.unwrap_err(),
        AuthError::unauthenticated("unknown token key id")
    );
    assert_eq!(tokens.verify(&new).await.unwrap().subject(), "ada");
    // A second rotation keeps only the key before it.
    tokens.keys().rotate("k3", S1).unwrap();
    assert_eq!(tokens.keys().verifying_kids(), ["k3", "k2"]);
}

#[tokio::test]
async fn a_replica_started_after_a_rotation_verifies_both_keys() {
    let clock = clock();
    let before = signed(&clock).sign(&ada()).unwrap();
    let replica = SignedTokens::new(
        TokenKeys::hs256("k2", S2)
            .unwrap()
            .also_verify("k1", S1)
            .unwrap(),
        AUD,
    )
    .clock(clock.clone());
    assert_eq!(replica.verify(&before).await.unwrap().subject(), "ada");
    let after = replica.sign(&ada()).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(),
        Some("k2")
    );
}

#[test]
fn weak_or_duplicate_keys_are_configuration_errors() {
    assert!(matches!(
        TokenKeys::hs256("k1", b"short".as_slice()),
        Err(TokenKeyError::TooShort(5))
    ));
    let keys = TokenKeys::hs256("k1", S1).unwrap();
    assert!(matches!(
        keys.clone().also_verify("k1", S2),
        Err(TokenKeyError::KidInUse(k)) if k == "k1"
    ));
    assert!(matches!(
        keys.clone().also_verify("k0", S2).unwrap().also_verify("k0", S2),
        Err(TokenKeyError::KidInUse(k)) if k == "k0"
    ));
    assert!(matches!(
        keys.rotate("k1", S2),
        Err(TokenKeyError::KidInUse(k)) if k == "k1"
    ));
    assert!(!format!("{keys:?}").contains("secret"));
}

#[test]
fn a_weak_secret_is_refused_for_verifying_too() {
    // A short previous key would let anyone who guesses it forge tokens.
    let keys = TokenKeys::hs256("k1", S1).unwrap();
    assert!(matches!(
        keys.also_verify("k0", b"short".as_slice()),
        Err(TokenKeyError::TooShort(5))
    ));
}

#[test]
fn only_our_issuer_is_recognized() {
    let clock = clock();
    let tokens = signed(&clock);
    assert!(tokens.recognizes(&tokens.sign(&ada()).unwrap()));
    let theirs = signed(&clock).issuer("https://idp.example");
    assert!(!tokens.recognizes(&theirs.sign(&ada()).unwrap()));
    assert!(!tokens.recognizes("not-a-jwt"));
    assert!(!tokens.recognizes("a.b.c.d"));
    assert!(!tokens.recognizes("gat_abc"));
}

fn exchange(clock: &ManualClock) -> TokenExchange<BasicAuthenticator> {
    TokenExchange::new(
        BasicAuthenticator::new()
            .user("ada", "lovelace")
            .grant("ada", ["greeter.read"]),
        signed(clock),
    )
}

fn issued(found: &Authenticated) -> String {
    let value = &found.response_headers().unwrap()[AUTHORIZATION];
    assert!(value.is_sensitive());
    value
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn basic_login_is_answered_with_a_bearer_that_later_calls_present() {
    let clock = clock();
    let ex = exchange(&clock);
    let found = run(&ex, "/a.B/C", &basic("ada:lovelace"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.principal.subject(), found.principal.scheme()),
        ("ada", "basic")
    );
    let token = issued(&found);
    let later = run(&ex, "/a.B/D", &format!("Bearer {token}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (later.principal.subject(), later.principal.scheme()),
        ("ada", "token")
    );
    assert!(later.principal.has_scope("greeter.read"));
    assert!(later.response_headers().is_none(), "no new token per call");
    assert_eq!(
        run(&ex, "/a.B/C", &basic("ada:wrong")).await.unwrap_err(),
        AuthError::unauthenticated("invalid username or password")
    );
}

#[tokio::test]
async fn login_only_on_the_login_method() {
    let clock = clock();
    let ex = exchange(&clock).login_method(HANDSHAKE);
    let found = run(&ex, HANDSHAKE, &basic("ada:lovelace"))
        .await
        .unwrap()
        .unwrap();
    let token = issued(&found);
    assert!(
        run(
            &ex,
            "/arrow.flight.protocol.FlightService/DoAction",
            &basic("ada:lovelace")
        )
        .await
        .unwrap()
        .is_none(),
        "Basic elsewhere is absent"
    );
    let p = run(
        &ex,
        "/arrow.flight.protocol.FlightService/DoAction",
        &format!("Bearer {token}"),
    )
    .await
    .unwrap()
    .unwrap()
    .principal;
    assert_eq!(p.subject(), "ada");
    // Composed, Basic is still accepted elsewhere, without a token.
    let composed = ex.or(BasicAuthenticator::new().user("ada", "lovelace"));
    let plain = run(&composed, "/a.B/C", &basic("ada:lovelace"))
        .await
        .unwrap()
        .unwrap();
    assert!(plain.response_headers().is_none());
}

#[tokio::test]
async fn foreign_bearers_fall_through_and_bad_own_ones_do_not() {
    let clock = clock();
    let idp = signed(&clock).issuer("https://idp.example");
    let ex = exchange(&clock).or(crate::authn::JwtAuthenticator::new(
        crate::authn::jwt::StaticKeys::from(
            crate::authn::jwt::JwtKey::secret(Algorithm::HS256, S1)
                .unwrap()
                .with_kid("k1"),
        ),
    )
    .clock(clock.clone()));
    let theirs = idp.sign(&ada()).unwrap();
    let p = run(&ex, "/a.B/C", &format!("Bearer {theirs}"))
        .await
        .unwrap()
        .unwrap()
        .principal;
    assert_eq!((p.subject(), p.scheme()), ("ada", "jwt"));
    // Ours, but expired: refused, not retried with the identity provider's verifier.
    let ours = signed(&clock).sign(&ada()).unwrap();
    clock.advance(DEFAULT_TTL + Duration::from_secs(61));
    assert_eq!(
        run(&ex, "/a.B/C", &format!("Bearer {ours}"))
            .await
            .unwrap_err(),
        AuthError::unauthenticated("token expired")
    );
}

#[tokio::test]
async fn any_authenticator_can_be_the_login() {
    let clock = clock();
    let ex = TokenExchange::new(
        ApiKeyAuthenticator::new().key("k-123", "svc"),
        signed(&clock),
    );
    let mut h = HeaderMap::new();
    h.insert("x-api-key", "k-123".parse().unwrap());
    let found = ex
        .authenticate(&AuthRequest::new("/a.B/C", &h))
        .await
        .unwrap()
        .unwrap();
    let token = issued(&found);
    assert_eq!(
        run(&ex, "/a.B/C", &format!("Bearer {token}"))
            .await
            .unwrap()
            .unwrap()
            .principal
            .subject(),
        "svc"
    );
}

#[tokio::test]
async fn opaque_tokens_are_stored_by_digest_and_revocable() {
    let clock = clock();
    let store = MemoryTokenStore::new(16);
    let tokens = OpaqueTokens::new(store.clone(), AUD)
        .ttl(Duration::from_secs(60))
        .clock(clock.clone());
    let ex = TokenExchange::new(BasicAuthenticator::new().user("ada", "lovelace"), tokens);
    let token = issued(
        &run(&ex, "/a.B/C", &basic("ada:lovelace"))
            .await
            .unwrap()
            .unwrap(),
    );
    assert!(
        token.starts_with("gat_") && token.len() == 4 + 43,
        "{token}"
    );
    assert_eq!(store.len(), 1);
    assert!(store.0.get(&TokenDigest::of(&token)).is_some());
    let bearer = format!("Bearer {token}");
    let p = run(&ex, "/a.B/C", &bearer)
        .await
        .unwrap()
        .unwrap()
        .principal;
    assert_eq!((p.subject(), p.scheme()), ("ada", "token"));
    assert!(ex.tokens().revoke(&token).await.unwrap());
    assert!(!ex.tokens().revoke(&token).await.unwrap());
    assert_eq!(
        run(&ex, "/a.B/C", &bearer).await.unwrap_err(),
        AuthError::unauthenticated("unknown or revoked token")
    );
    assert_eq!(
        run(&ex, "/a.B/C", "Bearer gat_never-issued")
            .await
            .unwrap_err(),
        AuthError::unauthenticated("unknown or revoked token")
    );
}

#[tokio::test]
async fn opaque_tokens_expire_and_the_store_is_bounded() {
    let clock = clock();
    let store = MemoryTokenStore::new(4);
    let tokens = OpaqueTokens::new(store.clone(), AUD)
        .ttl(Duration::from_secs(60))
        .clock(clock.clone());
    let first = tokens.issue(&ada()).await.unwrap();
    let first = std::str::from_utf8(first.expose()).unwrap().to_owned();
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        tokens.verify(&first).await.unwrap_err(),
        AuthError::unauthenticated("token expired")
    );
    assert!(store.is_empty(), "an expired token is dropped when seen");
    for _ in 0..100 {
        tokens.issue(&ada()).await.unwrap();
    }
    assert!(store.len() <= 4, "{}", store.len());
}

#[test]
fn debug_output_holds_no_secret() {
    let clock = clock();
    let shown = format!(
        "{:?} {:?}",
        exchange(&clock),
        TokenDigest::of("gat_secret-token")
    );
    assert!(
        !shown.contains("lovelace") && !shown.contains("secret-token"),
        "{shown}"
    );
}

#[test]
fn rotation_and_drop_move_the_key_generation() {
    use crate::authn::jwt::KeySource;
    let keys = TokenKeys::hs256("k1", S1).unwrap();
    let g0 = keys.generation();
    keys.rotate("k2", S2).unwrap();
    let g1 = keys.generation();
    assert_ne!(g0, g1, "a JwtAuthenticator's token cache must re-verify");
    assert_eq!(keys.clone().generation(), g1, "clones share the ring");
    keys.drop_previous();
    assert_ne!(keys.generation(), g1);
}

#[tokio::test]
async fn an_opaque_token_may_live_forever_without_a_panic() {
    let clock = clock();
    let tokens = OpaqueTokens::new(MemoryTokenStore::new(4), AUD)
        .ttl(Duration::MAX)
        .clock(clock.clone());
    let token = tokens.issue(&ada()).await.unwrap();
    let token = std::str::from_utf8(token.expose()).unwrap().to_owned();
    clock.advance(Duration::from_secs(10 * 365 * 86_400));
    assert_eq!(tokens.verify(&token).await.unwrap().subject(), "ada");
}
