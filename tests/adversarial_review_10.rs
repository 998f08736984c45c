//! Tenth adversarial review: Envoy external authorization (`ExtAuthzServer`, the
//! `ExtAuthz` authenticator), the decision they share with the layer (`judge`,
//! `public_check`, the `Policy` lookup), the connection Envoy describes (source address,
//! source certificate), and the TOML configuration (`AuthConfig`).
//!
//! Every test asserts the secure outcome. `/// Finding:` tests FAIL at the reviewed
//! commit and prove a bug; `/// Guard:` tests are attacks the code withstood, kept as
//! regression guards. The ext_authz server is called in process through its
//! `Authorization` trait, as Envoy's filter would call it (the `headers` map, or the
//! `header_map` of `encode_raw_headers: true`); the `ExtAuthz` authenticator asks a
//! scripted `Authorization` service on 127.0.0.1.
#![cfg(all(feature = "ext-authz", feature = "config"))]

#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;

use grpc_auth::authn::{AuthRequest, Authenticator, BoxAuthenticator};
use grpc_auth::config::AuthConfig;
use grpc_auth::ext_authz::envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use grpc_auth::ext_authz::envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderMap as EnvoyHeaderMap, HeaderValue as EnvoyHeaderValue, HeaderValueOption,
    SocketAddress, address, socket_address,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, OkHttpResponse,
};
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
const SECRET: &str = "review-10-jwt-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const GRPC: (&str, &str) = ("content-type", "application/grpc");
const ORIGIN: &str = "/review10/auth.toml";

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
    AuthConfig::from_toml_str(text, ORIGIN).unwrap_or_else(|e| panic!("{e}"))
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

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
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
/// bytes in `raw_value` (no pseudo-headers added: the caller gives them).
fn raw_check(path: &str, headers: &[(&str, &[u8])]) -> CheckRequest {
    let entries = headers
        .iter()
        .map(|(k, v)| EnvoyHeaderValue {
            key: (*k).to_owned(),
            raw_value: v.to_vec(),
            ..Default::default()
        })
        .collect();
    attributes(HttpRequest {
        method: "POST".into(),
        path: path.into(),
        header_map: Some(EnvoyHeaderMap { headers: entries }),
        protocol: "HTTP/2".into(),
        ..Default::default()
    })
}

/// `req` as coming from the downstream client at `ip`:`port` (Envoy's `source.address`).
fn from_address(mut req: CheckRequest, ip: &str, port: u32) -> CheckRequest {
    let source = req
        .attributes
        .as_mut()
        .unwrap()
        .source
        .get_or_insert_with(Peer::default);
    source.address = Some(Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    });
    req
}

/// `req` with the client certificate Envoy verified (`source.certificate`, URL-encoded).
fn with_certificate(mut req: CheckRequest, pem: &str) -> CheckRequest {
    let source = req
        .attributes
        .as_mut()
        .unwrap()
        .source
        .get_or_insert_with(Peer::default);
    source.certificate =
        percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    req
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

fn message(r: &CheckResponse) -> &str {
    r.status.as_ref().map_or("", |s| s.message.as_str())
}

fn ok(r: &CheckResponse) -> &OkHttpResponse {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) if code(r) == 0 => ok,
        _ => panic!("not allowed: {r:?}"),
    }
}

/// `(gRPC code, HTTP status)` of a denial; `(0, 200)` for an acceptance, so a failing
/// assertion shows what was let through.
fn verdict(r: &CheckResponse) -> (i32, u32) {
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (code(r), d.status.map_or(0, |s| s.code as u32)),
        Some(HttpResponse::OkResponse(_)) if code(r) == 0 => (0, 200),
        _ => panic!("neither allowed nor denied: {r:?}"),
    }
}

/// `(key, value)` of header options.
fn set(h: &[HeaderValueOption]) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Findings: ExtAuthzServer
// ---------------------------------------------------------------------------

