//! [`ExtAuthzServer`]: Envoy's `Authorization/Check` answered by an [`AuthLayer`]'s
//! authenticator and policy, deciding through the same steps as the layer.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use http::{Extensions, HeaderMap, HeaderName};
use percent_encoding::{CONTROLS, utf8_percent_encode};
use tonic::{Code, Request, Response, Status};

use super::PrincipalNames;
use crate::authn::{AuthRequest, Authenticated, Authenticator, PeerCertificates};
use crate::authz::Peer;
use crate::layer::{self, Config};
use crate::{AuthError, AuthLayer, Rule};

/// `grpc-message` is percent-encoded (gRPC over HTTP/2): controls, `%` and non-ASCII.
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &CONTROLS.add(b'%');

/// Envoy's external authorization service (`envoy.service.auth.v3.Authorization`) over
/// the authenticator and policies of an [`AuthLayer`]: services behind Envoy, in any
/// language, get the same checks and the same answers as a tonic service wrapped in
/// that layer.
///
/// Each `Check` rebuilds the call as the layer would see it from Envoy's attributes:
/// the method from `request.http.path` (query dropped; a call the layer would allow on
/// a path not in canonical form, such as `/pkg.S//M`, `/pkg.S/%4D` or `/pkg.S/M/`, is
/// refused: `PERMISSION_DENIED`, HTTP 403), the request headers
/// (`header_map` when Envoy sends it, else `headers`; pseudo-headers left out), and the
/// client certificate chain Envoy verified (`source.certificate`, with the filter's
/// `include_peer_certificate: true`), so [`MtlsAuthenticator`](crate::authn::MtlsAuthenticator),
/// certificate-bound tokens and A43 certificate principals work as in a tonic TLS
/// server. Envoy is trusted for what it says: only Envoy may reach this service. Envoy joins repeated headers with commas (two `x-api-key` entries arrive
/// as `k-1,k-2`): such a value is judged as it is, a malformed credential, never split.
/// Then it decides exactly as the layer does (the per-method [`Policy`](crate::Policy),
/// the authenticator, every `authorization` entry judged, the gRFC A43 policy).
///
/// - **Allowed:** `ok_response` sets `x-auth-subject`, `x-auth-scheme` and
///   `x-auth-scopes` (space-separated; names configurable) for the upstream,
///   overwriting any copy the client sent (`OVERWRITE_IF_EXISTS_OR_ADD`); a header
///   without a value (no scopes, a public method) is removed instead, so a forged copy
///   never reaches the upstream. With [`remove_credentials`](Self::remove_credentials)
///   the credentials the call was accepted on are removed too. Response headers an
///   authenticator returns (the Basic-to-Bearer exchange's `authorization: Bearer ..`)
///   go to the client (`response_headers_to_add`).
/// - **Denied:** `status` carries the gRPC code and message; `denied_response` has the
///   HTTP status (401, 403, 503, or 429 for too many failed logins) and the message as
///   its body. Envoy answers a gRPC request (`content-type: application/grpc..`) with
///   a trailers-only error whose `grpc-status` it derives from that HTTP status
///   (UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE; 429 becomes UNAVAILABLE) and
///   whose `grpc-message` is the body; `grpc-status`/`grpc-message` headers say the
///   same. A plain HTTP 401 carries a `WWW-Authenticate` challenge.
///
/// ```no_run
/// use grpc_auth::ext_authz::ExtAuthzServer;
/// use grpc_auth::authn::ApiKeyAuthenticator;
/// use grpc_auth::{AuthLayer, Policy};
/// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = AuthLayer::new(ApiKeyAuthenticator::new().key("k-123", "billing"))
///     .policy(Policy::new().public("/grpc.health.v1.Health/*"));
/// tonic::transport::Server::builder()
///     .add_service(ExtAuthzServer::new(layer).into_service())
///     .serve("127.0.0.1:9001".parse()?)
///     .await?;
/// # Ok(()) }
/// ```
pub struct ExtAuthzServer<A> {
    authenticator: Arc<A>,
    config: Arc<Config>,
    names: PrincipalNames,
    remove_credentials: bool,
    challenge: String,
}

