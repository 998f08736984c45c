//! HMAC signatures end to end: the greeter behind the layer with `hmac_keys`, called over
//! TLS by a tonic client whose channel signs each call with `HmacSigner`; and Tyk's
//! `hmac.sh` signature, made with the `openssl` CLI, accepted by the verifier.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::time::Duration;

use grpc_auth::authn::hmac::{HmacAlgorithm, HmacVerifier, StaticHmacKeys};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::credentials::{CallCredentials, CredentialsLayer, CredentialsService, HmacSigner};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    port: u16,
    ca_pem: String,
}

async fn server() -> Server {
    let pki = tls::test_pki();
    let config = greeter::ServerConfig {
        hmac_keys: vec![
            ("svc-a".into(), "s3cret-a".into()),
            ("svc-b".into(), "s3cret-b".into()),
        ],
        api_keys: vec![("k-123".into(), "billing".into())],
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        ..Default::default()
    };
    let addr = greeter::spawn(config).await;
    Server {
        port: addr.port(),
        ca_pem: pki.ca_pem,
    }
}

type Client<C> = GreeterClient<CredentialsService<Channel, C>>;

/// A client whose channel signs every call with `creds`.
async fn client<C: CallCredentials>(s: &Server, creds: C) -> Client<C> {
    let channel = tls::channel(s.port, &s.ca_pem).await;
    let target: http::Uri = format!("https://127.0.0.1:{}", s.port).parse().unwrap();
    GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(CredentialsLayer::new(creds, target))
            .service(channel),
    )
}

async fn hello<C: CallCredentials>(
    c: &mut Client<C>,
    admin: bool,
) -> Result<String, (Code, String)> {
    let req = HelloRequest { name: "Ada".into() };
    let res = if admin {
        c.say_hello_admin(req).await
    } else {
        c.say_hello(req).await
    };
    res.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn unauth(msg: &str) -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, msg.to_owned()))
}

#[tokio::test]
async fn signed_calls_are_accepted_with_the_key_id_as_principal() {
    let s = server().await;
    let mut c = client(&s, HmacSigner::new("svc-a", "s3cret-a")).await;
    let ok = Ok("Hello Ada, authenticated as svc-a via hmac".to_owned());
    // Several calls in the same second: the nonce keeps each signature distinct.
    for _ in 0..3 {
        assert_eq!(hello(&mut c, false).await, ok);
    }
    assert_eq!(
        hello(&mut c, true).await,
        Ok("[admin] Hello Ada, authenticated as svc-a via hmac".to_owned())
    );
    for alg in [HmacAlgorithm::Sha384, HmacAlgorithm::Sha512] {
        let mut c = client(&s, HmacSigner::new("svc-b", "s3cret-b").algorithm(alg)).await;
        assert_eq!(
            hello(&mut c, false).await,
            Ok("Hello Ada, authenticated as svc-b via hmac".to_owned())
        );
    }
}

#[tokio::test]
async fn wrong_secret_unknown_key_and_sha1_are_refused() {
    let s = server().await;
    let mut c = client(&s, HmacSigner::new("svc-a", "not-the-secret")).await;
    assert_eq!(
        hello(&mut c, false).await,
        unauth("HMAC signature mismatch")
    );
    let mut c = client(&s, HmacSigner::new("svc-z", "s3cret-a")).await;
    assert_eq!(hello(&mut c, false).await, unauth("unknown HMAC key id"));
    let mut c = client(
        &s,
        HmacSigner::new("svc-a", "s3cret-a").algorithm(HmacAlgorithm::Sha1),
    )
    .await;
    assert_eq!(
        hello(&mut c, false).await,
        unauth("HMAC algorithm hmac-sha1 is not allowed")
    );
}

#[tokio::test]
async fn a_replayed_signature_is_refused() {
    let s = server().await;
    // A frozen clock and no nonce: the second call carries the very same signature.
    let signer = HmacSigner::new("svc-a", "s3cret-a")
        .clock(ManualClock::now())
        .no_nonce();
    let mut c = client(&s, signer).await;
    assert_eq!(
        hello(&mut c, false).await,
        Ok("Hello Ada, authenticated as svc-a via hmac".to_owned())
    );
    assert_eq!(
        hello(&mut c, false).await,
        unauth("HMAC signature already used (replay)")
    );
    // The request target is signed: the same date on another method is a new signature.
    assert_eq!(
        hello(&mut c, true).await,
        Ok("[admin] Hello Ada, authenticated as svc-a via hmac".to_owned())
    );
}