/// Finding: the ext_authz server looks the method's rule up by the raw `:path`, so a
/// path that is not in canonical form escapes every method-specific rule and falls to
/// the default one (any authenticated caller). `/internal.Debug/%44ump`,
/// `/internal.Debug/Dump/`, `/internal.Debug//Dump`, `/internal.Debug/./Dump` and
/// `/internal.Debug/Dump;x=1` are each allowed for the API key `billing` although the
/// configuration denies `/internal.Debug/Dump` to everyone; a token with only
/// `greeter.read` reaches `/helloworld.Greeter/SayHello%41dmin`. In process this cannot
/// happen (tonic routes by the exact path the policy saw), but behind Envoy the request
/// goes on unchanged (the README's bootstrap sets neither `normalize_path` nor
/// `merge_slashes`, and no Envoy option removes `;` parameters), and the upstream need
/// not route by the exact bytes: the README's "plain HTTP upstream" (Go's `net/http`
/// routes on the decoded, cleaned path; Spring/Tomcat drop `;` parameters; ASP.NET
/// Core, gRPC included, decodes and ignores case). The A43 policy's `paths` are matched
/// against the same raw string. Fix (`src/ext_authz/server.rs`, `check`/`decide`): take
/// only a canonical method path: refuse (PERMISSION_DENIED, 403, "malformed method
/// path") a path holding `%`, `;`, `\`, an empty, `.` or `..` segment, or a trailing
/// `/`, before the policy lookup; document `normalize_path`/`merge_slashes` for Envoy.
#[tokio::test]
async fn finding_a_non_canonical_path_never_escapes_a_deny_or_scope_rule() {
    let s = server();
    let mut escaped = Vec::new();
    for path in [
        "/internal.Debug/%44ump",
        "/internal.Debug/Dump/",
        "/internal.Debug//Dump",
        "/internal.Debug/./Dump",
        "/internal.Debug/x/../Dump",
        "/internal.Debug/Dump;x=1",
    ] {
        let r = ask(&s, check(path, &[GRPC, ("x-api-key", "k-1")])).await;
        if (verdict(&r), message(&r))
            != (
                (Code::PermissionDenied as i32, 403),
                "path is not in canonical form",
            )
        {
            escaped.push(format!("{path}: {:?} {:?}", verdict(&r), message(&r)));
        }
    }
    let read = jwt("ada", json!({ "scope": "greeter.read" }));
    for path in [
        "/helloworld.Greeter/SayHello%41dmin",
        "/helloworld.Greeter/SayHelloAdmin/",
        "/helloworld.Greeter//SayHelloAdmin",
        "/helloworld.Greeter/SayHelloAdmin;v=1",
    ] {
        let r = ask(&s, check(path, &[GRPC, ("authorization", &read)])).await;
        if (verdict(&r), message(&r))
            != (
                (Code::PermissionDenied as i32, 403),
                "path is not in canonical form",
            )
        {
            escaped.push(format!("{path}: {:?} {:?}", verdict(&r), message(&r)));
        }
    }
    assert!(
        escaped.is_empty(),
        "paths judged by a weaker rule than the method they name: {escaped:#?}"
    );
}

/// Finding: a check with more than 32,768 distinct header names panics the ext_authz
/// server. `request_headers` appends every header Envoy described to an
/// `http::HeaderMap` with `HeaderMap::append`, which panics ("size overflows MAX_SIZE")
/// past 2^15 entries; 40,000 short headers fit easily in tonic's 4 MiB message limit.
/// The project's rule is "no panic on network input": a `CheckRequest` is network input
/// (Envoy bounds a downstream request's headers, but anything that reaches the port, or
/// an Envoy with a raised `max_request_headers_kb`/count, can send one), and the panic
/// takes down the connection's task instead of answering. Fix
/// (`src/ext_authz/server.rs`, `request_headers`): use `HeaderMap::try_append` and
/// refuse (UNAUTHENTICATED "malformed request headers", as for a bad name) on overflow,
/// or bound the number of headers before building the map.
#[tokio::test]
async fn finding_a_check_with_too_many_headers_is_refused_without_a_panic() {
    let mut req = check(HELLO, &[GRPC, ("x-api-key", "k-1")]);
    let http = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    for i in 0..40_000 {
        http.headers.insert(format!("x-h{i}"), "v".into());
    }
    let answer = tokio::spawn(async move { ask(&server(), req).await }).await;
    let r = match answer {
        Ok(r) => r,
        Err(e) => panic!("the check panicked: {e}"),
    };
    assert_eq!(verdict(&r), (Code::Unauthenticated as i32, 401));
}

