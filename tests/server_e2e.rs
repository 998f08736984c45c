//! End to end: a real tonic server on 127.0.0.1:0 behind the auth layer, called by a
//! real tonic client; every case asserts the exact status code and message, or the
//! principal the handler saw.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::Code;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

const SECRET: &str = "e2e-secret-0123456789abcdef0123456789";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";

async fn server() -> Channel {
    let config = greeter::ServerConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        jwt_public_keys: vec![
            include_bytes!("keys/rsa_public.pem").to_vec(),
            include_bytes!("keys/ec256_public.pem").to_vec(),
            include_bytes!("keys/ed25519_public.pem").to_vec(),
        ],
        jwt_issuer: Some(ISS.into()),
        jwt_audience: Some(AUD.into()),
        basic_users: vec![
            ("grace".into(), "hopper".into()),
            (
                "bob".into(),
                // argon2id PHC of "builder"
                hash("builder"),
            ),
        ],
        api_keys: vec![("k-123".into(), "billing".into())],
        public: vec![],
        tls: None,
        require_scope: vec![(
            "/helloworld.Greeter/SayHelloAdmin".into(),
            "greeter.admin".into(),
        )],
        ..Default::default()
    };
    let addr = greeter::spawn(config).await;
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"e2e-test-salt-16").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Calls SayHello (or SayHelloAdmin) with raw metadata values.
async fn call(ch: &Channel, admin: bool, md: &[(&str, &[u8])]) -> Result<String, (Code, String)> {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in md {
        let key: tonic::metadata::AsciiMetadataKey = k.parse().unwrap();
        req.metadata_mut()
            .append(key, AsciiMetadataValue::try_from(*v).unwrap());
    }
    let mut client = GreeterClient::new(ch.clone());
    let res = if admin {
        client.say_hello_admin(req).await
    } else {
        client.say_hello(req).await
    };
    res.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

async fn auth(ch: &Channel, value: &str) -> Result<String, (Code, String)> {
    call(ch, false, &[("authorization", value.as_bytes())]).await
}

fn unauth(msg: &str) -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, msg.to_owned()))
}

fn hello(principal_and_scheme: &str) -> Result<String, (Code, String)> {
    Ok(format!(
        "Hello Ada, authenticated as {principal_and_scheme}"
    ))
}

fn valid_claims(extra: serde_json::Value) -> serde_json::Value {
    tokens::claims("ada", ISS, AUD, extra)
}

#[tokio::test]
async fn jwt_schemes_are_accepted_and_the_handler_sees_the_principal() {
    let ch = server().await;
    let hs = tokens::hs256(SECRET, &valid_claims(json!({})));
    assert_eq!(
        auth(&ch, &format!("Bearer {hs}")).await,
        hello("ada via jwt")
    );
    assert_eq!(
        auth(&ch, &format!("bearer {hs}")).await,
        hello("ada via jwt"),
        "scheme is case-insensitive"
    );
    let rs = tokens::sign_pem(
        Algorithm::RS256,
        include_bytes!("keys/rsa_private.pem"),
        &valid_claims(json!({})),
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {rs}")).await,
        hello("ada via jwt")
    );
    let ps = tokens::sign_pem(
        Algorithm::PS256,
        include_bytes!("keys/rsa_private.pem"),
        &valid_claims(json!({})),
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {ps}")).await,
        hello("ada via jwt")
    );
    let es = tokens::sign_pem(
        Algorithm::ES256,
        include_bytes!("keys/ec256_private.pem"),
        &valid_claims(json!({})),
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {es}")).await,
        hello("ada via jwt")
    );
    let ed = tokens::sign_pem(
        Algorithm::EdDSA,
        include_bytes!("keys/ed25519_private.pem"),
        &valid_claims(json!({})),
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {ed}")).await,
        hello("ada via jwt")
    );
}

