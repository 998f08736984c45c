//! The ext_authz server (Envoy's `Authorization/Check`) over the greeter's configuration,
//! called directly as Envoy would call it, and the other direction: a greeter whose
//! layer delegates to that server through `ExtAuthz`. Every case asserts the exact
//! answer (code, message, headers) and that it is what the in-process layer gives.
#![cfg(feature = "ext-authz")]

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use grpc_auth::AuthLayer;
use grpc_auth::ext_authz::envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Request as AttrRequest,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse,
};
use grpc_auth::ext_authz::{ExtAuthz, ExtAuthzServer};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use serde_json::json;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::{Channel, Server};

const HELLO: &str = "/helloworld.Greeter/SayHello";
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
const SECRET: &str = "ext-authz-test-secret-0123456789abcdef";

/// The configuration both the ext_authz server and the in-process greeter use.
fn config() -> greeter::ServerConfig {
    greeter::ServerConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        jwt_issuer: Some("https://issuer.test".into()),
        jwt_audience: Some("greeter".into()),
        basic_users: vec![("ada".into(), "lovelace".into())],
        api_keys: vec![
            ("k-1".into(), "billing".into()),
            ("k-2".into(), "ops".into()),
        ],
        require_scope: vec![(ADMIN.into(), "greeter.admin".into())],
        ..Default::default()
    }
}

fn jwt(scope: &str) -> String {
    tokens::hs256(
        SECRET,
        &tokens::claims(
            "ada",
            "https://issuer.test",
            "greeter",
            json!({ "scope": scope }),
        ),
    )
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// The ext_authz server over `config()`, on 127.0.0.1:0.
async fn ext_authz_server(
    server: ExtAuthzServer<grpc_auth::authn::BoxAuthenticator>,
) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(server.into_service())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l)),
    );
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A check as Envoy sends it: the `headers` map, lower-cased names, pseudo-headers.
fn check(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(":path".into(), path.into());
    map.insert(":method".into(), "POST".into());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: path.into(),
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

const GRPC: (&str, &str) = ("content-type", "application/grpc");

async fn ask(ch: &Channel, req: CheckRequest) -> CheckResponse {
    AuthorizationClient::new(ch.clone())
        .check(req)
        .await
        .unwrap()
        .into_inner()
}

/// `(key, value, append_action)` of header options.
fn options(h: &[HeaderValueOption]) -> Vec<(String, String, i32)> {
    h.iter()
        .map(|o| {
            let hv = o.header.clone().unwrap();
            (hv.key, hv.value, o.append_action)
        })
        .collect()
}

const OVERWRITE: i32 = 2;

#[tokio::test]
async fn an_accepted_call_names_the_principal_and_overwrites_forged_headers() {
    let ch = channel(ext_authz_server(ExtAuthzServer::new(config().layer().unwrap())).await).await;
    let r = ask(
        &ch,
        check(
            HELLO,
            &[
                GRPC,
                ("x-api-key", "k-1"),
                ("x-auth-subject", "forged-admin"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status.unwrap().code, 0);
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not an ok response")
    };
    assert_eq!(
        options(&ok.headers),
        vec![
            ("x-auth-subject".into(), "billing".into(), OVERWRITE),
            ("x-auth-scheme".into(), "api-key".into(), OVERWRITE),
        ]
    );
    // No scopes: the header is removed (a forged copy never reaches the upstream), and
    // nothing set is also listed for removal.
    assert_eq!(ok.headers_to_remove, vec!["x-auth-scopes".to_owned()]);
    // JWT with scopes.
    let r = ask(
        &ch,
        check(
            ADMIN,
            &[
                GRPC,
                (
                    "authorization",
                    &format!("Bearer {}", jwt("greeter.read greeter.admin")),
                ),
            ],
        ),
    )
    .await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not an ok response")
    };
    assert_eq!(
        options(&ok.headers),
        vec![
            ("x-auth-subject".into(), "ada".into(), OVERWRITE),
            ("x-auth-scheme".into(), "jwt".into(), OVERWRITE),
            (
                "x-auth-scopes".into(),
                "greeter.read greeter.admin".into(),
                OVERWRITE
            ),
        ]
    );
    assert!(ok.headers_to_remove.is_empty());
}

#[tokio::test]
async fn a_public_method_removes_every_principal_header() {
    let ch = channel(ext_authz_server(ExtAuthzServer::new(config().layer().unwrap())).await).await;
    let r = ask(
        &ch,
        check(
            "/grpc.health.v1.Health/Check",
            &[
                GRPC,
                ("x-auth-subject", "forged"),
                ("x-auth-scheme", "forged"),
            ],
        ),
    )
    .await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not an ok response")
    };
    assert!(ok.headers.is_empty());
    assert_eq!(
        ok.headers_to_remove,
        vec!["x-auth-subject", "x-auth-scheme", "x-auth-scopes"]
    );
}

/// `(HTTP status, grpc-status, grpc-message, body)` of a denied gRPC check.
fn grpc_denial(r: &CheckResponse) -> (i32, String, String, String) {
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("not a denied response: {r:?}")
    };
    let h = options(&d.headers);
    let get = |k: &str| {
        h.iter()
            .find(|(n, _, _)| n == k)
            .map(|(_, v, _)| v.clone())
            .unwrap()
    };
    (
        d.status.unwrap().code,
        get("grpc-status"),
        get("grpc-message"),
        d.body.clone(),
    )
}

