//! A real OpenID Connect / OAuth 2.0 authorization server for the tests: panva's
//! `oidc-provider` (npm) run by `node tests/oidc/provider.mjs` on its own port on
//! 127.0.0.1, plain http, issuer `http://127.0.0.1:{port}`, killed (by process id) on
//! drop. Tests include it with `#[path = "support/oidc.rs"] mod oidc;`.
//!
//! When `node` is not on `PATH` or `tests/oidc/node_modules` is not installed
//! (`npm ci --prefix tests/oidc`), [`OidcProvider::start`] returns `None` (the test
//! skips), or panics when `GRPC_AUTH_REQUIRE_INTEROP=1` (CI: the tests must run).
//!
//! What the provider knows (see `tests/oidc/provider.mjs`):
//! - clients, all `client_credentials` and token exchange (RFC 8693): [`CLIENT_ID`]
//!   (`client_secret_basic`), [`POST_CLIENT_ID`] (`client_secret_post`), [`RS_CLIENT_ID`]
//!   (`client_secret_basic`; introspects every client's tokens, the others only their
//!   own) and, with [`Options::pkjwt_jwks`], [`PKJWT_CLIENT_ID`] (`private_key_jwt`,
//!   RS256). A secret sent the other way (Basic for the `_post` client, the body for a
//!   `_basic` one) is `invalid_client`;
//! - resources: [`JWT_RESOURCE`] gives RS256 JWT access tokens (`typ: at+jwt`, `aud` the
//!   resource; not introspectable nor revocable there), [`OPAQUE_RESOURCE`] or none
//!   gives opaque ones; scopes [`SCOPES`] (others are dropped with a resource);
//! - `GET /test/stats`: the POSTs received at the token, introspection and revocation
//!   endpoints ([`OidcProvider::stats`]).
//!
//! State (tokens, replayed `jti`s) lives in the process: [`OidcProvider::restart`] loses
//! it, and the signing key is new on every start.
//!
//! The helpers speak HTTP/1.0 over a plain blocking `TcpStream`: call them from a test's
//! thread or `spawn_blocking`, not on a runtime's worker.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

/// The `client_secret_basic` client.
pub(crate) const CLIENT_ID: &str = "grpc-auth-client";
/// [`CLIENT_ID`]'s secret.
pub(crate) const CLIENT_SECRET: &str = "grpc-auth-secret";
/// The `client_secret_post` client.
pub(crate) const POST_CLIENT_ID: &str = "grpc-auth-post";
/// [`POST_CLIENT_ID`]'s secret.
pub(crate) const POST_CLIENT_SECRET: &str = "post-secret";
/// The resource server's client (`client_secret_basic`), allowed to introspect every
/// client's tokens.
pub(crate) const RS_CLIENT_ID: &str = "grpc-auth-rs";
/// [`RS_CLIENT_ID`]'s secret.
pub(crate) const RS_CLIENT_SECRET: &str = "rs-secret";
/// The `private_key_jwt` client (RS256), present with [`Options::pkjwt_jwks`]. Its
/// assertion: `iss` = `sub` = this id, `aud` the issuer or the token endpoint URL (or the
/// URL of the endpoint it is sent to), `exp` and a `jti` never used before required.
pub(crate) const PKJWT_CLIENT_ID: &str = "grpc-auth-pkjwt";
/// The resource whose access tokens are RS256 JWTs.
pub(crate) const JWT_RESOURCE: &str = "urn:grpc-auth:jwt";
/// The resource whose access tokens are opaque.
pub(crate) const OPAQUE_RESOURCE: &str = "urn:grpc-auth:opaque";
/// The scopes the resources know.
pub(crate) const SCOPES: &str = "greeter.read greeter.admin";
/// RFC 8693's grant type.
pub(crate) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's access token type.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693's JWT token type.
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The access token lifetime when [`Options::ttl_secs`] is not set.
pub(crate) const DEFAULT_TTL_SECS: u64 = 300;

