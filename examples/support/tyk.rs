//! A Tyk Gateway coprocess plugin (gRPC `coprocess.Dispatcher`) whose auth_check hook
//! verifies HMAC request signatures with grpc-auth's `HmacVerifier`. Shared by
//! `examples/tyk_plugin.rs` and `tests/tyk_plugin.rs` (included with `#[path]`).
//!
//! - `CustomKeyCheck`: reads `Authorization` and `Date` (and any other signed header)
//!   from `request.headers`; the request target is the request's method and path. On
//!   success the object goes back with `session` set and `metadata["token"]` = the key
//!   id; on failure `session` stays unset and `request.return_overrides` carries
//!   `response_code` (400 malformed, 401 refused, 503 key store down) and
//!   `response_error` (the reason, never a secret).
//! - `Pre`, `Post`, `PostKeyAuth`, `Response`: logged as JSON (credential-bearing
//!   headers and session secrets left out) and returned unchanged.
//! - `DispatchEvent`: the event payload is logged (redacted) and an empty reply sent.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use grpc_auth::authn::hmac::{HmacError, HmacVerified, HmacVerifier, StaticHmacKeys};
use grpc_auth::clock::{Clock, SystemClock};
use grpc_auth_protos::coprocess::dispatcher_server::{Dispatcher, DispatcherServer};
use grpc_auth_protos::coprocess::{
    Event, EventReply, HookType, MiniRequestObject, Object, ReturnOverrides, SessionState,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Rate limit given to every verified key: 1000 requests per second.
pub(crate) const SESSION_RATE: f64 = 1000.0;
/// The rate limit's period in seconds.
pub(crate) const SESSION_PER: f64 = 1.0;
/// Quota: -1 is Tyk's "unlimited".
pub(crate) const SESSION_QUOTA_MAX: i64 = -1;
/// Quota renewal period in seconds.
pub(crate) const SESSION_QUOTA_RENEWAL_RATE: i64 = 3600;

/// What the plugin is configured with (the example's flags).
#[derive(Debug, Clone)]
pub(crate) struct PluginConfig {
    /// `(key id, secret)`; the secret's bytes are the HMAC key as given.
    pub(crate) hmac_keys: Vec<(String, String)>,
    /// Allowed distance of `Date` from the clock; `None` accepts any date.
    pub(crate) max_skew: Option<Duration>,
    /// Accepted signatures remembered against replay; 0 turns replay protection off
    /// (date-only signatures without a nonce repeat within one second).
    pub(crate) replay_cache_size: usize,
    /// Where time comes from (tests: a `ManualClock`).
    pub(crate) clock: Arc<dyn Clock>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            hmac_keys: Vec::new(),
            max_skew: Some(std::time::Duration::from_secs(300)),
            replay_cache_size: 65_536,
            clock: Arc::new(SystemClock),
        }
    }
}

/// A shared clock handed to the verifier.
#[derive(Debug, Clone)]
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }

    fn monotonic(&self) -> std::time::Duration {
        self.0.monotonic()
    }
}

/// The coprocess `Dispatcher`.
#[derive(Debug, Clone)]
pub(crate) struct TykPlugin {
    verifier: HmacVerifier<StaticHmacKeys>,
    clock: Arc<dyn Clock>,
}

impl TykPlugin {
    /// A plugin verifying with `config`'s keys. Date-only signatures (the Tyk demo's
    /// `hmac.sh`) are accepted; a signature that lists `(request-target)` is checked
    /// against the request's method and path.
    pub(crate) fn new(config: &PluginConfig) -> Self {
        let keys: StaticHmacKeys = config.hmac_keys.iter().cloned().collect();
        let mut verifier = HmacVerifier::new(keys)
            .allow_date_only()
            .clock(SharedClock(config.clock.clone()));
        verifier = match config.replay_cache_size {
            0 => verifier.no_replay_protection(),
            entries => verifier.replay_cache_size(entries),
        };
        verifier = match config.max_skew {
            Some(skew) => verifier.max_skew(skew),
            None => verifier.no_skew_check(),
        };
        Self {
            verifier,
            clock: config.clock.clone(),
        }
    }

