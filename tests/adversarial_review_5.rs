//! Fifth adversarial review: mutual-TLS identities (`MtlsAuthenticator`), certificate-bound
//! tokens and the gRPC authorization policy (gRFC A43) as the layer applies it (issue 13).
//!
//! Each test asserts the secure outcome. Tests that FAIL at the reviewed commit prove a
//! bug; the others are regression guards for subtle points that held up.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
use grpc_auth::authn::{
    ApiKeyAuthenticator, BoxAuthenticator, JwtAuthenticator, MtlsAuthenticator,
};
use grpc_auth::authz::{AuthorizationPolicy, Peer};
use grpc_auth::{AuthLayer, Authenticator};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;
use tonic::transport::{Certificate, Channel, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request};

const SECRET: &str = "adversarial-5-jwt-secret-0123456789abcdef";
const BILLING: &str = "spiffe://prod.example.org/ns/billing/sa/api";

/// A throwaway CA that can sign client certificates with any distinguished name.
struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "adversarial-5 CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = server.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        issuer,
    }
}

impl Pki {
    /// A client certificate with these URI SANs, DNS SANs and subject (DER order as
    /// given): (PEM certificate, PEM key, DER certificate).
    fn client(
        &self,
        uris: &[&str],
        dns: &[&str],
        subject: &[(DnType, DnValue)],
    ) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for d in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*d).try_into().unwrap()));
        }
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*u).try_into().unwrap()));
        }
        let mut dn = DistinguishedName::new();
        for (t, v) in subject {
            dn.push(t.clone(), v.clone());
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

fn cn(v: &str) -> (DnType, DnValue) {
    (DnType::CommonName, DnValue::Utf8String(v.to_owned()))
}

fn jwt() -> JwtAuthenticator {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, SECRET.as_bytes()).unwrap(),
    ))
}

fn token(extra: serde_json::Value) -> String {
    let now = tokens::now();
    let mut c = json!({"sub": "ada", "iat": now, "exp": now + 600});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    tokens::hs256(SECRET, &c)
}

struct Env {
    pki: Pki,
    port: u16,
}

/// The greeter over TLS (client certificates optional, verified against the CA) behind
/// `auth` and, if given, an A43 policy.
async fn server(auth: BoxAuthenticator, policy: Option<&str>) -> Env {
    let pki = pki();
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
    async fn channel(&self, uris: &[&str], dns: &[&str], subject: &[(DnType, DnValue)]) -> Channel {
        let (cert, key, _) = self.pki.client(uris, dns, subject);
        tls::mtls_channel(self.port, &self.pki.ca_pem, &cert, &key).await
    }
}

type Reply = Result<String, (Code, String)>;

