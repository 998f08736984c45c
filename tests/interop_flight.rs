//! Interop, pyarrow -> Rust Flight server: pyarrow's
//! `FlightClient.authenticate_basic_token` sends Basic on `Handshake` and reads the bearer
//! from the response headers; grpc-auth's `TokenExchange` answers it in the initial
//! headers, and the header pyarrow returns authenticates a later `DoAction`. Over TLS.
//!
//! Needs the virtualenv made by `.ci/python-setup.sh` (pyarrow); skipped without it
//! unless `GRPC_AUTH_REQUIRE_INTEROP=1`.

#[path = "support/flight.rs"]
mod flight;
#[path = "support/interop.rs"]
mod interop;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use interop::{TempDir, python};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/flight_client.py"
);
/// The whole Python client run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `case name -> (code, message)` from the script's `case=` lines.
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
async fn pyarrow_authenticate_basic_token_against_token_exchange() {
    let Some(python) = python() else { return };
    let pki = tls::test_pki();
    let dir = TempDir::new("grpc-auth-interop-flight");
    let ca_path = dir.write("ca.pem", pki.ca_pem.as_bytes());
    let server = flight::spawn(&pki.cert_pem, &pki.key_pem).await;

    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(SCRIPT)
        .arg("--port")
        .arg(server.addr.port().to_string())
        .arg("--ca")
        .arg(&ca_path)
        .env("INTEROP_PASSWORD", "hopper")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GRPC_VERBOSITY", "ERROR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("pyarrow client still running after {CLIENT_TIMEOUT:?}"))
        .expect("run the pyarrow client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.lines().last() == Some("done"),
        "pyarrow client failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    let unauthenticated = |m: &str| {
        (
            "FlightUnauthenticatedError".to_owned(),
            format!("Flight returned unauthenticated error, with message: {m}"),
        )
    };
    let expected: BTreeMap<String, (String, String)> = [
        (
            "login",
            (
                "OK".to_owned(),
                "authorization: Bearer <3-part token>".to_owned(),
            ),
        ),
        (
            "call_with_token",
            ("OK".to_owned(), "whoami: grace via token".to_owned()),
        ),
        (
            "call_without_token",
            unauthenticated("missing authorization metadata"),
        ),
        (
            "basic_on_do_action",
            unauthenticated("unsupported authorization scheme"),
        ),
        (
            "wrong_password",
            unauthenticated("invalid username or password"),
        ),
    ]
    .into_iter()
    .map(|(name, want)| (name.to_owned(), want))
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
    // One login for the good password, one for the wrong one, and the DoAction with
    // Basic: its credential is judged (a wrong password must never ride along another
    // credential) and then refused, as Basic is a login only on Handshake.
    assert_eq!(server.logins.load(Ordering::SeqCst), 3);
}