#[tokio::test]
async fn jwt_failures_are_unauthenticated_with_their_reason() {
    let ch = server().await;
    let forged = tokens::hs256("wrong-secret", &valid_claims(json!({})));
    assert_eq!(
        auth(&ch, &format!("Bearer {forged}")).await,
        unauth("invalid token signature")
    );
    let other_rsa = tokens::sign_pem(
        Algorithm::RS256,
        include_bytes!("keys/rsa2_private.pem"),
        &valid_claims(json!({})),
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {other_rsa}")).await,
        unauth("invalid token signature")
    );
    let expired = tokens::hs256(SECRET, &valid_claims(json!({"exp": tokens::now() - 120})));
    assert_eq!(
        auth(&ch, &format!("Bearer {expired}")).await,
        unauth("token expired")
    );
    let early = tokens::hs256(SECRET, &valid_claims(json!({"nbf": tokens::now() + 600})));
    assert_eq!(
        auth(&ch, &format!("Bearer {early}")).await,
        unauth("token not yet valid")
    );
    let wrong_iss = tokens::hs256(
        SECRET,
        &tokens::claims("ada", "https://evil", AUD, json!({})),
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {wrong_iss}")).await,
        unauth("invalid token issuer")
    );
    let wrong_aud = tokens::hs256(SECRET, &tokens::claims("ada", ISS, "other", json!({})));
    assert_eq!(
        auth(&ch, &format!("Bearer {wrong_aud}")).await,
        unauth("invalid token audience")
    );
    // alg: none
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(valid_claims(json!({})).to_string())
    );
    assert_eq!(
        auth(&ch, &format!("Bearer {none}")).await,
        unauth("malformed token")
    );
    // Three parts, garbage inside.
    assert_eq!(
        auth(&ch, "Bearer aaa.bbb.ccc").await,
        unauth("malformed token")
    );
    assert_eq!(
        auth(&ch, "Bearer not-a-jwt").await,
        unauth("malformed token")
    );
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let ch = server().await;
    // HS256 signed with the RSA public key's PEM as the HMAC secret: the RSA key only
    // verifies RS256/PS256, and the HS256 key's secret differs.
    let pem = std::str::from_utf8(include_bytes!("keys/rsa_public.pem")).unwrap();
    let confused = tokens::hs256(pem, &valid_claims(json!({})));
    assert_eq!(
        auth(&ch, &format!("Bearer {confused}")).await,
        unauth("invalid token signature")
    );
}

#[tokio::test]
async fn basic_and_api_key_are_accepted() {
    let ch = server().await;
    let b = STANDARD.encode("grace:hopper");
    assert_eq!(
        auth(&ch, &format!("Basic {b}")).await,
        hello("grace via basic")
    );
    let hashed = STANDARD.encode("bob:builder");
    assert_eq!(
        auth(&ch, &format!("Basic {hashed}")).await,
        hello("bob via basic")
    );
    assert_eq!(
        auth(&ch, &format!("Basic {hashed}")).await,
        hello("bob via basic"),
        "cached path"
    );
    let wrong = STANDARD.encode("bob:builderX");
    assert_eq!(
        auth(&ch, &format!("Basic {wrong}")).await,
        unauth("invalid username or password")
    );
    assert_eq!(
        call(&ch, false, &[("x-api-key", b"k-123")]).await,
        hello("billing via api-key")
    );
    assert_eq!(
        call(&ch, false, &[("x-api-key", b"nope")]).await,
        unauth("invalid API key")
    );
}

