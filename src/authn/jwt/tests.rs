//! Unit tests for the JWT authenticator (written by a helper).

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tonic::Code;

use super::*;
use crate::authn::{AuthRequest, Authenticator};
use crate::clock::ManualClock;
use jsonwebtoken::Algorithm;

/// The manual clock's time in every test: 2023-11-14, well in the past, so a token
/// accepted here was checked against the configured clock, not the system's.
const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"an-hmac-secret-for-grpc-auth-unit-tests-0123456789";
const SECRET2: &[u8] = b"another-hmac-secret-for-grpc-auth-unit-tests-987654";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "greeter";

const RSA_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../../tests/keys/rsa_public.pem");
const RSA2_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/rsa2_private.pem");
const EC256_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/ec256_private.pem");
const EC256_PUBLIC: &[u8] = include_bytes!("../../../tests/keys/ec256_public.pem");
const EC384_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/ec384_private.pem");
const EC384_PUBLIC: &[u8] = include_bytes!("../../../tests/keys/ec384_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../../../tests/keys/ed25519_public.pem");

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn claims() -> Value {
    json!({ "sub": "ada", "exp": NOW + 3600 })
}

fn rsa_signing() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa private key")
}

fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    install_crypto_provider();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign token")
}

/// An HS256 token over `claims`, signed with [`SECRET`].
fn hs256(claims: &Value) -> String {
    sign_with(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(SECRET),
    )
}

/// An RS256 token over `claims`, signed with the RSA test key.
fn rs256(kid: Option<&str>, claims: &Value) -> String {
    sign_with(Algorithm::RS256, kid, claims, &rsa_signing())
}

/// A token whose parts are base64url of the given raw bytes.
fn raw_token(header: &[u8], payload: &[u8], signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        signature
    )
}

fn with_clock<K: KeySource>(keys: K) -> JwtAuthenticator<K> {
    JwtAuthenticator::new(keys).clock(ManualClock::at_unix(NOW))
}

fn hmac_key() -> JwtKey {
    JwtKey::secret(Algorithm::HS256, SECRET).expect("hmac key")
}

fn rsa_key() -> JwtKey {
    JwtKey::from_pem(Algorithm::RS256, RSA_PUBLIC).expect("rsa key")
}

/// An authenticator with one HS256 key ([`SECRET`]) and the clock at [`NOW`].
fn hmac_auth() -> JwtAuthenticator {
    with_clock(StaticKeys::from(hmac_key()))
}

async fn accept<K: KeySource>(auth: &JwtAuthenticator<K>, token: &str) -> Principal {
    let Verified {
        principal,
        expires_at: _exp,
    } = auth.verify(token).await.expect("token should verify");
    principal
}

/// Verifies `token`, expecting an `UNAUTHENTICATED` rejection; returns its message.
async fn reject<K: KeySource>(auth: &JwtAuthenticator<K>, token: &str) -> String {
    let err = auth
        .verify(token)
        .await
        .expect_err("token should be rejected");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    err.to_string()
}

fn bearer(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        value.parse().expect("header value"),
    );
    headers
}

async fn authenticate(auth: &JwtAuthenticator, headers: &HeaderMap) -> crate::authn::AuthResult {
    Authenticator::authenticate(auth, &AuthRequest::new("/a.B/C", headers)).await
}

// ---------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_supported_algorithm_verifies_with_a_key_configured_for_it() {
    use Algorithm::*;
    let rsa = rsa_signing;
    let cases: Vec<(Algorithm, JwtKey, EncodingKey)> = vec![
        (
            HS256,
            JwtKey::secret(HS256, SECRET).unwrap(),
            EncodingKey::from_secret(SECRET),
        ),
        (
            HS384,
            JwtKey::secret(HS384, SECRET).unwrap(),
            EncodingKey::from_secret(SECRET),
        ),
        (
            HS512,
            JwtKey::secret(HS512, SECRET).unwrap(),
            EncodingKey::from_secret(SECRET),
        ),
        (RS256, JwtKey::from_pem(RS256, RSA_PUBLIC).unwrap(), rsa()),
        (RS384, JwtKey::from_pem(RS384, RSA_PUBLIC).unwrap(), rsa()),
        (RS512, JwtKey::from_pem(RS512, RSA_PUBLIC).unwrap(), rsa()),
        (
            PS256,
            JwtKey::from_pem(RS256, RSA_PUBLIC)
                .unwrap()
                .also_allow(PS256)
                .unwrap(),
            rsa(),
        ),
        (
            PS384,
            JwtKey::from_pem(RS256, RSA_PUBLIC)
                .unwrap()
                .also_allow(PS384)
                .unwrap(),
            rsa(),
        ),
        (
            PS512,
            JwtKey::from_pem(RS256, RSA_PUBLIC)
                .unwrap()
                .also_allow(PS512)
                .unwrap(),
            rsa(),
        ),
        (PS256, JwtKey::from_pem(PS256, RSA_PUBLIC).unwrap(), rsa()),
        (PS384, JwtKey::from_pem(PS384, RSA_PUBLIC).unwrap(), rsa()),
        (PS512, JwtKey::from_pem(PS512, RSA_PUBLIC).unwrap(), rsa()),
        (
            ES256,
            JwtKey::from_pem(ES256, EC256_PUBLIC).unwrap(),
            EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap(),
        ),
        (
            ES384,
            JwtKey::from_pem(ES384, EC384_PUBLIC).unwrap(),
            EncodingKey::from_ec_pem(EC384_PRIVATE).unwrap(),
        ),
        (
            EdDSA,
            JwtKey::from_pem(EdDSA, ED_PUBLIC).unwrap(),
            EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        ),
    ];
    for (alg, key, signing) in cases {
        assert!(key.allows(alg), "{alg:?}");
        let auth = with_clock(StaticKeys::from(key));
        let token = sign_with(alg, None, &claims(), &signing);
        let Verified {
            principal,
            expires_at: exp,
        } = auth
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?} rejected: {e}"));
        assert_eq!(principal.subject(), "ada", "{alg:?}");
        assert_eq!(principal.scheme(), "jwt", "{alg:?}");
        assert_eq!(exp, Some(NOW + 3600), "{alg:?}");
    }
}

