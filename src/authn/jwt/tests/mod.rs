//! Unit tests for the JWT authenticator (written by a helper): the shared keys,
//! constants and helpers here, one file per concept below.

mod algorithms;
mod authorization_header;
mod claims;
mod garbage;
mod key_selection;
mod keys;
mod signature;
mod time;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tonic::Code;

use super::*;
use crate::clock::ManualClock;
use jsonwebtoken::Algorithm;

/// The manual clock's time in every test: 2023-11-14, well in the past, so a token
/// accepted here was checked against the configured clock, not the system's.
const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"an-hmac-secret-for-grpc-auth-unit-tests-0123456789";
const SECRET2: &[u8] = b"another-hmac-secret-for-grpc-auth-unit-tests-987654";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "greeter";

const RSA_PRIVATE: &[u8] = include_bytes!("../../../../tests/keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../../../tests/keys/rsa_public.pem");
const RSA2_PRIVATE: &[u8] = include_bytes!("../../../../tests/keys/rsa2_private.pem");
const EC256_PRIVATE: &[u8] = include_bytes!("../../../../tests/keys/ec256_private.pem");
const EC256_PUBLIC: &[u8] = include_bytes!("../../../../tests/keys/ec256_public.pem");
const EC384_PRIVATE: &[u8] = include_bytes!("../../../../tests/keys/ec384_private.pem");
const EC384_PUBLIC: &[u8] = include_bytes!("../../../../tests/keys/ec384_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../../../../tests/keys/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../../../../tests/keys/ed25519_public.pem");

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