#[tokio::test]
async fn denials_carry_the_layers_code_and_message() {
    let ch = channel(ext_authz_server(ExtAuthzServer::new(config().layer().unwrap())).await).await;
    let cases: Vec<(CheckRequest, &str, &str, &str)> = vec![
        (
            check(HELLO, &[GRPC]),
            "16",
            "missing authorization metadata",
            "missing authorization metadata",
        ),
        (
            check(HELLO, &[GRPC, ("x-api-key", "nope")]),
            "16",
            "invalid API key",
            "invalid API key",
        ),
        // Envoy joins repeated headers with commas: one malformed value, never split.
        (
            check(HELLO, &[GRPC, ("x-api-key", "k-1,k-2")]),
            "16",
            "invalid API key",
            "invalid API key",
        ),
        (
            check(
                ADMIN,
                &[
                    GRPC,
                    ("authorization", &format!("Bearer {}", jwt("greeter.read"))),
                ],
            ),
            "7",
            "missing scope: greeter.admin",
            "missing scope: greeter.admin",
        ),
        (
            check(HELLO, &[GRPC, ("authorization", "Bearer not-a-jwt")]),
            "16",
            "malformed token",
            "malformed token",
        ),
    ];
    for (req, status, encoded, message) in cases {
        let r = ask(&ch, req).await;
        let rpc = r.status.clone().unwrap();
        assert_eq!(
            (rpc.code.to_string().as_str(), rpc.message.as_str()),
            (status, message)
        );
        let http = if status == "16" { 401 } else { 403 };
        assert_eq!(
            grpc_denial(&r),
            (
                http,
                status.to_owned(),
                encoded.to_owned(),
                message.to_owned()
            )
        );
    }
}

#[tokio::test]
async fn plain_http_denials_are_401_with_a_challenge_or_403() {
    let ch = channel(ext_authz_server(ExtAuthzServer::new(config().layer().unwrap())).await).await;
    let r = ask(&ch, check(HELLO, &[])).await;
    let Some(HttpResponse::DeniedResponse(d)) = r.http_response else {
        panic!("not denied")
    };
    assert_eq!(d.status.unwrap().code, 401);
    assert!(options(&d.headers).contains(&("www-authenticate".into(), "Bearer".into(), OVERWRITE)));
    assert_eq!(d.body, "missing authorization metadata");
    let r = ask(
        &ch,
        check(
            ADMIN,
            &[("authorization", &format!("Bearer {}", jwt("greeter.read")))],
        ),
    )
    .await;
    let Some(HttpResponse::DeniedResponse(d)) = r.http_response else {
        panic!("not denied")
    };
    assert_eq!(d.status.unwrap().code, 403);
    assert_eq!(d.body, "missing scope: greeter.admin");
}