/// Finding: a principal whose subject starts or ends with whitespace reaches the
/// upstream as another principal. `principal_values` refuses controls and invalid
/// header values (review 8's CRLF finding) but not leading/trailing spaces, which HTTP
/// does not keep: an HTTP/1 upstream strips optional whitespace around a field value
/// (RFC 9110 §5.5), so a token for `sub: "ada "` (or `" ada"`) is seen upstream as
/// `x-auth-subject: ada`, another principal; an HTTP/2 upstream must treat such a
/// value as malformed (RFC 9113 §8.2.1). In process the handler gets the exact
/// subject. Review 8's finding asked for "no leading/trailing whitespace"; the fix
/// left it out. Fix (`src/ext_authz/server.rs`, `principal_values`): also refuse a
/// subject or scheme with leading or trailing whitespace (UNAUTHENTICATED "the
/// principal cannot be passed on in a header").
#[tokio::test]
async fn finding_a_subject_with_edge_whitespace_is_not_passed_on_as_another() {
    let s = server();
    let mut passed = Vec::new();
    for sub in ["ada ", " ada", "ada\u{20}\u{20}"] {
        let r = ask(
            &s,
            check(HELLO, &[GRPC, ("authorization", &jwt(sub, json!({})))]),
        )
        .await;
        let got = (verdict(&r), message(&r).to_owned());
        let want = (
            (Code::Unauthenticated as i32, 401),
            "the principal cannot be passed on in a header".to_owned(),
        );
        if got != want {
            let upstream = match &r.http_response {
                Some(HttpResponse::OkResponse(ok)) => set(&ok.headers),
                _ => Vec::new(),
            };
            passed.push(format!("{sub:?}: {got:?} {upstream:?}"));
        }
    }
    assert!(passed.is_empty(), "{passed:#?}");
}

// ---------------------------------------------------------------------------
// Findings: the configuration file
// ---------------------------------------------------------------------------

/// Finding: an explicitly empty `[mtls]` rule list means "accept every certificate".
/// `trust_domains = []` (what a rotation leaves when the last domain is removed, or a
/// template not filled in) reads as "no trust domain is trusted", yet `MtlsAuthenticator`
/// with no rules accepts every certificate the TLS terminator verified, here any
/// certificate Envoy passes (a SPIFFE ID of any trust domain authenticates as `mtls`).
/// Every other empty list of credentials is refused at load (`basic.users = {}`,
/// `api_keys.keys = {}`, `hmac.keys = {}`, `require_scope = { .. = [] }`): this one flips
/// to allow-all. Fix (`src/config.rs`, `Loader::mtls`): refuse a list that is given
/// but empty, naming the file and line (`[mtls]` with no list at all stays "every
/// verified certificate", as documented).
#[tokio::test]
async fn finding_an_explicitly_empty_mtls_rule_list_is_refused() {
    // What it means today: a certificate of a trust domain no one named authenticates.
    let text = format!("[mtls]\ntrust_domains = []\n{}", toml());
    if let Ok(c) = AuthConfig::from_toml_str(&text, ORIGIN) {
        let s = ExtAuthzServer::new(c.layer().unwrap());
        let pki = tls::test_pki();
        let (cert, _) = pki.client_cert(&["spiffe://evil.test/ns/x/sa/y"], &[], "y");
        let r = ask(&s, with_certificate(check(HELLO, &[GRPC]), &cert)).await;
        assert_eq!(
            verdict(&r),
            (Code::Unauthenticated as i32, 401),
            "trust_domains = [] accepted {:?}",
            r.http_response
        );
    }
    for list in ["trust_domains", "ids", "prefixes"] {
        let text = format!("[mtls]\n{list} = []\n[api_keys]\nkeys = {{ a = \"k-aaaa\" }}\n");
        let e = AuthConfig::from_toml_str(&text, ORIGIN)
            .err()
            .unwrap_or_else(|| panic!("`{list} = []` loaded (every certificate accepted)"));
        assert_eq!(e.line(), Some(2), "{e}");
        assert!(e.message().contains(&format!("mtls.{list}")), "{e}");
    }
}

