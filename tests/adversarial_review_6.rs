//! Sixth adversarial review: the client-side token sources (issue 14): `FileTokenSource`,
//! `ClientCredentials`, `TokenExchangeSource`, `fetch::post_form` and the refresh after a
//! rejection in `TokenSourceCredentials::on_response`.
//!
//! Each test asserts the secure outcome. Tests that FAIL at the reviewed commit prove a
//! bug; the others are regression guards for points that held up.
#![cfg(feature = "jwks")]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use grpc_auth::credentials::{
    CallContext, CallCredentials, CallOutcome, ClientCredentials, FileTokenSource, Token,
    TokenError, TokenExchangeSource, TokenSource, TokenSourceCredentials,
};
use grpc_auth::oauth::ClientAuth;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What an endpoint saw: (path, authorization, body).
type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;
/// What an endpoint answers: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// An HTTP/1 server on `bind` answering every request with `answer`, recording each.
async fn server(bind: &str, answer: Answer) -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = seen.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let st = st.clone();
                    let answer = answer.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        st.lock().unwrap().push((
                            path,
                            auth,
                            String::from_utf8_lossy(&body).into_owned(),
                        ));
                        let (status, headers, body) = &*answer;
                        let mut r = Response::builder()
                            .status(*status)
                            .header("content-type", "application/json");
                        for (k, v) in headers {
                            r = r.header(*k, v);
                        }
                        Ok::<_, Infallible>(r.body(Full::new(Bytes::from(body.clone()))).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn ok_token() -> Answer {
    (
        200,
        vec![],
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300}"#.into(),
    )
}

fn redirect_to(location: String) -> Answer {
    (307, vec![("location", location)], String::new())
}

/// A subject source handing out a fixed token.
struct Subject(&'static str);
impl TokenSource for Subject {
    async fn fetch(&self) -> Result<Token, TokenError> {
        Ok(Token::new(self.0, None))
    }
}

// ---------------------------------------------------------------------------------------
// Redirects (fetch::client's custom policy follows every redirect but https -> http)
// ---------------------------------------------------------------------------------------

/// BUG: a token endpoint answering `307` to another origin makes reqwest re-POST the
/// form there, `client_secret` included (client_secret_post). reqwest strips only the
/// `authorization` header across hosts, not the body. A token request should not follow
/// redirects at all (oauth2-rs recommends `Policy::none()` for this reason).
#[tokio::test]
async fn a_307_to_another_host_does_not_resend_the_client_secret() {
    let (other, other_seen) = server("127.0.0.1:0", ok_token()).await;
    let (idp, _) = server("127.0.0.1:0", redirect_to(format!("http://{other}/steal"))).await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_post("billing", "s3cret"),
    )
    .build()
    .unwrap();
    let _ = source.fetch().await;
    let seen = other_seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, _, body)| !body.contains("s3cret")),
        "the client secret was re-POSTed to another host: {seen:?}"
    );
}

/// BUG: the same for token exchange: the subject token (a bearer credential, e.g. the
/// workload's service-account JWT) is re-POSTed to whatever host a 307 names.
#[tokio::test]
async fn a_307_to_another_host_does_not_resend_the_subject_token() {
    let (other, other_seen) = server("127.0.0.1:0", ok_token()).await;
    let (sts, _) = server("127.0.0.1:0", redirect_to(format!("http://{other}/steal"))).await;
    let source =
        TokenExchangeSource::builder(format!("http://{sts}/token"), Subject("subject-jwt-123"))
            .build()
            .unwrap();
    let _ = source.fetch().await;
    let seen = other_seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(_, _, body)| !body.contains("subject-jwt-123")),
        "the subject token was re-POSTed to another host: {seen:?}"
    );
}

/// A local address that is not loopback (for "plain http off loopback"), if any.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    for target in ["192.0.2.1:9", "10.255.255.1:9", "8.8.8.8:53"] {
        let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") else {
            continue;
        };
        if s.connect(target).is_ok()
            && let Ok(a) = s.local_addr()
            && !a.ip().is_loopback()
            && !a.ip().is_unspecified()
        {
            return Some(a.ip());
        }
    }
    None
}

