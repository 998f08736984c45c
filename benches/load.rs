//! End-to-end load: the greeter behind grpc-auth, served in process on 127.0.0.1 and
//! driven over loopback HTTP/2 by a tonic client (one `Channel`) with N concurrent calls
//! for D seconds per case, all cases in one run, one after another: no auth (first and
//! last, to show drift), API key, HS256 and RS256 JWTs (verified-token cache off, then
//! on), and Basic with an argon2 hash (cached).
//!
//! ```text
//! cargo bench --bench load                              # N=64, D=5 s, 1 s warm-up
//! cargo bench --bench load -- --concurrency 16 --secs 2 rs256 basic
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
//! RPS as a ratio to the first no-auth run, and the process's CPU time per call
//! (server + client, from `/proc/self/stat`), its ratio to no-auth's (the RPS ratio a
//! machine with the cores to itself would show) and the share of the cores the process
//! got (below ~90%, other processes took CPU and RPS is noisy).
//!
//! Every call's credential is plain metadata cloned into the request (the same client
//! cost for every scheme). The first reply of each case and of each caller task must
//! name the expected principal. Any failed call or wrong reply is counted in the case's
//! row and makes the process exit non-zero.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine as _;
use greeter::MyGreeter;
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::{ApiKeyAuthenticator, BasicAuthenticator};
use grpc_auth::{AuthLayer, Authenticator};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::GreeterServer;
use jsonwebtoken::Algorithm;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

type BoxError = Box<dyn Error + Send + Sync>;

const ISSUER: &str = "https://issuer.load";
const AUDIENCE: &str = "greeter";
const HS_SECRET: &str = "load-secret-0123456789abcdef0123456789";

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
}

/// One row of the table: the server's authenticator and what the client sends.
struct Case {
    name: &'static str,
    auth: Auth,
    client: Calls,
    /// A diagnostic case: runs only when a filter names it.
    extra: bool,
}

/// What each call carries and what its reply must say.
struct Calls {
    /// The metadata entry every call carries.
    credential: Option<(AsciiMetadataKey, AsciiMetadataValue)>,
    /// What the reply must contain: the principal's subject and scheme, or
    /// "unauthenticated".
    expect: Vec<&'static str>,
}

fn cases() -> Result<Vec<Case>, BoxError> {
    let claims = tokens::claims(
        "load-ada",
        ISSUER,
        AUDIENCE,
        json!({"scope": "greeter.read"}),
    );
    let hs_token = tokens::hs256(HS_SECRET, &claims);
    let rs_token = tokens::sign_pem(
        Algorithm::RS256,
        include_bytes!("../tests/keys/rsa_private.pem"),
        &claims,
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
        Ok(Some((
            AsciiMetadataKey::from_static("authorization"),
            format!("Bearer {t}").parse()?,
        )))
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
            expect: expect.to_vec(),
        },
        extra: false,
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
    Ok(vec![
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
            bearer(&hs_token)?,
            &jwt_expect,
        ),
        case(
            "jwt_hs256_cache_on",
            Auth::Jwt(jwt(hs_key()?)),
            bearer(&hs_token)?,
            &jwt_expect,
        ),
        case(
            "jwt_rs256_cache_off",
            Auth::Jwt(jwt(rs_key()?).no_cache()),
            bearer(&rs_token)?,
            &jwt_expect,
        ),
        case(
            "jwt_rs256_cache_on",
            Auth::Jwt(jwt(rs_key()?)),
            bearer(&rs_token)?,
            &jwt_expect,
        ),
        case(
            "basic_argon2_cached",
            Auth::Basic(basic),
            Some((authorization, basic_value)),
            &["load-bob", "basic"],
        ),
        carrying("no_auth_carrying_hs256", bearer(&hs_token)?),
        carrying("no_auth_carrying_rs256", bearer(&rs_token)?),
        case("no_auth_again", Auth::None, None, &["unauthenticated"]),
    ])
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
    let listener = {
        let _guard = rt.enter();
        let std = std::net::TcpListener::bind("127.0.0.1:0")?;
        std.set_nonblocking(true)?;
        TcpListener::from_std(std)?
    };
    let addr = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
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

