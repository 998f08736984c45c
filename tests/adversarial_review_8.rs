//! Eighth adversarial review: Envoy external authorization (`ExtAuthzServer`, the
//! `ExtAuthz` authenticator), the decision they share with the layer (`judge`,
//! `public_check`), the peer certificate Envoy passes, and the TOML configuration
//! (`AuthConfig`).
//!
//! Every test asserts the secure outcome. `/// Finding:` tests FAIL at the reviewed
//! commit and prove a bug; `/// Guard:` tests are attacks the code withstood, kept as
//! regression guards. The ext_authz server is called in process through its
//! `Authorization` trait, as Envoy's filter would call it (the `headers` map, or the
//! `header_map` of `encode_raw_headers: true`); the `ExtAuthz` authenticator asks a
//! scripted `Authorization` service (or a real `ExtAuthzServer`) on 127.0.0.1.
#![cfg(all(feature = "ext-authz", feature = "config"))]

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use grpc_auth::AuthError;
use grpc_auth::authn::{AuthRequest, AuthResult, Authenticator, BoxAuthenticator};
use grpc_auth::config::AuthConfig;
use grpc_auth::ext_authz::envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as EnvoyHeaderMap, HeaderValue as EnvoyHeaderValue, HeaderValueOption,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::r#type::v3::HttpStatus;
use grpc_auth::ext_authz::envoy_types::pb::google::rpc::Status as RpcStatus;
use grpc_auth::ext_authz::{ExtAuthz, ExtAuthzServer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::{Channel, Server};

const HELLO: &str = "/helloworld.Greeter/SayHello";
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
const HEALTH: &str = "/grpc.health.v1.Health/Check";
const DUMP: &str = "/internal.Debug/Dump";
const SECRET: &str = "review-8-jwt-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const GRPC: (&str, &str) = ("content-type", "application/grpc");

/// The configuration the ext_authz server answers with: JWT, API keys, a public health
/// service, a scope-restricted admin method and a denied debug method.
fn toml() -> String {
    format!(
        r#"
[jwt]
hs256_secret = "{SECRET}"
issuer = "{ISS}"
audience = "{AUD}"

[api_keys]
keys = {{ billing = "k-1", ops = "k-2" }}

[policy]
public = ["/grpc.health.v1.Health/*"]
deny = ["{DUMP}"]
require_scope = {{ "{ADMIN}" = "greeter.admin" }}
"#
    )
}

fn config(text: &str) -> AuthConfig {
    AuthConfig::from_toml_str(text, "/review8/auth.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn server() -> ExtAuthzServer<BoxAuthenticator> {
    ExtAuthzServer::new(config(&toml()).layer().unwrap())
}

fn jwt(sub: &str, extra: Value) -> String {
    format!(
        "Bearer {}",
        tokens::hs256(SECRET, &tokens::claims(sub, ISS, AUD, extra))
    )
}

fn attributes(http: HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttrRequest {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// A check as Envoy sends it by default: the `headers` map (repeated headers joined with
/// commas by Envoy), lower-cased names, pseudo-headers.
fn check(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in headers {
        map.entry((*k).to_owned())
            .and_modify(|old| {
                old.push(',');
                old.push_str(v);
            })
            .or_insert_with(|| (*v).to_owned());
    }
    map.insert(":path".into(), path.into());
    map.insert(":method".into(), "POST".into());
    attributes(HttpRequest {
        method: "POST".into(),
        path: path.into(),
        headers: map,
        protocol: "HTTP/2".into(),
        ..Default::default()
    })
}

/// A check with `encode_raw_headers: true`: every entry on its own in `header_map`, its
/// bytes in `raw_value`.
fn raw_check(path: &str, headers: &[(&str, &[u8])]) -> CheckRequest {
    let mut entries = vec![
        EnvoyHeaderValue {
            key: ":path".into(),
            raw_value: path.as_bytes().to_vec(),
            ..Default::default()
        },
        EnvoyHeaderValue {
            key: ":method".into(),
            raw_value: b"POST".to_vec(),
            ..Default::default()
        },
    ];
    for (k, v) in headers {
        entries.push(EnvoyHeaderValue {
            key: (*k).to_owned(),
            raw_value: v.to_vec(),
            ..Default::default()
        });
    }
    attributes(HttpRequest {
        method: "POST".into(),
        path: path.into(),
        header_map: Some(EnvoyHeaderMap { headers: entries }),
        protocol: "HTTP/2".into(),
        ..Default::default()
    })
}

async fn ask<A: Authenticator>(server: &ExtAuthzServer<A>, req: CheckRequest) -> CheckResponse {
    server
        .check(tonic::Request::new(req))
        .await
        .unwrap()
        .into_inner()
}

fn code(r: &CheckResponse) -> i32 {
    r.status.as_ref().map_or(-1, |s| s.code)
}

fn ok(r: &CheckResponse) -> &OkHttpResponse {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) if code(r) == 0 => ok,
        _ => panic!("not allowed: {r:?}"),
    }
}

fn denied(r: &CheckResponse) -> (i32, u32) {
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (code(r), d.status.map_or(0, |s| s.code as u32)),
        _ => panic!("not denied: {r:?}"),
    }
}

/// `(key, value)` of header options.
fn set(h: &[HeaderValueOption]) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

/// What the upstream sees of header `name` after Envoy applies `ok` to a request that
/// carried `sent` (lower-cased names): set (overwrite) first, then removals.
fn upstream_sees(sent: &[(&str, &str)], ok: &OkHttpResponse, name: &str) -> Vec<String> {
    let mut values: Vec<String> = sent
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| (*v).to_owned())
        .collect();
    for (k, v) in set(&ok.headers) {
        if k.eq_ignore_ascii_case(name) {
            values = vec![v];
        }
    }
    if ok
        .headers_to_remove
        .iter()
        .any(|k| k.eq_ignore_ascii_case(name))
    {
        values.clear();
    }
    values
}

