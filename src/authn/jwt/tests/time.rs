//! Time: `exp` and `nbf` against the configured clock, the leeway, and
//! malformed time claims.

use super::*;

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