impl<A: Authenticator> ExtAuthzServer<A> {
    /// Answers with `layer`'s authenticator, method policy and authorization policy.
    pub fn new(layer: AuthLayer<A>) -> Self {
        Self {
            authenticator: layer.authenticator,
            config: layer.config,
            names: PrincipalNames::default(),
            remove_credentials: false,
            challenge: "Bearer".to_owned(),
        }
    }

    /// The upstream headers naming the principal (default `x-auth-subject`,
    /// `x-auth-scheme`, `x-auth-scopes`).
    pub fn principal_headers(
        mut self,
        subject: HeaderName,
        scheme: HeaderName,
        scopes: HeaderName,
    ) -> Self {
        self.names = PrincipalNames {
            subject,
            scheme,
            scopes,
        };
        self
    }

    /// Removes the credentials a call was accepted on (`authorization`, `x-api-key`,
    /// ...) before Envoy forwards it: the upstream sees only the principal headers.
    pub fn remove_credentials(mut self, remove: bool) -> Self {
        self.remove_credentials = remove;
        self
    }

    /// The `WWW-Authenticate` challenge of a plain-HTTP 401 (default `Bearer`).
    pub fn challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = challenge.into();
        self
    }

    /// The tonic service to add to a server.
    pub fn into_service(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }

    /// The layer's verdict on the call Envoy describes: the principal (`None` for a
    /// public method) or why it is refused.
    async fn decide(
        &self,
        path: &str,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Option<Authenticated>, AuthError> {
        let rule = self.config.policy.shared_rule_for(path);
        if rule.is_public() {
            layer::public_check(&self.config, path, headers, || {
                Peer::for_call(None, extensions)
            })?;
            return Ok(None);
        }
        if matches!(**rule, Rule::Deny) {
            return Err(layer::method_denied());
        }
        let ctx = AuthRequest::new(path, headers)
            .with_extensions(extensions)
            .with_max_value_len(self.config.max_value_len);
        let authenticated = self.authenticator.authenticate(&ctx).await;
        layer::judge(
            authenticated,
            rule,
            self.config.authz.as_ref(),
            path,
            headers,
            |p| Peer::for_call(Some(p), extensions),
        )
        .map(Some)
    }

    fn allowed(&self, found: Option<Authenticated>) -> Result<CheckResponse, AuthError> {
        let mut ok = OkHttpResponse::default();
        let (subject, scheme, scopes) = match &found {
            Some(f) => principal_values(&f.principal)?,
            None => (String::new(), String::new(), String::new()),
        };
        for (name, value) in [
            (&self.names.subject, subject),
            (&self.names.scheme, scheme),
            (&self.names.scopes, scopes),
        ] {
            // Envoy removes after it sets: a header it sets is never listed for removal.
            if value.is_empty() {
                ok.headers_to_remove.push(name.as_str().to_owned());
            } else {
                ok.headers.push(overwrite(name.as_str(), value));
            }
        }
        if let Some(mut found) = found {
            if self.remove_credentials {
                for name in found.credentials() {
                    if ![&self.names.subject, &self.names.scheme, &self.names.scopes]
                        .contains(&name)
                    {
                        ok.headers_to_remove.push(name.as_str().to_owned());
                    }
                }
            }
            if let Some(headers) = found.take_response_headers() {
                for (name, value) in headers.iter() {
                    if let Ok(value) = value.to_str() {
                        ok.response_headers_to_add
                            .push(overwrite(name.as_str(), value.to_owned()));
                    }
                }
            }
        }
        Ok(CheckResponse {
            status: Some(RpcStatus {
                code: Code::Ok as i32,
                ..RpcStatus::default()
            }),
            http_response: Some(HttpResponse::OkResponse(ok)),
            ..CheckResponse::default()
        })
    }

    fn denied(&self, e: &AuthError, grpc: bool) -> CheckResponse {
        let code = e.code();
        let message = e.to_string();
        // Envoy answers a gRPC request with a trailers-only response whose grpc-status it
        // derives from this HTTP status (401: 16, 403: 7, 503 and 429: 14) and whose
        // grpc-message is the body; the grpc-* headers say the same for any proxy that
        // reads them instead.
        let http = match code {
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            _ => 503,
        };
        let mut headers = Vec::new();
        if grpc {
            headers.push(overwrite("grpc-status", (code as i32).to_string()));
            headers.push(overwrite(
                "grpc-message",
                utf8_percent_encode(&message, GRPC_MESSAGE).to_string(),
            ));
        } else {
            if code == Code::Unauthenticated {
                headers.push(overwrite("www-authenticate", self.challenge.clone()));
            }
            headers.push(overwrite("content-type", "text/plain".to_owned()));
        }
        CheckResponse {
            status: Some(RpcStatus {
                code: code as i32,
                message: message.clone(),
                ..RpcStatus::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: http }),
                headers,
                body: message,
            })),
            ..CheckResponse::default()
        }
    }
}