#[tokio::test]
async fn credentials_can_be_removed_and_exchange_headers_reach_the_client() {
    let mut cfg = config();
    cfg.issue_tokens = true;
    let server = ExtAuthzServer::new(cfg.layer().unwrap()).remove_credentials(true);
    let ch = channel(ext_authz_server(server).await).await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ada:lovelace")
    );
    let r = ask(&ch, check(HELLO, &[GRPC, ("authorization", &basic)])).await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not ok: {r:?}")
    };
    assert_eq!(ok.headers_to_remove, vec!["x-auth-scopes", "authorization"]);
    let to_client = options(&ok.response_headers_to_add);
    assert_eq!(to_client.len(), 1);
    assert_eq!(to_client[0].0, "authorization");
    assert!(to_client[0].1.starts_with("Bearer "), "{}", to_client[0].1);
    // The issued token is accepted on the next check.
    let r = ask(
        &ch,
        check(HELLO, &[GRPC, ("authorization", &to_client[0].1)]),
    )
    .await;
    assert_eq!(r.status.unwrap().code, 0);
}

/// A greeter whose layer delegates to `ext_authz` (`ExtAuthz`), on 127.0.0.1:0.
async fn delegating_greeter(ext_authz: Channel, timeout: Duration) -> Channel {
    let (l, addr) = listener().await;
    let layer = AuthLayer::new(ExtAuthz::new(ext_authz).timeout(timeout));
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(GreeterServer::new(greeter::MyGreeter))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l)),
    );
    channel(addr).await
}

/// A greeter with the same configuration in process.
async fn in_process_greeter() -> Channel {
    channel(greeter::spawn(config()).await).await
}

