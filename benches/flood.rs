//! Bounded memory under a flood of distinct valid credentials: the process's resident
//! memory (`VmRSS` from `/proc/self/status`) before, during (sampled peak) and after
//!
//! - (a) `FLOOD_N` distinct validly signed HS256 tokens through
//!   `JwtAuthenticator::verify_cached` (the verified-token cache, default 10 000
//!   entries), and
//! - (b) `FLOOD_N` distinct valid HMAC signatures through `HmacVerifier::verify` with its
//!   replay cache (default 65 536 entries, each kept until its date leaves the ±300 s
//!   skew window), on a `ManualClock` advanced one second every `FLOOD_HMAC_PER_SEC`
//!   signatures so the window slides. A cache full of live signatures refuses new ones
//!   (`UNAVAILABLE`, "HMAC replay cache full"); those are counted. Along the way, an
//!   accepted signature still inside the window is presented again every 1 000 calls:
//!   it must be refused as a replay (a cache that forgot live entries would let it in).
//!
//! Bounds (the process exits non-zero past one, or on any unexpected outcome): peak
//! RSS growth over the flood below 64 MiB for the tokens (10 000 cached tokens of a few
//! hundred bytes each: a few MB; unbounded, 1 000 000 would take hundreds of MB) and
//! below 32 MiB for the HMAC signatures (the replay check's `MemoryStore`: about 200
//! bytes per entry, 13 MB at 65 536, up to 23 MB while its hash table grows under
//! churn; unbounded, 1 000 000 would take over 200 MB).
//!
//! ```text
//! cargo bench --bench flood                               # 1 000 000 each, release
//! FLOOD_N=20000 cargo bench --profile dev --bench flood   # CI's short form
//! ```
//! Env: `FLOOD_N` (default 1 000 000), `FLOOD_HMAC_PER_SEC` (default 256 signatures per
//! simulated second: 256 × 301 s of live entries is more than the cache holds, so part
//! of each window is refused), `FLOOD_ONLY=tokens|hmac` (one flood; by default each
//! runs in a child process of its own, so one flood's freed memory cannot hide the
//! other's growth).

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use grpc_auth::authn::hmac::{HmacError, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::HmacSigner;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey};

