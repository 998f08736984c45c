//! Interop, Rust client -> Python server: this crate's client credentials
//! (`CredentialsLayer` with `BearerToken` / `BasicCredentials`, `PerCallCredentials`)
//! over TLS against a grpcio greeter whose `ServerInterceptor` verifies the JWT with
//! PyJWT or checks the Basic password; the Python server's replies and failures come
//! back exactly.
//!
//! Needs the virtualenv made by `.ci/python-setup.sh`; skipped without it unless
//! `GRPC_AUTH_REQUIRE_INTEROP=1`.

#[path = "../examples/support/tokens.rs"]
mod tokens;

#[path = "support/interop.rs"]
mod interop;
#[path = "../examples/support/tls.rs"]
mod tls;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use grpc_auth::credentials::{
    BasicCredentials, BearerToken, CallCredentials, CredentialsLayer, CredentialsService,
    PerCallCredentials,
};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use serde_json::json;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/greeter_server.py"
);
/// How long the Python server may take to print its port (proto compilation included).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The Python server exits by itself after this long, whatever happens to the test.
const SERVER_MAX_SECONDS: u64 = 120;
/// How long a stop request may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

const SECRET: &str = "interop-py-server-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";

use interop::{TempDir, python};

fn pki() -> tls::TestPki {
    tls::test_pki()
}

/// The Python server process, stopped and reaped on drop (a panicking test included):
/// closing its stdin asks it to stop, and it is killed if it has not within
/// `STOP_TIMEOUT`. Should this process die without running `Drop`, the pipe closes all
/// the same, and the server also stops by itself after `SERVER_MAX_SECONDS`.
struct PyServer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl PyServer {
    async fn start(python: &Path) -> (Self, String) {
        let pki = pki();
        let dir = TempDir::new("grpc-auth-interop-py-server");
        let cert = dir.write("server.pem", pki.cert_pem.as_bytes());
        let key = dir.write("server.key", pki.key_pem.as_bytes());
        let log = dir.0.join("server.log");
        let proto_out = dir.0.join("proto");
        std::fs::create_dir_all(&proto_out).expect("create proto output dir");
        let mut child = Command::new(python)
            .arg(SCRIPT)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--jwt-secret", SECRET, "--issuer", ISS, "--audience", AUD])
            .args(["--basic", "grace:hopper"])
            .args(["--max-seconds", &SERVER_MAX_SECONDS.to_string()])
            .arg("--proto-out")
            .arg(&proto_out)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("GRPC_VERBOSITY", "ERROR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create server log"))
            .spawn()
            .expect("start the Python server");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("server stdout");
        let mut server = PyServer {
            child,
            stdin,
            port: 0,
            log,
            _dir: dir,
        };

        // Read `PORT=<n>` on a thread that then drains stdout until the server exits.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("PORT=")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        match tokio::time::timeout(STARTUP_TIMEOUT, rx).await {
            Ok(Ok(Some(port))) => server.port = port,
            Ok(Ok(None)) => panic!("bad PORT line\n{}", server.log()),
            Ok(Err(_)) => panic!("Python server exited before listening\n{}", server.log()),
            Err(_) => panic!(
                "Python server not listening after {STARTUP_TIMEOUT:?}\n{}",
                server.log()
            ),
        }
        (server, pki.ca_pem)
    }

    fn log(&self) -> String {
        format!(
            "server stderr:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    fn target(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn channel(server: &PyServer, ca_pem: &str) -> Channel {
    Endpoint::from_shared(server.target())
        .unwrap()
        .timeout(RPC_TIMEOUT)
        .connect_timeout(RPC_TIMEOUT)
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to the Python server: {e:?}\n{}", server.log()))
}

fn with_creds<C: CallCredentials>(
    server: &PyServer,
    channel: &Channel,
    creds: C,
) -> GreeterClient<CredentialsService<Channel, C>> {
    let uri: http::Uri = server.target().parse().unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(creds, uri))
        .service(channel.clone());
    GreeterClient::new(svc)
}

type Outcome = Result<String, (Code, String)>;

