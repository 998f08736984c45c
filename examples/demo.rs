//! One-command demo: starts the greeter behind grpc-auth on 127.0.0.1:0, calls it as
//! several clients, prints each outcome, and exits non-zero if any differs from what
//! it expects.
//!
//! ```text
//! cargo run --example demo
//! ```

#[path = "support/greeter.rs"]
mod greeter;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/tokens.rs"]
mod tokens;

use base64::Engine as _;
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &str = "demo-hs256-secret-0123456789abcdef";
const ISS: &str = "https://issuer.demo";
const AUD: &str = "greeter";
const HMAC_SECRET: &str = "demo-hmac-secret";

/// The metadata an HMAC signer adds to a SayHello call (date, x-nonce, authorization).
fn hmac_signed(key_id: &str, secret: &str) -> Vec<(&'static str, String)> {
    let mut md = http::HeaderMap::new();
    if let Err(e) = grpc_auth::credentials::HmacSigner::new(key_id, secret.to_owned())
        .sign("/helloworld.Greeter/SayHello", &mut md)
    {
        eprintln!("demo: could not sign: {e}");
    }
    ["date", "x-nonce", "authorization"]
        .into_iter()
        .filter_map(|k| Some((k, md.get(k)?.to_str().ok()?.to_owned())))
        .collect()
}