/// BUG: `http_url` refuses plain http off loopback (the secret would travel in clear),
/// but a loopback http endpoint (a local proxy/sidecar) redirecting to
/// `http://<non-loopback>` is followed: the policy only refuses https -> http, so the
/// client secret (in the re-POSTed form) goes in clear to a non-loopback host nobody
/// allowed with `allow_http()`.
#[tokio::test]
async fn a_loopback_http_endpoint_cannot_redirect_to_plain_http_off_loopback() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address: skipped");
        return;
    };
    let (far, far_seen) = server(&format!("{ip}:0"), ok_token()).await;
    let (local, _) = server(
        "127.0.0.1:0",
        redirect_to(format!("http://{ip}:{}/token", far.port())),
    )
    .await;
    let source = ClientCredentials::builder(
        format!("http://{local}/token"),
        ClientAuth::secret_post("billing", "s3cret"),
    )
    .build()
    .unwrap();
    let _ = source.fetch().await;
    let seen = far_seen.lock().unwrap().clone();
    assert!(
        seen.is_empty(),
        "a plain-http request went to non-loopback {ip}: {seen:?}"
    );
}

/// Held up: reqwest drops `authorization` (client_secret_basic) on a cross-origin hop.
#[tokio::test]
async fn a_redirect_to_another_host_drops_the_basic_header() {
    let (other, other_seen) = server("127.0.0.1:0", ok_token()).await;
    let (idp, _) = server("127.0.0.1:0", redirect_to(format!("http://{other}/x"))).await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_basic("billing", "s3cret"),
    )
    .build()
    .unwrap();
    let _ = source.fetch().await;
    for (_, auth, _) in other_seen.lock().unwrap().iter() {
        assert!(auth.is_none(), "Basic sent across hosts: {auth:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoint answers
// ---------------------------------------------------------------------------------------

/// BUG: the `error` code is shown as long as it is <= 64 graphic ASCII characters; it is
/// not checked to be a registered code, so an endpoint (or a proxy in front of it)
/// echoing a request parameter puts the client secret into the error, hence the gRPC
/// status message and the debug log ("Only the registered error code: a description
/// could echo input" — the code can too).
#[tokio::test]
async fn an_error_code_echoing_the_secret_is_not_shown() {
    let (idp, _) = server(
        "127.0.0.1:0",
        (400, vec![], r#"{"error":"client_secret=s3cret"}"#.into()),
    )
    .await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_post("billing", "s3cret"),
    )
    .build()
    .unwrap();
    let e = source.fetch().await.unwrap_err();
    assert!(matches!(e, TokenError::Refused(_)), "{e}");
    assert!(
        !e.to_string().contains("s3cret"),
        "secret in the error: {e}"
    );
}

/// Held up: a description echoing the secret is not shown; garbage `error` not shown.
#[tokio::test]
async fn an_error_description_or_odd_code_is_not_shown() {
    for body in [
        r#"{"error":"invalid_client","error_description":"s3cret"}"#,
        r#"{"error":"bad s3cret"}"#,
        r#"{"error":"s3cret\r\ninjected"}"#,
    ] {
        let (idp, _) = server("127.0.0.1:0", (401, vec![], body.into())).await;
        let source = ClientCredentials::builder(
            format!("http://{idp}/token"),
            ClientAuth::secret_basic("b", "s3cret"),
        )
        .build()
        .unwrap();
        let e = source.fetch().await.unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{body}: {e}");
    }
}

/// Held up: a huge `expires_in` does not panic (saturating time); negative, float or huge
/// floats are not a panic either (refused as "no token", retryable).
#[tokio::test]
async fn odd_expires_in_values_do_not_panic() {
    let (idp, _) = server(
        "127.0.0.1:0",
        (
            200,
            vec![],
            format!(
                r#"{{"access_token":"at","token_type":"Bearer","expires_in":{}}}"#,
                u64::MAX
            ),
        ),
    )
    .await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_basic("b", "s"),
    )
    .build()
    .unwrap();
    let t = source.fetch().await.unwrap();
    assert!(t.expires_at().unwrap() > SystemTime::now());
    for v in ["-1", "1e300", "3600.5"] {
        let (idp, _) = server(
            "127.0.0.1:0",
            (
                200,
                vec![],
                format!(r#"{{"access_token":"at","token_type":"Bearer","expires_in":{v}}}"#),
            ),
        )
        .await;
        let source = ClientCredentials::builder(
            format!("http://{idp}/token"),
            ClientAuth::secret_basic("b", "s"),
        )
        .build()
        .unwrap();
        let _ = source.fetch().await; // no panic
    }
}

/// BUG (interop): `expires_in` as a JSON string (Azure AD v1.0 and several other
/// providers answer `"expires_in":"3599"`) makes the whole answer "no token", so the
/// client never gets a token from such an endpoint and retries forever (UNAVAILABLE).
#[tokio::test]
async fn expires_in_as_a_string_is_accepted() {
    let (idp, _) = server(
        "127.0.0.1:0",
        (
            200,
            vec![],
            r#"{"access_token":"at","token_type":"Bearer","expires_in":"3599"}"#.into(),
        ),
    )
    .await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_basic("b", "s"),
    )
    .build()
    .unwrap();
    let t = source.fetch().await;
    assert!(t.is_ok(), "{:?}", t.err());
}

/// Held up: an access token with CR/LF never reaches the `authorization` header.
#[tokio::test]
async fn a_token_with_crlf_is_not_injected_into_the_header() {
    let (idp, _) = server(
        "127.0.0.1:0",
        (
            200,
            vec![],
            r#"{"access_token":"at\r\nx-evil: 1","token_type":"Bearer"}"#.into(),
        ),
    )
    .await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_basic("b", "s"),
    )
    .build()
    .unwrap();
    let creds = TokenSourceCredentials::new(source);
    let e = creds.header_value().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(!e.message().contains("x-evil"), "{e}");
}

