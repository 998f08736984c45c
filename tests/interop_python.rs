//! Interop, Python client -> Rust server: grpcio (C-core) calls the greeter behind
//! grpc-auth's layer over TLS, attaching credentials every way grpcio can
//! (`AuthMetadataPlugin`, access-token, composite call and channel credentials,
//! per-call credentials), and the failures come back with the exact code and message.
//!
//! Needs the virtualenv made by `.ci/python-setup.sh`; skipped without it unless
//! `GRPC_AUTH_REQUIRE_INTEROP=1`.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tokens.rs"]
mod tokens;

#[path = "support/interop.rs"]
mod interop;
#[path = "../examples/support/tls.rs"]
mod tls;
use std::collections::BTreeMap;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/greeter_client.py"
);
/// The whole Python client run, proto compilation included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

const SECRET: &str = "interop-secret-0123456789abcdef012345";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";

use interop::{TempDir, python};

fn pki() -> tls::TestPki {
    tls::test_pki()
}

/// `case name -> (status code name, message)` from the script's `case=` lines.
fn parse(stdout: &str) -> BTreeMap<String, (String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("case=")?;
            let (name, rest) = rest.split_once(" code=")?;
            let (code, message) = rest.split_once(" message=")?;
            Some((name.to_owned(), (code.to_owned(), message.to_owned())))
        })
        .collect()
}

#[tokio::test]
async fn python_grpcio_client_against_rust_server() {
    let Some(python) = python() else { return };
    let started = std::time::Instant::now();

    let pki = pki();
    let dir = TempDir::new("grpc-auth-interop-py-client");
    let ca_path = dir.write("ca.pem", pki.ca_pem.as_bytes());
    // Generated modules go under `dir`, removed even if the client has to be killed.
    let proto_out = dir.0.join("proto");
    std::fs::create_dir_all(&proto_out).expect("create proto output dir");

    let addr = greeter::spawn(greeter::ServerConfig {
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        jwt_hs256_secret: Some(SECRET.into()),
        jwt_issuer: Some(ISS.into()),
        jwt_audience: Some(AUD.into()),
        basic_users: vec![("grace".into(), "hopper".into())],
        api_keys: vec![("k-123".into(), "billing".into())],
        require_scope: vec![(
            "/helloworld.Greeter/SayHelloAdmin".into(),
            "greeter.admin".into(),
        )],
        ..Default::default()
    })
    .await;
    let port = addr.port();

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
    let jwt_forged = tokens::hs256(
        "not-the-server-secret-0123456789abcdef",
        &tokens::claims("ada", ISS, AUD, json!({})),
    );

    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(SCRIPT)
        .arg("--target")
        .arg(format!("localhost:{port}"))
        .arg("--ca")
        .arg(&ca_path)
        .arg("--proto-out")
        .arg(&proto_out)
        .env("INTEROP_JWT", &jwt)
        .env("INTEROP_JWT_ADMIN", &jwt_admin)
        .env("INTEROP_JWT_FORGED", &jwt_forged)
        .env("INTEROP_BASIC", "grace:hopper")
        .env("INTEROP_API_KEY", "k-123")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GRPC_VERBOSITY", "ERROR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // On timeout the output future is dropped, which kills the child (kill_on_drop).
    let output = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("Python client still running after {CLIENT_TIMEOUT:?}"))
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.lines().last() == Some("done"),
        "Python client failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    let hello = |who: &str| format!("Hello py, authenticated as {who}");
    let expected: BTreeMap<String, (String, String)> = [
        ("plugin_bearer", "OK", hello("ada via jwt")),
        // What grpcio's plugin is told: service_url and method_name.
        (
            "plugin_context",
            "OK",
            format!("https://localhost:{port}/helloworld.Greeter SayHello"),
        ),
        ("access_token", "OK", hello("ada via jwt")),
        ("composite_call", "OK", hello("ada via jwt")),
        ("composite_call_api_key", "OK", hello("billing via api-key")),
        ("per_call_basic", "OK", hello("grace via basic")),
        (
            "no_credentials",
            "UNAUTHENTICATED",
            "missing authorization metadata".into(),
        ),
        (
            "wrong_token",
            "UNAUTHENTICATED",
            "invalid token signature".into(),
        ),
        (
            "missing_scope",
            "PERMISSION_DENIED",
            "missing scope: greeter.admin".into(),
        ),
        (
            "admin_scope",
            "OK",
            format!("[admin] {}", hello("ada via jwt")),
        ),
        // C-core does not send the RPC when a plugin fails: UNAVAILABLE, whatever the
        // plugin's error, with its text appended.
        (
            "plugin_error",
            "UNAVAILABLE",
            "Getting metadata from plugin failed with error: token endpoint down".into(),
        ),
        (
            "plugin_raises",
            "UNAVAILABLE",
            "Getting metadata from plugin failed with error: plugin blew up".into(),
        ),
        ("composite_channel", "OK", hello("ada via jwt")),
        (
            "composite_channel_admin",
            "OK",
            format!("[admin] {}", hello("ada via jwt")),
        ),
        // Per-call credentials are added to the channel's, not substituted: the server
        // sees two `authorization` entries and refuses the ambiguity.
        (
            "composite_channel_plus_per_call",
            "UNAUTHENTICATED",
            "multiple authorization metadata entries".into(),
        ),
    ]
    .into_iter()
    .map(|(name, code, message)| (name.to_owned(), (code.to_owned(), message)))
    .collect();

    let got = parse(&stdout);
    for (name, want) in &expected {
        assert_eq!(
            got.get(name),
            Some(want),
            "case {name}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the script ran other cases than expected\nstdout:\n{stdout}"
    );
    eprintln!("interop (Python client) took {:?}", started.elapsed());
}