/// One call with the case's credential; the reply's message.
async fn call(
    client: &mut GreeterClient<Channel>,
    credential: &Option<(AsciiMetadataKey, AsciiMetadataValue)>,
) -> Result<String, tonic::Status> {
    let mut req = tonic::Request::new(HelloRequest {
        name: "load".into(),
    });
    if let Some((k, v)) = credential {
        req.metadata_mut().insert(k.clone(), v.clone());
    }
    Ok(client.say_hello(req).await?.into_inner().message)
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
    case: std::sync::Arc<Calls>,
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
        let result = call(&mut client, &case.credential).await;
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
    /// Process CPU time (server + client) per call in the measured window.
    cpu_us_per_call: Option<f64>,
    /// Share of the machine's cores the process used in the measured window.
    cpu_share: Option<f64>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux; in clock
/// ticks, which are 1/100 s on Linux's x86 and arm ABIs). `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
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
    calls: std::sync::Arc<Calls>,
    server: Running,
    channel: Channel,
    /// The first call succeeded and named the expected principal.
    ready: bool,
    outcome: Outcome,
    /// CPU time over the measured windows so far (`None` once unknown).
    cpu: Option<Duration>,
}

/// Starts the case's server, connects, and makes the case's first call, which must
/// succeed and name the expected principal.
async fn prepare(server_rt: &Handle, case: Case) -> Result<Prepared, BoxError> {
    let Case {
        name, auth, client, ..
    } = case;
    let server = spawn_server(server_rt, auth).await?;
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut outcome = Outcome::default();
    match call(&mut GreeterClient::new(channel.clone()), &client.credential).await {
        Ok(message) => {
            if let Err(e) = check_reply(&client, &message) {
                outcome.error(e);
            }
        }
        Err(status) => outcome.error(format!("{:?}: {}", status.code(), status.message())),
    }
    Ok(Prepared {
        name,
        calls: std::sync::Arc::new(client),
        server,
        channel,
        ready: outcome.errors == 0,
        outcome,
        cpu: Some(Duration::ZERO),
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
        // The process's CPU time over the measured window (server and client both).
        let cpu_window = tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let from = process_cpu();
            tokio::time::sleep_until(end.into()).await;
            Some(process_cpu()?.saturating_sub(from?))
        });
        for t in tasks {
            match t.await {
                Ok(o) => self.outcome.merge(o),
                Err(e) => self.outcome.error(format!("caller task failed: {e}")),
            }
        }
        let cpu = cpu_window.await.ok().flatten();
        self.cpu = self.cpu.zip(cpu).map(|(a, b)| a + b);
    }

    /// Stops the server; the case's row over `secs` measured seconds.
    async fn finish(self, secs: f64) -> Row {
        drop(self.channel);
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
        Row {
            name: self.name,
            calls: lat.len(),
            errors,
            first_error,
            rps: lat.len() as f64 / secs,
            cpu_us_per_call: cpu
                .filter(|_| !lat.is_empty())
                .map(|c| c.as_secs_f64() * 1e6 / lat.len() as f64),
            cpu_share: cpu.map(|c| c.as_secs_f64() / (secs * cores() as f64)),
            p50_us,
            p99_us,
        }
    }
}

async fn run_all(server_rt: Handle, s: Settings) -> Result<Vec<Row>, BoxError> {
    let mut selected = Vec::new();
    for case in cases()? {
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
        None => eprintln!("running {} ...", case.name),
    };
    let mut rows = Vec::new();
    if s.rounds == 1 {
        // One case after another, each with its own server.
        for case in selected {
            announce(&case);
            let mut p = prepare(&server_rt, case).await?;
            p.run(s.warmup, s.secs, s.concurrency).await;
            rows.push(p.finish(s.secs).await);
        }
    } else {
        // Every server up; the cases take turns, D / rounds each per round.
        let mut prepared = Vec::new();
        for case in selected {
            prepared.push(prepare(&server_rt, case).await?);
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
         | CPU us/call | ratio by CPU | cores busy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
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
        let busy = r
            .cpu_share
            .map_or_else(|| "-".into(), |c| format!("{:.0}%", c * 100.0));
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {:.0} | {ratio} | {cpu} | {cpu_ratio} | {busy} |",
            r.calls, r.errors, r.rps, r.p50_us, r.p99_us
        );
    }
    println!();
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
    let result = if settings.split {
        let half = (cores / 2).max(1);
        let runtimes =
            runtime(half, "load-server").and_then(|srv| Ok((srv, runtime(half, "load-client")?)));
        let desc = format!("split runtimes: server {half} + client {half} worker(s)");
        runtimes
            .map_err(BoxError::from)
            .and_then(|(server_rt, client_rt)| {
                let handle = server_rt.handle().clone();
                let rows = client_rt.block_on(run_all(handle, settings.clone()));
                rows.map(|r| (r, desc))
            })
    } else {
        let desc = format!("one runtime, {cores} workers, server and client");
        runtime(cores, "load")
            .map_err(BoxError::from)
            .and_then(|rt| {
                let handle = rt.handle().clone();
                rt.block_on(run_all(handle, settings.clone()))
                    .map(|r| (r, desc))
            })
    };
    match result {
        Ok((rows, desc)) => {
            if print_table(&rows, &settings, cores, &desc) {
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
