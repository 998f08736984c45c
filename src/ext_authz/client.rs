//! [`ExtAuthz`]: an authenticator that asks an external authorization service (Envoy's
//! `Authorization/Check`: an OPA-Envoy sidecar, or grpc-auth's own
//! [`ExtAuthzServer`](super::ExtAuthzServer)).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderValueOption, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use http::{HeaderName, HeaderValue};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::Semaphore;
use tonic::Code;
use tonic::transport::Channel;

use super::PrincipalNames;
use crate::authn::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::{AuthError, Principal};

/// Default bound on one check.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on checks in flight; more are `UNAVAILABLE` at once.
const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// The longest message of a refusal passed on to the caller.
const MAX_MESSAGE: usize = 256;

/// Authenticates each call by asking an external authorization service over Envoy's
/// `envoy.service.auth.v3.Authorization/Check`, as Envoy's `ext_authz` filter would:
/// the method as `request.http.path` (`POST`, HTTP/2), the call's metadata as the
/// request headers (repeated entries joined with commas, as Envoy does), and as
/// `source` the client's address and the client certificate this server's TLS verified
/// (so the service's mTLS identities, bound tokens and per-address limits apply).
///
/// - **OK:** the principal is named by the answer's upstream headers `x-auth-subject`,
///   `x-auth-scheme` and `x-auth-scopes` (what [`ExtAuthzServer`](super::ExtAuthzServer)
///   sets; names configurable); a service that sets none (an OPA policy) yields the
///   subject `anonymous` with the scheme `ext-authz`. `response_headers_to_add` reach
///   the client (a Basic-to-Bearer exchange's token).
/// - **Denied:** the answer's gRPC code: 16 is `UNAUTHENTICATED`, 14 `UNAVAILABLE`, 8
///   `RESOURCE_EXHAUSTED`, anything else `PERMISSION_DENIED`; its message is passed on,
///   cut to 256 bytes. An answer without a status, or OK beside a denied response, is no
///   verdict: `UNAVAILABLE`.
/// - **The service down, slow (2 s by default) or failing:** `UNAVAILABLE`. At most
///   1,024 checks are in flight; more are `UNAVAILABLE` at once, nothing queues.
///
/// ```no_run
/// use grpc_auth::AuthLayer;
/// use grpc_auth::ext_authz::ExtAuthz;
/// # fn layer() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9001").connect_lazy();
/// let layer = AuthLayer::new(ExtAuthz::new(channel));
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ExtAuthz {
    client: AuthorizationClient<Channel>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    names: PrincipalNames,
}

impl ExtAuthz {
    /// Asks the service at the other end of `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            client: AuthorizationClient::new(channel),
            timeout: DEFAULT_TIMEOUT,
            permits: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            names: PrincipalNames::default(),
        }
    }

    /// The bound on one check (default 2 s): past it the call is `UNAVAILABLE`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many checks may be in flight (default 1,024); more are `UNAVAILABLE`.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.permits = Arc::new(Semaphore::new(max.max(1)));
        self
    }

    /// The answer's headers that name the principal (default `x-auth-subject`,
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

    fn request(req: &AuthRequest<'_>) -> CheckRequest {
        let mut headers: HashMap<String, String> = HashMap::new();
        for (name, value) in req.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        headers.insert(":path".to_owned(), req.method().to_owned());
        headers.insert(":method".to_owned(), "POST".to_owned());
        // What Envoy would say of the connection: the client's address and the client
        // certificate this server's TLS verified (URL-encoded PEM), so the service can
        // apply per-address limits, mTLS identities and certificate-bound tokens.
        let source = Peer {
            address: req.remote_addr().map(|a| Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: a.ip().to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                        a.port(),
                    ))),
                    ..SocketAddress::default()
                })),
            }),
            certificate: req
                .peer_certificates()
                .and_then(|c| c.leaf().map(pem))
                .map(|pem| utf8_percent_encode(&pem, NON_ALPHANUMERIC).to_string())
                .unwrap_or_default(),
            ..Peer::default()
        };
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(source),
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "POST".to_owned(),
                        path: req.method().to_owned(),
                        protocol: "HTTP/2".to_owned(),
                        headers,
                        ..HttpRequest::default()
                    }),
                    ..Request::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    fn accepted(
        &self,
        headers: &[HeaderValueOption],
        to_client: &[HeaderValueOption],
    ) -> Authenticated {
        let find = |name: &HeaderName| {
            headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key.eq_ignore_ascii_case(name.as_str()))
                .map(|h| h.value.clone())
                .filter(|v| !v.is_empty())
        };
        let subject = find(&self.names.subject).unwrap_or_else(|| "anonymous".to_owned());
        let scheme = find(&self.names.scheme).unwrap_or_else(|| "ext-authz".to_owned());
        let scopes: Vec<String> = find(&self.names.scopes)
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut found = Authenticated::new(Principal::new(subject, scheme).with_scopes(scopes))
            .with_credential(http::header::AUTHORIZATION);
        for h in to_client.iter().filter_map(|h| h.header.as_ref()) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(h.key.as_bytes()),
                HeaderValue::from_str(&h.value),
            ) {
                found = found.with_response_header(name, value);
            }
        }
        found
    }
}

/// A DER certificate as PEM.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// At most [`MAX_MESSAGE`] bytes of `message`, on a character boundary.
fn bounded(message: &str) -> String {
    let mut end = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.get(..end).unwrap_or_default().to_owned()
}

impl Authenticator for ExtAuthz {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(AuthError::unavailable(
                "too many authorization checks in progress",
            ));
        };
        let check = Self::request(req);
        let mut client = self.client.clone();
        let answer = match tokio::time::timeout(self.timeout, client.check(check)).await {
            Err(_) => {
                let ms = self.timeout.as_millis();
                tracing::warn!(
                    "grpc-auth: the authorization service did not answer within {ms} ms"
                );
                return Err(AuthError::unavailable(format!(
                    "authorization service did not answer within {ms} ms"
                )));
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), "grpc-auth: the authorization service failed");
                return Err(AuthError::unavailable(format!(
                    "authorization service failed ({:?})",
                    status.code()
                )));
            }
            Ok(Ok(answer)) => answer.into_inner(),
        };
        // No verdict is no acceptance: an empty answer (a stub, a catch-all route) and an
        // OK status beside a denied response are refused.
        let Some(status) = answer.status else {
            return Err(AuthError::unavailable(
                "authorization service gave no verdict",
            ));
        };
        let (code, message) = (status.code, status.message);
        if code == Code::Ok as i32 {
            return match &answer.http_response {
                Some(HttpResponse::OkResponse(ok)) => Ok(Some(
                    self.accepted(&ok.headers, &ok.response_headers_to_add),
                )),
                None => Ok(Some(self.accepted(&[], &[]))),
                Some(_) => Err(AuthError::unavailable(
                    "authorization service gave contradictory verdicts",
                )),
            };
        }
        let message = if message.is_empty() {
            "denied by the authorization service".to_owned()
        } else {
            bounded(&message)
        };
        Err(match Code::from_i32(code) {
            Code::Unauthenticated => AuthError::unauthenticated(message),
            Code::Unavailable => AuthError::unavailable(message),
            Code::ResourceExhausted => AuthError::resource_exhausted(message),
            _ => AuthError::permission_denied(message),
        })
    }
}

impl std::fmt::Debug for ExtAuthz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtAuthz")
            .field("timeout", &self.timeout)
            .field("subject_header", &self.names.subject)
            .finish_non_exhaustive()
    }
}