#[cfg(feature = "aws-lc-rs")]
#[tokio::test]
async fn default_build_verifies_with_the_fast_backend() {
    // Installing twice is harmless, and the RSA path (the one that needs a real
    // backend) works in the default build.
    install_crypto_provider();
    install_crypto_provider();
    let auth = with_clock(StaticKeys::from(rsa_key()));
    let principal = accept(&auth, &rs256(None, &claims())).await;
    assert_eq!(principal.subject(), "ada");
}

#[tokio::test]
async fn alg_none_token_is_malformed() {
    let auth = hmac_auth().required_claims(Vec::<String>::new());
    let payload = serde_json::to_vec(&claims()).unwrap();
    for alg in ["none", "None", "NONE"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let unsigned = raw_token(header.as_bytes(), &payload, "");
        assert!(unsigned.ends_with('.'));
        assert_eq!(reject(&auth, &unsigned).await, "malformed token", "{alg}");
        // A signature part does not help either.
        let signed = raw_token(header.as_bytes(), &payload, "c2ln");
        assert_eq!(reject(&auth, &signed).await, "malformed token", "{alg}");
    }
}

#[tokio::test]
async fn hs256_signed_with_a_public_key_is_refused_without_kid() {
    let cases = [
        (Algorithm::RS256, RSA_PUBLIC),
        (Algorithm::ES256, EC256_PUBLIC),
        (Algorithm::EdDSA, ED_PUBLIC),
    ];
    for (alg, public) in cases {
        let auth = with_clock(StaticKeys::from(JwtKey::from_pem(alg, public).unwrap()));
        let forged = sign_with(
            Algorithm::HS256,
            None,
            &claims(),
            &EncodingKey::from_secret(public),
        );
        assert_eq!(
            reject(&auth, &forged).await,
            "no key for the token's algorithm",
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_a_public_key_is_refused_with_the_keys_kid() {
    let auth = with_clock(StaticKeys::from(rsa_key().with_kid("rsa")));
    let forged = sign_with(
        Algorithm::HS256,
        Some("rsa"),
        &claims(),
        &EncodingKey::from_secret(RSA_PUBLIC),
    );
    assert_eq!(reject(&auth, &forged).await, "token algorithm not allowed");
}

#[tokio::test]
async fn hs256_signed_with_a_public_key_fails_the_signature_of_an_unrelated_hmac_key() {
    let auth = with_clock(StaticKeys::new().with(rsa_key()).with(hmac_key()));
    let forged = sign_with(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(RSA_PUBLIC),
    );
    assert_eq!(reject(&auth, &forged).await, "invalid token signature");
}

#[tokio::test]
async fn rs256_only_key_refuses_a_ps256_token() {
    let token = sign_with(Algorithm::PS256, None, &claims(), &rsa_signing());
    let auth = with_clock(StaticKeys::from(rsa_key()));
    assert_eq!(
        reject(&auth, &token).await,
        "no key for the token's algorithm"
    );

    let token = sign_with(Algorithm::PS256, Some("r"), &claims(), &rsa_signing());
    let auth = with_clock(StaticKeys::from(rsa_key().with_kid("r")));
    assert_eq!(reject(&auth, &token).await, "token algorithm not allowed");
}

#[tokio::test]
async fn rs256_key_refuses_other_rsa_digests() {
    let auth = with_clock(StaticKeys::from(rsa_key()));
    for alg in [Algorithm::RS384, Algorithm::RS512] {
        let token = sign_with(alg, None, &claims(), &rsa_signing());
        assert_eq!(
            reject(&auth, &token).await,
            "no key for the token's algorithm",
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn ps256_only_key_refuses_an_rs256_token() {
    let key = JwtKey::from_pem(Algorithm::PS256, RSA_PUBLIC).unwrap();
    let auth = with_clock(StaticKeys::from(key));
    assert_eq!(
        reject(&auth, &rs256(None, &claims())).await,
        "no key for the token's algorithm"
    );
}

#[tokio::test]
async fn hs256_key_refuses_an_hs512_token() {
    let token = sign_with(
        Algorithm::HS512,
        None,
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "no key for the token's algorithm"
    );
}

#[tokio::test]
async fn es256_key_refuses_an_es384_token() {
    let key = JwtKey::from_pem(Algorithm::ES256, EC256_PUBLIC).unwrap();
    let auth = with_clock(StaticKeys::from(key));
    let token = sign_with(
        Algorithm::ES384,
        None,
        &claims(),
        &EncodingKey::from_ec_pem(EC384_PRIVATE).unwrap(),
    );
    assert_eq!(
        reject(&auth, &token).await,
        "no key for the token's algorithm"
    );
}

// ---------------------------------------------------------------------------
// Key construction
// ---------------------------------------------------------------------------

#[test]
fn key_reports_its_kid_and_algorithms() {
    let key = rsa_key()
        .with_kid("r1")
        .also_allow(Algorithm::PS256)
        .unwrap()
        .also_allow(Algorithm::PS256)
        .unwrap();
    assert_eq!(key.kid(), Some("r1"));
    assert_eq!(key.algorithms(), &[Algorithm::RS256, Algorithm::PS256]);
    assert!(key.allows(Algorithm::PS256));
    assert!(!key.allows(Algorithm::RS512));
    assert!(!key.allows(Algorithm::HS256));
    assert_eq!(hmac_key().kid(), None);
    assert_eq!(hmac_key().algorithms(), &[Algorithm::HS256]);
}

#[test]
fn key_refuses_an_algorithm_of_another_family() {
    let err = JwtKey::from_pem(Algorithm::HS256, RSA_PUBLIC).unwrap_err();
    assert!(matches!(err, KeyError::AlgorithmMismatch(Algorithm::HS256)));
    assert_eq!(err.to_string(), "algorithm HS256 does not fit this key");

    let err = JwtKey::secret(Algorithm::RS256, SECRET).unwrap_err();
    assert_eq!(err.to_string(), "algorithm RS256 does not fit this key");

    let err = rsa_key().also_allow(Algorithm::HS256).unwrap_err();
    assert_eq!(err.to_string(), "algorithm HS256 does not fit this key");

    let err = hmac_key().also_allow(Algorithm::ES256).unwrap_err();
    assert_eq!(err.to_string(), "algorithm ES256 does not fit this key");
}

#[test]
fn key_from_garbage_pem_is_invalid() {
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let err = JwtKey::from_pem(alg, b"not a pem").unwrap_err();
        assert!(matches!(err, KeyError::Invalid(_)), "{alg:?}: {err:?}");
        assert!(err.to_string().starts_with("invalid key: "), "{err}");
    }
}

#[test]
fn key_debug_does_not_show_the_secret() {
    let key = JwtKey::secret(Algorithm::HS256, b"super-secret-value").unwrap();
    let shown = format!("{key:?}");
    assert!(!shown.contains("super-secret-value"), "{shown}");
    assert!(shown.contains("HS256"), "{shown}");
    let auth = JwtAuthenticator::new(StaticKeys::from(key));
    let shown = format!("{auth:?}");
    assert!(!shown.contains("super-secret-value"), "{shown}");
}

#[tokio::test]
async fn hmac_key_from_a_jwk_keeps_its_kid() {
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "oct",
        "alg": "HS256",
        "kid": "jwk-hmac",
        "k": URL_SAFE_NO_PAD.encode(SECRET),
    }))
    .unwrap();
    let key = JwtKey::from_jwk(&jwk).unwrap();
    assert_eq!(key.kid(), Some("jwk-hmac"));
    assert_eq!(key.algorithms(), &[Algorithm::HS256]);

    let auth = with_clock(StaticKeys::from(key));
    let token = sign_with(
        Algorithm::HS256,
        Some("jwk-hmac"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
}

#[tokio::test]
async fn rsa_key_from_a_jwk_verifies() {
    install_crypto_provider();
    let mut jwk = Jwk::from_encoding_key(&rsa_signing(), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("jwk-rsa".into());
    let key = JwtKey::from_jwk(&jwk).unwrap();
    assert_eq!(key.kid(), Some("jwk-rsa"));
    assert_eq!(key.algorithms(), &[Algorithm::RS256]);

    let auth = with_clock(StaticKeys::from(key));
    let principal = accept(&auth, &rs256(Some("jwk-rsa"), &claims())).await;
    assert_eq!(principal.subject(), "ada");
    // The JWK holds the first RSA key only.
    let other = sign_with(
        Algorithm::RS256,
        Some("jwk-rsa"),
        &claims(),
        &EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap(),
    );
    assert_eq!(reject(&auth, &other).await, "invalid token signature");
}

#[tokio::test]
async fn ec_and_okp_jwks_without_alg_take_it_from_the_curve() {
    install_crypto_provider();
    let cases = [
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap(),
        ),
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(EC384_PRIVATE).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        ),
    ];
    for (alg, signing) in cases {
        let mut jwk = Jwk::from_encoding_key(&signing, alg).unwrap();
        jwk.common.key_algorithm = None;
        let key = JwtKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithms(), &[alg]);
        assert_eq!(key.kid(), None);
        let auth = with_clock(StaticKeys::from(key));
        let token = sign_with(alg, None, &claims(), &signing);
        assert_eq!(accept(&auth, &token).await.subject(), "ada", "{alg:?}");
    }
}

#[test]
fn jwk_without_a_usable_algorithm_is_refused() {
    install_crypto_provider();
    let mut jwk = Jwk::from_encoding_key(&rsa_signing(), Algorithm::RS256).unwrap();
    jwk.common.key_algorithm = None;
    let err = JwtKey::from_jwk(&jwk).unwrap_err();
    assert!(matches!(err, KeyError::NoAlgorithm));
    assert_eq!(err.to_string(), "JWK has no usable algorithm");

    let oct: Jwk = serde_json::from_value(json!({
        "kty": "oct",
        "k": URL_SAFE_NO_PAD.encode(SECRET),
    }))
    .unwrap();
    assert_eq!(
        JwtKey::from_jwk(&oct).unwrap_err().to_string(),
        "JWK has no usable algorithm"
    );
}

#[test]
fn jwk_whose_alg_does_not_fit_its_type_is_refused() {
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "oct",
        "alg": "RS256",
        "k": URL_SAFE_NO_PAD.encode(SECRET),
    }))
    .unwrap();
    let err = JwtKey::from_jwk(&jwk).unwrap_err();
    assert_eq!(err.to_string(), "algorithm RS256 does not fit this key");
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn token_signed_by_another_rsa_key_has_an_invalid_signature() {
    let auth = with_clock(StaticKeys::from(rsa_key()));
    let token = sign_with(
        Algorithm::RS256,
        None,
        &claims(),
        &EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap(),
    );
    assert_eq!(reject(&auth, &token).await, "invalid token signature");
}