/// Finding: a scope written with a space loads as ONE scope nobody can hold. OAuth
/// scope strings are space-separated (RFC 6749 §3.3), and a reader of `require_scope =
/// { "/a.B/C" = "greeter.read greeter.admin" }` or `basic.scopes = { ada =
/// "greeter.read greeter.admin" }` expects two scopes. The loader keeps one name with a
/// space: the method requires a scope no JWT can carry (`scope` is split on spaces), so
/// it is closed to everyone, and the Basic user's scope is one that the ext_authz
/// server refuses to pass on, so every call of that user is refused there ("the
/// principal cannot be passed on in a header"). A configuration that cannot mean what
/// it says must be refused at load; so must an empty scope (`scopes = { ada = [""] }`),
/// which `require_scope` already refuses and the ext_authz server refuses to pass on
/// (every call of that user is refused). Fix (`src/config.rs`, `Loader::policy` and
/// `Loader::basic`): refuse an empty scope or a scope or role holding whitespace, naming the
/// line.
#[test]
fn finding_scope_names_with_whitespace_are_refused_at_load() {
    let key = "[api_keys]\nkeys = { a = \"k-aaaa\" }\n";
    let cases = [
        format!(
            "{key}[policy]\nrequire_scope = {{ \"/a.B/C\" = \"greeter.read greeter.admin\" }}\n"
        ),
        format!("{key}[policy]\nrequire_scope = {{ \"/a.B/C\" = [\"greeter.admin \"] }}\n"),
        "[basic]\nusers = { ada = \"lovelace-pw-0123\" }\nscopes = { ada = \"greeter.read greeter.admin\" }\n"
            .to_owned(),
        "[basic]\nusers = { ada = \"lovelace-pw-0123\" }\nscopes = { ada = [\"\"] }\n".to_owned(),
    ];
    let loaded: Vec<&String> = cases
        .iter()
        .filter(|text| AuthConfig::from_toml_str(text, ORIGIN).is_ok())
        .collect();
    assert!(
        loaded.is_empty(),
        "scopes that cannot mean what they say were loaded: {loaded:#?}"
    );
    for text in &cases {
        if let Err(e) = AuthConfig::from_toml_str(text, ORIGIN) {
            assert!(e.line().is_some(), "{e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Guards: ExtAuthzServer
// ---------------------------------------------------------------------------

/// Guard: the method is `attributes.request.http.path`, never a `:path` entry of the
/// headers: a `:path` naming a public method beside a protected `path` (in `headers`
/// or `header_map`) is judged as the protected method, and so is a forged `x-envoy-*`
/// or `:authority`.
#[tokio::test]
async fn guard_a_pseudo_header_path_never_names_the_method() {
    let s = server();
    let mut req = check(HELLO, &[GRPC]);
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.headers.insert(":path".into(), HEALTH.into());
        http.headers
            .insert("x-envoy-original-path".into(), HEALTH.into());
    }
    let r = ask(&s, req).await;
    assert_eq!(verdict(&r), (Code::Unauthenticated as i32, 401));
    assert_eq!(message(&r), "missing authorization metadata");
    let raw = raw_check(
        DUMP,
        &[
            (":path", HEALTH.as_bytes()),
            (":authority", b"health.internal"),
            ("content-type", b"application/grpc"),
            ("x-api-key", b"k-1"),
        ],
    );
    let r = ask(&s, raw).await;
    assert_eq!(verdict(&r), (Code::PermissionDenied as i32, 403));
    assert_eq!(message(&r), "method is not allowed");
}

/// Guard: a header value or name that is not valid HTTP (CR/LF smuggling a second
/// header, NUL, a space in a name) refuses the whole check instead of being dropped or
/// passed on; a valid credential beside it does not rescue it.
#[tokio::test]
async fn guard_smuggled_header_bytes_refuse_the_check() {
    let s = server();
    let grpc: (&str, &[u8]) = ("content-type", b"application/grpc");
    for extra in [
        ("x-api-key", &b"k-1\r\nx-auth-subject: root"[..]),
        ("x-note", &b"a\0b"[..]),
        ("x-auth-subject", &b"root\nx-auth-scopes: greeter.admin"[..]),
        ("x bad", &b"1"[..]),
        ("", &b"1"[..]),
    ] {
        let r = ask(&s, raw_check(HELLO, &[grpc, ("x-api-key", b"k-2"), extra])).await;
        assert_eq!(
            (verdict(&r), message(&r)),
            (
                (Code::Unauthenticated as i32, 401),
                "malformed request headers"
            ),
            "{extra:?}"
        );
    }
}

/// Guard: a client's `x-auth-*` copies never survive an accepted JWT call with scopes:
/// the three headers are set with OVERWRITE_IF_EXISTS_OR_ADD, none of them is both set
/// and removed (Envoy removes after it sets), and the values are the token's.
#[tokio::test]
async fn guard_every_principal_header_is_overwritten_on_a_scoped_call() {
    let s = server();
    let token = jwt("ada", json!({ "scope": "greeter.read greeter.admin" }));
    let r = ask(
        &s,
        check(
            ADMIN,
            &[
                GRPC,
                ("authorization", &token),
                ("x-auth-subject", "root"),
                ("x-auth-scheme", "mtls"),
                ("x-auth-scopes", "everything"),
            ],
        ),
    )
    .await;
    let allowed = ok(&r);
    assert_eq!(
        set(&allowed.headers),
        vec![
            ("x-auth-subject".to_owned(), "ada".to_owned()),
            ("x-auth-scheme".to_owned(), "jwt".to_owned()),
            (
                "x-auth-scopes".to_owned(),
                "greeter.read greeter.admin".to_owned()
            ),
        ]
    );
    assert!(
        allowed
            .headers
            .iter()
            .all(|h| h.append_action == HeaderAppendAction::OverwriteIfExistsOrAdd as i32)
    );
    assert!(allowed.headers_to_remove.is_empty());
}

/// Guard: the per-address failed-login limit holds through ext_authz when Envoy names
/// one IPv4 client both as `a.b.c.d` and as the IPv4-mapped `::ffff:a.b.c.d` (a
/// dual-stack listener): past 100 failures from that client the next is refused
/// RESOURCE_EXHAUSTED (429), while another address is still judged. A malformed source
/// address (not an IP, a port past 65535) neither panics nor changes the verdict.
#[tokio::test]
async fn guard_failed_logins_are_counted_per_address_across_address_forms() {
    let text = "[basic]\nusers = { ada = \"lovelace-pw-0123\" }\n";
    let s = ExtAuthzServer::new(config(text).layer().unwrap());
    let spray = |i: usize| basic(&format!("user{i}"), "Winter2026!");
    let mut last = (0, 0);
    for i in 0..120 {
        let ip = if i % 2 == 0 {
            "203.0.113.9"
        } else {
            "::ffff:203.0.113.9"
        };
        let req = from_address(check(HELLO, &[GRPC, ("authorization", &spray(i))]), ip, 1);
        last = verdict(&ask(&s, req).await);
    }
    assert_eq!(last, (Code::ResourceExhausted as i32, 429));
    let other = from_address(
        check(HELLO, &[GRPC, ("authorization", &spray(500))]),
        "198.51.100.1",
        1,
    );
    assert_eq!(
        verdict(&ask(&s, other).await),
        (Code::Unauthenticated as i32, 401)
    );
    for (ip, port) in [("not-an-ip", 1), ("198.51.100.2", 70_000), ("", 0)] {
        let req = from_address(
            check(HELLO, &[GRPC, ("authorization", &spray(600))]),
            ip,
            port,
        );
        assert_eq!(
            verdict(&ask(&s, req).await),
            (Code::Unauthenticated as i32, 401),
            "{ip}:{port}"
        );
    }
}

/// Guard: the leaf is the first certificate Envoy sent. An unreadable first
/// certificate (a CERTIFICATE block of garbage DER) is refused as such, never replaced
/// by a valid certificate that follows it; a certificate outside the configured trust
/// domain is refused; and a certificate beside a forged `x-forwarded-client-cert`
/// header is named by the certificate alone.
#[tokio::test]
async fn guard_the_peer_certificate_cannot_be_swapped_or_spoofed() {
    let text = format!("[mtls]\ntrust_domains = [\"prod.test\"]\n{}", toml());
    let s = ExtAuthzServer::new(config(&text).layer().unwrap());
    let pki = tls::test_pki();
    let (good, _) = pki.client_cert(&["spiffe://prod.test/ns/a/sa/b"], &[], "b");
    let (evil, _) = pki.client_cert(&["spiffe://evil.test/ns/a/sa/b"], &[], "b");
    let garbage = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    let r = ask(
        &s,
        with_certificate(check(HELLO, &[GRPC]), &format!("{garbage}{good}")),
    )
    .await;
    assert_eq!(
        (verdict(&r), message(&r)),
        (
            (Code::Unauthenticated as i32, 401),
            "invalid client certificate"
        )
    );
    let r = ask(&s, with_certificate(check(HELLO, &[GRPC]), &evil)).await;
    assert_eq!(
        (verdict(&r), message(&r)),
        (
            (Code::Unauthenticated as i32, 401),
            "client certificate identity not accepted"
        )
    );
    let xfcc = "By=spiffe://prod.test/x;URI=spiffe://prod.test/ns/admin/sa/root";
    let r = ask(
        &s,
        with_certificate(
            check(HELLO, &[GRPC, ("x-forwarded-client-cert", xfcc)]),
            &good,
        ),
    )
    .await;
    assert_eq!(
        set(&ok(&r).headers)[0],
        (
            "x-auth-subject".to_owned(),
            "spiffe://prod.test/ns/a/sa/b".to_owned()
        )
    );
    let r = ask(&s, check(HELLO, &[GRPC, ("x-forwarded-client-cert", xfcc)])).await;
    assert_eq!(verdict(&r), (Code::Unauthenticated as i32, 401));
}

// ---------------------------------------------------------------------------
// Guards: the ExtAuthz authenticator
// ---------------------------------------------------------------------------

/// A scripted `Authorization` service answering `answer`.
#[derive(Clone)]
struct Scripted(CheckResponse);

#[tonic::async_trait]
impl Authorization for Scripted {
    async fn check(
        &self,
        _: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.0.clone()))
    }
}

async fn scripted(answer: CheckResponse) -> ExtAuthz {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(AuthorizationServer::new(Scripted(answer)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ExtAuthz::new(channel)
}

fn option(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyHeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Guard: only the answer's upstream `headers` name the principal: principal-named
/// headers the service sends to the client (`response_headers_to_add`) or asks to
/// remove, and the caller's own metadata, never do.
#[tokio::test]
async fn guard_only_upstream_headers_of_the_answer_name_the_principal() {
    let answer = CheckResponse {
        status: Some(RpcStatus::default()),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![option("x-other", "1")],
            response_headers_to_add: vec![
                option("x-auth-subject", "root"),
                option("x-auth-scopes", "greeter.admin"),
            ],
            headers_to_remove: vec!["x-auth-subject".into()],
            ..Default::default()
        })),
        ..Default::default()
    };
    let ext = scripted(answer).await;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-auth-subject", "root".parse().unwrap());
    headers.insert("x-auth-scheme", "mtls".parse().unwrap());
    let found = ext
        .authenticate(&AuthRequest::new(HELLO, &headers))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            found.principal.subject(),
            found.principal.scheme(),
            found.principal.scopes().len()
        ),
        ("anonymous", "ext-authz", 0)
    );
}

