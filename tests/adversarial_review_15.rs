//! Fifteenth adversarial review: commit 50becd2 (the fourteenth review's fixes): the
//! certificate binding of an exchanged token taken from the login's connection (or its
//! verified `cnf`), through a real tonic TLS server and the ext_authz server, and the
//! Tyk plugin's request path (absolute only when the URL starts with a scheme).
//!
//! `/// Finding:` tests fail at the commit reviewed and prove a bug; `/// Guard:` tests
//! are attacks the code withstood.
#![cfg(all(feature = "ext-authz", feature = "config"))]

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;
#[path = "../examples/support/tyk.rs"]
mod tyk;

#[path = "support/checks.rs"]
mod checks;
use checks::{ask, issued};

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::token_exchange::{
    MemoryTokenStore, OpaqueTokens, SignedTokens, TokenExchange, TokenKeys,
};
use grpc_auth::authn::{BasicAuthenticator, BoxAuthenticator, MtlsAuthenticator};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::ext_authz::ExtAuthzServer;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse,
};
use grpc_auth::{AuthLayer, Authenticator};
use grpc_auth_protos::coprocess::{HookType, MiniRequestObject, Object, ReturnOverrides};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::Code;
use tonic::transport::{Certificate, Channel, Identity, Server, ServerTlsConfig};

const IDP_SECRET: &str = "review-15-idp-secret-0123456789abcdef";
const TOKEN_SECRET: &[u8] = b"review-15-token-secret-0123456789abc";
const BASIC_ADA: &str = "ada:pw-ada";
const OTHER_CERT: &str = "certificate-bound token presented with another certificate";
const NO_CERT: &str = "certificate-bound token presented without a client certificate";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn thumbprint(pem: &str) -> String {
    use sha2::Digest as _;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).unwrap();
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

fn clock() -> ManualClock {
    ManualClock::at_unix(tokens::now() as u64)
}

fn idp(clock: &ManualClock) -> JwtAuthenticator {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, IDP_SECRET.as_bytes()).unwrap(),
    ))
    .clock(clock.clone())
}

fn idp_token(clock: &ManualClock, extra: serde_json::Value) -> String {
    let mut c = json!({"sub": "ada", "exp": clock.unix_seconds() + 3600});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    tokens::hs256(IDP_SECRET, &c)
}

fn signed_tokens(clock: &ManualClock) -> SignedTokens {
    SignedTokens::new(TokenKeys::hs256("k1", TOKEN_SECRET).unwrap(), "greeter").clock(clock.clone())
}

fn opaque_tokens(clock: &ManualClock) -> OpaqueTokens<MemoryTokenStore> {
    OpaqueTokens::new(MemoryTokenStore::default(), "greeter").clock(clock.clone())
}

fn basic() -> String {
    format!("Basic {}", STANDARD.encode(BASIC_ADA))
}

/// The two token issuers behind the same login.
fn exchanges<L: Authenticator + Clone>(login: L, clock: &ManualClock) -> Vec<BoxAuthenticator> {
    vec![
        TokenExchange::new(login.clone(), opaque_tokens(clock)).boxed(),
        TokenExchange::new(login, signed_tokens(clock)).boxed(),
    ]
}

// ---------------------------------------------------------------------------
// A real tonic TLS server (client certificates optional)
// ---------------------------------------------------------------------------

struct Env {
    pki: tls::TestPki,
    port: u16,
}

