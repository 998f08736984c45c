//! Mutual TLS end to end: a tonic server that verifies client certificates against a CA
//! made at test time (rcgen), `MtlsAuthenticator` naming the caller by its SPIFFE ID,
//! DNS SAN or subject, certificate-bound JWTs (RFC 8705), and an A43 policy matching
//! the certificate's names.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use base64::Engine as _;
use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
use grpc_auth::authn::{BoxAuthenticator, JwtAuthenticator, MtlsAuthenticator};
use grpc_auth::authz::AuthorizationPolicy;
use grpc_auth::{AuthLayer, Authenticator};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use serde_json::json;
use sha2::Digest as _;
use tonic::transport::{Certificate, Channel, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request};

const SECRET: &str = "mtls-e2e-jwt-secret-0123456789abcdef";
const BILLING: &str = "spiffe://prod.example.org/ns/billing/sa/api";

struct Env {
    pki: tls::TestPki,
    port: u16,
}

fn jwt() -> JwtAuthenticator {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, SECRET.as_bytes()).unwrap(),
    ))
}

/// A greeter over TLS verifying client certificates (optional), behind `auth`.
async fn server(auth: BoxAuthenticator, policy: Option<&str>) -> Env {
    let pki = tls::test_pki();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&pki.cert_pem, &pki.key_pem))
        .client_ca_root(Certificate::from_pem(&pki.ca_pem))
        .client_auth_optional(true);
    let mut layer = AuthLayer::new(auth);
    if let Some(p) = policy {
        layer = layer.authorization_policy(AuthorizationPolicy::from_json(p).unwrap());
    }
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .layer(layer)
        .add_service(GreeterServer::new(greeter::MyGreeter));
    tokio::spawn(async move {
        router
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    Env { pki, port }
}

impl Env {
    async fn with_cert(&self, uris: &[&str], dns: &[&str], cn: &str) -> (Channel, String) {
        let (cert, key) = self.pki.client_cert(uris, dns, cn);
        let ch = tls::mtls_channel(self.port, &self.pki.ca_pem, &cert, &key).await;
        (ch, thumbprint(&cert))
    }

    async fn without_cert(&self) -> Channel {
        tls::channel(self.port, &self.pki.ca_pem).await
    }
}

/// RFC 8705 `x5t#S256` of a PEM certificate.
fn thumbprint(pem: &str) -> String {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

async fn hello(ch: &Channel, bearer: Option<&str>) -> Result<String, (Code, String)> {
    let mut req = Request::new(HelloRequest { name: "Ada".into() });
    if let Some(token) = bearer {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    GreeterClient::new(ch.clone())
        .say_hello(req)
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn unauthenticated(msg: &str) -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, msg.to_owned()))
}

fn token(claims: serde_json::Value) -> String {
    let now = tokens::now();
    let mut c = json!({"sub": "ada", "iat": now, "exp": now + 600});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), claims.as_object()) {
        c.extend(extra.clone());
    }
    tokens::hs256(SECRET, &c)
}

#[tokio::test]
async fn spiffe_ids_are_accepted_by_trust_domain_and_refused_outside_it() {
    let mtls = MtlsAuthenticator::new().trust_domain("prod.example.org");
    let env = server(mtls.or(jwt()).boxed(), None).await;
    let (ch, _) = env.with_cert(&[BILLING], &[], "billing").await;
    assert_eq!(
        hello(&ch, None).await,
        Ok(format!("Hello Ada, authenticated as {BILLING} via mtls"))
    );
    let (ch, _) = env
        .with_cert(&["spiffe://evil.example.org/ns/billing/sa/api"], &[], "x")
        .await;
    assert_eq!(
        hello(&ch, None).await,
        unauthenticated("client certificate identity not accepted")
    );
    let (ch, _) = env
        .with_cert(
            &[BILLING, "spiffe://prod.example.org/ns/other/sa/x"],
            &[],
            "two",
        )
        .await;
    assert_eq!(
        hello(&ch, None).await,
        unauthenticated("client certificate has several SPIFFE IDs")
    );
}