#[tokio::test]
async fn bad_input_never_panics_and_gets_a_clear_unauthenticated() {
    let ch = server().await;
    assert_eq!(
        call(&ch, false, &[]).await,
        unauth("missing authorization metadata")
    );
    assert_eq!(
        auth(&ch, "Bearer").await,
        unauth("authorization scheme has no credentials")
    );
    assert_eq!(
        auth(&ch, "Basic").await,
        unauth("authorization scheme has no credentials")
    );
    assert_eq!(
        auth(&ch, "Negotiate abc").await,
        unauth("unsupported authorization scheme")
    );
    let two = call(
        &ch,
        false,
        &[
            ("authorization", b"Bearer a.b.c"),
            ("authorization", b"Bearer d.e.f"),
        ],
    )
    .await;
    assert_eq!(two, unauth("multiple authorization metadata entries"));
    let non_ascii = call(
        &ch,
        false,
        &[("authorization", "Bearer caf\u{e9}".as_bytes())],
    )
    .await;
    assert_eq!(
        non_ascii,
        unauth("authorization metadata is not valid ASCII")
    );
    let not_utf8 = call(&ch, false, &[("authorization", b"Bearer \xff\xfe\xfd")]).await;
    assert_eq!(
        not_utf8,
        unauth("authorization metadata is not valid ASCII")
    );
    let big = format!("Bearer {}", "a".repeat(9 * 1024));
    assert_eq!(
        auth(&ch, &big).await,
        unauth("authorization metadata exceeds 8192 bytes")
    );
    assert_eq!(
        auth(&ch, "Basic %%%not-base64%%%").await,
        unauth("Basic credentials are not valid base64")
    );
    let no_colon = STANDARD.encode("gracehopper");
    assert_eq!(
        auth(&ch, &format!("Basic {no_colon}")).await,
        unauth("Basic credentials lack a ':' separator")
    );
    for empty in [":hopper", "grace:", ":"] {
        let e = STANDARD.encode(empty);
        assert_eq!(
            auth(&ch, &format!("Basic {e}")).await,
            unauth("Basic credentials have an empty user or password"),
            "{empty:?}"
        );
    }
    let big_key = "k".repeat(9 * 1024);
    assert_eq!(
        call(&ch, false, &[("x-api-key", big_key.as_bytes())]).await,
        unauth("x-api-key metadata exceeds 8192 bytes")
    );
    // The server is still healthy after all of that.
    let b = STANDARD.encode("grace:hopper");
    assert_eq!(
        auth(&ch, &format!("Basic {b}")).await,
        hello("grace via basic")
    );
}

#[tokio::test]
async fn scopes_are_enforced_with_permission_denied() {
    let ch = server().await;
    let plain = tokens::hs256(SECRET, &valid_claims(json!({"scope": "greeter.read"})));
    assert_eq!(
        call(
            &ch,
            true,
            &[("authorization", format!("Bearer {plain}").as_bytes())]
        )
        .await,
        Err((
            Code::PermissionDenied,
            "missing scope: greeter.admin".to_owned()
        ))
    );
    let admin = tokens::hs256(
        SECRET,
        &valid_claims(json!({"scp": ["greeter.read", "greeter.admin"]})),
    );
    assert_eq!(
        call(
            &ch,
            true,
            &[("authorization", format!("Bearer {admin}").as_bytes())]
        )
        .await,
        Ok("[admin] Hello Ada, authenticated as ada via jwt".to_owned())
    );
    // No credentials on a scoped method is still UNAUTHENTICATED, not PERMISSION_DENIED.
    assert_eq!(
        call(&ch, true, &[]).await,
        unauth("missing authorization metadata")
    );
}

#[tokio::test]
async fn messages_never_echo_the_credential() {
    let ch = server().await;
    let secretish = "Bearer SUPERSECRETTOKENVALUE";
    let Err((_, msg)) = auth(&ch, secretish).await else {
        panic!("accepted a garbage token")
    };
    assert!(!msg.contains("SUPERSECRET"), "{msg}");
    let b = STANDARD.encode("grace:SUPERSECRETPW");
    let Err((_, msg)) = auth(&ch, &format!("Basic {b}")).await else {
        panic!("accepted a wrong password")
    };
    assert!(!msg.contains("SUPERSECRET") && !msg.contains(&b), "{msg}");
}

#[tokio::test]
async fn public_health_check_needs_no_credentials() {
    let ch = server().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let res = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        res.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}
