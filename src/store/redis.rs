//! [`RedisStore`]: the [`Store`] replicas share, on redis-rs's reconnecting
//! `ConnectionManager`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError, Script};
use tokio::sync::Semaphore;

use super::{Counted, Key, Kind, Store, StoreError, StoreFuture};

const NAME: &str = "redis";

/// Default key prefix: `grpc-auth:`.
pub(crate) const DEFAULT_PREFIX: &str = "grpc-auth:";
/// Default bound on one store call, reconnect attempts included: 500 ms.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default bound on calls waiting on Redis at once: 1024.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default time replay and revocation checks are refused after Redis lost its data:
/// 10 minutes (a signature's date may be up to the default 300 s skew ahead, and is
/// accepted up to 300 s behind).
pub(crate) const DEFAULT_DATA_LOSS_QUARANTINE: Duration = Duration::from_secs(600);

/// Counts an event against each key unless one has reached its limit. KEYS: the
/// counters; ARGV: their limits, then the window in milliseconds. 1: counted, 0: limited.
const COUNT: &str = r"
local n = #KEYS
for i = 1, n do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if c >= tonumber(ARGV[i]) then return 0 end
end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + 1]) end
end
return 1
";

/// Takes one event back from the first ARGV[1] keys (deleted at zero), clears the rest.
const UNCOUNT: &str = r"
local one = tonumber(ARGV[1])
for i = 1, #KEYS do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if i <= one and c > 1 then redis.call('DECR', KEYS[i]) else redis.call('DEL', KEYS[i]) end
end
return 1
";

/// A [`Store`] on Redis, shared by every replica that names the same server and prefix.
/// Clones share one connection.
///
/// ```no_run
/// use grpc_auth::store::RedisStore;
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Inside a Tokio runtime. No connection is made yet: the first call connects,
/// // and a lost connection is made again on its own.
/// let store = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("billing:")
///     .timeout(std::time::Duration::from_millis(200))
///     .build()?;
/// # let _ = store; Ok(()) }
/// ```
///
/// - **What it stores:** keys `{prefix}{kind}:{base64url SHA-256}` (see
///   [`Key::name`]), never a raw credential; each with the time-to-live its protection
///   gives it, so Redis itself forgets what no longer matters.
/// - **Bounded time:** each call gives up after [`timeout`](RedisStoreBuilder::timeout)
///   (500 ms by default), and at most [`max_in_flight`](RedisStoreBuilder::max_in_flight)
///   calls (1024) wait on Redis at once; beyond that a call fails at once. Nothing queues
///   without bound while Redis is away.
/// - **Failure:** every failure is a [`StoreError`], and the protection refuses the call
///   with `UNAVAILABLE` "redis store unavailable: ...". Calls that need no store go on.
/// - **Reconnection:** on its own, in the background, with backoff; no restart needed.
/// - **Data lost** (Redis restarted empty or from an older snapshot, flushed, failed
///   over to a lagging replica): remembered signatures and revocations are gone, so a
///   captured request could be replayed and a revoked token would work again. Every
///   replay mark and revocation written also increments a counter (`{prefix}seq`), and
///   every revocation lookup reads it, in the same round trip; a call sent after
///   another finished must read at least its number (a write, more), so a lower one
///   means Redis went back in time. The same round trip sets a random marker
///   (`{prefix}epoch`) if there is none and reads it: a Redis that lost everything
///   has another marker, whichever replica wrote since. The
///   store then logs an error and refuses replay and revocation checks (`UNAVAILABLE`
///   "redis store unreliable: redis lost data ...") for
///   [`data_loss_quarantine`](RedisStoreBuilder::data_loss_quarantine) (10 minutes),
///   until every signature dated before the loss is outside its window. Revocations
///   must then be made again by whoever keeps them (run Redis with `appendonly yes` to
///   keep them across restarts). Failed-login counts and opaque tokens are not guarded:
///   lost counts start afresh, lost tokens are refused (their holders log in again).
///   Limits: a replica that made no guarded call before the loss cannot tell; and a
///   rollback to a snapshot that already held the marker is seen only by the replicas
///   whose last guarded call came after the snapshot (the others read a counter that
///   replicas writing since pushed up again). Run Redis with `appendonly yes` and
///   `appendfsync always` where revocations and replays must survive a crash.
/// - **Eviction:** a Redis with a memory limit and an evicting policy
///   (`maxmemory-policy` other than `noeviction`) may drop replay and revocation keys to
///   make room, and an unauthenticated password guesser can make it need room. The
///   store reads the policy (`INFO memory`) before its first guarded call and once a
///   minute after; while Redis may evict, or refuses `INFO` (see
///   [`assume_noeviction`](RedisStoreBuilder::assume_noeviction)), replay and
///   revocation checks are refused ("redis may evict keys ... set maxmemory-policy
///   noeviction"). Under `noeviction` a
///   full Redis refuses writes, and the calls that needed them are `UNAVAILABLE`.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    permits: Semaphore,
    max_in_flight: usize,
    count: Script,
    uncount: Script,
    seq_key: String,
    /// The highest `{prefix}seq` a finished guarded call read.
    floor: AtomicU64,
    quarantine: Duration,
    guard: Mutex<Guard>,
    assume_noeviction: bool,
    epoch_key: String,
    /// This store's part of the marker it sets when there is none (with `calls`).
    candidate: String,
    calls: AtomicU64,
}