    /// Handles one hook call: verifies on `CustomKeyCheck`, logs the other hooks.
    pub(crate) async fn handle(&self, mut object: Object) -> Object {
        match HookType::try_from(object.hook_type) {
            Ok(HookType::CustomKeyCheck) => self.auth_check(&mut object).await,
            Ok(hook) => tracing::info!(
                hook = hook.as_str_name(),
                object = %hook_json(&object),
                "tyk-plugin: hook"
            ),
            Err(_) => tracing::warn!(
                hook_type = object.hook_type,
                "tyk-plugin: unknown hook type, object returned unchanged"
            ),
        }
        object
    }

    async fn auth_check(&self, object: &mut Object) {
        let request = object
            .request
            .get_or_insert_with(MiniRequestObject::default);
        let headers = header_map(&request.headers);
        let path = request_path(request);
        let method = if request.method.is_empty() {
            "GET"
        } else {
            &request.method
        };
        match self.verifier.verify(method, path, &headers).await {
            Ok(verified) => {
                tracing::info!(
                    hook = object.hook_name.as_str(),
                    key_id = verified.key_id.as_str(),
                    algorithm = verified.algorithm.name(),
                    "tyk-plugin: accepted"
                );
                object.session = Some(self.session(&verified));
                object.metadata.insert("token".into(), verified.key_id);
            }
            Err(e) => {
                let code = status_for(&e);
                tracing::info!(
                    hook = object.hook_name.as_str(),
                    code,
                    reason = %e,
                    "tyk-plugin: rejected"
                );
                object.session = None;
                let overrides = request
                    .return_overrides
                    .get_or_insert_with(ReturnOverrides::default);
                overrides.response_code = code;
                overrides.response_error = e.to_string();
            }
        }
    }

    /// The session a verified key gets: rate limit and quota as the constants above,
    /// no expiry (the plugin verifies every request), the key id as alias and metadata.
    fn session(&self, verified: &HmacVerified) -> SessionState {
        let now = i64::try_from(self.clock.unix_seconds()).unwrap_or(i64::MAX);
        SessionState {
            rate: SESSION_RATE,
            per: SESSION_PER,
            allowance: SESSION_RATE,
            quota_max: SESSION_QUOTA_MAX,
            quota_remaining: SESSION_QUOTA_MAX,
            quota_renewal_rate: SESSION_QUOTA_RENEWAL_RATE,
            quota_renews: now.saturating_add(SESSION_QUOTA_RENEWAL_RATE),
            expires: 0,
            alias: verified.key_id.clone(),
            last_updated: now.to_string(),
            metadata: HashMap::from([
                ("token".to_owned(), verified.key_id.clone()),
                (
                    "hmac_algorithm".to_owned(),
                    verified.algorithm.name().to_owned(),
                ),
            ]),
            ..Default::default()
        }
    }
}

/// 400 for a request that is not well-formed, 503 when the check could not be made
/// (key store down, replay cache full), else 401.
pub(crate) fn status_for(e: &HmacError) -> i32 {
    if e.is_malformed() {
        400
    } else if e.is_unavailable() {
        503
    } else {
        401
    }
}

/// The gateway's header map (Go-canonical names, first value only) as a `HeaderMap`.
/// Entries that are not valid HTTP names or values are left out.
pub(crate) fn header_map(headers: &HashMap<String, String>) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}

/// The path the client requested: `url` (what the gateway rebuilds the request from),
/// else `request_uri`; an absolute URL is cut to its path. The verifier drops the query.
pub(crate) fn request_path(request: &MiniRequestObject) -> &str {
    let url = if request.url.is_empty() {
        &request.request_uri
    } else {
        &request.url
    };
    // Absolute only when it starts with a scheme (`http://host/path`): a `://` further on
    // (`/admin?next=http://x/public`) belongs to the path or query, which the signature
    // must cover as they are.
    let scheme = url.find("://").filter(|&i| {
        let mut name = url.bytes().take(i);
        name.next().is_some_and(|b| b.is_ascii_alphabetic())
            && name.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let Some(i) = scheme else {
        return url;
    };
    let rest = url.get(i + 3..).unwrap_or_default();
    // The path starts where the authority ends; without one (`http://host?q`), `/`.
    match rest.find(['/', '?', '#']) {
        Some(at) if rest.get(at..).is_some_and(|p| p.starts_with('/')) => {
            rest.get(at..).unwrap_or("/")
        }
        _ => "/",
    }
}

/// Whether a header, metadata or JSON field name may carry a credential.
fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "key",
        "cookie",
        "signature",
        "password",
    ]
    .iter()
    .any(|s| n.contains(s))
}