#[tokio::test]
async fn token_signed_with_another_secret_has_an_invalid_signature() {
    let token = sign_with(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(SECRET2),
    );
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "invalid token signature"
    );
}

#[tokio::test]
async fn tampered_payload_has_an_invalid_signature() {
    for (auth, token) in [
        (hmac_auth(), hs256(&claims())),
        (
            with_clock(StaticKeys::from(rsa_key())),
            rs256(None, &claims()),
        ),
    ] {
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = json!({ "sub": "root", "exp": NOW + 3600 });
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(reject(&auth, &forged).await, "invalid token signature");
    }
}

#[tokio::test]
async fn tampered_signature_is_invalid() {
    let token = hs256(&claims());
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut sig = signature.as_bytes().to_vec();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    let forged = format!("{message}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(
        reject(&hmac_auth(), &forged).await,
        "invalid token signature"
    );
}

#[tokio::test]
async fn stripped_signature_is_invalid() {
    let token = hs256(&claims());
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        reject(&hmac_auth(), &format!("{message}.")).await,
        "invalid token signature"
    );
}

#[tokio::test]
async fn signature_that_is_not_base64url_is_malformed() {
    let token = hs256(&claims());
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        reject(&hmac_auth(), &format!("{message}.!!!!")).await,
        "malformed token"
    );
}

// ---------------------------------------------------------------------------
// Time: exp and nbf
// ---------------------------------------------------------------------------

#[tokio::test]
async fn verify_returns_the_exp_claim() {
    let Verified {
        principal: _,
        expires_at: exp,
    } = hmac_auth().verify(&hs256(&claims())).await.unwrap();
    assert_eq!(exp, Some(NOW + 3600));
}