async fn call(ch: &Channel, meta: &[(&'static str, String)]) -> Reply {
    let mut req = Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in meta {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    GreeterClient::new(ch.clone())
        .say_hello(req)
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn denied() -> Reply {
    Err((
        Code::PermissionDenied,
        "unauthorized RPC request rejected".to_owned(),
    ))
}

// ---------------------------------------------------------------------------------
// Finding 1: the certificate subject is rendered by x509-parser's Display, which does
// not escape RFC 4514 special characters. A CN containing ", O=Example" renders exactly
// like a two-attribute subject. (src/authn/mtls.rs:60, `cert.subject().to_string()`.)
// ---------------------------------------------------------------------------------

/// FAILS: a certificate whose CN is `billing, O=Example` is named exactly like the
/// certificate `CN=billing` + `O=Example`, so it passes `id(...)` rules and A43 rules
/// written for the other one.
#[tokio::test]
async fn a_comma_in_the_common_name_does_not_forge_another_subject() {
    let env = server(MtlsAuthenticator::new().boxed(), None).await;
    let real = env
        .channel(
            &[],
            &[],
            &[cn("billing"), (DnType::OrganizationName, "Example".into())],
        )
        .await;
    let forged = env.channel(&[], &[], &[cn("billing, O=Example")]).await;
    let real = call(&real, &[]).await.unwrap();
    let forged = call(&forged, &[]).await.unwrap();
    assert_ne!(
        real, forged,
        "two different subjects must not get the same principal"
    );
}

/// FAILS: an attribute that is not a string type x509-parser knows (UniversalString) is
/// rendered as the hex of its bytes, with nothing marking it as hex: `CN=a` as a
/// UniversalString names the certificate exactly like the UTF-8 `CN=00000061`.
#[tokio::test]
async fn a_universal_string_common_name_does_not_collide_with_its_hex_spelling() {
    let env = server(MtlsAuthenticator::new().boxed(), None).await;
    let utf8 = env.channel(&[], &[], &[cn("00000061")]).await;
    let ucs4 = env
        .channel(
            &[],
            &[],
            &[(
                DnType::CommonName,
                DnValue::UniversalString(rcgen::string::UniversalString::try_from("a").unwrap()),
            )],
        )
        .await;
    let utf8 = call(&utf8, &[]).await.unwrap();
    let ucs4 = call(&ucs4, &[]).await.unwrap();
    assert_ne!(utf8, ucs4, "a UniversalString 'a' is not the text 00000061");
}

/// FAILS: the subject format is neither the one documented (`CN=billing,O=Example`,
/// src/authn/mtls.rs:21) nor grpc-go's (`pkix.Name.String()`: RFC 4514, last RDN first,
/// no space). A deny rule copied from a grpc-go policy (or written per the docs) never
/// matches, so the certificate it names is let in by a broader allow rule.
#[tokio::test]
async fn a_grpc_go_style_subject_deny_rule_denies_that_certificate() {
    let policy = r#"{
      "name": "p",
      "deny_rules": [{"name": "no_test_client",
                      "source": {"principals": ["CN=test-client1,O=gRPC,C=US"]}}],
      "allow_rules": [{"name": "any_cert", "source": {"principals": ["*"]}}]
    }"#;
    let env = server(MtlsAuthenticator::new().boxed(), Some(policy)).await;
    // The usual DER order: country first, common name last.
    let ch = env
        .channel(
            &[],
            &[],
            &[
                (DnType::CountryName, "US".into()),
                (DnType::OrganizationName, "gRPC".into()),
                cn("test-client1"),
            ],
        )
        .await;
    assert_eq!(call(&ch, &[]).await, denied());
}

// ---------------------------------------------------------------------------------
// Finding 2: `Peer::of` recognises a certificate only when the scheme is exactly
// "mtls" (src/authz/mod.rs:106). `mtls.and(x)` makes the scheme "mtls+x", so the
// policy sees "mtls+api-key:spiffe://..." instead of the certificate's names: deny
// rules on SPIFFE IDs stop matching and a catch-all allow lets the workload in.
// ---------------------------------------------------------------------------------

/// FAILS: with `MtlsAuthenticator.and(ApiKeyAuthenticator)` a workload denied by its
/// SPIFFE ID is allowed.
#[tokio::test]
async fn a_spiffe_deny_rule_still_applies_when_mtls_is_combined_with_and() {
    let policy = r#"{
      "name": "p",
      "deny_rules": [{"name": "no_billing",
                      "source": {"principals": ["spiffe://prod.example.org/ns/billing/*"]}}],
      "allow_rules": [{"name": "anyone", "source": {"principals": ["*"]}}]
    }"#;
    let auth = MtlsAuthenticator::new()
        .and(ApiKeyAuthenticator::new().key("k-1", "svc"))
        .boxed();
    let env = server(auth, Some(policy)).await;
    let ch = env.channel(&[BILLING], &[], &[cn("billing")]).await;
    assert_eq!(call(&ch, &[("x-api-key", "k-1".into())]).await, denied());
}

// ---------------------------------------------------------------------------------
// Finding 3: certificate names enter the A43 principal namespace raw, while every
// other scheme is `{scheme}:{subject}`. A URI SAN is any URI, and `api-key:admin` is a
// syntactically valid URI: a certificate carrying it matches the rules written for the
// API key principal `admin` (the reverse of the guarantee in Peer::of's docs).
// ---------------------------------------------------------------------------------

/// A client certificate with the URI SAN `api-key:admin` is authorized as the API key
/// principal `admin`. Known and left open (low: it takes a CA the server trusts to sign
/// such a SAN; documented in the README's policy section).
#[tokio::test]
#[ignore = "known, low: certificate names and {scheme}:{subject} names share one namespace; a trusted CA signing URI SAN `api-key:admin` collides"]
async fn a_certificate_cannot_pose_as_another_schemes_principal() {
    let policy = r#"{
      "name": "p",
      "allow_rules": [{"name": "admin_key", "source": {"principals": ["api-key:admin"]}}]
    }"#;
    let auth = MtlsAuthenticator::new()
        .or(ApiKeyAuthenticator::new().key("k-admin", "admin"))
        .boxed();
    let env = server(auth, Some(policy)).await;
    let ch = env.channel(&["api-key:admin"], &[], &[cn("x")]).await;
    assert_eq!(call(&ch, &[]).await, denied());
    // The real API key is allowed (the policy works).
    let (cert, key, _) = env.pki.client(&[], &["other.example.com"], &[cn("y")]);
    let plain = tls::mtls_channel(env.port, &env.pki.ca_pem, &cert, &key).await;
    let no_cert = tls::channel(env.port, &env.pki.ca_pem).await;
    assert!(
        call(&no_cert, &[("x-api-key", "k-admin".into())])
            .await
            .is_ok()
    );
    assert_eq!(call(&plain, &[]).await, denied());
}

// ---------------------------------------------------------------------------------
// Finding 4: a header value that is not visible ASCII (obs-text 0x80-0xFF, or an inner
// HTAB, both of which HTTP/2 and `http::HeaderValue` accept) makes the whole header
// "match nothing" (src/authz/mod.rs:492), so a DENY rule on that header is evaded.
// ---------------------------------------------------------------------------------

const HEADER_DENY: &str = r#"{
  "name": "p",
  "deny_rules": [{"name": "no_debug", "request": {"headers": [{"key": "x-debug", "values": ["*"]}]}},
                 {"name": "no_evil_tenant", "request": {"headers": [{"key": "x-tenant", "values": ["evil*"]}]}}],
  "allow_rules": [{"name": "anyone", "source": {"principals": ["*"]}}]
}"#;

