//! Key construction: `JwtKey` from PEM, secrets and JWKs, and the algorithms a
//! key allows.

use jsonwebtoken::jwk::Jwk;

use super::*;

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