/// What Envoy says of the downstream connection, as the layer finds it in a tonic
/// server's request extensions: the client's address (`source.address`: the failed-login
/// limit per address), the client certificate chain Envoy verified
/// (`source.certificate`, URL-encoded PEM, sent with `include_peer_certificate: true`),
/// or TLS without one (`tls_session`). Envoy is trusted for it: the ext_authz server
/// must be reachable by Envoy alone.
fn connection(attributes: &AttributeContext) -> Extensions {
    let mut extensions = Extensions::new();
    // The client's address, for the per-address failed-login limit.
    let remote = attributes
        .source
        .as_ref()
        .and_then(|s| s.address.as_ref())
        .and_then(|a| match &a.address {
            Some(address::Address::SocketAddress(sa)) => {
                let ip: std::net::IpAddr = sa.address.parse().ok()?;
                let port = match sa.port_specifier {
                    Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(p).ok()?,
                    _ => 0,
                };
                Some(std::net::SocketAddr::new(ip, port))
            }
            _ => None,
        });
    if let Some(remote) = remote {
        extensions.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(remote),
        });
    }
    let pem = attributes
        .source
        .as_ref()
        .map(|s| s.certificate.as_str())
        .filter(|c| !c.is_empty());
    let chain = pem.map(|pem| {
        let pem = percent_encoding::percent_decode_str(pem).collect::<Vec<u8>>();
        x509_parser::pem::Pem::iter_from_buffer(&pem)
            .map_while(Result::ok)
            .filter(|p| p.label == "CERTIFICATE")
            .map(|p| p.contents)
            .collect::<Vec<_>>()
    });
    match chain {
        Some(chain) => {
            extensions.insert(PeerCertificates::from_der(chain));
        }
        None if attributes.tls_session.is_some() => {
            extensions.insert(PeerCertificates::from_der(Vec::new()));
        }
        None => {}
    }
    extensions
}

/// The principal as the upstream gets it: subject, scheme, and the scopes joined with
/// spaces. In process a principal travels in the request's extensions; here it becomes
/// header values, so a subject with a line break (a crafted `sub`), a scope containing
/// a space (one scope that would read as two upstream) or any value that is not a valid
/// header value refuses the call rather than reach the upstream altered. So does a
/// value with a space at either end: an HTTP/1 upstream trims it and would read
/// `sub: "ada "` as the principal `ada`.
fn principal_values(p: &crate::Principal) -> Result<(String, String, String), AuthError> {
    let valid = |v: &str| {
        http::HeaderValue::from_str(v).is_ok()
            && !v.bytes().any(|b| b.is_ascii_control())
            && v.trim_matches(' ').len() == v.len()
    };
    let scopes = p.scopes();
    let scope_ok = |s: &String| !s.is_empty() && valid(s) && !s.bytes().any(|b| b == b' ');
    if !valid(p.subject()) || !valid(p.scheme()) || !scopes.iter().all(scope_ok) {
        return Err(AuthError::unauthenticated(
            "the principal cannot be passed on in a header",
        ));
    }
    Ok((
        p.subject().to_owned(),
        p.scheme().to_owned(),
        scopes.join(" "),
    ))
}