#[tokio::test]
async fn expired_beyond_the_default_leeway_is_rejected() {
    let token = hs256(&json!({ "sub": "ada", "exp": NOW - 61 }));
    assert_eq!(reject(&hmac_auth(), &token).await, "token expired");
    let token = hs256(&json!({ "sub": "ada", "exp": NOW - 3600 }));
    assert_eq!(reject(&hmac_auth(), &token).await, "token expired");
}

#[tokio::test]
async fn expired_within_the_default_leeway_is_accepted() {
    assert_eq!(DEFAULT_LEEWAY, Duration::from_secs(60));
    for exp in [NOW - 60, NOW - 30, NOW] {
        let token = hs256(&json!({ "sub": "ada", "exp": exp }));
        let Verified {
            principal,
            expires_at: got,
        } = hmac_auth().verify(&token).await.unwrap();
        assert_eq!((principal.subject(), got), ("ada", Some(exp)));
    }
}

#[tokio::test]
async fn custom_leeway_bounds_expiry() {
    let auth = hmac_auth().leeway(Duration::from_secs(5));
    let token = hs256(&json!({ "sub": "ada", "exp": NOW - 5 }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    let token = hs256(&json!({ "sub": "ada", "exp": NOW - 6 }));
    assert_eq!(reject(&auth, &token).await, "token expired");

    let auth = hmac_auth().leeway(Duration::from_secs(600));
    let token = hs256(&json!({ "sub": "ada", "exp": NOW - 599 }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
}

#[tokio::test]
async fn zero_leeway_rejects_one_second_after_exp() {
    let auth = hmac_auth().leeway(Duration::ZERO);
    let token = hs256(&json!({ "sub": "ada", "exp": NOW }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    let token = hs256(&json!({ "sub": "ada", "exp": NOW - 1 }));
    assert_eq!(reject(&auth, &token).await, "token expired");
}

#[tokio::test]
async fn expiry_follows_the_configured_clock() {
    let clock = ManualClock::at_unix(NOW);
    let auth = JwtAuthenticator::new(StaticKeys::from(hmac_key())).clock(clock.clone());
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 100 }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    clock.advance(Duration::from_secs(160));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    clock.advance(Duration::from_secs(1));
    assert_eq!(reject(&auth, &token).await, "token expired");

    // A token valid by the system clock is expired by a clock set in the future.
    let far = 4_000_000_000;
    let token = hs256(&json!({ "sub": "ada", "exp": far }));
    clock.set_unix(far + 61);
    assert_eq!(reject(&auth, &token).await, "token expired");
}

#[tokio::test]
async fn not_yet_valid_beyond_the_leeway_is_rejected() {
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "nbf": NOW + 61 }));
    assert_eq!(reject(&hmac_auth(), &token).await, "token not yet valid");
}

#[tokio::test]
async fn not_yet_valid_within_the_leeway_is_accepted() {
    for nbf in [NOW + 60, NOW + 1, NOW, NOW - 1000] {
        let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "nbf": nbf }));
        assert_eq!(accept(&hmac_auth(), &token).await.subject(), "ada");
    }
}

#[tokio::test]
async fn custom_leeway_bounds_not_before() {
    let auth = hmac_auth().leeway(Duration::ZERO);
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "nbf": NOW }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "nbf": NOW + 1 }));
    assert_eq!(reject(&auth, &token).await, "token not yet valid");
}

#[tokio::test]
async fn fractional_exp_is_accepted() {
    let token = hs256(&json!({ "sub": "ada", "exp": (NOW + 100) as f64 + 0.25 }));
    let Verified {
        principal: _,
        expires_at: exp,
    } = hmac_auth().verify(&token).await.unwrap();
    assert_eq!(exp, Some(NOW + 100));
}

#[tokio::test]
async fn exp_as_a_string_is_rejected() {
    let token = hs256(&json!({ "sub": "ada", "exp": (NOW + 3600).to_string() }));
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "token has an invalid exp claim"
    );
    // With exp optional, the authenticator's own check names the claim.
    let auth = hmac_auth().required_claims(["sub"]);
    assert_eq!(
        reject(&auth, &token).await,
        "token has an invalid exp claim"
    );
}

#[tokio::test]
async fn negative_exp_is_rejected() {
    let token = hs256(&json!({ "sub": "ada", "exp": -5 }));
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "token has an invalid exp claim"
    );
    let auth = hmac_auth().required_claims(["sub"]);
    assert_eq!(
        reject(&auth, &token).await,
        "token has an invalid exp claim"
    );
}

#[tokio::test]
async fn nbf_as_a_string_is_rejected() {
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "nbf": "yesterday" }));
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "token has an invalid nbf claim"
    );
}

// ---------------------------------------------------------------------------
// Required claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn missing_exp_is_rejected() {
    let token = hs256(&json!({ "sub": "ada" }));
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "token lacks required claim: exp"
    );
}

#[tokio::test]
async fn missing_sub_is_rejected() {
    let token = hs256(&json!({ "exp": NOW + 3600 }));
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "token lacks required claim: sub"
    );
}

#[tokio::test]
async fn non_string_sub_is_invalid() {
    let token = hs256(&json!({ "sub": 42, "exp": NOW + 3600 }));
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "token has an invalid sub claim"
    );
}

#[tokio::test]
async fn required_claims_exp_only_makes_sub_optional() {
    let auth = hmac_auth().required_claims(["exp"]);
    let token = hs256(&json!({ "exp": NOW + 3600 }));
    let Verified {
        principal,
        expires_at: exp,
    } = auth.verify(&token).await.unwrap();
    assert_eq!(principal.subject(), "");
    assert_eq!(principal.scheme(), "jwt");
    assert_eq!(exp, Some(NOW + 3600));
    // exp is still required.
    let token = hs256(&json!({ "sub": "ada" }));
    assert_eq!(
        reject(&auth, &token).await,
        "token lacks required claim: exp"
    );
}

#[tokio::test]
async fn no_required_claims_accepts_an_empty_payload() {
    let auth = hmac_auth().required_claims(Vec::<String>::new());
    let Verified {
        principal,
        expires_at: exp,
    } = auth.verify(&hs256(&json!({}))).await.unwrap();
    assert_eq!((principal.subject(), exp), ("", None));
    assert!(principal.claims().is_empty());
}

