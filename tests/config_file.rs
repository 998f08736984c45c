//! A configuration file end to end: written to a temporary directory, loaded with
//! `AuthConfig::from_file`, its layer served by a real tonic server on 127.0.0.1:0
//! (the greeter and a health service) and called by a real tonic client; each case
//! asserts the greeting or the exact status. Then `greeter_server`'s own use of a file
//! (`ServerConfig::auth_config`), remote keys from a file, and refusals naming the file
//! and the line.
#![cfg(feature = "config")]

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[cfg(feature = "jwks")]
#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use grpc_auth::config::AuthConfig;
use grpc_auth::credentials::{CredentialsLayer, HmacSigner};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const JWT_SECRET: &str = "jwt-secret-from-a-file-of-32-bytes-or-more";

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("grpc-auth-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file every case serves: four schemes, a public health service, a scope.
const CONFIG: &str = r#"
[jwt]
hs256_secret = { file = "secrets/jwt.key" }
issuer = "https://issuer.test"
audience = "greeter"

[basic]
users = { ada = "lovelace" }

[api_keys]
keys = { billing = "k-123" }

[hmac]
keys = { "svc-a" = { file = "secrets/hmac.key" } }

[policy]
public = ["/grpc.health.v1.Health/*"]
require_scope = { "/helloworld.Greeter/SayHelloAdmin" = "greeter.admin" }
"#;

/// The configuration directory: the file and the secrets it names (relative paths).
fn config_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new("config-file");
    std::fs::create_dir_all(dir.0.join("secrets")).expect("secrets dir");
    dir.write("secrets/jwt.key", &format!("{JWT_SECRET}\n"));
    dir.write("secrets/hmac.key", "s3cret-a\n");
    let path = dir.write("greeter.toml", CONFIG);
    (dir, path)
}

/// Serves the greeter and a health service behind the file's layer; returns the address.
async fn serve(config: &AuthConfig) -> SocketAddr {
    let layer = config.layer().expect("layer");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<GreeterServer<greeter::MyGreeter>>()
        .await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health_service)
            .add_service(GreeterServer::new(greeter::MyGreeter))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .expect("serve");
    });
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

type Reply = Result<String, (Code, String)>;