// ---------------------------------------------------------------------------
// Findings: ExtAuthzServer
// ---------------------------------------------------------------------------

/// Finding: a principal's subject is copied into Envoy's header mutations unchecked.
/// A subject with CR/LF (a JWT `sub`, a certificate subject, an introspected `sub`: any
/// string a trusted issuer signed) becomes `x-auth-subject: ada\r\nx-auth-scopes: ...`,
/// a value no HTTP header may hold. In process the principal travels in the request
/// extensions and never meets HTTP framing; through ext_authz it is HTTP: Envoy
/// either answers 500 (with `validate_mutations`) or forwards what an HTTP/1 upstream
/// may parse as a second header (`x-auth-scopes: greeter.admin`), a header the server
/// believed it removed. Fix: refuse the call (or at least never emit the header) when a
/// principal value is not a valid header value (no controls besides HTAB, no
/// leading/trailing whitespace).
#[tokio::test]
async fn finding_a_subject_with_crlf_never_reaches_a_header_mutation() {
    let s = server();
    let token = jwt("ada\r\nx-auth-scopes: greeter.admin", json!({}));
    let r = ask(&s, check(HELLO, &[GRPC, ("authorization", &token)])).await;
    if code(&r) == 0 {
        for (k, v) in set(&ok(&r).headers) {
            assert!(
                http::HeaderValue::from_bytes(v.as_bytes()).is_ok(),
                "the upstream header {k} is set to {v:?}, not a valid header value"
            );
        }
    }
}