// ---------------------------------------------------------------------------
// Guards: the configuration file
// ---------------------------------------------------------------------------

/// Guard: a key given twice (bare and quoted, a table opened twice, a dotted key beside
/// its table) and a misspelt key in any table are refused, naming the file and a line;
/// a pattern given under `public` and `authenticated` is refused.
#[test]
fn guard_duplicate_and_misspelt_keys_are_refused_with_a_line() {
    let key = "[api_keys]\nkeys = { a = \"k-aaaa\" }\n";
    for text in [
        format!("{key}[policy]\ndeny = [\"/a.B/C\"]\n\"deny\" = [\"/x.Y/Z\"]\n"),
        format!("{key}[policy]\ndeny = [\"/a.B/C\"]\n[policy]\npublic = [\"/a.B/D\"]\n"),
        format!("policy.deny = [\"/a.B/C\"]\n{key}[policy]\npublic = [\"/a.B/D\"]\n"),
        format!("{key}[policy]\nrequire_scope = {{ \"/a.B/C\" = \"x\", '/a.B/C' = \"admin\" }}\n"),
        format!("{key}[policy]\npublic = [\"/a.B/C\"]\nauthenticated = [\"/a.B/C\"]\n"),
        format!("[mtls]\ntrust_domain = [\"prod.test\"]\n{key}"),
        "[api_keys]\nkeys = { a = \"k-aaaa\" }\nheader = \"x-api-key\"\nheaders = \"x\"\n"
            .to_owned(),
        format!("{key}[jwt]\nhs256_secret = {{ env = \"X\", fiel = \"y\" }}\n"),
    ] {
        let e = AuthConfig::from_toml_str(&text, ORIGIN)
            .err()
            .unwrap_or_else(|| panic!("loaded: {text}"));
        assert!(
            e.to_string().starts_with(&format!("{ORIGIN}:")) && e.line().is_some(),
            "{text}: {e}"
        );
    }
}