/// SayHello (or SayHelloAdmin) with these metadata entries.
async fn hello(ch: &Channel, admin: bool, md: &[(&'static str, String)]) -> Reply {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in md {
        req.metadata_mut().insert(*k, v.parse().unwrap());
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

fn greeting(sub: &str, scheme: &str) -> Reply {
    Ok(format!("Hello Ada, authenticated as {sub} via {scheme}"))
}

fn refused(code: Code, msg: &str) -> Reply {
    Err((code, msg.to_owned()))
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn every_scheme_of_the_file_is_served() {
    let (_dir, path) = config_dir();
    let config = AuthConfig::from_file(&path).expect("load");
    let addr = serve(&config).await;
    let ch = channel(addr).await;

    // JWT: the secret from secrets/jwt.key, issuer and audience from the file.
    let token = tokens::hs256(JWT_SECRET, &tokens::claims("ada", ISS, AUD, json!({})));
    assert_eq!(
        hello(&ch, false, &bearer(&token)).await,
        greeting("ada", "jwt")
    );
    // The admin method needs the scope.
    assert_eq!(
        hello(&ch, true, &bearer(&token)).await,
        refused(Code::PermissionDenied, "missing scope: greeter.admin")
    );
    let admin = tokens::hs256(
        JWT_SECRET,
        &tokens::claims("grace", ISS, AUD, json!({ "scope": "greeter.admin" })),
    );
    assert_eq!(
        hello(&ch, true, &bearer(&admin)).await,
        Ok("[admin] Hello Ada, authenticated as grace via jwt".to_owned())
    );
    let other = tokens::hs256(
        JWT_SECRET,
        &tokens::claims("ada", "https://other.test", AUD, json!({})),
    );
    assert_eq!(
        hello(&ch, false, &bearer(&other)).await,
        refused(Code::Unauthenticated, "invalid token issuer")
    );

    // Basic.
    let basic = |up: &str| {
        vec![(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(up)
            ),
        )]
    };
    assert_eq!(
        hello(&ch, false, &basic("ada:lovelace")).await,
        greeting("ada", "basic")
    );
    assert_eq!(
        hello(&ch, false, &basic("ada:wrong")).await,
        refused(Code::Unauthenticated, "invalid username or password")
    );

    // API key.
    let key = |k: &str| vec![("x-api-key", k.to_owned())];
    assert_eq!(
        hello(&ch, false, &key("k-123")).await,
        greeting("billing", "api-key")
    );
    assert_eq!(
        hello(&ch, false, &key("k-124")).await,
        refused(Code::Unauthenticated, "invalid API key")
    );

    // No credentials: refused; the public health service answers anyway.
    assert_eq!(
        hello(&ch, false, &[]).await,
        refused(Code::Unauthenticated, "missing authorization metadata")
    );
    let status = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: "helloworld.Greeter".into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn hmac_signed_calls_are_verified_with_the_secret_from_its_file() {
    let (_dir, path) = config_dir();
    let config = AuthConfig::from_file(&path).expect("load");
    let addr = serve(&config).await;
    let target: http::Uri = format!("http://{addr}").parse().unwrap();
    let signed = |secret: &str| {
        GreeterClient::new(
            tower::ServiceBuilder::new()
                .layer(
                    CredentialsLayer::new(HmacSigner::new("svc-a", secret), target.clone())
                        .allow_plaintext(),
                )
                .service(
                    Channel::from_shared(format!("http://{addr}"))
                        .unwrap()
                        .connect_lazy(),
                ),
        )
    };
    let req = || HelloRequest { name: "Ada".into() };
    let ok = signed("s3cret-a")
        .say_hello(req())
        .await
        .expect("signed call");
    assert_eq!(
        ok.into_inner().message,
        "Hello Ada, authenticated as svc-a via hmac"
    );
    let bad = signed("not-the-secret")
        .say_hello(req())
        .await
        .expect_err("wrong secret");
    assert_eq!(
        (bad.code(), bad.message()),
        (Code::Unauthenticated, "HMAC signature mismatch")
    );
}

#[tokio::test]
async fn greeter_server_serves_the_file_instead_of_its_flags() {
    let (_dir, path) = config_dir();
    let config = AuthConfig::from_file(&path).expect("load");
    let addr = greeter::spawn(greeter::ServerConfig {
        auth_config: Some(config),
        // Ignored with a file: its schemes and policy decide.
        api_keys: vec![("flag-key".into(), "flags".into())],
        ..Default::default()
    })
    .await;
    let ch = channel(addr).await;
    assert_eq!(
        hello(&ch, false, &[("x-api-key", "k-123".into())]).await,
        greeting("billing", "api-key")
    );
    assert_eq!(
        hello(&ch, false, &[("x-api-key", "flag-key".into())]).await,
        refused(Code::Unauthenticated, "invalid API key")
    );
    let token = tokens::hs256(JWT_SECRET, &tokens::claims("ada", ISS, AUD, json!({})));
    assert_eq!(
        hello(&ch, true, &bearer(&token)).await,
        refused(Code::PermissionDenied, "missing scope: greeter.admin")
    );
}

#[tokio::test]
async fn greeter_server_with_client_certificates_authenticates_by_the_files_mtls_rules() {
    let dir = TempDir::new("config-mtls");
    let path = dir.write(
        "mtls.toml",
        "[mtls]\ntrust_domains = [\"prod.example.org\"]\n[api_keys]\nkeys = { billing = \"k-123\" }\n",
    );
    let pki = tls::test_pki();
    let addr = greeter::spawn(greeter::ServerConfig {
        auth_config: Some(AuthConfig::from_file(&path).expect("load")),
        tls: Some((
            pki.cert_pem.clone().into_bytes(),
            pki.key_pem.clone().into_bytes(),
        )),
        client_ca: Some(pki.ca_pem.clone().into_bytes()),
        ..Default::default()
    })
    .await;
    for (uri, expected) in [
        (
            "spiffe://prod.example.org/ns/billing/sa/api",
            greeting("spiffe://prod.example.org/ns/billing/sa/api", "mtls"),
        ),
        (
            "spiffe://dev.example.org/ns/billing/sa/api",
            refused(
                Code::Unauthenticated,
                "client certificate identity not accepted",
            ),
        ),
    ] {
        let (cert, key) = pki.client_cert(&[uri], &[], "client");
        let ch = tls::mtls_channel(addr.port(), &pki.ca_pem, &cert, &key).await;
        assert_eq!(hello(&ch, false, &[]).await, expected, "{uri}");
    }
    // Without a certificate, the file's other schemes serve.
    let ch = tls::channel(addr.port(), &pki.ca_pem).await;
    assert_eq!(
        hello(&ch, false, &[("x-api-key", "k-123".into())]).await,
        greeting("billing", "api-key")
    );
}

#[cfg(feature = "jwks")]
#[tokio::test]
async fn remote_keys_named_in_the_file_verify_tokens() {
    use jwks_server::{JwksServer, ec256, jwks, rsa};
    let (a, b) = (rsa("a-1"), ec256("b-1"));
    let server_a = JwksServer::start(jwks(&[&a])).await;
    let server_b = JwksServer::start(jwks(&[&b])).await;
    let dir = TempDir::new("config-jwks");
    let path = dir.write(
        "remote.toml",
        &format!(
            "[jwt]\njwks_urls = [\"{}\"]\nissuer = \"{ISS}\"\noidc_issuers = [\"{}\"]\naudience = \"{AUD}\"\n",
            server_a.jwks_url(),
            server_b.issuer()
        ),
    );
    let config = AuthConfig::from_file(&path).expect("load");
    let ch = channel(serve(&config).await).await;
    let token = a.sign(&tokens::claims("ada", ISS, AUD, json!({})));
    assert_eq!(
        hello(&ch, false, &bearer(&token)).await,
        greeting("ada", "jwt")
    );
    let token = b.sign(&tokens::claims("grace", &server_b.issuer(), AUD, json!({})));
    assert_eq!(
        hello(&ch, false, &bearer(&token)).await,
        greeting("grace", "jwt")
    );
    // A's key under B's issuer: B's keys do not have it.
    let token = a.sign(&tokens::claims("eve", &server_b.issuer(), AUD, json!({})));
    assert_eq!(
        hello(&ch, false, &bearer(&token)).await,
        refused(Code::Unauthenticated, "unknown token key id")
    );
}

/// `path`'s refusal, as shown.
fn refusal(path: &Path) -> String {
    AuthConfig::from_file(path)
        .expect_err("a bad file")
        .to_string()
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_the_line() {
    let (dir, _) = config_dir();
    // A typo in a key.
    let path = dir.write("typo.toml", &CONFIG.replace("audience =", "audiance ="));
    assert_eq!(
        refusal(&path),
        format!(
            "{}:5: unknown field `audiance`, expected one of `hs256_secret`, `hs256_kid`, \
             `public_keys`, `jwks_urls`, `oidc_issuers`, `issuer`, `audience`, `any_audience`, `leeway_secs`",
            path.display()
        )
    );
    // A secret file that is not there.
    let path = dir.write(
        "missing.toml",
        &CONFIG.replace("secrets/hmac.key", "secrets/gone.key"),
    );
    assert_eq!(
        refusal(&path),
        format!(
            "{}:14: hmac.keys.svc-a: cannot read {}: No such file or directory (os error 2)",
            path.display(),
            dir.0.join("secrets/gone.key").display()
        )
    );
    // A method pattern that is none.
    let path = dir.write(
        "pattern.toml",
        &CONFIG.replace("\"/grpc.health.v1.Health/*\"", "\"grpc.health.v1.Health\""),
    );
    assert_eq!(
        refusal(&path),
        format!(
            "{}:17: policy.public: \"grpc.health.v1.Health\" is not a method pattern \
             (`/package.Service/Method` or `/package.Service/*`)",
            path.display()
        )
    );
    // Broken TOML.
    let path = dir.write("syntax.toml", &CONFIG.replace("[basic]", "[basic"));
    assert_eq!(
        refusal(&path),
        format!("{}:7: unclosed table, expected `]`", path.display())
    );
    // The secret of a refused value is never shown.
    let path = dir.write(
        "shape.toml",
        &CONFIG.replace("ada = \"lovelace\"", "ada = 31415926"),
    );
    let shown = refusal(&path);
    assert_eq!(
        shown,
        format!(
            "{}:8: expected a secret: \"literal\", {{ env = \"VAR\" }} or {{ file = \"path\" }}",
            path.display()
        )
    );
    assert!(!shown.contains("31415926"));
}
