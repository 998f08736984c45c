//! The authorization header: `Bearer` schemes, absent and rejected credentials.

use http::HeaderMap;

use super::*;
use crate::authn::{AuthRequest, Authenticator};

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
        assert!(got.response_headers().is_none());
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