#[tokio::test]
async fn a_skewed_client_clock_is_refused() {
    let s = server().await;
    for offset in [-1i64, 1] {
        let clock = ManualClock::now();
        if offset < 0 {
            clock.set_unix(clock.unix_seconds() - 600);
        } else {
            clock.advance(Duration::from_secs(600));
        }
        let mut c = client(&s, HmacSigner::new("svc-a", "s3cret-a").clock(clock)).await;
        assert_eq!(
            hello(&mut c, false).await,
            unauth("date is outside the allowed clock skew of 300 s")
        );
    }
}

#[tokio::test]
async fn date_only_signatures_are_refused_by_default_and_other_schemes_still_work() {
    let s = server().await;
    let tyk_style = HmacSigner::new("svc-a", "s3cret-a")
        .algorithm(HmacAlgorithm::Sha512)
        .headers(["date"])
        .no_nonce();
    let mut c = client(&s, tyk_style).await;
    assert_eq!(
        hello(&mut c, false).await,
        unauth("HMAC signature does not cover (request-target)")
    );
    let mut c = client(&s, grpc_auth::credentials::ApiKeyCredentials::new("k-123")).await;
    assert_eq!(
        hello(&mut c, false).await,
        Ok("Hello Ada, authenticated as billing via api-key".to_owned())
    );
}

/// Runs `program args` with `stdin`, or `None` when the program is not installed.
fn run_tool(program: &str, args: &[&str], stdin: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(stdin).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status.success().then_some(out.stdout)
}

#[tokio::test]
async fn tyk_hmac_sh_signature_made_with_openssl_is_accepted() {
    // hmac.sh:
    //   signature=$(echo -n "date: ${date}" | openssl sha512 -binary -hmac "${HMAC_SECRET}" | base64 | tr -d '\n')
    //   url_encoded_signature=$(python3 -c 'urllib.parse.quote_plus(...)' "$signature")
    const KEY: &str = "eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImdycGNfaG1hY19rZXkiLCJoIjoibXVybXVyNjQifQ==";
    let clock = ManualClock::now();
    let date = httpdate::fmt_http_date(clock.now());
    let signing = format!("date: {date}");
    let Some(mac) = run_tool(
        "openssl",
        &["dgst", "-sha512", "-binary", "-hmac", "c2VjcmV0"],
        signing.as_bytes(),
    ) else {
        eprintln!("skipping: openssl CLI not found");
        return;
    };
    assert_eq!(mac.len(), 64);
    let b64 = match run_tool("base64", &["-w", "0"], &mac) {
        Some(out) => String::from_utf8(out).unwrap().trim().to_owned(),
        None => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&mac)
        }
    };
    let encoded = run_tool(
        "python3",
        &[
            "-c",
            "import sys, urllib.parse; print(urllib.parse.quote_plus(sys.stdin.read()), end='')",
        ],
        b64.as_bytes(),
    )
    .map(|o| String::from_utf8(o).unwrap())
    .unwrap_or_else(|| {
        b64.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    });

    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!(r#"Signature keyId="{KEY}",algorithm="hmac-sha512",signature="{encoded}""#)
            .parse()
            .unwrap(),
    );
    headers.insert("date", date.parse().unwrap());
    let verifier = HmacVerifier::new(StaticHmacKeys::new().key(KEY, "c2VjcmV0"))
        .clock(clock.clone())
        .allow_date_only();
    let got = verifier
        .verify("GET", "/grpc-custom-auth/get", &headers)
        .await
        .unwrap();
    assert_eq!(
        (got.key_id.as_str(), got.algorithm),
        (KEY, HmacAlgorithm::Sha512)
    );

    // And the crate's signer, in the demo's mode, produces the same header value.
    let mut signed = http::HeaderMap::new();
    HmacSigner::new(KEY, "c2VjcmV0")
        .algorithm(HmacAlgorithm::Sha512)
        .headers(["date"])
        .no_nonce()
        .clock(clock)
        .sign("/grpc-custom-auth/get", &mut signed)
        .unwrap();
    assert_eq!(signed["date"], date.as_str());
    assert_eq!(
        signed["authorization"].to_str().unwrap(),
        format!(
            r#"Signature keyId="{KEY}",algorithm="hmac-sha512",headers="date",signature="{encoded}""#
        )
    );
}
