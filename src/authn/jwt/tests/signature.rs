//! Signatures (wrong key, tampering, encodings) and one encoding per token
//! (RFC 7515): padding and `crit`.

use super::*;

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