/// How long a started provider has to print `READY`.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long one HTTP exchange with the provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Paths of the provider's endpoints (oidc-provider's defaults).
const TOKEN_PATH: &str = "/token";
const INTROSPECTION_PATH: &str = "/token/introspection";
const REVOCATION_PATH: &str = "/token/revocation";
const JWKS_PATH: &str = "/jwks";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const STATS_PATH: &str = "/test/stats";

/// How to start the provider.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Access token lifetime in seconds (default [`DEFAULT_TTL_SECS`]).
    pub(crate) ttl_secs: Option<u64>,
    /// A JWK Set (JSON) of public keys for the [`PKJWT_CLIENT_ID`] client; without it that
    /// client does not exist.
    pub(crate) pkjwt_jwks: Option<String>,
}

/// Requests the provider received since it (re)started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// POSTs to the token endpoint.
    pub(crate) token: u64,
    /// POSTs to the introspection endpoint.
    pub(crate) introspection: u64,
    /// POSTs to the revocation endpoint.
    pub(crate) revocation: u64,
}

/// One HTTP answer from the provider.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    /// The status code.
    pub(crate) status: u16,
    /// Header names (lower case) and values, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The body.
    pub(crate) body: String,
}

impl HttpResponse {
    /// The body as JSON; panics when it is not.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "provider answered {} with a body that is not JSON ({e}): {}",
                self.status, self.body
            )
        })
    }

    /// The first value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a client authenticates in [`OidcProvider::post_form`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// None.
    None,
    /// `Authorization: Basic` (client_secret_basic).
    Basic(&'a str, &'a str),
    /// `client_id` and `client_secret` in the form (client_secret_post).
    Post(&'a str, &'a str),
}

/// `oidc-provider` under `node`, on 127.0.0.1, killed on drop.
pub(crate) struct OidcProvider {
    node: PathBuf,
    script: PathBuf,
    port: u16,
    dir: PathBuf,
    opts: Options,
    child: Option<Child>,
}

