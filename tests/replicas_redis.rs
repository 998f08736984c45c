//! Three `greeter_server` processes (the example binary, over TLS on loopback) sharing
//! one `redis-server` through `--redis`: replay protection, revocation, failed-login
//! limits and opaque tokens hold across the replicas, Redis down is `UNAVAILABLE` for
//! the calls that need it (the rest go on), and the replicas recover when it is back.
//!
//! Needs the example binaries, which `cargo test --features redis` builds before it
//! runs the tests, and `redis-server`; without either it skips with a reason, unless
//! `GRPC_AUTH_REQUIRE_INTEROP=1` (CI), where it fails.
#![cfg(feature = "redis")]

#[path = "support/redis.rs"]
mod redis_server;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpc_auth::credentials::{CallContext, CallCredentials, HmacSigner};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use http::HeaderMap;
use redis_server::RedisServer;
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};

const JWT_SECRET: &str = "replica-shared-jwt-secret-0123456789";
const HMAC: (&str, &str) = ("svc-a", "hmac-s3cret");

fn required() -> bool {
    std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1")
}

/// `target/<profile>/examples/<name>`, next to this test's `deps/` directory.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.is_file() {
        return Some(path);
    }
    let reason = format!(
        "{} not built: run `cargo test --features redis` (it builds the examples)",
        path.display()
    );
    if required() {
        panic!("GRPC_AUTH_REQUIRE_INTEROP=1 but {reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

fn pki() -> Pki {
    let pki = tls::test_pki();
    let dir = std::env::temp_dir().join(format!("grpc-auth-replicas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    Pki {
        dir,
        ca_pem: pki.ca_pem,
    }
}

/// One `greeter_server` process, killed (by its pid) on drop.
struct Replica {
    child: Child,
    port: u16,
    channel: Channel,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn replica(bin: &PathBuf, redis_url: &str, pki: &Pki) -> Replica {
    let mut child = Command::new(bin)
        .args(["--addr", "127.0.0.1:0", "--jwt-hs256-secret", JWT_SECRET])
        .args(["--basic-user", "ada:lovelace", "--basic-user", "eve:s3cret"])
        .args(["--api-key", "k-1=billing", "--issue-tokens"])
        .args(["--hmac-key", &format!("{}={}", HMAC.0, HMAC.1)])
        .args(["--redis", redis_url, "--redis-prefix", "replicas-test:"])
        .args(["--redis-quarantine", "2"])
        .arg("--tls-cert")
        .arg(pki.dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(pki.dir.join("key.pem"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start greeter_server");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .expect("greeter_server prints its address");
    // "greeter listening on https://127.0.0.1:PORT"
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let channel = tls::channel(port, &pki.ca_pem).await;
    Replica {
        child,
        port,
        channel,
    }
}

/// Calls SayHello with `metadata`; the greeting, or the status code and message.
async fn hello(r: &Replica, metadata: &[(&str, &str)]) -> Result<String, (Code, String)> {
    hello_full(r, metadata).await.map(|(m, _)| m)
}

/// SayHello; the greeting and the response's `authorization` metadata.
async fn hello_full(
    r: &Replica,
    metadata: &[(&str, &str)],
) -> Result<(String, Option<String>), (Code, String)> {
    let mut req = Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in metadata {
        let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap();
        req.metadata_mut().insert(key, v.parse().unwrap());
    }
    let deadline = Instant::now();
    let result = GreeterClient::new(r.channel.clone()).say_hello(req).await;
    assert!(
        deadline.elapsed() < Duration::from_secs(3),
        "a call took {:?}",
        deadline.elapsed()
    );
    match result {
        Ok(resp) => {
            let auth = resp
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((resp.into_inner().message, auth))
        }
        Err(s) => Err((s.code(), s.message().to_owned())),
    }
}

/// A fresh HMAC signature for SayHello on `r`, as metadata pairs.
async fn signed(r: &Replica) -> Vec<(String, String)> {
    let signer = HmacSigner::new(HMAC.0, HMAC.1);
    let url = format!("https://127.0.0.1:{}/helloworld.Greeter", r.port);
    let ctx = CallContext::new(&url, "SayHello", true);
    let mut headers = HeaderMap::new();
    signer.apply(&ctx, &mut headers).await.unwrap();
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

async fn hello_signed(r: &Replica, sig: &[(String, String)]) -> Result<String, (Code, String)> {
    let pairs: Vec<(&str, &str)> = sig.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    hello(r, &pairs).await
}

fn jwt(sub: &str, jti: &str) -> String {
    let now = tokens::now();
    tokens::hs256(
        JWT_SECRET,
        &json!({"sub": sub, "jti": jti, "iat": now, "exp": now + 600}),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// Runs the `revoke` example against the shared Redis.
fn revoke(bin: &PathBuf, redis_url: &str, args: &[&str]) {
    let out = Command::new(bin)
        .args(["--redis", redis_url, "--redis-prefix", "replicas-test:"])
        .args(args)
        .output()
        .expect("run revoke");
    assert!(
        out.status.success(),
        "revoke failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `f` until it holds, at most `within`; how long it took.
async fn within<F, Fut>(within: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_redis() {
    let (Some(server_bin), Some(revoke_bin)) = (example("greeter_server"), example("revoke"))
    else {
        return;
    };
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let pki = pki();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&server_bin, &url, &pki).await);
    }
    let [a, b, c] = &replicas[..] else {
        unreachable!()
    };

    // 1. A signed HMAC request accepted by A is a replay on B and C.
    let sig = signed(a).await;
    assert_eq!(
        hello_signed(a, &sig).await,
        Ok("Hello Ada, authenticated as svc-a via hmac".into())
    );
    for r in [b, c] {
        assert_eq!(
            hello_signed(r, &sig).await,
            Err((
                Code::Unauthenticated,
                "HMAC signature already used (replay)".into()
            ))
        );
    }

    // 2. A JWT revoked (by jti, through the shared store) is refused by every replica
    // within 1 s; another token of the same subject still works.
    let token = jwt("ada", "jti-1");
    let other = jwt("ada", "jti-2");
    for r in [a, b, c] {
        assert_eq!(
            hello(r, &[("authorization", &bearer(&token))]).await,
            Ok("Hello Ada, authenticated as ada via jwt".into())
        );
    }
    let exp = (tokens::now() + 600).to_string();
    revoke(&revoke_bin, &url, &["--jti", "jti-1", "--exp", &exp]);
    let revoked_at = Instant::now();
    for r in [a, b, c] {
        let auth = bearer(&token);
        within(Duration::from_secs(1), || async {
            hello(r, &[("authorization", &auth)]).await
                == Err((Code::Unauthenticated, "token revoked".into()))
        })
        .await;
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    for r in [a, b, c] {
        assert_eq!(
            hello(r, &[("authorization", &bearer(&other))]).await,
            Ok("Hello Ada, authenticated as ada via jwt".into())
        );
    }
    // Everything "bob" holds now.
    let bobs = jwt("bob", "jti-3");
    assert!(hello(b, &[("authorization", &bearer(&bobs))]).await.is_ok());
    revoke(&revoke_bin, &url, &["--subject", "bob"]);
    for r in [a, b, c] {
        assert_eq!(
            hello(r, &[("authorization", &bearer(&bobs))]).await,
            Err((Code::Unauthenticated, "token revoked".into()))
        );
    }

    // 3. Failed Basic logins spread over the replicas meet one limit (10 per user).
    for i in 0..10 {
        let r = &replicas[i % 3];
        assert_eq!(
            hello(r, &[("authorization", &basic("eve", "wrong"))]).await,
            Err((Code::Unauthenticated, "invalid username or password".into())),
            "failure {i}"
        );
    }
    for r in [a, b, c] {
        assert_eq!(
            hello(r, &[("authorization", &basic("eve", "s3cret"))]).await,
            Err((
                Code::ResourceExhausted,
                "too many failed logins; retry later".into()
            ))
        );
    }

    // 4. An opaque token issued by A works on B and C.
    let (greeting, issued) = hello_full(a, &[("authorization", &basic("ada", "lovelace"))])
        .await
        .unwrap();
    assert_eq!(greeting, "Hello Ada, authenticated as ada via basic");
    let issued = issued.expect("A answers the login with a token");
    let opaque = issued.strip_prefix("Bearer ").unwrap().to_owned();
    assert!(opaque.starts_with("gat_"), "{opaque}");
    for r in [b, c] {
        assert_eq!(
            hello(r, &[("authorization", &issued)]).await,
            Ok("Hello Ada, authenticated as ada via token".into())
        );
    }
    let keys = redis.keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(&opaque) || k.contains("ada")),
        "raw token or user in a key: {keys:?}"
    );
    assert!(keys.iter().all(|k| k.starts_with("replicas-test:")));

    // ... and after every replica restarts.
    drop(replicas);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&server_bin, &url, &pki).await);
    }
    let [a, b, c] = &replicas[..] else {
        unreachable!()
    };
    for r in [a, b, c] {
        assert_eq!(
            hello(r, &[("authorization", &issued)]).await,
            Ok("Hello Ada, authenticated as ada via token".into())
        );
    }
    // The revocation outlived the restart too.
    assert_eq!(
        hello(c, &[("authorization", &bearer(&token))]).await,
        Err((Code::Unauthenticated, "token revoked".into()))
    );
    // Revoking the opaque token from outside: refused everywhere.
    revoke(&revoke_bin, &url, &["--token", &opaque]);
    for r in [a, b, c] {
        assert_eq!(
            hello(r, &[("authorization", &issued)]).await,
            Err((Code::Unauthenticated, "unknown or revoked token".into()))
        );
    }

    // The restarted replicas still refuse replays (and each has now read the shared
    // store's data-loss marker).
    let sig = signed(a).await;
    assert!(hello_signed(a, &sig).await.is_ok());
    for r in [a, b, c] {
        assert_eq!(
            hello_signed(r, &sig).await,
            Err((
                Code::Unauthenticated,
                "HMAC signature already used (replay)".into()
            ))
        );
    }

    // 5. Redis stopped: the calls that need it are UNAVAILABLE, naming it; the others go on.
    redis.stop();
    for r in [a, b, c] {
        let sig = signed(r).await;
        let (code, message) = hello_signed(r, &sig).await.unwrap_err();
        assert_eq!(code, Code::Unavailable, "{message}");
        assert!(
            message.starts_with("HMAC replay check unavailable: redis store unavailable"),
            "{message}"
        );
        let (code, message) = hello(r, &[("authorization", &bearer(&other))])
            .await
            .unwrap_err();
        assert_eq!(code, Code::Unavailable);
        assert!(
            message.starts_with("revocation check unavailable: redis store unavailable"),
            "{message}"
        );
        let (code, message) = hello(r, &[("authorization", &basic("ada", "wrong"))])
            .await
            .unwrap_err();
        assert_eq!(code, Code::Unavailable);
        assert!(
            message.starts_with("failed-login limits unavailable: redis store unavailable"),
            "{message}"
        );
        assert_eq!(
            hello(r, &[("x-api-key", "k-1")]).await,
            Ok("Hello Ada, authenticated as billing via api-key".into())
        );
    }

    // A replica started while Redis is down starts, serves what needs no store, and
    // refuses the rest.
    let d = replica(&server_bin, &url, &pki).await;
    assert_eq!(
        hello(&d, &[("x-api-key", "k-1")]).await,
        Ok("Hello Ada, authenticated as billing via api-key".into())
    );
    let sig = signed(&d).await;
    assert_eq!(
        hello_signed(&d, &sig).await.unwrap_err().0,
        Code::Unavailable
    );

    // 6. Redis back, empty (persistence is off): its signatures and revocations are
    // gone, so each replica refuses replay and revocation checks for its quarantine
    // (2 s here), then recovers, with no restart. API keys went on throughout.
    redis.restart();
    for r in [a, b, c] {
        within(Duration::from_secs(10), || async {
            let sig = signed(r).await;
            let got = hello_signed(r, &sig).await;
            matches!(got, Err((Code::Unavailable, m)) if m.contains("redis lost data"))
        })
        .await;
        let (code, message) = hello(r, &[("authorization", &bearer(&other))])
            .await
            .unwrap_err();
        assert_eq!(code, Code::Unavailable);
        assert!(message.contains("redis lost data"), "{message}");
        assert_eq!(
            hello(r, &[("x-api-key", "k-1")]).await,
            Ok("Hello Ada, authenticated as billing via api-key".into())
        );
    }
    let quarantined = Instant::now();
    for r in [a, b, c] {
        within(Duration::from_secs(10), || async {
            let sig = signed(r).await;
            hello_signed(r, &sig).await.is_ok()
        })
        .await;
        assert_eq!(
            hello(r, &[("authorization", &bearer(&other))]).await,
            Ok("Hello Ada, authenticated as ada via jwt".into())
        );
    }
    eprintln!(
        "replicas recovered {:?} after the loss was seen",
        quarantined.elapsed()
    );
    assert!(quarantined.elapsed() >= Duration::from_millis(1500));
    // The replica that started during the outage had seen no data to lose: it works.
    let sig = signed(&d).await;
    assert_eq!(
        hello_signed(&d, &sig).await,
        Ok("Hello Ada, authenticated as svc-a via hmac".into())
    );
    let _ = std::fs::remove_dir_all(&pki.dir);
}