#[tokio::test]
async fn required_nbf_iss_and_aud_are_enforced() {
    let auth = hmac_auth().required_claims(["exp", "sub", "nbf"]);
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "token lacks required claim: nbf"
    );
    let auth = hmac_auth().issuer(ISSUER).required_claims(["iss"]);
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "token lacks required claim: iss"
    );
    let auth = hmac_auth().audience(AUDIENCE).required_claims(["aud"]);
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "token lacks required claim: aud"
    );
}

// ---------------------------------------------------------------------------
// Issuer and audience
// ---------------------------------------------------------------------------

#[tokio::test]
async fn configured_issuer_is_accepted() {
    let auth = hmac_auth().issuer(ISSUER);
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "iss": ISSUER }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let auth = hmac_auth().issuer(ISSUER);
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "iss": "https://evil.example" }));
    assert_eq!(reject(&auth, &token).await, "invalid token issuer");
}

#[tokio::test]
async fn any_of_several_issuers_is_accepted() {
    let auth = hmac_auth().issuer(ISSUER).issuer("https://other.example");
    for iss in [ISSUER, "https://other.example"] {
        let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "iss": iss }));
        assert_eq!(accept(&auth, &token).await.subject(), "ada", "{iss}");
    }
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "iss": "https://third.example" }));
    assert_eq!(reject(&auth, &token).await, "invalid token issuer");
}

#[tokio::test]
async fn issuer_survives_later_builder_calls() {
    let auth = hmac_auth()
        .issuer(ISSUER)
        .leeway(Duration::from_secs(1))
        .required_claims(["exp", "sub"])
        .audience(AUDIENCE);
    let token = hs256(
        &json!({ "sub": "ada", "exp": NOW + 3600, "iss": "https://evil.example", "aud": AUDIENCE }),
    );
    assert_eq!(reject(&auth, &token).await, "invalid token issuer");
}

#[tokio::test]
async fn issuer_is_not_checked_when_none_is_configured() {
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "iss": "https://any.example" }));
    assert_eq!(accept(&hmac_auth(), &token).await.subject(), "ada");
}

#[tokio::test]
async fn missing_issuer_is_rejected_when_an_issuer_is_configured() {
    let auth = hmac_auth().issuer(ISSUER);
    let token = hs256(&claims());
    assert_eq!(
        reject(&auth, &token).await,
        "token lacks required claim: iss"
    );
}

#[tokio::test]
async fn non_string_issuer_is_rejected_when_an_issuer_is_configured() {
    let auth = hmac_auth().issuer(ISSUER);
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "iss": 42 }));
    assert_eq!(reject(&auth, &token).await, "invalid token issuer");
}

#[tokio::test]
async fn configured_audience_is_accepted_as_string_or_array_member() {
    let auth = hmac_auth().audience(AUDIENCE);
    for aud in [
        json!(AUDIENCE),
        json!(["other", AUDIENCE]),
        json!([AUDIENCE]),
    ] {
        let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "aud": aud }));
        assert_eq!(accept(&auth, &token).await.subject(), "ada", "{aud}");
    }
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let auth = hmac_auth().audience(AUDIENCE);
    for aud in [json!("other"), json!(["other", "another"]), json!([])] {
        let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "aud": aud }));
        assert_eq!(
            reject(&auth, &token).await,
            "invalid token audience",
            "{aud}"
        );
    }
}

#[tokio::test]
async fn any_of_several_audiences_is_accepted() {
    let auth = hmac_auth().audience(AUDIENCE).audience("admin");
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "aud": "admin" }));
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
}

#[tokio::test]
async fn audience_is_not_checked_when_none_is_configured() {
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "aud": "anyone" }));
    assert_eq!(accept(&hmac_auth(), &token).await.subject(), "ada");
}

#[tokio::test]
async fn missing_audience_is_rejected_when_an_audience_is_configured() {
    let auth = hmac_auth().audience(AUDIENCE);
    let token = hs256(&claims());
    assert_eq!(
        reject(&auth, &token).await,
        "token lacks required claim: aud"
    );
}

#[tokio::test]
async fn non_string_audience_is_rejected_when_an_audience_is_configured() {
    let auth = hmac_auth().audience(AUDIENCE);
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "aud": 42 }));
    assert_eq!(reject(&auth, &token).await, "invalid token audience");
}

// ---------------------------------------------------------------------------
// Key selection
// ---------------------------------------------------------------------------

