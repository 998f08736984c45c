//! Checks as Envoy sends them to the ext_authz server, made in process or over gRPC, and
//! the example binaries run as Envoy's authorization service: the helpers the later
//! reviews (12 to 15) share. Include it with `#[path = "support/checks.rs"] mod checks;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use base64::Engine as _;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse,
};

/// A check as Envoy sends it, optionally with the client certificate it verified.
pub(crate) fn check_request(
    path: &str,
    headers: &[(&str, &str)],
    cert_pem: Option<&str>,
) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert(":path".into(), path.into());
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

pub(crate) fn code_and_message(r: &CheckResponse) -> (i32, String) {
    let s = r.status.clone().unwrap_or_default();
    (s.code, s.message)
}

/// The `authorization` header an allowed check adds to the upstream response.
pub(crate) fn issued(r: &CheckResponse) -> Option<String> {
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        return None;
    };
    ok.response_headers_to_add
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case("authorization"))
        .map(|h| h.value.clone())
}

pub(crate) async fn ask(server: &impl Authorization, req: CheckRequest) -> CheckResponse {
    server
        .check(tonic::Request::new(req))
        .await
        .unwrap()
        .into_inner()
}

/// The SHA-256 thumbprint (base64url, RFC 8705 `x5t#S256`) of a PEM certificate.
pub(crate) fn thumbprint(pem: &str) -> String {
    use sha2::Digest as _;
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// An example binary, killed on drop.
pub(crate) struct Example(pub(crate) std::process::Child, pub(crate) SocketAddr);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn example_path(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        Some(path)
    } else {
        if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!(
                "GRPC_AUTH_REQUIRE_INTEROP=1 but {} not built",
                path.display()
            );
        }
        eprintln!("skipping: {} not built", path.display());
        None
    }
}

pub(crate) async fn ask_over(addr: SocketAddr, req: CheckRequest) -> CheckResponse {
    let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthorizationClient::new(ch)
        .check(req)
        .await
        .unwrap()
        .into_inner()
}