async fn hello(
    ch: &Channel,
    path_admin: bool,
    headers: &[(&'static str, &str)],
) -> Result<String, (Code, String)> {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in headers {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let mut client = GreeterClient::new(ch.clone());
    let r = if path_admin {
        client.say_hello_admin(req).await
    } else {
        client.say_hello(req).await
    };
    r.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

#[tokio::test]
async fn a_delegating_layer_gives_what_the_in_process_layer_gives() {
    let ext = ext_authz_server(ExtAuthzServer::new(config().layer().unwrap())).await;
    let delegating = delegating_greeter(channel(ext).await, Duration::from_secs(2)).await;
    let local = in_process_greeter().await;
    let read = format!("Bearer {}", jwt("greeter.read"));
    let admin = format!("Bearer {}", jwt("greeter.read greeter.admin"));
    let cases: Vec<(bool, Vec<(&'static str, &str)>)> = vec![
        (false, vec![("x-api-key", "k-1")]),
        (false, vec![("x-api-key", "wrong")]),
        (false, vec![]),
        (false, vec![("authorization", &read)]),
        (true, vec![("authorization", &read)]),
        (true, vec![("authorization", &admin)]),
        (false, vec![("authorization", "Basic YWRhOmxvdmVsYWNl")]),
        (false, vec![("authorization", "Basic YWRhOndyb25n")]),
        (false, vec![("authorization", "Bearer garbage")]),
    ];
    for (admin_call, headers) in cases {
        let want = hello(&local, admin_call, &headers).await;
        let got = hello(&delegating, admin_call, &headers).await;
        assert_eq!(got, want, "{headers:?}");
    }
    assert_eq!(
        hello(&delegating, false, &[("x-api-key", "k-2")]).await,
        Ok("Hello Ada, authenticated as ops via api-key".into())
    );
}

#[tokio::test]
async fn a_stopped_authorization_service_is_unavailable_within_the_timeout() {
    // Nothing listens there.
    let (l, addr) = listener().await;
    drop(l);
    let lazy = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let delegating = delegating_greeter(lazy, Duration::from_millis(500)).await;
    let started = Instant::now();
    let r = hello(&delegating, false, &[("x-api-key", "k-1")]).await;
    assert_eq!(r.as_ref().map_err(|e| e.0), Err(Code::Unavailable), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// grpc-message is percent-encoded (controls, `%`, non-ASCII); the body is not.
#[tokio::test]
async fn a_grpc_message_is_percent_encoded() {
    let ch = channel(ext_authz_server(ExtAuthzServer::new(config().layer().unwrap())).await).await;
    // A user name the Basic scheme names in no message; the failure message is fixed.
    let r = ask(&ch, check(HELLO, &[GRPC, ("authorization", "Basic %%%")])).await;
    let (http, status, encoded, body) = grpc_denial(&r);
    assert_eq!((http, status.as_str()), (401, "16"));
    assert_eq!(
        percent_encoding::percent_decode_str(&encoded)
            .decode_utf8()
            .unwrap(),
        body
    );
}

/// A check with the client certificate Envoy verified (`source.certificate`,
/// URL-encoded PEM): the mTLS scheme names the caller by its SPIFFE ID, and a JWT bound
/// to another certificate is refused, as in a tonic TLS server.
#[tokio::test]
async fn the_certificate_envoy_verified_authenticates_as_in_a_tls_server() {
    use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
    let mut cfg = config();
    cfg.client_ca = Some(Vec::new()); // adds the mTLS scheme (TLS itself is Envoy's)
    let ch = channel(ext_authz_server(ExtAuthzServer::new(cfg.layer().unwrap())).await).await;
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let with_cert = |mut req: CheckRequest| {
        let encoded: String =
            percent_encoding::utf8_percent_encode(&cert, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        req.attributes.as_mut().unwrap().source = Some(Peer {
            certificate: encoded,
            ..Default::default()
        });
        req
    };
    let r = ask(&ch, with_cert(check(HELLO, &[GRPC]))).await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not ok: {r:?}")
    };
    assert_eq!(
        options(&ok.headers)[..2],
        [
            (
                "x-auth-subject".to_owned(),
                "spiffe://prod.test/ns/billing/sa/api".to_owned(),
                OVERWRITE
            ),
            ("x-auth-scheme".to_owned(), "mtls".to_owned(), OVERWRITE),
        ]
    );
    // A token bound to another certificate (RFC 8705) is refused.
    let bound = tokens::hs256(
        SECRET,
        &tokens::claims(
            "ada",
            "https://issuer.test",
            "greeter",
            json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
        ),
    );
    let r = ask(
        &ch,
        with_cert(check(
            HELLO,
            &[GRPC, ("authorization", &format!("Bearer {bound}"))],
        )),
    )
    .await;
    assert_eq!(
        r.status.unwrap().message,
        "certificate-bound token presented with another certificate"
    );
    // Without the certificate, the same token is refused as presented without one.
    let r = ask(
        &ch,
        check(
            HELLO,
            &[GRPC, ("authorization", &format!("Bearer {bound}"))],
        ),
    )
    .await;
    assert_eq!(
        r.status.unwrap().message,
        "certificate-bound token presented without a client certificate"
    );
}

/// The `ext_authz_server` example (built by `cargo test --features ext-authz`), started
/// with `args`; its address and the child, killed on drop.
struct Example(std::process::Child, SocketAddr);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(args: &[&str]) -> Option<Example> {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().ok()?;
    let path = exe
        .parent()?
        .parent()?
        .join("examples")
        .join("ext_authz_server");
    if !path.is_file() {
        let reason = format!("{} not built", path.display());
        if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("GRPC_AUTH_REQUIRE_INTEROP=1 but {reason}");
        }
        eprintln!("skipping: {reason}");
        return None;
    }
    let mut child = std::process::Command::new(path)
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("ext_authz listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Some(Example(child, addr))
}

/// The example with greeter_server's flags answers as the library does.
#[tokio::test]
async fn the_example_takes_the_greeter_servers_flags() {
    let Some(server) = example(&[
        "--api-key",
        "k-1=billing",
        "--jwt-hs256-secret",
        SECRET,
        "--jwt-issuer",
        "https://issuer.test",
        "--jwt-audience",
        "greeter",
        "--require-scope",
        &format!("{ADMIN}=greeter.admin"),
        "--remove-credentials",
    ]) else {
        return;
    };
    let ch = channel(server.1).await;
    let r = ask(&ch, check(HELLO, &[GRPC, ("x-api-key", "k-1")])).await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not ok: {r:?}")
    };
    assert_eq!(ok.headers[0].header.as_ref().unwrap().value, "billing");
    assert_eq!(ok.headers_to_remove, vec!["x-auth-scopes", "x-api-key"]);
    let read = format!("Bearer {}", jwt("greeter.read"));
    let r = ask(&ch, check(ADMIN, &[GRPC, ("authorization", &read)])).await;
    assert_eq!(r.status.unwrap().message, "missing scope: greeter.admin");
}

/// `--config FILE`: the same TOML file a tonic server loads.
#[cfg(feature = "config")]
#[tokio::test]
async fn the_example_takes_a_config_file() {
    let dir = std::env::temp_dir().join(format!("ext-authz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    std::fs::write(
        &file,
        "[api_keys]\nkeys = { billing = \"k-9\" }\n\n[policy]\npublic = [\"/helloworld.Greeter/SayHello\"]\n",
    )
    .unwrap();
    let Some(server) = example(&["--config", file.to_str().unwrap()]) else {
        return;
    };
    let ch = channel(server.1).await;
    let r = ask(&ch, check(ADMIN, &[GRPC, ("x-api-key", "k-9")])).await;
    assert_eq!(r.status.unwrap().code, 0);
    let r = ask(&ch, check(ADMIN, &[GRPC, ("x-api-key", "k-1")])).await;
    assert_eq!(r.status.unwrap().message, "invalid API key");
    let r = ask(&ch, check(HELLO, &[GRPC])).await;
    assert_eq!(r.status.unwrap().code, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HMAC-signed call verifies against the method and path Envoy saw, and the replay
/// protection holds through the ext_authz server: the same signed request a second
/// time is refused.
#[tokio::test]
async fn hmac_signatures_verify_and_replays_are_refused() {
    use grpc_auth::credentials::{CallContext, CallCredentials, HmacSigner};
    let mut cfg = config();
    cfg.hmac_keys = vec![("svc-a".into(), "hmac-s3cret-0123456789".into())];
    let ch = channel(ext_authz_server(ExtAuthzServer::new(cfg.layer().unwrap())).await).await;
    let signer = HmacSigner::new("svc-a", "hmac-s3cret-0123456789");
    let mut signed = http::HeaderMap::new();
    signer
        .apply(
            &CallContext::new("http://127.0.0.1/helloworld.Greeter", "SayHello", false),
            &mut signed,
        )
        .await
        .unwrap();
    let headers: Vec<(String, String)> = signed
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let as_check = |path: &str| {
        let mut h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.push(GRPC);
        check(path, &h)
    };
    // Signed for SayHello: another path Envoy saw is another request.
    let r = ask(&ch, as_check(ADMIN)).await;
    let status = r.status.unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (Code::Unauthenticated as i32, "HMAC signature mismatch")
    );
    let r = ask(&ch, as_check(HELLO)).await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not ok: {r:?}")
    };
    assert_eq!(
        options(&ok.headers)[..2],
        [
            ("x-auth-subject".to_owned(), "svc-a".to_owned(), OVERWRITE),
            ("x-auth-scheme".to_owned(), "hmac".to_owned(), OVERWRITE),
        ]
    );
    // The same signed request again: a replay.
    let r = ask(&ch, as_check(HELLO)).await;
    let status = r.status.unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            Code::Unauthenticated as i32,
            "HMAC signature already used (replay)"
        )
    );
}

/// A delegating greeter serving mutual TLS passes the client certificate it verified
/// (and the client's address) to the ext_authz service, which names the caller by its
/// SPIFFE ID as a tonic TLS server would.
#[tokio::test]
async fn a_delegating_tls_server_passes_on_the_client_certificate() {
    let mut cfg = config();
    cfg.mtls = true; // the ext_authz side authenticates by certificates it is told of
    let ext = ext_authz_server(ExtAuthzServer::new(cfg.layer().unwrap())).await;
    let pki = tls::test_pki();
    let (l, addr) = listener().await;
    let layer = AuthLayer::new(ExtAuthz::new(channel(ext).await));
    let tls = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            &pki.cert_pem,
            &pki.key_pem,
        ))
        .client_ca_root(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .client_auth_optional(true);
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .layer(layer)
            .add_service(GreeterServer::new(greeter::MyGreeter))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l)),
    );
    let (cert, key) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let ch = tls::mtls_channel(addr.port(), &pki.ca_pem, &cert, &key).await;
    assert_eq!(
        hello(&ch, false, &[]).await,
        Ok("Hello Ada, authenticated as spiffe://prod.test/ns/billing/sa/api via mtls".into())
    );
    // Without a client certificate, the other schemes decide.
    let plain = tls::channel(addr.port(), &pki.ca_pem).await;
    assert_eq!(
        hello(&plain, false, &[]).await,
        Err((
            Code::Unauthenticated,
            "missing authorization metadata".into()
        ))
    );
    assert_eq!(
        hello(&plain, false, &[("x-api-key", "k-1")]).await,
        Ok("Hello Ada, authenticated as billing via api-key".into())
    );
}