impl OidcProvider {
    /// A provider with the default options on a free port, ready; `None` (skip) when
    /// `node` or the npm packages are missing, unless `GRPC_AUTH_REQUIRE_INTEROP=1` (then
    /// a panic).
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(&Options::default())
    }

    /// [`start`](Self::start) with these options.
    pub(crate) fn start_with(opts: &Options) -> Option<Self> {
        let (node, script) = find()?;
        let dir = temp_dir();
        if let Some(jwks) = &opts.pkjwt_jwks {
            std::fs::write(dir.join("pkjwt-jwks.json"), jwks).expect("write the pkjwt JWKS");
        }
        let mut provider = Self {
            node,
            script,
            port: 0,
            dir,
            opts: opts.clone(),
            child: None,
        };
        // A port taken between choosing it and node binding it: choose another.
        let mut last = None;
        for _ in 0..5 {
            provider.port = free_port();
            match provider.spawn() {
                Ok(child) => {
                    provider.child = Some(child);
                    return Some(provider);
                }
                Err(e) => last = Some(e),
            }
        }
        panic!(
            "oidc-provider did not start: {}",
            last.unwrap_or_else(|| "no attempt".to_owned())
        );
    }

    /// `http://127.0.0.1:{port}`: the issuer identifier (no trailing slash).
    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across [`restart`](Self::restart)).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The token endpoint.
    pub(crate) fn token_url(&self) -> String {
        self.url(TOKEN_PATH)
    }

    /// The introspection endpoint (RFC 7662).
    pub(crate) fn introspection_url(&self) -> String {
        self.url(INTROSPECTION_PATH)
    }

    /// The revocation endpoint (RFC 7009).
    pub(crate) fn revocation_url(&self) -> String {
        self.url(REVOCATION_PATH)
    }

    /// The provider's JWK Set (its RS256 signing key).
    pub(crate) fn jwks_url(&self) -> String {
        self.url(JWKS_PATH)
    }

    /// The OpenID Connect discovery document.
    pub(crate) fn discovery_url(&self) -> String {
        self.url(DISCOVERY_PATH)
    }

    /// Whether the process is running (started and not stopped).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The provider's stderr so far (oidc-provider's warnings and one line per endpoint
    /// error, with the reason: handy when a request is refused).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("provider.log")).unwrap_or_default()
    }

    /// The request counters (`GET /test/stats`).
    pub(crate) fn stats(&self) -> Stats {
        let res = self.get(STATS_PATH).expect("GET /test/stats");
        assert_eq!(res.status, 200, "GET /test/stats: {}", res.body);
        let json = res.json();
        let count = |name: &str| {
            json.get(name)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("/test/stats without {name}: {json}"))
        };
        Stats {
            token: count("token"),
            introspection: count("introspection"),
            revocation: count("revocation"),
        }
    }

    /// Kills the provider (SIGKILL, by process id) and waits for it to exit. Nothing
    /// listens on the port afterwards. Does nothing when it is stopped.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the provider if it runs and starts a new one on the same port, ready.
    /// Everything the old one held is lost: its tokens (none introspects as active
    /// any more), its counters, and its signing key (a new one: JWTs it signed no longer
    /// verify against the new JWKS).
    pub(crate) fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("oidc-provider did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `GET path` (blocking).
    pub(crate) fn get(&self, path: &str) -> io::Result<HttpResponse> {
        self.request("GET", path, &[], None)
    }

    /// `POST path` with a form body, authenticated as `auth` (blocking).
    pub(crate) fn post_form(
        &self,
        path: &str,
        auth: Auth<'_>,
        form: &[(&str, &str)],
    ) -> io::Result<HttpResponse> {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        let mut headers = Vec::new();
        match auth {
            Auth::None => {}
            Auth::Basic(id, secret) => headers.push((
                "Authorization".to_owned(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!(
                        "{}:{}",
                        form_encode(id),
                        form_encode(secret)
                    ))
                ),
            )),
            Auth::Post(id, secret) => {
                pairs.push(("client_id", id));
                pairs.push(("client_secret", secret));
            }
        }
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request("POST", path, &headers, Some(&body))
    }

    /// The token endpoint's answer to a `client_credentials` request by [`CLIENT_ID`]
    /// (Basic) for `resource` (none: an opaque token without audience) and `scope` (may
    /// be empty).
    pub(crate) fn client_credentials_response(
        &self,
        resource: Option<&str>,
        scope: &str,
    ) -> HttpResponse {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.post_form(TOKEN_PATH, Auth::Basic(CLIENT_ID, CLIENT_SECRET), &form)
            .expect("POST token")
    }

    /// An access token for [`CLIENT_ID`] (client credentials, Basic): a JWT for
    /// [`JWT_RESOURCE`], opaque for [`OPAQUE_RESOURCE`] or no resource. Panics unless the
    /// provider issues one.
    pub(crate) fn client_credentials_token(&self, resource: Option<&str>, scope: &str) -> String {
        let res = self.client_credentials_response(resource, scope);
        access_token(&res)
    }

    /// Exchanges `subject_token` (an access token of this provider) as [`RS_CLIENT_ID`]
    /// (RFC 8693) for an access token for `resource` (none: opaque without audience)
    /// with `scope` (empty: the subject's scopes); the endpoint's answer.
    pub(crate) fn token_exchange_response(
        &self,
        subject_token: &str,
        resource: Option<&str>,
        scope: &str,
    ) -> HttpResponse {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.post_form(
            TOKEN_PATH,
            Auth::Basic(RS_CLIENT_ID, RS_CLIENT_SECRET),
            &form,
        )
        .expect("POST token (token exchange)")
    }

    /// Introspects `token` as [`RS_CLIENT_ID`]: the JSON answer (`{"active": false}` for
    /// an unknown, expired or revoked token). Panics unless the endpoint answers 200 (it
    /// answers 400 `unsupported_token_type` for a JWT).
    pub(crate) fn introspect(&self, token: &str) -> Value {
        let res = self
            .post_form(
                INTROSPECTION_PATH,
                Auth::Basic(RS_CLIENT_ID, RS_CLIENT_SECRET),
                &[("token", token)],
            )
            .expect("POST introspection");
        assert_eq!(res.status, 200, "introspection answered: {}", res.body);
        res.json()
    }

    /// Revokes `token` (an opaque token of [`CLIENT_ID`]) as [`CLIENT_ID`]; panics unless
    /// the endpoint answers 200 (it does for an unknown token too).
    pub(crate) fn revoke(&self, token: &str) {
        let res = self
            .post_form(
                REVOCATION_PATH,
                Auth::Basic(CLIENT_ID, CLIENT_SECRET),
                &[("token", token)],
            )
            .expect("POST revocation");
        assert_eq!(res.status, 200, "revocation answered: {}", res.body);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
    }

    /// One HTTP/1.0 exchange on a new connection (the provider closes it after).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&str>,
    ) -> io::Result<HttpResponse> {
        let mut conn = self.connect()?;
        conn.set_read_timeout(Some(HTTP_TIMEOUT))?;
        conn.set_write_timeout(Some(HTTP_TIMEOUT))?;
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\n\
             Connection: close\r\n",
            self.port
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body.unwrap_or(""));
        conn.write_all(head.as_bytes())?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)?;
        parse_response(&raw)
    }

    /// Starts the provider on `self.port` and waits for its `READY` line; `Err` with its
    /// stderr's tail when it exits or is not ready in time.
    fn spawn(&self) -> Result<Child, String> {
        let log_path = self.dir.join("provider.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--ttl")
            .arg(self.opts.ttl_secs.unwrap_or(DEFAULT_TTL_SECS).to_string());
        if self.opts.pkjwt_jwks.is_some() {
            cmd.arg("--pkjwt-jwks")
                .arg(self.dir.join("pkjwt-jwks.json"));
        }
        if let Some(dir) = self.script.parent() {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.node.display()))?;

        // stdout is read on a thread (until EOF, so the pipe never fills): lines come back
        // on a channel, to wait for READY with a deadline.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let expected = format!("READY {}", self.issuer());
        let deadline = Instant::now() + READY_WITHIN;
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.trim_end() == expected => return Ok(child),
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // stdout closed: the process is exiting; try_wait below sees it.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "exited ({status}); stdout {seen:?}; stderr: {}",
                    log_tail(&log_path)
                ));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no {expected:?} within {READY_WITHIN:?}; stdout {seen:?}; stderr: {}",
                    log_tail(&log_path)
                ));
            }
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer())
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

