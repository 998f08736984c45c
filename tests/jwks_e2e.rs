//! End to end with remote keys: the greeter (examples/support/greeter.rs) on
//! 127.0.0.1:0 verifying tokens against an in-process JWKS / discovery server, called
//! by a real tonic client; each case asserts the greeting or the exact status.
#![cfg(feature = "jwks")]

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use jwks_server::{JwksServer, Mode, ec256, jwks, rsa};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";

async fn greeter(config: greeter::ServerConfig) -> Channel {
    let addr = greeter::spawn(config).await;
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// SayHello with `authorization: Bearer <token>`: the greeting, or code and message.
async fn hello(ch: &Channel, token: &str) -> Result<String, (Code, String)> {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    GreeterClient::new(ch.clone())
        .say_hello(req)
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn greeting(sub: &str) -> Result<String, (Code, String)> {
    Ok(format!("Hello Ada, authenticated as {sub} via jwt"))
}

fn refused(code: Code, msg: &str) -> Result<String, (Code, String)> {
    Err((code, msg.to_owned()))
}

#[tokio::test]
async fn jwks_keys_verify_and_rotation_swaps_the_accepted_key() {
    let (old, new) = (rsa("2024-old"), ec256("2025-new"));
    let server = JwksServer::start(jwks(&[&old])).await;
    let ch = greeter(greeter::ServerConfig {
        jwks_urls: vec![server.jwks_url()],
        jwt_issuer: Some(ISS.into()),
        jwt_audience: Some(AUD.into()),
        ..Default::default()
    })
    .await;
    let claims = |sub: &str| tokens::claims(sub, ISS, AUD, json!({}));

    let old_token = old.sign(&claims("ada"));
    assert_eq!(hello(&ch, &old_token).await, greeting("ada"));
    assert_eq!(hello(&ch, &old_token).await, greeting("ada")); // now from the token cache
    assert_eq!(server.jwks_fetches(), 1);

    // The provider rotates: the new key replaces the old one.
    server.set_jwks(jwks(&[&new]));
    assert_eq!(
        hello(&ch, &new.sign(&claims("grace"))).await,
        greeting("grace")
    );
    assert_eq!(server.jwks_fetches(), 2, "the new kid refetched once");
    // The very token the verified-token cache holds is refused: the key set changed.
    assert_eq!(
        hello(&ch, &old_token).await,
        refused(Code::Unauthenticated, "unknown token key id")
    );
    assert_eq!(server.jwks_fetches(), 2, "within 30 s, no second refetch");
    // The normal checks still apply to tokens of the JWKS keys.
    let wrong_aud = tokens::claims("ada", ISS, "someone-else", json!({}));
    assert_eq!(
        hello(&ch, &new.sign(&wrong_aud)).await,
        refused(Code::Unauthenticated, "invalid token audience")
    );
}

#[tokio::test]
async fn provider_down_from_the_start_is_unavailable() {
    let key = rsa("k");
    let server = JwksServer::start(jwks(&[&key])).await;
    server.set_mode(Mode::Status(503));
    let ch = greeter(greeter::ServerConfig {
        jwks_urls: vec![server.jwks_url()],
        jwt_issuer: Some(ISS.into()),
        ..Default::default()
    })
    .await;
    let token = key.sign(&tokens::claims("ada", ISS, AUD, json!({})));
    assert_eq!(
        hello(&ch, &token).await,
        refused(Code::Unavailable, "JWT signing keys unavailable")
    );
    assert_eq!(server.jwks_fetches(), 1);
    // A call without credentials is still just unauthenticated.
    let mut client = GreeterClient::new(ch.clone());
    let status = client
        .say_hello(HelloRequest { name: "Ada".into() })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unauthenticated, "missing authorization metadata")
    );
}

#[tokio::test]
async fn two_oidc_issuers_are_routed_by_iss() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server_a = JwksServer::start(jwks(&[&a])).await;
    let server_b = JwksServer::start(jwks(&[&b])).await;
    let (iss_a, iss_b) = (server_a.issuer(), server_b.issuer());
    let ch = greeter(greeter::ServerConfig {
        oidc_issuers: vec![iss_a.clone(), iss_b.clone()],
        jwt_audience: Some(AUD.into()),
        ..Default::default()
    })
    .await;
    let claims = |sub: &str, iss: &str| tokens::claims(sub, iss, AUD, json!({}));

    assert_eq!(
        hello(&ch, &a.sign(&claims("ada", &iss_a))).await,
        greeting("ada")
    );
    assert_eq!(
        hello(&ch, &b.sign(&claims("grace", &iss_b))).await,
        greeting("grace")
    );
    assert_eq!(
        hello(&ch, &a.sign(&claims("ada", "https://elsewhere.test"))).await,
        refused(Code::Unauthenticated, "unknown token issuer")
    );
    assert_eq!(
        (server_a.discovery_fetches(), server_a.jwks_fetches()),
        (1, 1)
    );
    assert_eq!(
        (server_b.discovery_fetches(), server_b.jwks_fetches()),
        (1, 1)
    );
}

#[test]
fn greeter_refuses_ambiguous_remote_key_configurations() {
    let err = |config: greeter::ServerConfig| config.authenticator().err();
    assert_eq!(
        err(greeter::ServerConfig {
            jwks_urls: vec!["http://127.0.0.1:1/jwks.json".into()],
            jwt_hs256_secret: Some("s".into()),
            ..Default::default()
        })
        .as_deref(),
        Some(
            "--jwks-url/--oidc-issuer cannot be combined with --jwt-hs256-secret/--jwt-public-key"
        )
    );
    assert_eq!(
        err(greeter::ServerConfig {
            jwks_urls: vec!["http://127.0.0.1:1/jwks.json".into()],
            oidc_issuers: vec!["http://127.0.0.1:2".into()],
            ..Default::default()
        })
        .as_deref(),
        Some("with several key sources, a --jwks-url needs --jwt-issuer")
    );
    assert_eq!(
        err(greeter::ServerConfig {
            jwks_urls: vec!["not a url".into()],
            ..Default::default()
        })
        .as_deref(),
        Some("invalid URL \"not a url\": relative URL without a base")
    );
}
