//! Algorithms: every supported one verifies; `alg: none`, alg confusion (HS256
//! signed with a public key) and a key allowing another algorithm are refused.

use super::*;

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