fn redacted(map: &HashMap<String, String>) -> Value {
    map.iter()
        .map(|(k, v)| {
            let v = if is_sensitive(k) { "[redacted]" } else { v };
            (k.clone(), Value::from(v))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A URL for the log: its query (which may carry `?api_key=...` or `?access_token=...`)
/// replaced by `[redacted]`.
fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?[redacted]"),
        None => url.to_owned(),
    }
}

/// A hook's object as JSON for the log: what a reader needs, no credentials, no bodies.
pub(crate) fn hook_json(object: &Object) -> Value {
    let hook = HookType::try_from(object.hook_type)
        .map(|h| h.as_str_name())
        .unwrap_or("Unknown");
    json!({
        "hook_type": hook,
        "hook_name": object.hook_name,
        "request": object.request.as_ref().map(|r| json!({
            "method": r.method,
            "url": without_query(&r.url),
            "request_uri": without_query(&r.request_uri),
            "scheme": r.scheme,
            "headers": redacted(&r.headers),
            "params": redacted(&r.params),
            "body_bytes": r.raw_body.len().max(r.body.len()),
            "return_overrides": r.return_overrides.as_ref().map(|o| json!({
                "response_code": o.response_code,
                "response_error": o.response_error,
            })),
        })),
        "session": object.session.as_ref().map(|s| json!({
            "alias": s.alias,
            "rate": s.rate,
            "per": s.per,
            "quota_max": s.quota_max,
            "quota_remaining": s.quota_remaining,
            "expires": s.expires,
            "metadata": redacted(&s.metadata),
        })),
        "metadata": redacted(&object.metadata),
        "spec": redacted(&object.spec),
        "response": object.response.as_ref().map(|r| json!({
            "status_code": r.status_code,
            "headers": redacted(&r.headers),
            "body_bytes": r.raw_body.len().max(r.body.len()),
        })),
    })
}

/// An event payload for the log: JSON with credential-like fields redacted, else its size.
pub(crate) fn event_json(payload: &str) -> Value {
    fn redact(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if is_sensitive(k) && !v.is_object() && !v.is_array() {
                        *v = Value::from("[redacted]");
                    } else {
                        redact(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(payload) {
        Ok(mut v) => {
            redact(&mut v);
            v
        }
        Err(_) => json!({ "non_json_payload_bytes": payload.len() }),
    }
}

#[tonic::async_trait]
impl Dispatcher for TykPlugin {
    async fn dispatch(&self, request: Request<Object>) -> Result<Response<Object>, Status> {
        Ok(Response::new(self.handle(request.into_inner()).await))
    }

    async fn dispatch_event(
        &self,
        request: Request<Event>,
    ) -> Result<Response<EventReply>, Status> {
        let event = request.into_inner();
        tracing::info!(event = %event_json(&event.payload), "tyk-plugin: event");
        Ok(Response::new(EventReply {}))
    }
}

/// Serves the plugin on `listener`, plaintext (the gateway dials plugins without TLS).
pub(crate) async fn serve(
    listener: TcpListener,
    plugin: TykPlugin,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tonic::transport::Server::builder()
        .add_service(DispatcherServer::new(plugin))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// Starts the plugin on 127.0.0.1:0 in the background and returns its address.
pub(crate) async fn spawn(plugin: TykPlugin) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        if let Err(e) = serve(listener, plugin).await {
            eprintln!("tyk plugin failed: {e}");
        }
    });
    addr
}