fn two_hmac_keys_with_kids() -> StaticKeys {
    StaticKeys::new()
        .with(
            JwtKey::secret(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("k1"),
        )
        .with(
            JwtKey::secret(Algorithm::HS256, SECRET2)
                .unwrap()
                .with_kid("k2"),
        )
}

#[tokio::test]
async fn kid_selects_its_key() {
    let auth = with_clock(two_hmac_keys_with_kids());
    let k2 = EncodingKey::from_secret(SECRET2);
    let token = sign_with(Algorithm::HS256, Some("k2"), &claims(), &k2);
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    // Only the named key is tried: k2's signature under kid k1 fails.
    let token = sign_with(Algorithm::HS256, Some("k1"), &claims(), &k2);
    assert_eq!(reject(&auth, &token).await, "invalid token signature");
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let auth = with_clock(two_hmac_keys_with_kids());
    let token = sign_with(
        Algorithm::HS256,
        Some("k3"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(reject(&auth, &token).await, "unknown token key id");
}

#[tokio::test]
async fn kid_does_not_match_keys_without_a_kid() {
    let token = sign_with(
        Algorithm::HS256,
        Some("k1"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(reject(&hmac_auth(), &token).await, "unknown token key id");
}

#[tokio::test]
async fn without_kid_two_keys_for_the_algorithm_are_not_tried() {
    // Without a kid, a token is tried only against the single key that allows its
    // algorithm: with two, even a token one of them signed is refused.
    let auth = with_clock(two_hmac_keys_with_kids());
    for secret in [SECRET, SECRET2] {
        let token = sign_with(
            Algorithm::HS256,
            None,
            &claims(),
            &EncodingKey::from_secret(secret),
        );
        assert_eq!(
            reject(&auth, &token).await,
            "token has no key id and several keys fit"
        );
    }
    // Two keys of the same type without ids: likewise.
    let auth = with_clock(
        StaticKeys::new()
            .with(hmac_key())
            .with(JwtKey::secret(Algorithm::HS256, SECRET2).unwrap()),
    );
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "token has no key id and several keys fit"
    );
}

#[tokio::test]
async fn without_kid_the_single_key_for_the_algorithm_is_tried() {
    let auth = with_clock(StaticKeys::from(hmac_key().with_kid("k1")));
    assert_eq!(accept(&auth, &hs256(&claims())).await.subject(), "ada");
    let token = sign_with(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(b"a third secret that matches nothing"),
    );
    assert_eq!(reject(&auth, &token).await, "invalid token signature");
}

#[tokio::test]
async fn without_kid_keys_of_other_algorithms_are_skipped() {
    let auth = with_clock(
        StaticKeys::new()
            .with(hmac_key())
            .with(JwtKey::from_pem(Algorithm::ES256, EC256_PUBLIC).unwrap())
            .with(rsa_key()),
    );
    assert_eq!(
        accept(&auth, &rs256(None, &claims())).await.subject(),
        "ada"
    );
    assert_eq!(accept(&auth, &hs256(&claims())).await.subject(), "ada");
}

#[tokio::test]
async fn claim_error_of_the_matching_key_is_reported_over_other_keys_signature_failures() {
    // Two keys share the token's kid: whichever order they come in, the one that
    // verifies the signature decides, and the token then fails on its issuer.
    let token = sign_with(
        Algorithm::HS256,
        Some("k"),
        &json!({ "sub": "ada", "exp": NOW + 3600, "iss": "https://evil.example" }),
        &EncodingKey::from_secret(SECRET),
    );
    let other = || {
        JwtKey::secret(Algorithm::HS256, SECRET2)
            .unwrap()
            .with_kid("k")
    };
    for keys in [
        StaticKeys::new()
            .with(hmac_key().with_kid("k"))
            .with(other()),
        StaticKeys::new()
            .with(other())
            .with(hmac_key().with_kid("k")),
    ] {
        let auth = with_clock(keys).issuer(ISSUER);
        assert_eq!(reject(&auth, &token).await, "invalid token issuer");
    }
}

#[test]
fn key_set_finds_candidates_by_kid_or_the_single_key_for_the_algorithm() {
    let set = KeySet::new(vec![
        hmac_key().with_kid("h"),
        rsa_key().with_kid("r"),
        rsa_key(),
    ]);
    assert_eq!(set.keys().len(), 3);
    assert!(set.contains_kid("h"));
    assert!(!set.contains_kid("x"));
    // By kid: the key with that id, whatever the algorithm (the caller checks it).
    let by_kid: Vec<_> = set
        .candidates(Some("r"), Algorithm::HS256)
        .unwrap()
        .collect();
    assert_eq!(by_kid.len(), 1);
    assert_eq!(by_kid[0].kid(), Some("r"));
    // Without kid: the one key that allows the algorithm...
    let by_alg: Vec<_> = set.candidates(None, Algorithm::HS256).unwrap().collect();
    assert_eq!(by_alg.len(), 1);
    assert_eq!(by_alg[0].kid(), Some("h"));
    // ...and none when two keys allow it.
    let refused = |kid, alg| set.candidates(kid, alg).err().map(|e| e.to_string());
    assert_eq!(
        refused(None, Algorithm::RS256).as_deref(),
        Some("token has no key id and several keys fit")
    );
    assert_eq!(
        refused(None, Algorithm::ES256).as_deref(),
        Some("no key for the token's algorithm")
    );
    assert_eq!(
        refused(Some("x"), Algorithm::RS256).as_deref(),
        Some("unknown token key id")
    );
}

#[test]
fn key_query_reads_the_unverified_issuer_from_the_payload_on_request() {
    let payload = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let with = |p: &str| {
        KeyQuery::from_token(Some("k"), Algorithm::RS256, p)
            .unverified_issuer()
            .map_err(|e| e.to_string())
    };
    let p = payload(json!({ "iss": ISSUER, "sub": "ada" }));
    assert_eq!(with(&p), Ok(Some(ISSUER.to_owned())));
    let p = payload(json!({ "sub": "ada" }));
    assert_eq!(with(&p), Ok(None));
    let p = payload(json!({ "iss": 7 }));
    assert_eq!(with(&p), Err("invalid token issuer".to_owned()));
    for garbage in ["***".to_owned(), payload(json!([1])), String::new()] {
        assert_eq!(
            with(&garbage),
            Err("malformed token".to_owned()),
            "{garbage}"
        );
    }
    let q = KeyQuery::new(None, Algorithm::ES256);
    assert_eq!((q.kid(), q.alg()), (None, Algorithm::ES256));
    assert_eq!(q.unverified_issuer(), Ok(None));
    assert_eq!(
        q.with_issuer(ISSUER).unverified_issuer(),
        Ok(Some(ISSUER.to_owned()))
    );
}

#[test]
fn static_keys_never_change_generation() {
    assert_eq!(StaticKeys::from(hmac_key()).generation(), 0);
}

#[test]
fn ec_jwk_whose_alg_does_not_fit_its_curve_is_refused() {
    install_crypto_provider();
    let signing = EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap();
    let mut jwk = Jwk::from_encoding_key(&signing, Algorithm::ES256).unwrap();
    assert!(JwtKey::from_jwk(&jwk).is_ok());
    jwk.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES384);
    let err = JwtKey::from_jwk(&jwk).unwrap_err();
    assert_eq!(err.to_string(), "algorithm ES384 does not fit this key");
}

/// A key source that records the kids it is asked for, or fails.
#[derive(Debug, Default)]
struct RecordingKeys {
    keys: Arc<KeySet>,
    asked: Mutex<Vec<Option<String>>>,
    down: bool,
}

impl KeySource for RecordingKeys {
    async fn keys(&self, query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
        self.asked
            .lock()
            .unwrap()
            .push(query.kid().map(str::to_owned));
        if self.down {
            return Err(AuthError::unavailable("key server unreachable"));
        }
        Ok(self.keys.clone())
    }
}

#[tokio::test]
async fn key_source_is_asked_with_the_token_kid() {
    let source = RecordingKeys {
        keys: Arc::new(KeySet::new(vec![hmac_key().with_kid("k1")])),
        ..Default::default()
    };
    let auth = with_clock(source);
    let token = sign_with(
        Algorithm::HS256,
        Some("k1"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    // Without a kid, the keyed key is still a candidate for its algorithm.
    assert_eq!(accept(&auth, &hs256(&claims())).await.subject(), "ada");
    assert_eq!(
        *auth.key_source().asked.lock().unwrap(),
        vec![Some("k1".to_owned()), None]
    );
}

#[tokio::test]
async fn failing_key_source_is_unavailable() {
    let auth = with_clock(RecordingKeys {
        down: true,
        ..Default::default()
    });
    let err = auth.verify(&hs256(&claims())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.to_string(), "key server unreachable");
}

#[tokio::test]
async fn malformed_token_does_not_reach_the_key_source() {
    let auth = with_clock(RecordingKeys::default());
    assert_eq!(reject(&auth, "abc").await, "malformed token");
    assert!(auth.key_source().asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn empty_key_set_has_no_key_for_the_algorithm() {
    let auth = with_clock(StaticKeys::new());
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "no key for the token's algorithm"
    );
}

// ---------------------------------------------------------------------------
// The principal
// ---------------------------------------------------------------------------

#[tokio::test]
async fn scopes_come_from_the_space_separated_scope_claim() {
    let token = hs256(&json!({
        "sub": "ada", "exp": NOW + 3600, "scope": "greeter.read  greeter.write\tadmin"
    }));
    let principal = accept(&hmac_auth(), &token).await;
    assert_eq!(
        principal.scopes(),
        &["greeter.read", "greeter.write", "admin"]
    );
    assert!(principal.has_scope("greeter.write"));
    assert!(!principal.has_scope("greeter"));
}

#[tokio::test]
async fn scopes_come_from_an_scp_array() {
    let token = hs256(&json!({
        "sub": "ada", "exp": NOW + 3600, "scp": ["greeter.read", 7, "greeter.write"]
    }));
    let principal = accept(&hmac_auth(), &token).await;
    assert_eq!(principal.scopes(), &["greeter.read", "greeter.write"]);
}

#[tokio::test]
async fn scopes_come_from_an_scp_string() {
    let token = hs256(&json!({
        "sub": "ada", "exp": NOW + 3600, "scp": "greeter.read greeter.write"
    }));
    let principal = accept(&hmac_auth(), &token).await;
    assert_eq!(principal.scopes(), &["greeter.read", "greeter.write"]);
}

#[tokio::test]
async fn scope_and_scp_are_combined() {
    let token = hs256(&json!({
        "sub": "ada", "exp": NOW + 3600, "scope": "a b", "scp": ["c"]
    }));
    let principal = accept(&hmac_auth(), &token).await;
    assert_eq!(principal.scopes(), &["a", "b", "c"]);
}

#[tokio::test]
async fn no_scope_claims_means_no_scopes() {
    let principal = accept(&hmac_auth(), &hs256(&claims())).await;
    assert!(principal.scopes().is_empty());
    assert!(principal.roles().is_empty());
    // A non-string, non-array `scope` is not a scope list.
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "scope": 7 }));
    assert!(accept(&hmac_auth(), &token).await.scopes().is_empty());
    // An array `scope` (some providers send one) is read leniently.
    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "scope": ["a", "b"] }));
    assert_eq!(accept(&hmac_auth(), &token).await.scopes(), &["a", "b"]);
}

