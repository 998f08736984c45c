//! Token minting for the demo, tests and benches.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Standard claims for `sub`, valid for an hour, plus `extra`.
pub(crate) fn claims(sub: &str, iss: &str, aud: &str, extra: Value) -> Value {
    let mut c = json!({ "sub": sub, "iss": iss, "aud": aud, "iat": now(), "exp": now() + 3600 });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

pub(crate) fn hs256(secret: &str, claims: &Value) -> String {
    install_jwt_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign HS256")
}

pub(crate) fn sign_pem(alg: Algorithm, private_pem: &[u8], claims: &Value) -> String {
    install_jwt_provider();
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
        _ => EncodingKey::from_rsa_pem(private_pem),
    }
    .expect("private key");
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign")
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
pub(crate) fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
