//! Claims: the required ones, issuer and audience, and the principal built
//! from the payload (subject, scopes, roles, claims).

use super::*;

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