/// Finding: scopes are joined with spaces into `x-auth-scopes` without checking that
/// no scope holds a space, so the header is ambiguous. A JWT `scp: ["greeter.read
/// greeter.admin"]` (ONE scope, which the layer in process refuses for a method that
/// requires `greeter.admin`) reaches the upstream as the two scopes `greeter.read` and
/// `greeter.admin`; an `ExtAuthz` authenticator on the other side (which splits the
/// header on spaces) then grants `greeter.admin` to its own layer's `require_scope`:
/// a privilege the token never had. Fix: refuse (or drop) a scope holding whitespace
/// (RFC 6749 scope-tokens have none) before joining, on both the JWT side and
/// `ExtAuthzServer::allowed`.
#[tokio::test]
async fn finding_a_scope_with_a_space_does_not_become_two_scopes_upstream() {
    let token = jwt("ada", json!({ "scp": ["greeter.read greeter.admin"] }));
    let s = server();
    // The layer's own view: the token does not carry greeter.admin.
    let r = ask(&s, check(ADMIN, &[GRPC, ("authorization", &token)])).await;
    assert_eq!(denied(&r), (Code::PermissionDenied as i32, 403));
    // Through ext_authz, a delegating layer sees what the upstream sees.
    let addr = spawn(AuthorizationServer::new(server())).await;
    let ext = ExtAuthz::new(channel(addr).await);
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", token.parse().unwrap());
    // Fixed by refusing: a scope the header cannot carry unambiguously ends the call.
    let got = ext
        .authenticate(&AuthRequest::new(HELLO, &headers))
        .await
        .map(|found| found.map(|f| f.principal.scopes().to_vec()));
    assert_eq!(
        got,
        Err(AuthError::unauthenticated(
            "the principal cannot be passed on in a header"
        ))
    );
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `req` as coming from the downstream client at `ip` (Envoy's `source.address`).
fn from_address(mut req: CheckRequest, ip: &str) -> CheckRequest {
    use grpc_auth::ext_authz::envoy_types::pb::envoy::config::core::v3::{
        Address, SocketAddress, address, socket_address,
    };
    req.attributes.as_mut().unwrap().source = Some(Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(40000)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    });
    req
}

/// Finding: failed Basic logins are never counted per client address through ext_authz.
/// In process, `BasicAuthenticator` counts failures per user AND per peer address (100
/// per 5 minutes by default, from tonic's `TcpConnectInfo`), which is what stops
/// password spraying (one password tried against many user names). `ExtAuthzServer`
/// builds the call's extensions from the certificate alone: `AuthRequest::remote_addr`
/// is `None`, so the per-peer limit is silently off for every service behind Envoy,
/// although Envoy names the downstream client in `attributes.source.address`. Here one
/// address makes 150 failed logins against 150 user names and is still judged, where
/// the layer in process refuses it (`RESOURCE_EXHAUSTED`, HTTP 429) after 100. Fix:
/// put a `TcpConnectInfo` (or a crate-private address extension `remote_addr` reads)
/// with `source.address` into the extensions `connection()` builds.
#[tokio::test]
async fn finding_failed_logins_are_counted_per_client_address_through_ext_authz() {
    let text = "[basic]\nusers = { ada = \"lovelace-pw-0123\" }\n";
    let spray = |i: usize| basic(&format!("user{i}"), "Winter2026!");
    // In process: the 101st failure from one address is refused.
    let auth = config(text).authenticator().unwrap();
    let mut ext = http::Extensions::new();
    ext.insert(tonic::transport::server::TcpConnectInfo {
        local_addr: None,
        remote_addr: Some("203.0.113.7:40000".parse().unwrap()),
    });
    let mut last = None;
    for i in 0..150 {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", spray(i).parse().unwrap());
        let r = auth
            .authenticate(&AuthRequest::new(HELLO, &headers).with_extensions(&ext))
            .await;
        last = Some(outcome(&r));
    }
    assert_eq!(last, Some(Err(Code::ResourceExhausted)), "in process");
    // Through ext_authz, from the same downstream address.
    let s = ExtAuthzServer::new(config(text).layer().unwrap());
    let mut last = (0, 0);
    for i in 0..150 {
        let req = from_address(
            check(HELLO, &[GRPC, ("authorization", &spray(i))]),
            "203.0.113.7",
        );
        last = denied(&ask(&s, req).await);
    }
    assert_eq!(
        last,
        (Code::ResourceExhausted as i32, 429),
        "the 150th failed login from one address was still judged"
    );
}

/// Guard: a `$argon2` user entry without a salt and hash output (`$argon2id$salt`) could
/// never admit a password; it is refused when loading, naming the line.
#[test]
fn guard_a_hashless_phc_entry_is_refused_at_load() {
    let e = AuthConfig::from_toml_str(
        "[basic]\nusers = { ada = \"$argon2id$garbage-hash-77\" }\n",
        "/review8/auth.toml",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/review8/auth.toml:2: basic.users.ada: invalid password hash: not an argon2 PHC string"
    );
}

// ---------------------------------------------------------------------------
// Findings: the ExtAuthz authenticator
// ---------------------------------------------------------------------------

/// A scripted `Authorization` service: `answer` after `delay`, counting checks.
#[derive(Clone)]
struct Scripted {
    answer: CheckResponse,
    delay: Duration,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Authorization for Scripted {
    async fn check(
        &self,
        _: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(tonic::Response::new(self.answer.clone()))
    }
}

async fn spawn<S>(svc: AuthorizationServer<S>) -> SocketAddr
where
    S: Authorization,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(svc)
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

async fn scripted(answer: CheckResponse, delay: Duration) -> (ExtAuthz, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = spawn(AuthorizationServer::new(Scripted {
        answer,
        delay,
        calls: calls.clone(),
    }))
    .await;
    (ExtAuthz::new(channel(addr).await), calls)
}

async fn authenticate(ext: &ExtAuthz) -> AuthResult {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", "whatever".parse().unwrap());
    ext.authenticate(&AuthRequest::new(HELLO, &headers)).await
}

fn outcome(r: &AuthResult) -> Result<String, Code> {
    match r {
        Ok(Some(f)) => Ok(format!(
            "{}:{}",
            f.principal.scheme(),
            f.principal.subject()
        )),
        Ok(None) => Ok("declined".into()),
        Err(e) => Err(e.code()),
    }
}

/// Finding: an answer without a `status` is an acceptance. `answer.status` absent
/// becomes code 0 through `unwrap_or_default()`, so an empty `CheckResponse` (what any
/// service answering an empty message decodes to: a stub, a catch-all proxy route, a
/// half-implemented policy server) authenticates every call as
/// `ext-authz:anonymous`, even one whose answer is a `DeniedResponse` with HTTP 403.
/// Envoy's filter reads an absent status the same way, but an authenticator should not
/// turn the absence of a verdict into a principal. Fix: require `status` (a present
/// `Status` with code 0 is what every real server, grpc-auth's and OPA's, sends) and
/// refuse a `DeniedResponse` paired with OK; otherwise `PERMISSION_DENIED` (or
/// `UNAVAILABLE`: the service is broken).
#[tokio::test]
async fn finding_an_answer_without_a_status_is_not_an_acceptance() {
    let (ext, calls) = scripted(CheckResponse::default(), Duration::ZERO).await;
    let r = authenticate(&ext).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        r.is_err(),
        "an empty answer authenticated the call as {:?}",
        outcome(&r)
    );
    let denied_without_status = CheckResponse {
        status: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 403 }),
            body: "denied".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let (ext, _) = scripted(denied_without_status, Duration::ZERO).await;
    let r = authenticate(&ext).await;
    assert!(
        r.is_err(),
        "a 403 answer without a status authenticated the call as {:?}",
        outcome(&r)
    );
}