/// Held up: a huge body is refused without being read whole.
#[tokio::test]
async fn a_huge_answer_is_refused() {
    let big = format!(
        r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
        "a".repeat(200_000)
    );
    let (idp, _) = server("127.0.0.1:0", (200, vec![], big)).await;
    let source = ClientCredentials::builder(
        format!("http://{idp}/token"),
        ClientAuth::secret_basic("b", "s"),
    )
    .build()
    .unwrap();
    let e = source.fetch().await.unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

/// Held up: Debug and errors never show the secret or a URL password; plain http off
/// loopback is refused at build.
#[tokio::test]
async fn debug_and_config_errors_hide_secrets() {
    let b = ClientCredentials::builder(
        "https://u:pw-secret@idp.example/token",
        ClientAuth::secret_basic("id", "s3cret"),
    );
    assert!(!format!("{b:?}").contains("pw-secret"));
    assert!(!format!("{b:?}").contains("s3cret"));
    let c = b.build().unwrap();
    assert!(!format!("{c:?}").contains("pw-secret"));
    assert!(!format!("{c:?}").contains("s3cret"));
    let e = ClientCredentials::builder(
        "http://u:pw-secret@idp.example/token",
        ClientAuth::secret_basic("id", "s"),
    )
    .build()
    .unwrap_err();
    assert!(!e.to_string().contains("pw-secret"), "{e}");
    assert!(e.to_string().contains("plain http"), "{e}");
    // Unreachable: the error shows no password.
    let c = ClientCredentials::builder(
        "http://u:pw-secret@127.0.0.1:1/token",
        ClientAuth::secret_basic("id", "s"),
    )
    .build()
    .unwrap();
    let e = c.fetch().await.unwrap_err();
    assert!(!e.to_string().contains("pw-secret"), "{e}");
}

// ---------------------------------------------------------------------------------------
// FileTokenSource
// ---------------------------------------------------------------------------------------

fn jwt(claims: &str) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("grpc-auth-adv6-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// BUG: a token path that is a FIFO (or any file whose `open` blocks) hangs the fetch
/// forever: `File::open` in `spawn_blocking` has no timeout, and the fetch holds the
/// single-flight lock, so every call on the credentials hangs (to its deadline, or
/// forever without one), with a blocking-pool thread leaked per attempt. The policy
/// watcher guards /dev/zero; the token file should open non-blocking / refuse a
/// non-regular file.
#[tokio::test]
async fn a_fifo_token_path_does_not_hang_the_fetch() {
    let p = tmp("fifo");
    let made = std::process::Command::new("mkfifo").arg(&p).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo: skipped");
        return;
    }
    let source = FileTokenSource::new(&p);
    let result = tokio::time::timeout(Duration::from_secs(2), source.fetch()).await;
    // Unblock a reader still waiting, so the runtime can shut down (non-blocking: when
    // no reader waits, this open fails at once instead of waiting for one).
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p);
    }
    let _ = std::fs::remove_file(&p);
    assert!(
        result.is_ok(),
        "fetching from a FIFO token path hung for 2 s"
    );
}