#[tokio::test]
async fn a_dns_san_or_the_subject_names_a_certificate_without_a_spiffe_id() {
    let mtls = MtlsAuthenticator::new()
        .id("api.example.com")
        .id("CN=batch-job");
    let env = server(mtls.boxed(), None).await;
    let (ch, _) = env.with_cert(&[], &["api.example.com"], "api").await;
    assert_eq!(
        hello(&ch, None).await,
        Ok("Hello Ada, authenticated as api.example.com via mtls".to_owned())
    );
    let (ch, _) = env.with_cert(&[], &[], "batch-job").await;
    assert_eq!(
        hello(&ch, None).await,
        Ok("Hello Ada, authenticated as CN=batch-job via mtls".to_owned())
    );
    let (ch, _) = env.with_cert(&[], &["other.example.com"], "x").await;
    assert_eq!(
        hello(&ch, None).await,
        unauthenticated("client certificate identity not accepted")
    );
}

#[tokio::test]
async fn without_a_client_certificate_mtls_is_absent() {
    let env = server(MtlsAuthenticator::new().or(jwt()).boxed(), None).await;
    let ch = env.without_cert().await;
    assert_eq!(
        hello(&ch, Some(&token(json!({})))).await,
        Ok("Hello Ada, authenticated as ada via jwt".to_owned()),
        "falls through to the token"
    );
    assert_eq!(hello(&ch, None).await.unwrap_err().0, Code::Unauthenticated);
    // and(): both needed.
    let env = server(MtlsAuthenticator::new().and(jwt()).boxed(), None).await;
    let ch = env.without_cert().await;
    assert_eq!(
        hello(&ch, Some(&token(json!({})))).await.unwrap_err().0,
        Code::Unauthenticated
    );
    let (ch, _) = env.with_cert(&[BILLING], &[], "billing").await;
    assert!(hello(&ch, Some(&token(json!({})))).await.is_ok());
}

#[tokio::test]
async fn a_certificate_bound_token_works_only_with_its_certificate() {
    let env = server(jwt().or(MtlsAuthenticator::new()).boxed(), None).await;
    let (right, x5t) = env.with_cert(&[BILLING], &[], "billing").await;
    let bound = token(json!({"cnf": {"x5t#S256": x5t}}));
    assert_eq!(
        hello(&right, Some(&bound)).await,
        Ok("Hello Ada, authenticated as ada via jwt".to_owned())
    );
    let (wrong, _) = env
        .with_cert(&["spiffe://prod.example.org/ns/thief/sa/x"], &[], "thief")
        .await;
    assert_eq!(
        hello(&wrong, Some(&bound)).await,
        unauthenticated("certificate-bound token presented with another certificate")
    );
    let none = env.without_cert().await;
    assert_eq!(
        hello(&none, Some(&bound)).await,
        unauthenticated("certificate-bound token presented without a client certificate")
    );
    let dpop = token(json!({"cnf": {"jkt": "abc"}}));
    assert_eq!(
        hello(&right, Some(&dpop)).await,
        unauthenticated("token bound by an unsupported confirmation method")
    );
}

#[tokio::test]
async fn an_authorization_policy_matches_the_certificate_names() {
    let policy = r#"{"name": "workloads",
        "allow_rules": [{"name": "billing", "source": {"principals": ["spiffe://prod.example.org/ns/billing/*"]}}]}"#;
    let env = server(MtlsAuthenticator::new().boxed(), Some(policy)).await;
    let (ch, _) = env.with_cert(&[BILLING], &[], "billing").await;
    assert!(hello(&ch, None).await.is_ok());
    let (ch, _) = env
        .with_cert(&["spiffe://prod.example.org/ns/other/sa/x"], &[], "x")
        .await;
    assert_eq!(
        hello(&ch, None).await,
        Err((
            Code::PermissionDenied,
            "unauthorized RPC request rejected".to_owned()
        ))
    );
}