const MIB: u64 = 1024 * 1024;
const TOKEN_BOUND: u64 = 64 * MIB;
const HMAC_BOUND: u64 = 32 * MIB;
const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"flood-bench-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const PATH: &str = "/helloworld.Greeter/SayHello";
/// RSS is sampled every this many calls.
const SAMPLE_EVERY: u64 = 4096;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`), Linux only.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn rss() -> Option<u64> {
    status_bytes("VmRSS")
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / MIB as f64),
    )
}

/// RSS before a flood and the highest sample during it.
struct Memory {
    before: Option<u64>,
    peak: Option<u64>,
}

impl Memory {
    fn start() -> Self {
        let before = rss();
        Self {
            before,
            peak: before,
        }
    }

    fn sample(&mut self) {
        if let Some(now) = rss() {
            self.peak = Some(self.peak.map_or(now, |p| p.max(now)));
        }
    }

    /// Prints the figures and checks the growth against `bound`; `false` past it.
    fn report(mut self, bound: u64) -> bool {
        self.sample();
        let after = rss();
        // Each flood runs in its own process: the kernel's high-water mark catches a
        // peak between two samples.
        if let Some(hwm) = status_bytes("VmHWM") {
            self.peak = Some(self.peak.map_or(hwm, |p| p.max(hwm)));
        }
        let growth = match (self.before, self.peak) {
            (Some(b), Some(p)) => Some(p.saturating_sub(b)),
            _ => None,
        };
        let within = growth.is_none_or(|g| g < bound);
        println!(
            "  RSS before {}, after {}, peak {}; growth (peak - before) {} (bound {}): {}",
            mib(self.before),
            mib(after),
            mib(self.peak),
            mib(growth),
            mib(Some(bound)),
            match (growth, within) {
                (None, _) => "not measured (no /proc/self/status)",
                (Some(_), true) => "ok",
                (Some(_), false) => "EXCEEDED",
            }
        );
        within
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn per_sec(n: u64, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64().max(1e-9))
}

/// (a) Distinct valid tokens through the verified-token cache. `true` when all were
/// accepted as the right subject and memory stayed within the bound.
async fn token_flood(n: u64) -> bool {
    install_jwt_provider();
    let key = match JwtKey::secret(Algorithm::HS256, SECRET) {
        Ok(k) => k,
        Err(e) => {
            println!("  cannot make the key: {e}");
            return false;
        }
    };
    let jwt = JwtAuthenticator::new(StaticKeys::from(key))
        .issuer(ISS)
        .audience(AUD)
        .clock(ManualClock::at_unix(NOW));
    let signing_key = EncodingKey::from_secret(SECRET);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let exp = NOW + 3600;

    println!(
        "(a) token flood: {n} distinct HS256 tokens through JwtAuthenticator::verify_cached \
         (verified-token cache: {TOKEN_CACHE_CAPACITY} entries)"
    );
    let mut memory = Memory::start();
    let (mut accepted, mut refused, mut wrong_subject) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    let mut verifying = Duration::ZERO;
    let started = Instant::now();
    for i in 0..n {
        let payload = format!(
            r#"{{"sub":"user-{i}","iss":"{ISS}","aud":"{AUD}","iat":{NOW},"exp":{exp},"jti":"{i:016x}"}}"#
        );
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let token =
            match jsonwebtoken::crypto::sign(message.as_bytes(), &signing_key, Algorithm::HS256) {
                Ok(sig) => format!("{message}.{sig}"),
                Err(e) => {
                    println!("  cannot sign: {e}");
                    return false;
                }
            };
        let t = Instant::now();
        let result = jwt.verify_cached(&token).await;
        verifying += t.elapsed();
        match result {
            Ok(p) if p.subject() == format!("user-{i}") => accepted += 1,
            Ok(_) => wrong_subject += 1,
            Err(e) => {
                refused += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
        if i % SAMPLE_EVERY == 0 {
            memory.sample();
        }
    }
    let total = started.elapsed();
    println!(
        "  accepted {accepted}, refused {refused}, wrong subject {wrong_subject}{}",
        first_error.map_or_else(String::new, |e| format!(" (first refusal: {e})"))
    );
    println!(
        "  {n} calls: {} verify_cached calls ({:.2} s verifying), {} with signing ({:.2} s)",
        per_sec(n, verifying),
        verifying.as_secs_f64(),
        per_sec(n, total),
        total.as_secs_f64()
    );
    let within = memory.report(TOKEN_BOUND);
    within && accepted == n
}

/// (b) Distinct valid HMAC signatures through the replay cache, the clock sliding.
async fn hmac_flood(n: u64, per_sec_simulated: u64) -> bool {
    let clock = ManualClock::at_unix(NOW);
    let verifier =
        HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret-a")).clock(clock.clone());
    let signer = HmacSigner::new("svc-a", "s3cret-a").clock(clock.clone());
    println!(
        "(b) HMAC flood: {n} distinct signatures through HmacVerifier::verify (replay cache: \
         {DEFAULT_REPLAY_CACHE_SIZE} entries, skew ±{} s), clock +1 s every {per_sec_simulated} \
         signatures ({} simulated s)",
        DEFAULT_MAX_SKEW.as_secs(),
        n / per_sec_simulated
    );
    let mut memory = Memory::start();
    let (mut accepted, mut refused_full, mut refused_other) = (0u64, 0u64, 0u64);
    let mut first_other = None;
    // Accepted signatures kept to be presented again while still inside the window.
    let mut kept: VecDeque<(u64, HeaderMap)> = VecDeque::new();
    // In calls: about 100 simulated seconds (at most 50 000 calls), and 250 s.
    let replay_age = (100 * per_sec_simulated).min(50_000);
    let too_old_for_window = 250 * per_sec_simulated;
    let (mut replays_tried, mut replays_refused, mut replays_accepted) = (0u64, 0u64, 0u64);
    let mut verifying = Duration::ZERO;
    let started = Instant::now();
    for i in 0..n {
        if i > 0 && i % per_sec_simulated == 0 {
            clock.advance(Duration::from_secs(1));
        }
        let mut headers = HeaderMap::new();
        if let Err(e) = signer.sign(PATH, &mut headers) {
            println!("  cannot sign: {e}");
            return false;
        }
        let t = Instant::now();
        let result = verifier.verify("POST", PATH, &headers).await;
        verifying += t.elapsed();
        match result {
            Ok(_) => {
                accepted += 1;
                if i % 1000 == 0 {
                    kept.push_back((i, headers));
                }
            }
            Err(e) if e.is_unavailable() && e.to_string() == "HMAC replay cache full" => {
                refused_full += 1;
            }
            Err(e) => {
                refused_other += 1;
                first_other.get_or_insert(e.to_string());
            }
        }
        // Every 1 000 calls, an accepted signature from well inside the window (up to
        // 100 simulated seconds old) comes back: it must be a replay.
        if i % 1000 == 500 {
            while kept
                .front()
                .is_some_and(|(at, _)| i - at > too_old_for_window)
            {
                kept.pop_front();
            }
            if let Some((at, _)) = kept.front()
                && i - at >= replay_age
                && let Some((_, old)) = kept.pop_front()
            {
                replays_tried += 1;
                match verifier.verify("POST", PATH, &old).await {
                    Ok(_) => replays_accepted += 1,
                    Err(HmacError::Replay) => replays_refused += 1,
                    Err(e) => {
                        refused_other += 1;
                        first_other.get_or_insert(format!("replay check: {e}"));
                    }
                }
            }
        }
        if i % SAMPLE_EVERY == 0 {
            memory.sample();
        }
    }
    let total = started.elapsed();
    println!(
        "  accepted {accepted}, refused as replay cache full {refused_full}, refused otherwise \
         {refused_other}{}",
        first_other.map_or_else(String::new, |e| format!(" (first: {e})"))
    );
    println!(
        "  live signatures presented again: {replays_tried}, refused as replays \
         {replays_refused}, accepted again {replays_accepted}"
    );
    println!(
        "  {n} calls: {} verify calls ({:.2} s verifying), {} with signing ({:.2} s)",
        per_sec(n, verifying),
        verifying.as_secs_f64(),
        per_sec(n, total),
        total.as_secs_f64()
    );
    let within = memory.report(HMAC_BOUND);
    within && refused_other == 0 && replays_accepted == 0 && accepted > 0
}

/// Runs one flood in this process: `"tokens"` or `"hmac"`.
fn run_one(which: &str, n: u64, per_sec_simulated: u64) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("[{which}] process RSS at start {}", mib(rss()));
    let ok = match which {
        "tokens" => runtime.block_on(token_flood(n)),
        "hmac" => runtime.block_on(hmac_flood(n, per_sec_simulated)),
        other => {
            eprintln!("FLOOD_ONLY must be tokens or hmac, not {other:?}");
            false
        }
    };
    println!(
        "[{which}] process peak RSS (VmHWM) {}: {}",
        mib(status_bytes("VmHWM")),
        if ok { "ok" } else { "FAILED" }
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; no flags are read, only the environment.
    let n = env_u64("FLOOD_N", 1_000_000);
    let per_sec_simulated = env_u64("FLOOD_HMAC_PER_SEC", 256);
    if let Ok(which) = std::env::var("FLOOD_ONLY") {
        return run_one(&which, n, per_sec_simulated);
    }
    // Each flood in its own process, so that memory the first one freed does not
    // hide the second one's growth.
    println!("flood bench: FLOOD_N = {n}");
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = Vec::new();
    for which in ["tokens", "hmac"] {
        let status = std::process::Command::new(&exe)
            .env("FLOOD_ONLY", which)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => failed.push(format!("{which} ({s})")),
            Err(e) => failed.push(format!("{which} (not run: {e})")),
        }
    }
    if failed.is_empty() {
        println!("flood bench: every bound held");
        ExitCode::SUCCESS
    } else {
        println!("flood bench: FAILED: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
/// The documented defaults this flood measures against.
const DEFAULT_MAX_SKEW: std::time::Duration = std::time::Duration::from_secs(300);
const DEFAULT_REPLAY_CACHE_SIZE: usize = 65_536;
const TOKEN_CACHE_CAPACITY: usize = 10_000;

fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