/// What the store knows of Redis's reliability.
#[derive(Default)]
struct Guard {
    /// Guarded checks are refused until then (data loss seen).
    quarantined_until: Option<Instant>,
    /// The data-loss marker this store saw (`{prefix}epoch`); `None` before the first
    /// guarded call.
    marker: Option<String>,
    /// When the eviction policy was last read, and why Redis may evict (if it may).
    policy: Option<(Instant, Option<String>)>,
}

/// How often the eviction policy is read again: 60 s.
const POLICY_EVERY: Duration = Duration::from_secs(60);

/// Builds a [`RedisStore`]: see [`RedisStore::builder`]. Its `Debug` leaves out the
/// URL (it may carry a password).
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    max_in_flight: usize,
    quarantine: Duration,
    assume_noeviction: bool,
}

/// 128 random bits, hex: this store's part of the marker it sets.
fn random_marker() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| StoreError::unavailable(NAME, "no randomness for the marker"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a Redis with this `INFO memory` may evict keys, or `None` when it never does
/// (no memory limit, or `noeviction`).
fn evicting_policy(info: &str) -> Option<String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let maxmemory = field("maxmemory").and_then(|v| v.parse::<u64>().ok());
    let policy = field("maxmemory_policy").unwrap_or("unknown");
    if maxmemory == Some(0) || policy == "noeviction" {
        return None;
    }
    Some(format!(
        "redis may evict keys (maxmemory-policy {policy}); set maxmemory-policy noeviction"
    ))
}