fn headers(pairs: &[(&'static str, &[u8])]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, http::HeaderValue::from_bytes(v).unwrap());
    }
    h
}

/// Guard: the plain ASCII spellings are denied.
#[test]
fn header_deny_rules_deny_ascii_values() {
    let p = AuthorizationPolicy::from_json(HEADER_DENY).unwrap();
    let peer = Peer::tls(["spiffe://x/y"]);
    for h in [
        headers(&[("x-debug", b"1")]),
        headers(&[("x-tenant", b"evil-corp")]),
        headers(&[("x-tenant", b"evil-corp"), ("x-tenant", b"good")]),
    ] {
        assert!(!p.decide("/a.B/C", &h, &peer).allowed, "{h:?}");
    }
    assert!(
        p.decide("/a.B/C", &headers(&[("x-tenant", b"good")]), &peer)
            .allowed
    );
}

/// FAILS: a byte >= 0x80 or an inner tab in the value takes the request past the deny
/// rules (the header is there, and its value does start with `evil`).
#[test]
fn a_non_ascii_header_value_does_not_evade_a_deny_rule() {
    let p = AuthorizationPolicy::from_json(HEADER_DENY).unwrap();
    let peer = Peer::tls(["spiffe://x/y"]);
    for (name, h) in [
        ("obs-text any", headers(&[("x-debug", b"1\xff")])),
        ("tab any", headers(&[("x-debug", b"1\t1")])),
        ("obs-text prefix", headers(&[("x-tenant", b"evil\xe9")])),
        (
            "second value",
            headers(&[("x-tenant", b"evil-corp"), ("x-tenant", b"\x80")]),
        ),
    ] {
        let d = p.decide("/a.B/C", &h, &peer);
        assert!(!d.allowed, "{name}: {d}");
    }
}

// ---------------------------------------------------------------------------------
// Guards that held up.
// ---------------------------------------------------------------------------------

/// SPIFFE trust-domain confusion: only `spiffe://prod.example.org/...` is in the domain.
#[tokio::test]
async fn trust_domain_rules_resist_lookalike_spiffe_ids() {
    let env = server(
        MtlsAuthenticator::new()
            .trust_domain("prod.example.org")
            .prefix("spiffe://ops.example.org/ns/admin/")
            .boxed(),
        None,
    )
    .await;
    let refused = Err((
        Code::Unauthenticated,
        "client certificate identity not accepted".to_owned(),
    ));
    for uri in [
        "spiffe://prod.example.org.evil/ns/billing",
        "spiffe://user@prod.example.org/ns/billing",
        "spiffe://prod.example.org:443/ns/billing",
        "spiffe://PROD.EXAMPLE.ORG/ns/billing",
        "spiffe://prod.example.org%2Fevil/ns/billing",
        "spiffe://evil.org/prod.example.org/x",
        "spiffe://ops.example.org/ns/adminevil/sa/x",
        "SPIFFE://prod.example.org/ns/billing",
    ] {
        let ch = env.channel(&[uri], &[], &[cn("x")]).await;
        assert_eq!(call(&ch, &[]).await, refused, "{uri}");
    }
    // A non-SPIFFE URI beside the SPIFFE ID does not make it "several".
    let ch = env
        .channel(&[BILLING, "https://billing.example.org"], &[], &[cn("x")])
        .await;
    assert_eq!(
        call(&ch, &[]).await,
        Ok(format!("Hello Ada, authenticated as {BILLING} via mtls"))
    );
}

/// `mtls.or(jwt)`: a valid certificate never carries a bad token past the check.
#[tokio::test]
async fn a_valid_certificate_does_not_carry_a_bad_token() {
    let env = server(MtlsAuthenticator::new().or(jwt()).boxed(), None).await;
    let ch = env.channel(&[BILLING], &[], &[cn("billing")]).await;
    let expired = {
        let now = tokens::now();
        tokens::hs256(
            SECRET,
            &json!({"sub": "ada", "iat": now - 900, "exp": now - 600}),
        )
    };
    for bad in [
        "Bearer not.a.token".to_owned(),
        format!("Bearer {expired}"),
        format!("Bearer {}x", token(json!({}))),
        format!(
            "Bearer {}",
            token(json!({"cnf": {"x5t#S256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}))
        ),
    ] {
        let r = call(&ch, &[("authorization", bad.clone())]).await;
        assert_eq!(r.map_err(|e| e.0), Err(Code::Unauthenticated), "{bad}");
    }
}

// ---------------------------------------------------------------------------------
// Finding 5: `MtlsAuthenticator` names no credential, so the layer takes it to have
// "judged" the request (src/layer/service.rs `judged_authorization`): an
// `authorization` entry no configured scheme understands rides along a certificate,
// where beside an API key it is refused ("unsupported authorization scheme").
// ---------------------------------------------------------------------------------

/// FAILS: `mtls.or(jwt)` accepts a call whose `authorization` is `Basic ...` (no Basic
/// authenticator configured): the unjudged credential reaches the handler.
#[tokio::test]
async fn an_unknown_authorization_scheme_does_not_ride_along_a_certificate() {
    let env = server(MtlsAuthenticator::new().or(jwt()).boxed(), None).await;
    let ch = env.channel(&[BILLING], &[], &[cn("billing")]).await;
    let unsupported = Err((
        Code::Unauthenticated,
        "unsupported authorization scheme".to_owned(),
    ));
    // Beside an API key it is refused (the reference):
    let keys = server(
        ApiKeyAuthenticator::new()
            .key("k-1", "svc")
            .or(jwt())
            .boxed(),
        None,
    )
    .await;
    let plain = tls::channel(keys.port, &keys.pki.ca_pem).await;
    let r = call(
        &plain,
        &[
            ("x-api-key", "k-1".to_owned()),
            ("authorization", "Basic YWRhOnB3".to_owned()),
        ],
    )
    .await;
    assert_eq!(r, unsupported);
    for value in ["Basic YWRhOnB3", "Token abc", "Negotiate abc"] {
        let r = call(&ch, &[("authorization", value.to_owned())]).await;
        assert_eq!(r, unsupported, "{value}");
    }
}

/// RFC 8705 binding: only the leaf's exact thumbprint (base64url, no padding) binds.
#[tokio::test]
async fn certificate_binding_takes_only_the_leaf_thumbprint_exactly() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let env = server(jwt().boxed(), None).await;
    let (cert, key, der) = env.pki.client(&[BILLING], &[], &[cn("billing")]);
    let ch = tls::mtls_channel(env.port, &env.pki.ca_pem, &cert, &key).await;
    let digest = sha2::Sha256::digest(&der);
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    let bearer = |cnf: serde_json::Value| format!("Bearer {}", token(json!({ "cnf": cnf })));
    assert!(
        call(&ch, &[("authorization", bearer(json!({"x5t#S256": x5t})))])
            .await
            .is_ok()
    );
    let ca_x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(&env.pki.ca_der));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    for cnf in [
        json!({"x5t#S256": ca_x5t}),
        json!({"x5t#S256": base64::engine::general_purpose::URL_SAFE.encode(digest)}),
        json!({"x5t#S256": base64::engine::general_purpose::STANDARD.encode(digest)}),
        json!({"x5t#S256": x5t.to_ascii_uppercase()}),
        json!({"x5t#S256": hex}),
        json!({"x5t#S256": [x5t]}),
        json!({"x5t#S256": null}),
        json!({"x5t": x5t}),
        json!(x5t),
        json!(null),
        json!({}),
    ] {
        let r = call(&ch, &[("authorization", bearer(cnf.clone()))]).await;
        assert_eq!(r.unwrap_err().0, Code::Unauthenticated, "{cnf}");
    }
    // Without a client certificate a bound token is refused; an unbound one is fine.
    let plain = tls::channel(env.port, &env.pki.ca_pem).await;
    let r = call(
        &plain,
        &[("authorization", bearer(json!({"x5t#S256": x5t})))],
    )
    .await;
    assert_eq!(r.unwrap_err().0, Code::Unauthenticated);
    let unbound = format!("Bearer {}", token(json!({})));
    assert!(
        call(&plain, &[("authorization", unbound.clone())])
            .await
            .is_ok()
    );
    assert!(call(&ch, &[("authorization", unbound)]).await.is_ok());
}

/// Token subjects cannot reach certificate rules, and `""` matches only a TLS peer
/// without a client certificate (never a token or an unauthenticated call).
#[test]
fn principal_names_stay_in_their_namespace() {
    let p = AuthorizationPolicy::from_json(
        r#"{"name": "p", "allow_rules": [
          {"name": "workloads", "source": {"principals": ["spiffe://prod.example.org/*"]}},
          {"name": "empty", "source": {"principals": [""]}}]}"#,
    )
    .unwrap();
    let h = http::HeaderMap::new();
    for subject in [BILLING, "", "spiffe://prod.example.org/x"] {
        let peer = Peer::of(&grpc_auth::Principal::new(subject, "jwt"));
        let d = p.decide("/a.B/C", &h, &peer);
        assert!(!d.allowed, "jwt:{subject}: {d}");
    }
    assert!(!p.decide("/a.B/C", &h, &Peer::Unauthenticated).allowed);
}

/// The policy sees the path the router routes: tricks on the method path do not reach
/// the admin method past a deny rule.
#[tokio::test]
async fn path_spellings_do_not_evade_a_deny_rule() {
    let policy = r#"{
      "name": "p",
      "deny_rules": [{"name": "no_admin", "request": {"paths": ["/helloworld.Greeter/SayHelloAdmin"]}}],
      "allow_rules": [{"name": "anyone", "source": {"principals": ["*"]}}]
    }"#;
    let env = server(MtlsAuthenticator::new().boxed(), Some(policy)).await;
    let ch = env.channel(&[BILLING], &[], &[cn("billing")]).await;
    for path in [
        "/helloworld.Greeter/SayHelloAdmin",
        "/helloworld.Greeter/SayHelloAdmin/",
        "//helloworld.Greeter/SayHelloAdmin",
        "/helloworld.Greeter/SayHello%41dmin",
        "/helloworld.Greeter/SayHelloAdmin?x=1",
        "/helloworld.Greeter//SayHelloAdmin",
        "/Helloworld.Greeter/SayHelloAdmin",
    ] {
        let mut grpc = tonic::client::Grpc::new(ch.clone());
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<
            HelloRequest,
            grpc_auth_protos::helloworld::HelloReply,
        >::default();
        let r = grpc
            .unary(
                Request::new(HelloRequest { name: "x".into() }),
                http::uri::PathAndQuery::from_static(path),
                codec,
            )
            .await;
        match r {
            Ok(reply) => panic!("{path}: reached {:?}", reply.into_inner().message),
            Err(s) => assert!(
                matches!(s.code(), Code::PermissionDenied | Code::Unimplemented),
                "{path}: {s:?}"
            ),
        }
    }
}

/// A policy file replaced by a directory, or made invalid, keeps the policy in force.
#[tokio::test]
async fn a_watched_policy_file_replaced_by_a_directory_keeps_the_last_policy() {
    use grpc_auth::authz::PolicyWatcher;
    use std::time::Duration;
    let dir = std::env::temp_dir().join(format!("adv5-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.json");
    std::fs::write(
        &file,
        r#"{"name": "first", "allow_rules": [{"name": "a", "source": {"principals": ["jwt:ada"]}}]}"#,
    )
    .unwrap();
    assert!(
        PolicyWatcher::builder(&file)
            .interval(Duration::ZERO)
            .start()
            .is_err()
    );
    let watcher = PolicyWatcher::builder(&file)
        .interval(Duration::from_millis(20))
        .start()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(watcher.policy().current().name(), "first");
    assert!(watcher.last_error().is_some());
    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, r#"{"name": "partial", "allow_rules": [{"name""#).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(watcher.policy().current().name(), "first");
    drop(watcher);
    let _ = std::fs::remove_dir_all(&dir);
}