#[tokio::test]
async fn roles_come_from_the_roles_claim() {
    let token = hs256(&json!({
        "sub": "ada", "exp": NOW + 3600, "roles": ["admin", "dev", null]
    }));
    let principal = accept(&hmac_auth(), &token).await;
    assert_eq!(principal.roles(), &["admin", "dev"]);
    assert!(principal.has_role("admin"));

    let token = hs256(&json!({ "sub": "ada", "exp": NOW + 3600, "roles": "admin" }));
    assert_eq!(accept(&hmac_auth(), &token).await.roles(), &["admin"]);
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct MyClaims {
    sub: String,
    tenant: String,
    exp: u64,
    level: u8,
}

#[tokio::test]
async fn claims_hold_the_whole_payload() {
    let payload = json!({
        "sub": "ada",
        "exp": NOW + 3600,
        "tenant": "acme",
        "level": 3,
        "nested": { "a": [1, 2] },
    });
    let principal = accept(&hmac_auth(), &hs256(&payload)).await;
    assert_eq!(principal.scheme(), "jwt");
    assert_eq!(principal.subject(), "ada");
    assert_eq!(Value::Object(principal.claims().clone()), payload);
    assert_eq!(principal.claims()["tenant"], json!("acme"));

    let typed: MyClaims = principal.claims_as().unwrap();
    assert_eq!(
        typed,
        MyClaims {
            sub: "ada".into(),
            tenant: "acme".into(),
            exp: NOW + 3600,
            level: 3,
        }
    );
}

// ---------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------

#[tokio::test]
async fn garbage_tokens_are_malformed() {
    let auth = hmac_auth();
    let payload = serde_json::to_vec(&claims()).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("one part", "abc".into()),
        ("dots only", "..".into()),
        ("three non-base64 parts", "a.b.c".into()),
        ("non-base64 with symbols", "$$$.%%%.^^^".into()),
        ("non-JSON header", raw_token(b"not json", &payload, "c2ln")),
        (
            "header without alg",
            raw_token(br#"{"typ":"JWT"}"#, &payload, "c2ln"),
        ),
        (
            "unknown alg",
            raw_token(br#"{"alg":"XS256"}"#, &payload, "c2ln"),
        ),
        (
            "header is a JSON array",
            raw_token(b"[1,2]", &payload, "c2ln"),
        ),
        ("two parts", {
            let t = hs256(&claims());
            t.rsplit_once('.').unwrap().0.to_owned()
        }),
        ("four parts", format!("{}.extra", hs256(&claims()))),
        ("leading dot", format!(".{}", hs256(&claims()))),
        (
            "non-UTF-8 header",
            raw_token(&[0xff, 0xfe, 0xfd], &payload, "c2ln"),
        ),
    ];
    for (what, token) in cases {
        assert_eq!(reject(&auth, &token).await, "malformed token", "{what}");
    }
}

/// An HS256 token with the given (already encoded) payload part, correctly signed
/// with [`SECRET`].
fn hs256_raw(payload_b64: &str) -> String {
    install_crypto_provider();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{payload_b64}");
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

#[tokio::test]
async fn correctly_signed_garbage_payloads_are_malformed() {
    let auth = hmac_auth().required_claims(Vec::<String>::new());
    let cases: Vec<(&str, String)> = vec![
        ("empty payload", String::new()),
        ("non-JSON payload", URL_SAFE_NO_PAD.encode(b"hello world")),
        ("JSON array payload", URL_SAFE_NO_PAD.encode(b"[1,2,3]")),
        ("JSON string payload", URL_SAFE_NO_PAD.encode(br#""ada""#)),
        ("non-base64 payload", "***".into()),
        (
            "duplicate spec claim",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"ada","sub":"root"}"#),
        ),
    ];
    for (what, payload) in cases {
        let token = hs256_raw(&payload);
        assert_eq!(reject(&auth, &token).await, "malformed token", "{what}");
    }
    // The helper itself produces tokens that verify.
    let ok = hs256_raw(&URL_SAFE_NO_PAD.encode(br#"{"sub":"ada"}"#));
    assert_eq!(accept(&auth, &ok).await.subject(), "ada");
}

#[tokio::test]
async fn empty_middle_part_with_a_bogus_signature_is_rejected() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let token = format!("{header}..c2ln");
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "invalid token signature"
    );
}

#[tokio::test]
async fn huge_token_is_rejected_without_panicking() {
    let token = format!(
        "{}.{}.{}",
        "A".repeat(10_000),
        "B".repeat(10_000),
        "C".repeat(10_000)
    );
    assert_eq!(reject(&hmac_auth(), &token).await, "malformed token");
}

// ---------------------------------------------------------------------------
// The authorization header
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bearer_header_authenticates() {
    let auth = hmac_auth();
    let token = hs256(&claims());
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let headers = bearer(&format!("{scheme} {token}"));
        let got = authenticate(&auth, &headers)
            .await
            .unwrap()
            .expect("authenticated");
        assert_eq!(got.principal.subject(), "ada", "{scheme}");
        assert_eq!(got.principal.scheme(), "jwt", "{scheme}");
        assert!(got.response_headers.is_empty());
    }
}

#[tokio::test]
async fn other_scheme_is_absent() {
    let got = authenticate(&hmac_auth(), &bearer("Basic xyz")).await;
    assert!(matches!(got, Ok(None)), "{got:?}");
}

#[tokio::test]
async fn no_authorization_is_absent() {
    let got = authenticate(&hmac_auth(), &HeaderMap::new()).await;
    assert!(matches!(got, Ok(None)), "{got:?}");
}

#[tokio::test]
async fn bearer_without_a_token_is_rejected() {
    let err = authenticate(&hmac_auth(), &bearer("Bearer"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.to_string(), "authorization scheme has no credentials");
}

#[tokio::test]
async fn bad_bearer_token_is_rejected_not_absent() {
    let auth = hmac_auth();
    let err = authenticate(&auth, &bearer("Bearer abc"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.to_string(), "malformed token");

    let expired = hs256(&json!({ "sub": "ada", "exp": NOW - 3600 }));
    let err = authenticate(&auth, &bearer(&format!("Bearer {expired}")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.to_string(), "token expired");
}

// ---------------------------------------------------------------------------
// One encoding per token (RFC 7515): padding and `crit`
// ---------------------------------------------------------------------------

/// `segment` re-encoded as base64url with `=` padding.
fn padded(segment: &str) -> String {
    let bytes = URL_SAFE_NO_PAD.decode(segment).unwrap();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

#[tokio::test]
async fn padded_segments_are_malformed() {
    // Claims whose encodings need padding in every segment: lengths not multiples of 3.
    let auth = hmac_auth();
    for extra in 0..3 {
        let c = json!({ "sub": "ada", "exp": NOW + 3600, "x": "y".repeat(extra) });
        let token = hs256(&c);
        accept(&auth, &token).await;
        let parts: Vec<&str> = token.split('.').collect();
        for i in 0..3 {
            let mut p: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
            p[i] = padded(parts[i]);
            if p[i] == parts[i] {
                continue; // this segment's length needs no padding
            }
            let forged = p.join(".");
            assert_eq!(
                reject(&auth, &forged).await,
                "malformed token",
                "segment {i}"
            );
        }
    }
    // A lone '=' anywhere is refused too.
    let token = hs256(&claims());
    assert_eq!(reject(&auth, &format!("{token}=")).await, "malformed token");
}

#[tokio::test]
async fn a_signature_is_padded_in_the_hs256_case() {
    // HS256 signatures are 32 bytes: 43 base64url characters, so padding adds one '='.
    let token = hs256(&claims());
    let (message, signature) = token.rsplit_once('.').unwrap();
    let forged = format!("{message}.{}", padded(signature));
    assert_ne!(forged, token);
    assert_eq!(reject(&hmac_auth(), &forged).await, "malformed token");
}

#[tokio::test]
async fn any_crit_header_is_refused_even_when_validly_signed() {
    install_crypto_provider();
    let auth = hmac_auth();
    for crit in [json!(["b64"]), json!(["exp"]), json!([])] {
        let header = json!({ "alg": "HS256", "typ": "JWT", "crit": crit, "b64": true });
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        let message = format!("{header}.{payload}");
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        let token = format!("{message}.{sig}");
        assert_eq!(
            reject(&auth, &token).await,
            "token has unsupported critical header parameters",
            "crit {crit}"
        );
    }
}

#[tokio::test]
async fn a_payload_whose_skipped_claim_is_not_valid_json_is_malformed() {
    // Found by fuzzing: a lone surrogate in a claim the authenticator does not read was
    // accepted, and the handler then saw no claims at all.
    let payload = format!(r#"{{"sub":"ada","exp":{},"x":"\ud800"}}"#, NOW + 3600);
    let token = raw_token(br#"{"alg":"HS256","typ":"JWT"}"#, payload.as_bytes(), "");
    let message = token.trim_end_matches('.');
    install_crypto_provider();
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    let token = format!("{message}.{sig}");
    assert_eq!(reject(&hmac_auth(), &token).await, "malformed token");
    // A valid escape still verifies, and its claim is readable.
    let payload = format!(r#"{{"sub":"ada","exp":{},"x":"\u00e9"}}"#, NOW + 3600);
    let token = raw_token(br#"{"alg":"HS256","typ":"JWT"}"#, payload.as_bytes(), "");
    let message = token.trim_end_matches('.');
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    let p = accept(&hmac_auth(), &format!("{message}.{sig}")).await;
    assert_eq!(p.claims()["x"], "\u{e9}");
}