/// BUG (RFC 7519 2: NumericDate "can be non-integer"): a JWT whose `exp` is a
/// non-integer number is refused as "not a JWT with an exp claim" (`as_u64`), so such a
/// valid token is never sent.
#[tokio::test]
async fn a_jwt_with_a_fractional_exp_is_accepted() {
    let p = tmp("float-exp");
    let token = jwt(&format!(r#"{{"sub":"w","exp":{}.5}}"#, now_secs() + 600));
    std::fs::write(&p, &token).unwrap();
    let t = FileTokenSource::new(&p).fetch().await;
    assert!(t.is_ok(), "{:?}", t.err());
}

/// Held up: whitespace only, a directory, a symlink to /dev/zero, `exp` as a string,
/// CR/LF inside the token: refused or unavailable, no hang, no panic, no token shown.
#[tokio::test]
async fn odd_token_files_are_refused() {
    let ws = tmp("ws");
    std::fs::write(&ws, " \n\t \r\n").unwrap();
    let e = FileTokenSource::new(&ws).fetch().await.unwrap_err();
    assert!(matches!(e, TokenError::Refused(_)), "{e}");

    let dir = tmp("dir");
    let _ = std::fs::create_dir(&dir);
    let e = FileTokenSource::new(&dir).fetch().await.unwrap_err();
    assert!(matches!(e, TokenError::Unavailable(_)), "{e}");

    let zero = tmp("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), FileTokenSource::new(&zero).fetch())
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");

    let s = tmp("string-exp");
    std::fs::write(&s, jwt(r#"{"exp":"99999999999"}"#)).unwrap();
    assert!(FileTokenSource::new(&s).fetch().await.is_err());

    let crlf = tmp("crlf");
    let token = format!(
        "{}\r\nx-evil: 1",
        jwt(&format!(r#"{{"exp":{}}}"#, now_secs() + 600))
    );
    std::fs::write(&crlf, &token).unwrap();
    let creds = TokenSourceCredentials::new(FileTokenSource::new(&crlf));
    let e = creds.header_value().await.unwrap_err();
    assert!(!e.message().contains("eyJ"), "{e}");
}

/// Held up: a huge `exp` does not panic; the token is capped at the re-read interval.
#[tokio::test]
async fn a_huge_exp_is_capped() {
    let p = tmp("huge-exp");
    std::fs::write(&p, jwt(&format!(r#"{{"exp":{}}}"#, u64::MAX))).unwrap();
    let t = FileTokenSource::new(&p).fetch().await.unwrap();
    let left = t
        .expires_at()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(300), "{left:?}");
}

// ---------------------------------------------------------------------------------------
// Refresh after rejection
// ---------------------------------------------------------------------------------------

struct Counter(AtomicUsize);
impl TokenSource for Counter {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Token::new(format!("tok-{n}"), None))
    }
}

fn unauthenticated() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from_static("16"));
    h
}

/// Held up: a late UNAUTHENTICATED for an older token does not drop the newer one, and
/// many concurrent rejections of one token cause one fetch.
#[tokio::test]
async fn a_late_rejection_of_an_old_token_keeps_the_new_one() {
    let creds = TokenSourceCredentials::new(Arc::new(Counter(AtomicUsize::new(0))));
    let ctx = || CallContext::new("https://svc.example/pkg.Svc", "M", true);
    let mut old = HeaderMap::new();
    creds.apply(&ctx(), &mut old).await.unwrap();
    let mut old2 = old.clone();
    let mut old3 = old.clone();
    creds.on_response(&CallOutcome::new(ctx(), &old, Some(&unauthenticated())));
    let mut new = HeaderMap::new();
    creds.apply(&ctx(), &mut new).await.unwrap();
    assert_eq!(new["authorization"], "Bearer tok-2");
    // Late rejections of tok-1 from other in-flight calls.
    creds.on_response(&CallOutcome::new(ctx(), &old2, Some(&unauthenticated())));
    creds.on_response(&CallOutcome::new(ctx(), &old3, Some(&unauthenticated())));
    old2.clear();
    old3.clear();
    let mut again = HeaderMap::new();
    creds.apply(&ctx(), &mut again).await.unwrap();
    assert_eq!(again["authorization"], "Bearer tok-2");
}