struct Case {
    name: &'static str,
    method: Method,
    metadata: Vec<(&'static str, String)>,
    expect: Code,
    /// The reply (OK) or status message must contain this.
    expect_text: &'static str,
}

enum Method {
    Hello,
    Admin,
    Health,
}

async fn call(channel: Channel, case: &Case) -> (Code, String) {
    fn with_md<T>(msg: T, md: &[(&'static str, String)]) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        for (k, v) in md {
            match v.parse() {
                Ok(v) => {
                    req.metadata_mut().append(*k, v);
                }
                Err(_) => eprintln!("demo: could not encode metadata {k}"),
            }
        }
        req
    }
    let hello = || with_md(HelloRequest { name: "Ada".into() }, &case.metadata);
    let result = match case.method {
        Method::Hello => GreeterClient::new(channel)
            .say_hello(hello())
            .await
            .map(|r| r.into_inner().message),
        Method::Admin => GreeterClient::new(channel)
            .say_hello_admin(hello())
            .await
            .map(|r| r.into_inner().message),
        Method::Health => HealthClient::new(channel)
            .check(with_md(
                HealthCheckRequest {
                    service: String::new(),
                },
                &case.metadata,
            ))
            .await
            .map(|r| format!("health: {:?}", r.into_inner().status())),
    };
    match result {
        Ok(message) => (Code::Ok, message),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = greeter::ServerConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        jwt_issuer: Some(ISS.into()),
        jwt_audience: Some(AUD.into()),
        basic_users: vec![("grace".into(), "hopper".into())],
        api_keys: vec![("k-123".into(), "billing-service".into())],
        hmac_keys: vec![("svc-a".into(), HMAC_SECRET.into())],
        issue_tokens: true,
        require_scope: vec![(
            "/helloworld.Greeter/SayHelloAdmin".into(),
            "greeter.admin".into(),
        )],
        ..Default::default()
    };
    let addr = greeter::spawn(config).await;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    let bearer = |t: String| vec![("authorization", format!("Bearer {t}"))];
    let valid = tokens::hs256(SECRET, &tokens::claims("ada", ISS, AUD, json!({})));
    let admin = tokens::hs256(
        SECRET,
        &tokens::claims("ada", ISS, AUD, json!({"scope": "greeter.admin"})),
    );
    let forged = tokens::hs256(
        "not-the-secret",
        &tokens::claims("ada", ISS, AUD, json!({})),
    );
    let expired = tokens::hs256(
        SECRET,
        &tokens::claims("ada", ISS, AUD, json!({"exp": tokens::now() - 3600})),
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("grace:hopper");

    let signed = hmac_signed("svc-a", HMAC_SECRET);
    use Method::*;
    let cases = vec![
        Case {
            name: "no credentials",
            method: Hello,
            metadata: vec![],
            expect: Code::Unauthenticated,
            expect_text: "missing authorization metadata",
        },
        Case {
            name: "malformed header (`Bearer` alone)",
            method: Hello,
            metadata: vec![("authorization", "Bearer".into())],
            expect: Code::Unauthenticated,
            expect_text: "authorization scheme has no credentials",
        },
        Case {
            name: "unknown scheme",
            method: Hello,
            metadata: vec![("authorization", "Digest abc".into())],
            expect: Code::Unauthenticated,
            expect_text: "unsupported authorization scheme",
        },
        Case {
            name: "bad signature",
            method: Hello,
            metadata: bearer(forged),
            expect: Code::Unauthenticated,
            expect_text: "invalid token signature",
        },
        Case {
            name: "expired token",
            method: Hello,
            metadata: bearer(expired),
            expect: Code::Unauthenticated,
            expect_text: "token expired",
        },
        Case {
            name: "valid JWT",
            method: Hello,
            metadata: bearer(valid.clone()),
            expect: Code::Ok,
            expect_text: "authenticated as ada via jwt",
        },
        Case {
            name: "Basic",
            method: Hello,
            metadata: vec![("authorization", format!("Basic {basic}"))],
            expect: Code::Ok,
            expect_text: "authenticated as grace via basic",
        },
        Case {
            name: "API key",
            method: Hello,
            metadata: vec![("x-api-key", "k-123".into())],
            expect: Code::Ok,
            expect_text: "authenticated as billing-service via api-key",
        },
        Case {
            name: "wrong API key",
            method: Hello,
            metadata: vec![("x-api-key", "k-999".into())],
            expect: Code::Unauthenticated,
            expect_text: "invalid API key",
        },
        Case {
            name: "HMAC-signed call",
            method: Hello,
            metadata: signed.clone(),
            expect: Code::Ok,
            expect_text: "authenticated as svc-a via hmac",
        },
        Case {
            name: "HMAC signature replayed",
            method: Hello,
            metadata: signed,
            expect: Code::Unauthenticated,
            expect_text: "replay",
        },
        Case {
            name: "HMAC signed with a wrong secret",
            method: Hello,
            metadata: hmac_signed("svc-a", "not-the-secret"),
            expect: Code::Unauthenticated,
            expect_text: "HMAC signature mismatch",
        },
        Case {
            name: "JWT lacking a scope",
            method: Admin,
            metadata: bearer(valid),
            expect: Code::PermissionDenied,
            expect_text: "missing scope: greeter.admin",
        },
        Case {
            name: "JWT with the scope",
            method: Admin,
            metadata: bearer(admin),
            expect: Code::Ok,
            expect_text: "[admin] Hello Ada, authenticated as ada via jwt",
        },
        Case {
            name: "public health check, no credentials",
            method: Health,
            metadata: vec![],
            expect: Code::Ok,
            expect_text: "health: Serving",
        },
    ];

    println!("greeter with grpc-auth on {addr}\n");
    println!(
        "{:<38} {:<18} {:<6} message / reply (principal the handler saw)",
        "case", "status", "ok?"
    );
    println!("{}", "-".repeat(120));
    let mut failures = 0;
    for case in &cases {
        let (code, text) = call(channel.clone(), case).await;
        let ok = code == case.expect && text.contains(case.expect_text);
        failures += usize::from(!ok);
        println!(
            "{:<38} {:<18} {:<6} {}",
            case.name,
            format!("{code:?}"),
            if ok { "yes" } else { "NO" },
            text
        );
        if !ok {
            println!(
                "{:<38} expected {:?} containing {:?}",
                "", case.expect, case.expect_text
            );
        }
    }
    let client_failures = client_side(addr).await?;
    let mtls_failures = mtls_and_policy().await?;
    let total = cases.len() + CLIENT_CASES + MTLS_CASES;
    let failures = failures + client_failures + mtls_failures;
    println!(
        "\n{total} cases, {} as expected, {failures} unexpected",
        total - failures
    );
    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}

const CLIENT_CASES: usize = 8;
const MTLS_CASES: usize = 4;

/// A second greeter over TLS that verifies client certificates (made here with a
/// throwaway CA) and applies an authorization policy file (gRFC A43).
async fn mtls_and_policy() -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let pki = tls::test_pki();
    let policy_path =
        std::env::temp_dir().join(format!("grpc-auth-demo-{}.json", std::process::id()));
    std::fs::write(
        &policy_path,
        r#"{"name": "demo",
            "deny_rules": [{"name": "no_admin_for_keys", "source": {"principals": ["api-key:*"]},
                            "request": {"paths": ["/helloworld.Greeter/SayHelloAdmin"]}}],
            "allow_rules": [
              {"name": "prod_workloads", "source": {"principals": ["spiffe://prod.demo/*"]}},
              {"name": "api_keys", "source": {"principals": ["api-key:*"]}}]}"#,
    )?;
    let policy =
        grpc_auth::authz::AuthorizationPolicy::from_json(&std::fs::read_to_string(&policy_path)?)?;
    let _ = std::fs::remove_file(&policy_path);
    let config = greeter::ServerConfig {
        api_keys: vec![("k-123".into(), "billing-service".into())],
        tls: Some((
            pki.cert_pem.clone().into_bytes(),
            pki.key_pem.clone().into_bytes(),
        )),
        client_ca: Some(pki.ca_pem.clone().into_bytes()),
        authz_policy: Some(policy.into()),
        ..Default::default()
    };
    let addr = greeter::spawn(config).await;
    let (cert, key) = pki.client_cert(&["spiffe://prod.demo/ns/billing/sa/api"], &[], "billing");
    let prod = tls::mtls_channel(addr.port(), &pki.ca_pem, &cert, &key).await;
    let (cert, key) = pki.client_cert(&["spiffe://dev.demo/ns/billing/sa/api"], &[], "dev");
    let dev = tls::mtls_channel(addr.port(), &pki.ca_pem, &cert, &key).await;
    let plain = tls::channel(addr.port(), &pki.ca_pem).await;
    let key = || vec![("x-api-key", "k-123".to_owned())];
    use Method::*;
    let cases = [
        (
            prod.clone(),
            Case {
                name: "mTLS: prod workload (SPIFFE ID)",
                method: Hello,
                metadata: vec![],
                expect: Code::Ok,
                expect_text: "authenticated as spiffe://prod.demo/ns/billing/sa/api via mtls",
            },
        ),
        (
            dev,
            Case {
                name: "mTLS: dev workload, no rule allows",
                method: Hello,
                metadata: vec![],
                expect: Code::PermissionDenied,
                expect_text: "unauthorized RPC request rejected",
            },
        ),
        (
            plain.clone(),
            Case {
                name: "no client cert: API key allowed",
                method: Hello,
                metadata: key(),
                expect: Code::Ok,
                expect_text: "authenticated as billing-service via api-key",
            },
        ),
        (
            plain,
            Case {
                name: "API key on admin: policy deny rule",
                method: Admin,
                metadata: key(),
                expect: Code::PermissionDenied,
                expect_text: "unauthorized RPC request rejected",
            },
        ),
    ];
    println!(
        "\nmTLS and an authorization policy file: a second greeter over TLS with a client CA\n"
    );
    let mut failures = 0;
    for (channel, case) in &cases {
        let (code, text) = call(channel.clone(), case).await;
        let ok = code == case.expect && text.contains(case.expect_text);
        failures += usize::from(!ok);
        println!(
            "{:<38} {:<18} {:<6} {}",
            case.name,
            format!("{code:?}"),
            if ok { "yes" } else { "NO" },
            text
        );
    }
    Ok(failures)
}

/// Counts fetches; token n has `sub` "token-n" and lives 120 s on the demo's clock.
struct DemoSource {
    fetches: std::sync::atomic::AtomicUsize,
    clock: grpc_auth::clock::ManualClock,
}

impl grpc_auth::credentials::TokenSource for DemoSource {
    async fn fetch(
        &self,
    ) -> Result<grpc_auth::credentials::Token, grpc_auth::credentials::TokenError> {
        use grpc_auth::clock::Clock;
        let n = self
            .fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let token = tokens::hs256(
            SECRET,
            &tokens::claims(&format!("token-{n}"), ISS, AUD, json!({})),
        );
        Ok(grpc_auth::credentials::Token::new(
            token,
            Some(self.clock.now() + std::time::Duration::from_secs(120)),
        ))
    }
}

/// The client side: this crate's call credentials against the same server.
async fn client_side(
    addr: std::net::SocketAddr,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    use grpc_auth::credentials::*;
    use std::sync::Arc;
    use std::time::Duration;

    let target: http::Uri = format!("http://{addr}").parse()?;
    let channel = Channel::from_shared(target.to_string())?.connect().await?;
    async fn hello<C: CallCredentials>(
        channel: Channel,
        layer: CredentialsLayer<C>,
    ) -> (Code, String) {
        let svc = tower::ServiceBuilder::new().layer(layer).service(channel);
        match GreeterClient::new(svc)
            .say_hello(HelloRequest { name: "Ada".into() })
            .await
        {
            Ok(r) => (Code::Ok, r.into_inner().message),
            Err(s) => (s.code(), s.message().to_owned()),
        }
    }
    let token = tokens::hs256(SECRET, &tokens::claims("ada", ISS, AUD, json!({})));
    let clock = grpc_auth::clock::ManualClock::now();
    let source = Arc::new(DemoSource {
        fetches: Default::default(),
        clock: clock.clone(),
    });
    let refreshing = TokenSourceCredentials::new(source.clone())
        .refresh_ahead(Duration::from_secs(30))
        .clock(clock.clone());

    println!("\nclient side: grpc-auth call credentials on a plaintext loopback channel\n");
    let mut results: Vec<(&str, (Code, String), Code, &str)> = Vec::new();
    results.push((
        "bearer on http:// without opt-in",
        hello(
            channel.clone(),
            CredentialsLayer::new(BearerToken::new(&token), target.clone()),
        )
        .await,
        Code::Unauthenticated,
        "cannot send call credentials that require transport security",
    ));
    results.push((
        "bearer with allow_plaintext()",
        hello(
            channel.clone(),
            CredentialsLayer::new(BearerToken::new(&token), target.clone()).allow_plaintext(),
        )
        .await,
        Code::Ok,
        "authenticated as ada via jwt",
    ));
    let layer = CredentialsLayer::new(refreshing.clone(), target.clone()).allow_plaintext();
    results.push((
        "token source, first call",
        hello(channel.clone(), layer.clone()).await,
        Code::Ok,
        "authenticated as token-1 via jwt",
    ));
    clock.advance(Duration::from_secs(100)); // 20 s left: refreshed in the background
    let mut refreshed = hello(channel.clone(), layer.clone()).await; // still token-1
    // The refresh runs in the background: poll (up to 5 s) until its token is served.
    for _ in 0..250 {
        if refreshed.1.contains("token-2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        refreshed = hello(channel.clone(), layer.clone()).await;
    }
    results.push((
        "token source, refreshed ahead of expiry",
        refreshed,
        Code::Ok,
        "authenticated as token-2 via jwt",
    ));
    let composite = Composite::new()
        .with(ApiKeyCredentials::new("k-123"))
        .with(BasicCredentials::new("grace", "hopper"));
    results.push((
        "composite: API key + Basic",
        hello(
            channel.clone(),
            CredentialsLayer::new(composite, target.clone()).allow_plaintext(),
        )
        .await,
        Code::Ok,
        "authenticated as grace via basic",
    ));
    results.push((
        "HMAC signer (one signature per call)",
        hello(
            channel.clone(),
            CredentialsLayer::new(HmacSigner::new("svc-a", HMAC_SECRET), target.clone())
                .allow_plaintext(),
        )
        .await,
        Code::Ok,
        "authenticated as svc-a via hmac",
    ));
    // Basic-to-Bearer: the first call logs in with Basic, the server answers with a bearer.
    let login =
        CredentialsLayer::new(BasicLogin::new("grace", "hopper"), target.clone()).allow_plaintext();
    results.push((
        "BasicLogin, first call (the login)",
        hello(channel.clone(), login.clone()).await,
        Code::Ok,
        "authenticated as grace via basic",
    ));
    results.push((
        "BasicLogin, next call (the bearer)",
        hello(channel.clone(), login).await,
        Code::Ok,
        "authenticated as grace via token",
    ));
    let mut failures = 0;
    for (name, (code, text), expect, expect_text) in &results {
        let ok = code == expect && text.contains(expect_text);
        failures += usize::from(!ok);
        println!(
            "{:<38} {:<18} {:<6} {}",
            name,
            format!("{code:?}"),
            if ok { "yes" } else { "NO" },
            text
        );
    }
    assert_eq!(results.len(), CLIENT_CASES);
    Ok(failures)
}