// ---------------------------------------------------------------------------
// Findings: the configuration file
// ---------------------------------------------------------------------------

/// Finding: a secret written where a table belongs is echoed in the error. The module
/// promises every error "never a secret", and the loader hides keys written as TOML keys
/// (`[api_keys]`), but a value of the wrong type goes through serde's `invalid type:
/// string "...", expected a map`, quoting it. The mistakes are the natural ones: the
/// flags' own `USER:PASSWORD`, `KEY=PRINCIPAL`, `KEY_ID=SECRET` shapes written as the
/// table's value (`users = "ada:lovelace"`), or a whole section given as one string.
/// The message ends up in logs and CI output (greeter_server prints it and exits 2).
/// Fix: give `users`/`keys` (and the section tables) a visitor whose `visit_str`
/// refuses with a fixed message, as `SecretVisitor` does.
#[test]
fn finding_a_secret_of_the_wrong_shape_is_never_echoed() {
    let cases = [
        ("[basic]\nusers = \"ada:lovelace-pw-1\"\n", "lovelace-pw-1"),
        (
            "[api_keys]\nkeys = \"k-live-7f3a=billing\"\n",
            "k-live-7f3a",
        ),
        ("[hmac]\nkeys = \"svc-a=hmac-s3cret-9\"\n", "hmac-s3cret-9"),
        ("api_keys = \"k-live-7f3a\"\n", "k-live-7f3a"),
        ("basic = \"ada:lovelace-pw-1\"\n", "lovelace-pw-1"),
    ];
    let mut leaks = Vec::new();
    for (text, secret) in cases {
        match AuthConfig::from_toml_str(text, "/review8/auth.toml") {
            Ok(_) => leaks.push(format!("{text:?} was accepted")),
            Err(e) => {
                let shown = format!("{e} / {e:?}");
                if shown.contains(secret) {
                    leaks.push(shown);
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets shown in errors: {leaks:#?}");
}

/// Finding: `jwt.hs256_secret` takes any length (`"s3cret"`, the module docs' own
/// example, is accepted), while `[tokens] secret` is refused under 32 bytes. RFC 7518
/// §3.2: an HS256 key MUST be at least 256 bits; a short one is found offline from any
/// single token a client holds, and with it every token can be forged (any `sub`, any
/// scope). Fix: refuse a secret shorter than 32 bytes when loading (the error names the
/// length, not the secret), as `tokens.secret` is; the docs' example changes with it.
#[test]
fn finding_a_short_hs256_secret_is_refused() {
    let r = AuthConfig::from_toml_str(
        "[jwt]\nhs256_secret = \"s3cret\"\nissuer = \"i\"\naudience = \"a\"\n",
        "/review8/auth.toml",
    );
    match r {
        Ok(_) => panic!("a 6-byte HS256 secret was accepted"),
        Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
    }
}

/// Finding: remote token sources load without an audience. `[jwt] oidc_issuers =
/// ["https://accounts.google.com"]` (or `jwks_urls` of a shared IdP, or
/// `[introspection]` of a shared authorization server) with no `audience` accepts every
/// token that issuer signs or calls active, for any client of it: any Google account's
/// ID token minted for any other application authenticates here (token confusion,
/// RFC 8725 §3.9). `JwtAuthenticator` checks `aud` only when an audience is given, and
/// the loader, which already refuses other unsafe combinations (static with remote keys,
/// `issuer` with `oidc_issuers` alone), says nothing. Fix: require `audience` with
/// `jwks_urls`, `oidc_issuers` and `[introspection]` (an explicit opt-out key if a
/// deployment truly wants any audience).
#[test]
fn finding_remote_token_sources_require_an_audience() {
    let cases = [
        "[jwt]\noidc_issuers = [\"https://accounts.google.com\"]\n",
        "[jwt]\njwks_urls = [\"https://idp.example/jwks.json\"]\nissuer = \"https://idp.example\"\n",
        "[introspection]\nurl = \"https://idp.example/introspect\"\nclient_id = \"greeter\"\nclient_secret = \"intro-secret-0123\"\n",
    ];
    let accepted: Vec<&str> = cases
        .into_iter()
        .filter(|text| AuthConfig::from_toml_str(text, "/review8/auth.toml").is_ok())
        .collect();
    assert!(
        accepted.is_empty(),
        "loaded without an audience: {accepted:#?}"
    );
}

// ---------------------------------------------------------------------------
// Guards: ExtAuthzServer
// ---------------------------------------------------------------------------

/// Guard: forged principal headers never reach the upstream: on a public method (all
/// three removed), on an accepted call without scopes (subject and scheme overwritten,
/// scopes removed), in any letter case and repeated, through `headers` and
/// `header_map`; and a denied call has no OK response at all.
#[tokio::test]
async fn guard_forged_principal_headers_never_reach_the_upstream() {
    let s = server();
    let forged: &[(&str, &str)] = &[
        ("x-auth-subject", "root"),
        ("X-Auth-Subject", "root2"),
        ("x-auth-scheme", "mtls"),
        ("X-AUTH-SCOPES", "greeter.admin"),
    ];
    let mut public = vec![GRPC];
    public.extend_from_slice(forged);
    let r = ask(&s, check(HEALTH, &public)).await;
    let lower: Vec<(String, String)> = public
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    let sent: Vec<(&str, &str)> = lower
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for name in ["x-auth-subject", "x-auth-scheme", "x-auth-scopes"] {
        assert!(upstream_sees(&sent, ok(&r), name).is_empty(), "{name}");
    }
    // The same through header_map (raw headers), on an API key call without scopes.
    let mut raw: Vec<(&str, &[u8])> =
        vec![("content-type", b"application/grpc"), ("x-api-key", b"k-1")];
    raw.extend(forged.iter().map(|(k, v)| (*k, v.as_bytes())));
    let r = ask(&s, raw_check(HELLO, &raw)).await;
    let ok = ok(&r);
    assert_eq!(upstream_sees(&sent, ok, "x-auth-subject"), vec!["billing"]);
    assert_eq!(upstream_sees(&sent, ok, "x-auth-scheme"), vec!["api-key"]);
    assert!(upstream_sees(&sent, ok, "x-auth-scopes").is_empty());
    // Forged headers and no credentials on a protected method: denied.
    let r = ask(&s, check(HELLO, &public)).await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
}

/// Guard: the path decides by the method alone. A query naming a public method, a
/// traversal or doubled slash, an encoded slash, a missing leading slash or another
/// case never makes a protected method public; a query never escapes a method's
/// scope rule or a deny rule.
#[tokio::test]
async fn guard_path_tricks_do_not_reach_a_public_or_weaker_rule() {
    let s = server();
    for path in [
        "/helloworld.Greeter/SayHello?x=/grpc.health.v1.Health/Check",
        "/helloworld.Greeter/SayHello?/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Check/../../helloworld.Greeter/SayHello",
        "/grpc.health.v1.Health/../helloworld.Greeter/SayHello",
        "//grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health%2FCheck",
        "/grpc.health.v1.Health%2F/helloworld.Greeter/SayHello",
        "grpc.health.v1.Health/Check",
        "/GRPC.HEALTH.V1.HEALTH/Check",
        "",
    ] {
        let r = ask(&s, check(path, &[GRPC])).await;
        assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401), "{path:?}");
    }
    let read = jwt("ada", json!({ "scope": "greeter.read" }));
    for path in [
        format!("{ADMIN}?"),
        format!("{ADMIN}?scope=greeter.admin"),
        format!("{ADMIN}?x={HELLO}"),
    ] {
        let r = ask(&s, check(&path, &[GRPC, ("authorization", &read)])).await;
        assert_eq!(denied(&r), (Code::PermissionDenied as i32, 403), "{path}");
    }
    let r = ask(
        &s,
        check(&format!("{DUMP}?x"), &[GRPC, ("x-api-key", "k-1")]),
    )
    .await;
    assert_eq!(denied(&r), (Code::PermissionDenied as i32, 403));
}

/// Guard: repeated credentials in `header_map` (raw headers, one entry each) are judged
/// together as in process: a valid API key beside a wrong one, or two `authorization`
/// entries, are refused; and when Envoy (wrongly) sends both `headers` and
/// `header_map`, `header_map` alone decides: a valid key in `headers` does not rescue a
/// wrong one in `header_map`.
#[tokio::test]
async fn guard_repeated_credentials_in_header_map_are_refused() {
    let s = server();
    let grpc: (&str, &[u8]) = ("content-type", b"application/grpc");
    let r = ask(
        &s,
        raw_check(
            HELLO,
            &[grpc, ("x-api-key", b"k-1"), ("x-api-key", b"nope")],
        ),
    )
    .await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
    let r = ask(
        &s,
        raw_check(HELLO, &[grpc, ("x-api-key", b"k-1"), ("x-api-key", b"k-1")]),
    )
    .await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
    let token = jwt("ada", json!({}));
    let r = ask(
        &s,
        raw_check(
            HELLO,
            &[
                grpc,
                ("authorization", token.as_bytes()),
                ("authorization", b"Basic YWRhOmxvdmVsYWNl"),
            ],
        ),
    )
    .await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
    // Both maps: header_map decides.
    let mut both = raw_check(HELLO, &[grpc, ("x-api-key", b"nope")]);
    let http = both
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    http.headers.insert("x-api-key".into(), "k-1".into());
    let r = ask(&s, both).await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
    // raw_value wins over value: a valid key in `value` with a wrong `raw_value`.
    let mut mixed = raw_check(HELLO, &[grpc]);
    mixed
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .and_then(|h| h.header_map.as_mut())
        .unwrap()
        .headers
        .push(EnvoyHeaderValue {
            key: "x-api-key".into(),
            value: "k-1".into(),
            raw_value: b"nope".to_vec(),
        });
    let r = ask(&s, mixed).await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
}

/// Guard: `remove_credentials` never lets the accepted credential through, also when a
/// principal header is named like the credential (`x-api-key` as the subject header:
/// overwritten with the principal, not listed for removal after being set), and a
/// principal header named like a credential that has no value is removed.
#[tokio::test]
async fn guard_remove_credentials_with_colliding_principal_header_names() {
    let s = ExtAuthzServer::new(config(&toml()).layer().unwrap())
        .remove_credentials(true)
        .principal_headers(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderName::from_static("x-auth-scheme"),
            http::HeaderName::from_static("authorization"),
        );
    let sent = [GRPC, ("x-api-key", "k-1")];
    let r = ask(&s, check(HELLO, &sent)).await;
    let allowed = ok(&r);
    assert_eq!(upstream_sees(&sent, allowed, "x-api-key"), vec!["billing"]);
    // No scopes: the `authorization` (scopes) header is removed.
    assert!(
        allowed
            .headers_to_remove
            .iter()
            .any(|h| h == "authorization")
    );
    // A JWT call: the token is removed or overwritten by the scopes.
    let token = jwt("ada", json!({ "scope": "greeter.read" }));
    let sent = [GRPC, ("authorization", token.as_str())];
    let r = ask(&s, check(HELLO, &sent)).await;
    let seen = upstream_sees(&sent, ok(&r), "authorization");
    assert_eq!(seen, vec!["greeter.read"]);
}

/// Guard: a certificate Envoy could not have verified (garbage where the PEM belongs,
/// a PEM without a CERTIFICATE block, a CERTIFICATE block of garbage) authenticates no
/// one through the mTLS scheme; the call falls to the other credentials.
#[tokio::test]
async fn guard_an_unreadable_peer_certificate_authenticates_no_one() {
    let text = format!("[mtls]\n{}", toml());
    let s = ExtAuthzServer::new(config(&text).layer().unwrap());
    let pems = [
        "garbage".to_owned(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_owned(),
        "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n".to_owned(),
    ];
    for pem in pems {
        let mut req = check(HELLO, &[GRPC]);
        req.attributes.as_mut().unwrap().source = Some(Peer {
            certificate: percent_encoding::utf8_percent_encode(
                &pem,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string(),
            ..Default::default()
        });
        let r = ask(&s, req).await;
        assert_eq!(denied(&r).1, 401, "{pem:?}: {r:?}");
    }
}

/// Guard: a check without an HTTP request, and a check naming a denied method with a
/// valid credential, are refused; gRPC denials carry grpc-status, plain ones a
/// challenge.
#[tokio::test]
async fn guard_malformed_checks_and_denied_methods_are_refused() {
    let s = server();
    let r = ask(&s, CheckRequest::default()).await;
    assert_eq!(denied(&r), (Code::Unauthenticated as i32, 401));
    let r = ask(&s, check(DUMP, &[GRPC, ("x-api-key", "k-1")])).await;
    assert_eq!(denied(&r), (Code::PermissionDenied as i32, 403));
    let r = ask(&s, check(HELLO, &[])).await;
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("{r:?}")
    };
    assert!(set(&d.headers).contains(&("www-authenticate".into(), "Bearer".into())));
}

// ---------------------------------------------------------------------------
// Guards: the ExtAuthz authenticator
// ---------------------------------------------------------------------------

fn answer(code: i32, message: &str) -> CheckResponse {
    CheckResponse {
        status: Some(RpcStatus {
            code,
            message: message.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Guard: refusal codes map fail-closed: 16 UNAUTHENTICATED, 14 UNAVAILABLE, 8
/// RESOURCE_EXHAUSTED, anything else (unknown, negative, OK-looking but not 0)
/// PERMISSION_DENIED; a long message is cut to 256 bytes on a character boundary.
#[tokio::test]
async fn guard_refusal_codes_map_fail_closed_and_messages_are_bounded() {
    for (c, want) in [
        (16, Code::Unauthenticated),
        (14, Code::Unavailable),
        (8, Code::ResourceExhausted),
        (7, Code::PermissionDenied),
        (2, Code::PermissionDenied),
        (13, Code::PermissionDenied),
        (99, Code::PermissionDenied),
        (-1, Code::PermissionDenied),
        (i32::MAX, Code::PermissionDenied),
    ] {
        let (ext, _) = scripted(answer(c, ""), Duration::ZERO).await;
        assert_eq!(outcome(&authenticate(&ext).await), Err(want), "code {c}");
    }
    let long = "é".repeat(1000);
    let (ext, _) = scripted(answer(7, &long), Duration::ZERO).await;
    let e = authenticate(&ext).await.unwrap_err();
    let message = e.to_string();
    assert!(message.len() <= 256, "{}", message.len());
    assert!(message.chars().all(|c| c == 'é'));
}

/// Guard: a slow service is UNAVAILABLE within the timeout, and past `max_in_flight`
/// checks are UNAVAILABLE at once without reaching the service.
#[tokio::test]
async fn guard_timeouts_and_the_in_flight_bound() {
    let (ext, calls) = scripted(answer(0, ""), Duration::from_secs(30)).await;
    let ext = ext.timeout(Duration::from_millis(200)).max_in_flight(1);
    let started = Instant::now();
    let r = authenticate(&ext).await;
    assert_eq!(outcome(&r), Err(Code::Unavailable));
    assert!(started.elapsed() < Duration::from_secs(3));
    // One check in flight (a long timeout: it stays in flight): the next is refused at
    // once, without reaching the service.
    let ext = ext.timeout(Duration::from_secs(20));
    let first = {
        let ext = ext.clone();
        tokio::spawn(async move { authenticate(&ext).await.map(|_| ()) })
    };
    while calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let r = authenticate(&ext).await;
    assert_eq!(outcome(&r), Err(Code::Unavailable));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    first.abort();
}

/// Guard: the client's own `x-auth-*` metadata never names the principal: only the
/// answer's upstream headers do (an allow-all answer is `ext-authz:anonymous`).
#[tokio::test]
async fn guard_the_callers_principal_headers_are_not_trusted() {
    let (ext, _) = scripted(answer(0, ""), Duration::ZERO).await;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-auth-subject", "root".parse().unwrap());
    headers.insert("x-auth-scopes", "greeter.admin".parse().unwrap());
    let found = ext
        .authenticate(&AuthRequest::new(HELLO, &headers))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.principal.subject(), "anonymous");
    assert!(found.principal.scopes().is_empty());
}

// ---------------------------------------------------------------------------
// Guards: the configuration file
// ---------------------------------------------------------------------------

/// Guard: `Debug` of a configuration with every kind of secret shows none of them.
#[test]
fn guard_debug_shows_no_secret() {
    let text = r#"
[tokens]
audience = "greeter"
secret = "tok-secret-0123456789abcdef-0123456789"

[jwt]
hs256_secret = "jwt-secret-0123456789abcdef-0123456789"
issuer = "i"
audience = "a"

[introspection]
url = "https://idp.example/introspect"
client_id = "greeter"
client_secret = "intro-secret-0123456789"
audience = "a"

[basic]
users = { ada = "lovelace-pw-0123" }

[api_keys]
keys = { billing = "k-live-0123456789", reports = ["k-old-0123", "k-new-0123"] }

[hmac]
keys = { "svc-a" = "hmac-secret-0123456789" }
"#;
    let c = config(text);
    let shown = format!("{c:?} {:?}", c.layer().unwrap());
    for secret in [
        "tok-secret",
        "jwt-secret",
        "intro-secret",
        "lovelace-pw",
        "k-live",
        "k-old",
        "k-new",
        "hmac-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

/// Guard: secret sources fail closed and quietly: a missing variable, an empty one, a
/// `/dev/zero` (bounded), a FIFO (no hang), a directory; the errors name the source,
/// never a value. An API key written as a TOML key is not shown, nor one given twice.
#[test]
fn guard_secret_sources_fail_closed_without_showing_values() {
    let dir = std::env::temp_dir().join(format!("review8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let origin = dir.join("auth.toml");
    let fifo = dir.join("fifo");
    let have_fifo = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let load = |text: &str| AuthConfig::from_toml_str(text, &origin);
    let jwt = |secret: &str| format!("[jwt]\nhs256_secret = {secret}\nissuer = \"i\"\n");
    let mut cases = vec![
        jwt(r#"{ env = "REVIEW8_SURELY_UNSET_VARIABLE" }"#),
        jwt(r#"{ env = "" }"#),
        jwt(r#"{ file = "/dev/zero" }"#),
        jwt(r#"{ file = "." }"#),
        jwt(r#"{ file = "missing.key" }"#),
        jwt(r#""""#),
        jwt(r#"{ file = "x", env = "Y" }"#),
    ];
    if have_fifo {
        cases.push(jwt(r#"{ file = "fifo" }"#));
    }
    for text in &cases {
        let started = Instant::now();
        assert!(load(text).is_err(), "{text}");
        assert!(started.elapsed() < Duration::from_secs(2), "{text}");
    }
    for (text, secret) in [
        (
            "[api_keys]\n\"k-live-77\" = \"billing\"\nkeys = { a = \"b\" }\n",
            "k-live-77",
        ),
        (
            "[api_keys]\nkeys = { a = \"k-dup-77\", b = \"k-dup-77\" }\n",
            "k-dup-77",
        ),
        (
            "[tokens]\naudience = \"a\"\nsecret = \"short-tok-77\"\n[basic]\nusers = { a = \"b\" }\n",
            "short-tok-77",
        ),
        ("[hmac]\nkeys = { \"svc\" = 12345 }\n", "12345"),
        (
            "[jwt]\nhs256_secret = [\"jwt-in-list-77\"]\n",
            "jwt-in-list-77",
        ),
    ] {
        let e = load(text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(!format!("{e} {e:?}").contains(secret), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Guard: the policy has one rule per pattern (`public` and `require_scope` on the same
/// method refused), an unknown default is refused, and method patterns are checked.
#[test]
fn guard_policy_conflicts_and_unknown_defaults_are_refused() {
    let base = "[api_keys]\nkeys = { a = \"k-aaaaaaaa\" }\n";
    for policy in [
        "[policy]\npublic = [\"/a.B/C\"]\nrequire_scope = { \"/a.B/C\" = \"s\" }\n",
        "[policy]\npublic = [\"/a.B/*\"]\ndeny = [\"/a.B/*\"]\n",
        "[policy]\ndefault = \"allow\"\n",
        "[policy]\npublic = [\"a.B/C\"]\n",
        "[policy]\npublic = [\"/a.B/*/C\"]\n",
        "[policy]\nrequire_scope = { \"/a.B/C\" = \"\" }\n",
        "[policy]\nrequire_scope = { \"/a.B/C\" = [] }\n",
    ] {
        let text = format!("{base}{policy}");
        assert!(
            AuthConfig::from_toml_str(&text, "/review8/auth.toml").is_err(),
            "{policy}"
        );
    }
}