async fn server(auth: BoxAuthenticator) -> Env {
    let pki = tls::test_pki();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&pki.cert_pem, &pki.key_pem))
        .client_ca_root(Certificate::from_pem(&pki.ca_pem))
        .client_auth_optional(true);
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .layer(AuthLayer::new(auth))
        .add_service(GreeterServer::new(greeter::MyGreeter));
    tokio::spawn(async move {
        router
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    Env { pki, port }
}

struct Client {
    cert: String,
    key: String,
}

impl Env {
    fn client(&self, name: &str) -> Client {
        let (cert, key) =
            self.pki
                .client_cert(&[&format!("spiffe://prod.test/ns/{name}/sa/x")], &[], name);
        Client { cert, key }
    }

    /// A fresh connection, with `who`'s certificate or none.
    async fn connect(&self, who: Option<&Client>) -> Channel {
        match who {
            Some(c) => tls::mtls_channel(self.port, &self.pki.ca_pem, &c.cert, &c.key).await,
            None => tls::channel(self.port, &self.pki.ca_pem).await,
        }
    }
}

/// A call with `authorization`; the greeting and the `authorization` response header.
async fn call(ch: &Channel, auth: &str) -> Result<(String, Option<String>), (Code, String)> {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    req.metadata_mut()
        .insert("authorization", auth.parse().unwrap());
    GreeterClient::new(ch.clone())
        .say_hello(req)
        .await
        .map(|r| {
            let token = r
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.into_inner().message, token)
        })
        .map_err(|s| (s.code(), s.message().to_owned()))
}

/// Logs in with `auth` over `ch`; the issued `Bearer ...` value.
async fn login(ch: &Channel, auth: &str) -> String {
    let (_, token) = call(ch, auth).await.expect("login accepted");
    token.expect("a token issued")
}

async fn greeting(ch: &Channel, auth: &str) -> Result<String, (Code, String)> {
    call(ch, auth).await.map(|(m, _)| m)
}

fn unauth(msg: &str) -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, msg.to_owned()))
}

const AS_TOKEN: &str = "Hello Ada, authenticated as ada via token";

// ---------------------------------------------------------------------------
// Token exchange over a real TLS server
// ---------------------------------------------------------------------------

/// Guard: a Basic login over mTLS (certificate A) yields a token that works on a NEW
/// connection with the same certificate, is refused with certificate B and without any
/// certificate; a login over TLS without a certificate yields an unbound token that
/// works with or without one (as documented).
#[tokio::test]
async fn guard_tls_basic_login_binds_to_the_connection_certificate() {
    let clock = clock();
    for auth in exchanges(BasicAuthenticator::new().user("ada", "pw-ada"), &clock) {
        let env = server(auth).await;
        let (a, b) = (env.client("a"), env.client("b"));
        let token = login(&env.connect(Some(&a)).await, &basic()).await;
        assert_eq!(
            greeting(&env.connect(Some(&a)).await, &token).await,
            Ok(AS_TOKEN.to_owned())
        );
        assert_eq!(
            greeting(&env.connect(Some(&b)).await, &token).await,
            unauth(OTHER_CERT)
        );
        assert_eq!(
            greeting(&env.connect(None).await, &token).await,
            unauth(NO_CERT)
        );
        // Without a certificate at login: not bound.
        let unbound = login(&env.connect(None).await, &basic()).await;
        for who in [None, Some(&a), Some(&b)] {
            assert_eq!(
                greeting(&env.connect(who).await, &unbound).await,
                Ok(AS_TOKEN.to_owned())
            );
        }
    }
}

/// Guard: a JWT login whose `cnf` names certificate A, presented over a connection with
/// certificate B (or none), is refused and gets no token; over A it yields a token
/// bound to A (usable on a new A connection, refused with B).
#[tokio::test]
async fn guard_tls_jwt_login_bound_to_another_certificate_is_refused() {
    let clock = clock();
    for auth in exchanges(idp(&clock), &clock) {
        let env = server(auth).await;
        let (a, b) = (env.client("a"), env.client("b"));
        let jwt = format!(
            "Bearer {}",
            idp_token(&clock, json!({"cnf": {"x5t#S256": thumbprint(&a.cert)}}))
        );
        assert_eq!(
            call(&env.connect(Some(&b)).await, &jwt).await,
            Err((Code::Unauthenticated, OTHER_CERT.to_owned()))
        );
        assert_eq!(
            call(&env.connect(None).await, &jwt).await,
            Err((Code::Unauthenticated, NO_CERT.to_owned()))
        );
        let token = login(&env.connect(Some(&a)).await, &jwt).await;
        assert_eq!(
            greeting(&env.connect(Some(&a)).await, &token).await,
            Ok(AS_TOKEN.to_owned())
        );
        assert_eq!(
            greeting(&env.connect(Some(&b)).await, &token).await,
            unauth(OTHER_CERT)
        );
    }
}