/// Keys whose loss would let something through (a replay, a revoked token).
fn guarded(keys: &[Key]) -> bool {
    keys.iter().any(|k| {
        matches!(
            k.kind(),
            Kind::Replay | Kind::RevokedJti | Kind::RevokedSubject
        )
    })
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS when redis-rs is built with a TLS feature).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            quarantine: DEFAULT_DATA_LOSS_QUARANTINE,
            assume_noeviction: false,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Runs one Redis call within the bounds: a permit (or fail at once) and the timeout.
    async fn call<T>(
        &self,
        f: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        self.call_raw(f)
            .await?
            .map_err(|e| StoreError::unavailable(NAME, describe(&e)))
    }

    /// [`call`](Self::call), Redis's own error kept for the caller to read.
    async fn call_raw<T>(
        &self,
        f: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<Result<T, RedisError>, StoreError> {
        let Ok(_permit) = self.shared.permits.try_acquire() else {
            return Err(StoreError::unavailable(
                NAME,
                format!("{} calls already waiting", self.shared.max_in_flight),
            ));
        };
        tokio::time::timeout(self.shared.timeout, f)
            .await
            .map_err(|_| {
                StoreError::unavailable(NAME, format!("no answer within {:?}", self.shared.timeout))
            })
    }

    fn name_of(&self, key: &Key) -> String {
        key.name(&self.shared.prefix)
    }

    /// Runs `cmd`; for keys that must not be lost silently (replay, revocation), first
    /// makes sure Redis keeps them (no quarantine, no evicting policy) and increments the
    /// sequence counter in the same round trip (a pipeline), refusing when it went back.
    async fn run<T: FromRedisValue>(
        &self,
        cmd: Cmd,
        keys: &[Key],
        write: bool,
    ) -> Result<T, StoreError> {
        let mut conn = self.shared.conn.clone();
        if !guarded(keys) {
            return self.call(cmd.query_async(&mut conn)).await;
        }
        self.check_quarantine()?;
        self.check_policy().await?;
        // Every call that finished before this one was sent read less than `floor` + 1.
        let floor = self.shared.floor.load(Ordering::SeqCst);
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        // A write counts itself (it must read more than the floor); a read only looks
        // (it must read no less), so lookups stay reads.
        pipe.cmd(if write { "INCR" } else { "GET" })
            .arg(&self.shared.seq_key);
        // And the marker, set if absent (a value never used before) then read: a Redis
        // that lost everything has another, whichever replica wrote since.
        let n = self.shared.calls.fetch_add(1, Ordering::Relaxed);
        pipe.cmd("SET")
            .arg(&self.shared.epoch_key)
            .arg(format!("{}-{n}", self.shared.candidate))
            .arg("NX")
            .ignore();
        pipe.cmd("GET").arg(&self.shared.epoch_key);
        let (value, seq, marker): (T, Option<u64>, Option<String>) =
            self.call(pipe.query_async(&mut conn)).await?;
        let seq = seq.unwrap_or(0);
        self.check_quarantine()?;
        let went_back = seq < floor || (write && seq == floor);
        let marker_changed = {
            let mut guard = self.lock_guard();
            let changed = match (&guard.marker, &marker) {
                (Some(seen), Some(m)) => seen != m,
                (None, Some(_)) => false,
                (_, None) => true,
            };
            // Either way the marker read is the one to compare with from now on, so one
            // loss makes one quarantine.
            guard.marker = marker;
            changed
        };
        if went_back || marker_changed {
            return Err(self.lost(seq, floor));
        }
        self.shared.floor.fetch_max(seq, Ordering::SeqCst);
        Ok(value)
    }

    fn lock_guard(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.shared
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn check_quarantine(&self) -> Result<(), StoreError> {
        let mut guard = self.lock_guard();
        match guard.quarantined_until {
            Some(until) if Instant::now() < until => Err(StoreError::Unreliable {
                store: NAME,
                reason: format!(
                    "redis lost data; replay and revocation checks refused for {} s more",
                    until.saturating_duration_since(Instant::now()).as_secs() + 1
                ),
            }),
            Some(_) => {
                guard.quarantined_until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Redis went back in time: the quarantine starts (again), and the counter's new
    /// value becomes the floor.
    fn lost(&self, seq: u64, floor: u64) -> StoreError {
        let mut guard = self.lock_guard();
        guard.quarantined_until = Some(Instant::now() + self.shared.quarantine);
        self.shared.floor.store(seq, Ordering::SeqCst);
        tracing::error!(
            prefix = %self.shared.prefix,
            seq,
            floor,
            quarantine_secs = self.shared.quarantine.as_secs(),
            "grpc-auth: redis lost data (restarted empty or from an older snapshot, flushed, \
             failed over); replay and revocation checks refused for the quarantine; \
             revocations must be made again"
        );
        StoreError::Unreliable {
            store: NAME,
            reason: "redis lost data; replay and revocation checks refused for now".to_owned(),
        }
    }

    /// Refuses while Redis may evict keys; reads its policy at most once a minute.
    async fn check_policy(&self) -> Result<(), StoreError> {
        if self.shared.assume_noeviction {
            return Ok(());
        }
        let fresh = {
            let guard = self.lock_guard();
            match &guard.policy {
                Some((at, evicting)) if at.elapsed() < POLICY_EVERY => Some(evicting.clone()),
                _ => None,
            }
        };
        let evicting = match fresh {
            Some(evicting) => evicting,
            None => {
                let mut conn = self.shared.conn.clone();
                let mut cmd = redis::cmd("INFO");
                cmd.arg("memory");
                let info = match self.call_raw(cmd.query_async::<String>(&mut conn)).await? {
                    Ok(info) => info,
                    // Refused for good (an ACL without INFO, a renamed command): the policy
                    // cannot be read, so the checks that need it cannot be made.
                    Err(e) if matches!(e.code(), Some("NOPERM" | "ERR")) => {
                        tracing::error!(
                            prefix = %self.shared.prefix,
                            "grpc-auth: redis refuses INFO; its eviction policy cannot be \
                             checked; replay and revocation checks refused (grant INFO, or \
                             assume_noeviction if the server never evicts)"
                        );
                        return Err(StoreError::Unreliable {
                            store: NAME,
                            reason: "redis refuses INFO, so its eviction policy is unknown; \
                                     grant INFO or set assume_noeviction"
                                .to_owned(),
                        });
                    }
                    // Anything else (BUSY, LOADING, ...) is this moment's: nothing is kept.
                    Err(e) => return Err(StoreError::unavailable(NAME, describe(&e))),
                };
                let evicting = evicting_policy(&info);
                if let Some(reason) = &evicting {
                    tracing::error!(
                        prefix = %self.shared.prefix,
                        reason = %reason,
                        "grpc-auth: redis may evict keys; replay and revocation checks refused"
                    );
                }
                self.lock_guard().policy = Some((Instant::now(), evicting.clone()));
                evicting
            }
        };
        match evicting {
            Some(reason) => Err(StoreError::Unreliable {
                store: NAME,
                reason,
            }),
            None => Ok(()),
        }
    }
}

/// What went wrong, without anything a command carried.
fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".to_owned()
    } else {
        format!("{:?} error", e.kind())
    }
}

/// The longest expiry sent to Redis: 10^15 ms (about 31,700 years). Redis refuses an
/// expiry whose deadline overflows its clock ("invalid expire time").
const MAX_TTL_MS: u64 = 1_000_000_000_000_000;

/// `ttl` in milliseconds as Redis takes it: at least 1, at most [`MAX_TTL_MS`].
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

fn with_ttl(cmd: &mut Cmd, ttl: Option<Duration>) {
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_ms(ttl));
    }
}