fn outcome(
    res: Result<tonic::Response<grpc_auth_protos::helloworld::HelloReply>, tonic::Status>,
) -> Outcome {
    res.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn hello(name: &str) -> tonic::Request<HelloRequest> {
    tonic::Request::new(HelloRequest { name: name.into() })
}

fn ok(message: &str) -> Outcome {
    Ok(message.to_owned())
}

fn failed(code: Code, message: &str) -> Outcome {
    Err((code, message.to_owned()))
}

#[tokio::test]
async fn rust_credentials_against_python_grpcio_server() {
    let Some(python) = python() else { return };
    let started = std::time::Instant::now();
    let (server, ca_pem) = PyServer::start(python).await;
    let ch = channel(&server, &ca_pem).await;

    let jwt = tokens::hs256(
        SECRET,
        &tokens::claims("ada", ISS, AUD, json!({"scope": "greeter.read"})),
    );
    let jwt_admin = tokens::hs256(
        SECRET,
        &tokens::claims(
            "ada",
            ISS,
            AUD,
            json!({"scope": "greeter.read greeter.admin"}),
        ),
    );
    let forged = tokens::hs256(
        "not-the-server-secret-0123456789abcdef",
        &tokens::claims("ada", ISS, AUD, json!({})),
    );

    // Bearer JWT, verified by PyJWT.
    let mut bearer = with_creds(&server, &ch, BearerToken::new(&jwt));
    assert_eq!(
        outcome(bearer.say_hello(hello("rust")).await),
        ok("Hello rust, authenticated as ada via jwt"),
        "{}",
        server.log()
    );
    // Basic.
    let mut basic = with_creds(&server, &ch, BasicCredentials::new("grace", "hopper"));
    assert_eq!(
        outcome(basic.say_hello(hello("rust")).await),
        ok("Hello rust, authenticated as grace via basic")
    );
    // A JWT signed with another secret: PyJWT's reason, UNAUTHENTICATED.
    let mut wrong = with_creds(&server, &ch, BearerToken::new(&forged));
    assert_eq!(
        outcome(wrong.say_hello(hello("rust")).await),
        failed(
            Code::Unauthenticated,
            "invalid bearer token: Signature verification failed"
        )
    );
    let mut wrong_password = with_creds(&server, &ch, BasicCredentials::new("grace", "nope"));
    assert_eq!(
        outcome(wrong_password.say_hello(hello("rust")).await),
        failed(Code::Unauthenticated, "invalid username or password")
    );
    // The bare channel sends nothing.
    assert_eq!(
        outcome(
            GreeterClient::new(ch.clone())
                .say_hello(hello("rust"))
                .await
        ),
        failed(Code::Unauthenticated, "missing authorization metadata")
    );
    // Scopes, checked by the Python server on SayHelloAdmin.
    assert_eq!(
        outcome(bearer.say_hello_admin(hello("rust")).await),
        failed(Code::PermissionDenied, "missing scope: greeter.admin")
    );
    let mut admin = with_creds(&server, &ch, BearerToken::new(&jwt_admin));
    assert_eq!(
        outcome(admin.say_hello_admin(hello("rust")).await),
        ok("[admin] Hello rust, authenticated as ada via jwt")
    );
    // Per-call credentials on a Bearer channel: both `replace` and `add` send a single
    // `authorization` entry (the server refuses two), the per-call one.
    let mut req = hello("rust");
    req.extensions_mut()
        .insert(PerCallCredentials::replace(BasicCredentials::new(
            "grace", "hopper",
        )));
    assert_eq!(
        outcome(bearer.say_hello(req).await),
        ok("Hello rust, authenticated as grace via basic")
    );
    let mut req = hello("rust");
    req.extensions_mut()
        .insert(PerCallCredentials::add(BasicCredentials::new(
            "grace", "hopper",
        )));
    assert_eq!(
        outcome(bearer.say_hello(req).await),
        ok("Hello rust, authenticated as grace via basic")
    );
    // The channel's own credentials are untouched by the per-call ones.
    assert_eq!(
        outcome(bearer.say_hello(hello("rust")).await),
        ok("Hello rust, authenticated as ada via jwt")
    );

    drop(server);
    eprintln!("interop (Rust client) took {:?}", started.elapsed());
}