/// Guard: `jwt.and(mtls)` with a JWT carrying a top-level `x5t#S256` (and an `x5t`)
/// naming certificate B, logged in over A: the token is bound to A, not B.
#[tokio::test]
async fn guard_tls_smuggled_thumbprint_claims_bind_nothing() {
    let clock = clock();
    for auth in exchanges(idp(&clock).and(MtlsAuthenticator::new()), &clock) {
        let env = server(auth).await;
        let (a, b) = (env.client("a"), env.client("b"));
        let jwt = format!(
            "Bearer {}",
            idp_token(
                &clock,
                json!({"x5t#S256": thumbprint(&b.cert), "x5t": thumbprint(&b.cert)})
            )
        );
        let token = login(&env.connect(Some(&a)).await, &jwt).await;
        assert_eq!(
            greeting(&env.connect(Some(&b)).await, &token).await,
            unauth(OTHER_CERT)
        );
        assert_eq!(
            greeting(&env.connect(Some(&a)).await, &token).await,
            Ok(AS_TOKEN.to_owned())
        );
    }
}

/// Guard: a JWT login bound by an unsupported or malformed `cnf` (DPoP `jkt`, a string,
/// `null`, an `x5t#S256` that is not a string) is refused at login over any connection:
/// no token carries a binding the bearer path could not check.
#[tokio::test]
async fn guard_tls_unsupported_cnf_never_reaches_an_exchanged_token() {
    let clock = clock();
    for auth in exchanges(idp(&clock), &clock) {
        let env = server(auth).await;
        let a = env.client("a");
        for cnf in [
            json!({"jkt": "abc"}),
            json!("x"),
            json!(null),
            json!({"x5t#S256": [thumbprint(&a.cert)]}),
        ] {
            let jwt = format!("Bearer {}", idp_token(&clock, json!({ "cnf": cnf })));
            assert_eq!(
                call(&env.connect(Some(&a)).await, &jwt).await,
                Err((
                    Code::Unauthenticated,
                    "token bound by an unsupported confirmation method".to_owned()
                )),
                "cnf {cnf}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Token exchange through the ext_authz server
// ---------------------------------------------------------------------------

const HELLO: &str = "/helloworld.Greeter/SayHello";
const GRPC: (&str, &str) = ("content-type", "application/grpc");

fn check_request(headers: &[(&str, &str)], cert_pem: Option<&str>) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(":path".into(), HELLO.into());
    map.insert(":method".into(), "POST".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            source: cert_pem.map(|pem| Peer {
                certificate: percent_encoding::utf8_percent_encode(
                    pem,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
                ..Default::default()
            }),
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: HELLO.into(),
                    headers: map,
                    protocol: "HTTP/2".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn outcome(r: &CheckResponse) -> (i32, String) {
    let s = r.status.clone().unwrap_or_default();
    (s.code, s.message)
}

/// Guard: Envoy's `source.certificate` holding a chain (leaf A, then B): the JWT scheme
/// checks `cnf` against the leaf A, and the token is bound to A; the chain reversed
/// (leaf B) is refused, for the login and for the token; a JWT bound to B (the second
/// certificate of the chain) is refused at login.
#[tokio::test]
async fn guard_ext_authz_chain_binds_the_leaf_only() {
    let pki = tls::test_pki();
    let (a, _) = pki.client_cert(&["spiffe://prod.test/ns/a/sa/x"], &[], "a");
    let (b, _) = pki.client_cert(&["spiffe://prod.test/ns/b/sa/x"], &[], "b");
    let ab = format!("{a}{b}");
    let ba = format!("{b}{a}");
    let clock = clock();
    for auth in exchanges(idp(&clock), &clock) {
        let server = ExtAuthzServer::new(AuthLayer::new(auth));
        let bound_a = format!(
            "Bearer {}",
            idp_token(&clock, json!({"cnf": {"x5t#S256": thumbprint(&a)}}))
        );
        let bound_b = format!(
            "Bearer {}",
            idp_token(&clock, json!({"cnf": {"x5t#S256": thumbprint(&b)}}))
        );
        assert_eq!(
            outcome(
                &ask(
                    &server,
                    check_request(&[GRPC, ("authorization", &bound_b)], Some(&ab))
                )
                .await
            ),
            (16, OTHER_CERT.to_owned())
        );
        assert_eq!(
            outcome(
                &ask(
                    &server,
                    check_request(&[GRPC, ("authorization", &bound_a)], Some(&ba))
                )
                .await
            ),
            (16, OTHER_CERT.to_owned())
        );
        let r = ask(
            &server,
            check_request(&[GRPC, ("authorization", &bound_a)], Some(&ab)),
        )
        .await;
        assert_eq!(outcome(&r), (0, String::new()));
        let token = issued(&r).expect("a token");
        let with = |pem: Option<&str>| check_request(&[GRPC, ("authorization", &token)], pem);
        assert_eq!(
            outcome(&ask(&server, with(Some(&a))).await),
            (0, String::new())
        );
        assert_eq!(
            outcome(&ask(&server, with(Some(&ab))).await),
            (0, String::new())
        );
        assert_eq!(
            outcome(&ask(&server, with(Some(&ba))).await),
            (16, OTHER_CERT.to_owned())
        );
        assert_eq!(
            outcome(&ask(&server, with(Some(&b))).await),
            (16, OTHER_CERT.to_owned())
        );
        assert_eq!(
            outcome(&ask(&server, with(None)).await),
            (16, NO_CERT.to_owned())
        );
    }
}

/// Guard: a Basic login through ext_authz where `source.certificate` is A binds the
/// token to A; a `source.certificate` that holds no parseable certificate binds
/// nothing (and the token then works anywhere, as a login without one).
#[tokio::test]
async fn guard_ext_authz_basic_login_binds_the_source_certificate() {
    let pki = tls::test_pki();
    let (a, _) = pki.client_cert(&["spiffe://prod.test/ns/a/sa/x"], &[], "a");
    let (b, _) = pki.client_cert(&["spiffe://prod.test/ns/b/sa/x"], &[], "b");
    let clock = clock();
    let basic = basic();
    for auth in exchanges(BasicAuthenticator::new().user("ada", "pw-ada"), &clock) {
        let server = ExtAuthzServer::new(AuthLayer::new(auth));
        let r = ask(
            &server,
            check_request(&[GRPC, ("authorization", &basic)], Some(&a)),
        )
        .await;
        assert_eq!(outcome(&r), (0, String::new()));
        let token = issued(&r).expect("a token");
        let with = |pem: Option<&str>| check_request(&[GRPC, ("authorization", &token)], pem);
        assert_eq!(
            outcome(&ask(&server, with(Some(&a))).await),
            (0, String::new())
        );
        assert_eq!(
            outcome(&ask(&server, with(Some(&b))).await),
            (16, OTHER_CERT.to_owned())
        );
        assert_eq!(
            outcome(&ask(&server, with(None)).await),
            (16, NO_CERT.to_owned())
        );
    }
}

// ---------------------------------------------------------------------------
// The Tyk plugin's request path
// ---------------------------------------------------------------------------

fn mini(url: &str, request_uri: &str) -> MiniRequestObject {
    MiniRequestObject {
        url: url.into(),
        request_uri: request_uri.into(),
        ..Default::default()
    }
}

/// Guard: the path verified is what Go's `net/url` makes of the request target (Tyk
/// sends `r.URL.String()`): a scheme in any case, with `+`, `-`, `.`, is cut to the
/// path after the authority (`/` without one; the query is never signed); anything else
/// (a network-path `//host/x`, `http:/x` without `//`, a `://` after a `/`, a scheme
/// starting with a digit or holding `_`, an empty URL, a bare query or fragment) is
/// taken as it is: never a shorter path than the one Tyk forwards.
#[test]
fn guard_tyk_request_path_cases() {
    let cases = [
        ("HTTP://host/x", "/x"),
        ("hTtPs://host:8443/x/y?q=1", "/x/y?q=1"),
        ("a+b://h/p?q", "/p?q"),
        ("a-b.c://h/p", "/p"),
        ("http://user@host/x", "/x"),
        ("http://[::1]:80/x", "/x"),
        ("http://host", "/"),
        ("http://host?q/x", "/"),
        ("http://host#f/x", "/"),
        ("http://h/a://b", "/a://b"),
        ("http:///x", "/x"),
        ("//host/x", "//host/x"),
        ("http:/x", "http:/x"),
        ("/x://y", "/x://y"),
        ("1http://h/x", "1http://h/x"),
        ("a_b://h/x", "a_b://h/x"),
        ("://h/x", "://h/x"),
        ("", ""),
        ("?only", "?only"),
        ("#frag", "#frag"),
        ("/public?next=http://x/admin", "/public?next=http://x/admin"),
    ];
    for (url, want) in cases {
        assert_eq!(tyk::request_path(&mini(url, "")), want, "url {url:?}");
    }
    // `url` wins over `request_uri`; an empty `url` falls back to it.
    assert_eq!(tyk::request_path(&mini("", "http://h/p")), "/p");
    assert_eq!(tyk::request_path(&mini("/a", "/b")), "/a");
}

const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
const NOW: u64 = 1_700_000_000;
const HMAC_SECRET: &str = "review-15-hmac-secret";

fn plugin(clock: &ManualClock) -> tyk::TykPlugin {
    tyk::TykPlugin::new(&tyk::PluginConfig {
        hmac_keys: vec![("svc-a".into(), HMAC_SECRET.into())],
        clock: Arc::new(clock.clone()),
        ..Default::default()
    })
}

/// Tyk's `Signature` header over `(request-target) date` for `get <path>`.
fn tyk_signature(path: &str) -> String {
    let msg = format!("(request-target): get {path}\ndate: {DATE}");
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    let sig = STANDARD.encode(m.finalize().into_bytes());
    format!(
        r#"Signature keyId="svc-a",algorithm="hmac-sha256",headers="(request-target) date",signature="{sig}""#
    )
}

async fn tyk_check(url: &str, signed_path: &str) -> (bool, i32, String) {
    let clock = ManualClock::at_unix(NOW);
    let auth = tyk_signature(signed_path);
    let headers = HashMap::from([
        ("Authorization".to_owned(), auth),
        ("Date".to_owned(), DATE.to_owned()),
        ("Host".to_owned(), "gw.test".to_owned()),
    ]);
    let o = Object {
        hook_type: HookType::CustomKeyCheck as i32,
        hook_name: "CustomHMACCheck".into(),
        request: Some(MiniRequestObject {
            headers,
            url: url.into(),
            request_uri: url.into(),
            method: "GET".into(),
            return_overrides: Some(ReturnOverrides {
                response_code: -1,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let reply = plugin(&clock).handle(o).await;
    let ov = reply
        .request
        .as_ref()
        .and_then(|r| r.return_overrides.clone())
        .unwrap_or_default();
    (reply.session.is_some(), ov.response_code, ov.response_error)
}

/// Guard: a signature for `GET /public` authorizes only URLs Tyk forwards as `/public`
/// (an upper-case or `+` scheme, a query); never `//gw.test/public`, `http:/public`,
/// `/x://gw.test/public` or `/admin?next=HTTP://x/public`, which Tyk forwards elsewhere.
#[tokio::test]
async fn guard_tyk_signature_binds_the_forwarded_target() {
    let ok = (true, -1, String::new());
    let mismatch = (false, 401, "HMAC signature mismatch".to_owned());
    for url in [
        "/public",
        "/public?admin=1",
        "HTTP://gw.test/public",
        "a+b://gw.test/public?q",
    ] {
        assert_eq!(tyk_check(url, "/public").await, ok, "url {url:?}");
    }
    for url in [
        "//gw.test/public",
        "http:/public",
        "/x://gw.test/public",
        "/admin?next=HTTP://x/public",
        "/admin#http://x/public",
        "",
    ] {
        assert_eq!(tyk_check(url, "/public").await, mismatch, "url {url:?}");
    }
    // A signature over `/` covers the authority-only absolute form (Go: `/`).
    assert_eq!(tyk_check("http://gw.test", "/").await, ok);
    assert_eq!(tyk_check("http://gw.test?x=1", "/").await, ok);
}