impl RedisStoreBuilder {
    /// Prefixes every key name (default `grpc-auth:`): services sharing one Redis keep
    /// apart by prefix; replicas of one service share it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one store call may take, connecting included (default 500 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many calls may wait on Redis at once (default 1024, at least 1); more fail
    /// at once with `UNAVAILABLE`.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls.max(1);
        self
    }

    /// How long replay and revocation checks are refused after Redis is found to have
    /// lost its data (default 10 minutes; see [`RedisStore`]). Zero: only the call that
    /// finds the loss is refused (and it is logged).
    pub fn data_loss_quarantine(mut self, quarantine: Duration) -> Self {
        self.quarantine = quarantine;
        self
    }

    /// Skips reading the eviction policy: for a Redis that refuses `INFO` to this user
    /// and is known never to evict (`maxmemory-policy noeviction`, or no memory limit).
    /// Without it, a Redis that refuses `INFO` gets replay and revocation checks refused.
    pub fn assume_noeviction(mut self) -> Self {
        self.assume_noeviction = true;
        self
    }

    /// The store. Needs a Tokio runtime; connects on first use, so Redis may be down
    /// now (calls fail `UNAVAILABLE` until it is up). Fails only on a malformed URL.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| StoreError::unavailable(NAME, format!("bad URL: {}", describe(&e))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::unavailable(NAME, describe(&e)))?;
        Ok(RedisStore {
            shared: Arc::new(Shared {
                conn,
                timeout: self.timeout,
                permits: Semaphore::new(self.max_in_flight),
                max_in_flight: self.max_in_flight,
                count: Script::new(COUNT),
                uncount: Script::new(UNCOUNT),
                seq_key: format!("{}seq", self.prefix),
                floor: AtomicU64::new(0),
                quarantine: self.quarantine,
                guard: Mutex::new(Guard::default()),
                assume_noeviction: self.assume_noeviction,
                epoch_key: format!("{}epoch", self.prefix),
                candidate: random_marker()?,
                calls: AtomicU64::new(0),
                prefix: self.prefix,
            }),
        })
    }
}

impl Store for RedisStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn insert_new<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.name_of(&key)).arg(value).arg("NX");
            with_ttl(&mut cmd, ttl);
            let set: Option<String> = self.run(cmd, &[key], true).await?;
            Ok(set.is_some())
        })
    }

    fn put<'a>(&'a self, key: Key, value: &'a [u8], ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.name_of(&key)).arg(value);
            with_ttl(&mut cmd, ttl);
            self.run::<()>(cmd, &[key], true).await
        })
    }

    fn get<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut cmd = redis::cmd("MGET");
            for key in keys {
                cmd.arg(self.name_of(key));
            }
            let values: Vec<Option<Vec<u8>>> = self.run(cmd, keys, false).await?;
            if values.len() != keys.len() {
                return Err(StoreError::unavailable(
                    NAME,
                    "MGET answered the wrong count",
                ));
            }
            Ok(values)
        })
    }

    fn remove(&self, key: Key) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(self.name_of(&key));
            let n: i64 = self.run(cmd, &[key], true).await?;
            Ok(n > 0)
        })
    }

    fn count<'a>(
        &'a self,
        counters: &'a [(Key, u32)],
        window: Duration,
    ) -> StoreFuture<'a, Counted> {
        Box::pin(async move {
            if counters.is_empty() {
                return Ok(Counted::Yes);
            }
            let mut invocation = self.shared.count.prepare_invoke();
            for (key, _) in counters {
                invocation.key(self.name_of(key));
            }
            for (_, limit) in counters {
                invocation.arg(*limit);
            }
            invocation.arg(ttl_ms(window));
            let mut conn = self.shared.conn.clone();
            let counted: i64 = self.call(invocation.invoke_async(&mut conn)).await?;
            Ok(if counted == 1 {
                Counted::Yes
            } else {
                Counted::Limited
            })
        })
    }

    fn uncount<'a>(&'a self, one: &'a [Key], all: &'a [Key]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if one.is_empty() && all.is_empty() {
                return Ok(());
            }
            let mut invocation = self.shared.uncount.prepare_invoke();
            for key in one.iter().chain(all) {
                invocation.key(self.name_of(key));
            }
            invocation.arg(one.len());
            let mut conn = self.shared.conn.clone();
            let _: i64 = self.call(invocation.invoke_async(&mut conn)).await?;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("data_loss_quarantine", &self.quarantine)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("max_in_flight", &self.shared.max_in_flight)
            .finish_non_exhaustive()
    }
}