/// Refuses a path that is not in canonical form: the policy matches the path as written,
/// while an upstream behind Envoy may route on a cleaned-up one (decoded `%XX`, merged
/// or trailing slashes, dot segments, `;` parameters dropped, `\` taken for `/`), so that
/// `/pkg.Admin/%44elete` or `/pkg.Admin//Delete` would miss a rule written for
/// `/pkg.Admin/Delete` and reach it. A gRPC method (`/package.Service/Method`) is always
/// canonical; so is `/` alone.
fn canonical(path: &str) -> Result<(), AuthError> {
    let refuse = || {
        Err(AuthError::permission_denied(
            "path is not in canonical form",
        ))
    };
    let Some(rest) = path.strip_prefix('/') else {
        return refuse();
    };
    if rest.is_empty() {
        return Ok(());
    }
    let visible = |b: u8| b.is_ascii_graphic() && !matches!(b, b'%' | b';' | b'\\');
    if !rest.bytes().all(visible)
        || rest
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return refuse();
    }
    Ok(())
}

/// A header Envoy sets, replacing any value the request already has.
fn overwrite(name: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value,
            ..HeaderValue::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

/// The request headers Envoy described: `header_map` (with `raw_value` when Envoy
/// encodes raw headers) or else the `headers` map, without pseudo-headers. A name or
/// value that is not valid HTTP refuses the check: dropping it could change what is
/// judged (a second credential entry, an `authorization` value).
fn request_headers(http: &HttpRequest) -> Result<HeaderMap, AuthError> {
    let mut headers = HeaderMap::new();
    let mut add = |key: &str, value: &[u8]| {
        if key.starts_with(':') {
            return Ok(());
        }
        match (
            HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            // `try_append`: more than `HeaderMap` holds (32,768) is refused, not a panic.
            (Ok(name), Ok(value)) => headers
                .try_append(name, value)
                .map(drop)
                .map_err(|_| AuthError::unauthenticated("malformed request headers")),
            _ => Err(AuthError::unauthenticated("malformed request headers")),
        }
    };
    match &http.header_map {
        Some(map) if !map.headers.is_empty() => {
            for h in &map.headers {
                let value = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                };
                add(&h.key, value)?;
            }
        }
        _ => {
            for (key, value) in &http.headers {
                add(key, value.as_bytes())?;
            }
        }
    }
    Ok(headers)
}

/// Whether Envoy described a gRPC request (`content-type: application/grpc..`).
fn is_grpc(http: &HttpRequest) -> bool {
    let from_map = http.header_map.as_ref().and_then(|m| {
        m.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case("content-type"))
            .map(|h| {
                if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                }
            })
    });
    from_map
        .or_else(|| http.headers.get("content-type").map(String::as_bytes))
        .is_some_and(|ct| ct.starts_with(b"application/grpc"))
}

#[tonic::async_trait]
impl<A: Authenticator> Authorization for ExtAuthzServer<A> {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let extensions = connection(&attributes);
        let Some(http) = attributes.request.and_then(|r| r.http) else {
            let e = AuthError::unauthenticated("the check describes no HTTP request");
            return Ok(Response::new(self.denied(&e, false)));
        };
        // The method is the path without a query or a fragment.
        let path = http.path.split(['?', '#']).next().unwrap_or_default();
        let grpc = is_grpc(&http);
        let answer = match request_headers(&http) {
            Ok(headers) => self.decide(path, &headers, &extensions).await,
            Err(e) => Err(e),
        }
        // After the decision, so that a call refused anyway keeps the layer's answer
        // (no credentials: UNAUTHENTICATED); before anything is allowed.
        .and_then(|found| canonical(path).map(|()| found))
        .and_then(|found| {
            tracing::trace!(
                method = path,
                subject = found.as_ref().map(|f| f.principal.subject()),
                "grpc-auth: ext_authz accepted"
            );
            self.allowed(found)
        });
        Ok(Response::new(match answer {
            Ok(ok) => ok,
            Err(e) => {
                layer::log_rejection(path, &e);
                self.denied(&e, grpc)
            }
        }))
    }
}

impl<A> std::fmt::Debug for ExtAuthzServer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtAuthzServer")
            .field("authenticator", &std::any::type_name::<A>())
            .field("policy", &self.config.policy)
            .field("subject_header", &self.names.subject)
            .field("remove_credentials", &self.remove_credentials)
            .finish_non_exhaustive()
    }
}