/// The `access_token` of a 200 token response; panics otherwise.
pub(crate) fn access_token(res: &HttpResponse) -> String {
    assert_eq!(res.status, 200, "token endpoint answered: {}", res.body);
    res.json()
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no access_token in {}", res.body))
        .to_owned()
}

/// `node` on `PATH` and `tests/oidc/provider.mjs` with its npm packages installed;
/// `None` (skip) or a panic (required).
fn find() -> Option<(PathBuf, PathBuf)> {
    let oidc_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    let script = oidc_dir.join("provider.mjs");
    let package = oidc_dir.join("node_modules/oidc-provider/package.json");
    let node = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("node"))
            .find(|p| p.is_file())
    });
    let why = match node {
        None => "node is not on PATH (the OIDC provider tests need Node.js 20 or later and \
                 `npm ci --prefix tests/oidc`)"
            .to_owned(),
        Some(_) if !package.is_file() => format!(
            "run `npm ci --prefix tests/oidc` ({} is missing)",
            package.display()
        ),
        Some(node) => return Some((node, script)),
    };
    if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("GRPC_AUTH_REQUIRE_INTEROP=1 but the OIDC provider cannot run: {why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// A port nothing listens on just now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A new directory under the system temp dir (removed with the provider).
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "grpc-auth-oidc-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create oidc temp dir");
    dir
}

/// The last lines of the provider's stderr, for a failure message.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(10)..].join(" | ")
}

/// `application/x-www-form-urlencoded` (and RFC 6749's Basic credentials) encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An HTTP/1.x response read to the end of the connection.
fn parse_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers in the response"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
