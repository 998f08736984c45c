//! The [`Store`] contract, run against [`MemoryStore`] and [`RedisStore`] alike (the
//! `memory::` and `redis::` tests are the same behaviours), then what only Redis has:
//! key names that are prefixed digests, replicas sharing a prefix, one winner among
//! concurrent inserts, and failing closed (Redis down at build, stopped mid-run, slow,
//! too many calls waiting) with errors that carry no secret.
//!
//! Each Redis test starts its own `redis-server` (tests/support/redis.rs) and skips when
//! none is installed, unless `GRPC_AUTH_REQUIRE_INTEROP=1`.
#![cfg(feature = "redis")]

#[path = "support/redis.rs"]
mod redis_server;

use std::future::Future;
use std::time::{Duration, Instant};

use grpc_auth::clock::ManualClock;
use grpc_auth::store::{Counted, Key, Kind, MemoryStore, RedisStore, Store, StoreError};
use redis_server::RedisServer;

/// The time-to-live and count window of the behaviour suite.
const TTL: Duration = Duration::from_millis(200);
/// How much longer than a time-to-live to wait before expecting it to have passed.
const SLACK: Duration = Duration::from_millis(100);
/// A window no test outlives.
const LONG: Duration = Duration::from_secs(600);

fn key(kind: Kind, material: &str) -> Key {
    Key::digest(kind, &[material.as_bytes()])
}

/// How time passes for a store: a [`ManualClock`] moved, or real time slept.
enum Time {
    Manual(ManualClock),
    Real,
}

impl Time {
    async fn pass(&self, d: Duration) {
        match self {
            Self::Manual(clock) => clock.advance(d),
            Self::Real => tokio::time::sleep(d).await,
        }
    }
}

fn memory() -> (MemoryStore, Time) {
    let clock = ManualClock::at_unix(1_700_000_000);
    (
        MemoryStore::new(1_000).clock(clock.clone()),
        Time::Manual(clock),
    )
}

/// A store on `server` with `prefix`, a timeout generous enough for a loaded machine.
fn redis_store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::builder(server.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("build RedisStore")
}

/// Runs `f`, returning its output and how long it took.
async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// Polls `store` (a `get` of a kind no data-loss check guards) until it answers,
/// within `within`: how long that took.
async fn until_answers(store: &dyn Store, within: Duration) -> Duration {
    let start = Instant::now();
    let probe = key(Kind::Token, "probe");
    loop {
        match store.get(&[probe]).await {
            Ok(_) => return start.elapsed(),
            Err(e) if start.elapsed() >= within => {
                panic!("the store did not answer again within {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Asserts `r` is `Unavailable` from the Redis store, with the usual message, and that
/// neither its message nor its `Debug` shows any of `secrets`.
#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(r: &Result<T, StoreError>, secrets: &[&str]) {
    let Err(e) = r else {
        panic!("expected Unavailable, got {r:?}");
    };
    assert!(
        matches!(e, StoreError::Unavailable { store: "redis", .. }),
        "{e:?}"
    );
    let shown = format!("{e} {e:?}");
    assert!(
        e.to_string().starts_with("redis store unavailable: "),
        "{shown}"
    );
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} shown in {shown}");
    }
}

/// The behaviours every store has, each on fresh keys.
mod behaviour {
    use super::*;

    pub(crate) async fn insert_new_is_true_once(s: &dyn Store, _: &Time) {
        let k = key(Kind::Replay, "signature-1");
        assert_eq!(s.insert_new(k, b"v1", None).await, Ok(true));
        assert_eq!(s.insert_new(k, b"v2", None).await, Ok(false));
        assert_eq!(s.insert_new(k, b"v1", Some(TTL)).await, Ok(false));
        // The first value stays.
        assert_eq!(s.get(&[k]).await, Ok(vec![Some(b"v1".to_vec())]));
        // The same material under another kind is another key.
        let other = key(Kind::RevokedJti, "signature-1");
        assert_eq!(s.insert_new(other, b"v3", None).await, Ok(true));
        assert_eq!(s.insert_new(other, b"v3", None).await, Ok(false));
    }

    pub(crate) async fn insert_new_again_after_the_ttl(s: &dyn Store, t: &Time) {
        let k = key(Kind::Replay, "signature-ttl");
        assert_eq!(s.insert_new(k, b"1", Some(TTL)).await, Ok(true));
        assert_eq!(s.insert_new(k, b"1", Some(TTL)).await, Ok(false));
        t.pass(TTL + SLACK).await;
        assert_eq!(s.get(&[k]).await, Ok(vec![None]));
        assert_eq!(s.insert_new(k, b"2", Some(TTL)).await, Ok(true));
        assert_eq!(s.insert_new(k, b"3", Some(TTL)).await, Ok(false));
        assert_eq!(s.get(&[k]).await, Ok(vec![Some(b"2".to_vec())]));
    }

    pub(crate) async fn no_ttl_is_kept(s: &dyn Store, t: &Time) {
        let k = key(Kind::RevokedJti, "jti-forever");
        assert_eq!(s.insert_new(k, b"1", None).await, Ok(true));
        t.pass(TTL + SLACK).await;
        assert_eq!(s.insert_new(k, b"1", None).await, Ok(false));
        assert_eq!(s.get(&[k]).await, Ok(vec![Some(b"1".to_vec())]));
    }

    pub(crate) async fn put_replaces_and_get_keeps_order(s: &dyn Store, t: &Time) {
        let a = key(Kind::Token, "token-a");
        let b = key(Kind::Token, "token-b");
        let absent = key(Kind::Token, "token-absent");
        assert_eq!(s.get(&[]).await, Ok(vec![]));
        assert_eq!(s.get(&[a, absent]).await, Ok(vec![None, None]));
        assert_eq!(s.put(a, b"va", None).await, Ok(()));
        assert_eq!(s.put(b, b"vb", None).await, Ok(()));
        assert_eq!(
            s.get(&[b, absent, a, b]).await,
            Ok(vec![
                Some(b"vb".to_vec()),
                None,
                Some(b"va".to_vec()),
                Some(b"vb".to_vec())
            ])
        );
        assert_eq!(s.put(a, b"va2", None).await, Ok(()));
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"va2".to_vec())]));
        // What put stored is there for insert_new.
        assert_eq!(s.insert_new(a, b"x", None).await, Ok(false));
        // An empty value and binary values come back as they went.
        assert_eq!(s.put(b, b"", None).await, Ok(()));
        let binary = key(Kind::Token, "token-binary");
        assert_eq!(s.put(binary, &[0, 255, 13, 10, 0], None).await, Ok(()));
        assert_eq!(
            s.get(&[b, binary]).await,
            Ok(vec![Some(Vec::new()), Some(vec![0, 255, 13, 10, 0])])
        );
        // A put with a time-to-live expires; one without a time-to-live replaces it and stays.
        let short = key(Kind::RevokedSubject, "sub-short");
        let kept = key(Kind::RevokedSubject, "sub-kept");
        assert_eq!(s.put(short, b"1", Some(TTL)).await, Ok(()));
        assert_eq!(s.put(kept, b"1", Some(TTL)).await, Ok(()));
        assert_eq!(s.put(kept, b"2", None).await, Ok(()));
        t.pass(TTL + SLACK).await;
        assert_eq!(
            s.get(&[short, kept]).await,
            Ok(vec![None, Some(b"2".to_vec())])
        );
    }

    pub(crate) async fn remove_says_whether_it_held_a_value(s: &dyn Store, t: &Time) {
        let k = key(Kind::RevokedJti, "jti-removed");
        assert_eq!(s.remove(k).await, Ok(false));
        assert_eq!(s.insert_new(k, b"1", None).await, Ok(true));
        assert_eq!(s.remove(k).await, Ok(true));
        assert_eq!(s.get(&[k]).await, Ok(vec![None]));
        assert_eq!(s.remove(k).await, Ok(false));
        assert_eq!(s.insert_new(k, b"1", None).await, Ok(true));
        // An expired entry holds no value.
        let expired = key(Kind::RevokedJti, "jti-expired");
        assert_eq!(s.put(expired, b"1", Some(TTL)).await, Ok(()));
        t.pass(TTL + SLACK).await;
        assert_eq!(s.remove(expired).await, Ok(false));
    }

    pub(crate) async fn count_up_to_the_limit(s: &dyn Store, _: &Time) {
        let a = key(Kind::Failures, "user:ada");
        let counters = [(a, 3)];
        for _ in 0..3 {
            assert_eq!(s.count(&counters, LONG).await, Ok(Counted::Yes));
        }
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"3".to_vec())]));
        for _ in 0..3 {
            assert_eq!(s.count(&counters, LONG).await, Ok(Counted::Limited));
        }
        // Nothing was counted while limited.
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"3".to_vec())]));
        // A higher limit on the same counter counts on.
        assert_eq!(s.count(&[(a, 4)], LONG).await, Ok(Counted::Yes));
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"4".to_vec())]));
        // No counters: counted.
        assert_eq!(s.count(&[], LONG).await, Ok(Counted::Yes));
    }

    pub(crate) async fn count_is_all_or_nothing(s: &dyn Store, _: &Time) {
        let user = key(Kind::Failures, "user:bob");
        let peer = key(Kind::Failures, "peer:192.0.2.7");
        let fresh = key(Kind::Failures, "user:carol");
        for _ in 0..2 {
            assert_eq!(
                s.count(&[(user, 5), (peer, 2)], LONG).await,
                Ok(Counted::Yes)
            );
        }
        // The peer is at its limit: the user is not counted either.
        assert_eq!(
            s.count(&[(user, 5), (peer, 2)], LONG).await,
            Ok(Counted::Limited)
        );
        assert_eq!(
            s.get(&[user, peer]).await,
            Ok(vec![Some(b"2".to_vec()), Some(b"2".to_vec())])
        );
        // A counter first in the list but never counted is not created.
        assert_eq!(
            s.count(&[(fresh, 5), (peer, 2)], LONG).await,
            Ok(Counted::Limited)
        );
        assert_eq!(s.get(&[fresh]).await, Ok(vec![None]));
        // The user alone is under its limit.
        assert_eq!(s.count(&[(user, 5)], LONG).await, Ok(Counted::Yes));
        assert_eq!(s.get(&[user]).await, Ok(vec![Some(b"3".to_vec())]));
    }

    pub(crate) async fn uncount_takes_one_back_or_clears(s: &dyn Store, _: &Time) {
        let a = key(Kind::Failures, "user:dave");
        let b = key(Kind::Failures, "peer:198.51.100.1");
        let absent = key(Kind::Failures, "user:nobody");
        for _ in 0..3 {
            assert_eq!(s.count(&[(a, 3), (b, 10)], LONG).await, Ok(Counted::Yes));
        }
        assert_eq!(s.count(&[(a, 3)], LONG).await, Ok(Counted::Limited));
        // One back from a: one more attempt, then limited again.
        assert_eq!(s.uncount(&[a], &[]).await, Ok(()));
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"2".to_vec())]));
        assert_eq!(s.count(&[(a, 3)], LONG).await, Ok(Counted::Yes));
        assert_eq!(s.count(&[(a, 3)], LONG).await, Ok(Counted::Limited));
        // b cleared, a one back, in one call.
        assert_eq!(s.uncount(&[a], &[b]).await, Ok(()));
        assert_eq!(s.get(&[a, b]).await, Ok(vec![Some(b"2".to_vec()), None]));
        // A cleared counter starts again from one.
        assert_eq!(s.count(&[(b, 10)], LONG).await, Ok(Counted::Yes));
        assert_eq!(s.get(&[b]).await, Ok(vec![Some(b"1".to_vec())]));
        // One back from a count of one removes the counter.
        assert_eq!(s.uncount(&[b], &[]).await, Ok(()));
        assert_eq!(s.get(&[b]).await, Ok(vec![None]));
        // Absent counters stay absent (no negative count to spend later).
        assert_eq!(s.uncount(&[absent], &[]).await, Ok(()));
        assert_eq!(s.uncount(&[], &[absent]).await, Ok(()));
        assert_eq!(s.uncount(&[], &[]).await, Ok(()));
        assert_eq!(s.get(&[absent]).await, Ok(vec![None]));
        assert_eq!(s.count(&[(absent, 1)], LONG).await, Ok(Counted::Yes));
        assert_eq!(s.count(&[(absent, 1)], LONG).await, Ok(Counted::Limited));
    }

    pub(crate) async fn count_window_ends(s: &dyn Store, t: &Time) {
        let a = key(Kind::Failures, "user:erin");
        let window = TTL * 2;
        assert_eq!(s.count(&[(a, 2)], window).await, Ok(Counted::Yes));
        assert_eq!(s.count(&[(a, 2)], window).await, Ok(Counted::Yes));
        assert_eq!(s.count(&[(a, 2)], window).await, Ok(Counted::Limited));
        t.pass(window + SLACK).await;
        assert_eq!(s.get(&[a]).await, Ok(vec![None]));
        assert_eq!(s.count(&[(a, 2)], window).await, Ok(Counted::Yes));
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"1".to_vec())]));
    }

    pub(crate) async fn count_window_starts_at_the_first_count(s: &dyn Store, t: &Time) {
        let a = key(Kind::Failures, "user:frank");
        let window = TTL * 2;
        assert_eq!(s.count(&[(a, 5)], window).await, Ok(Counted::Yes));
        t.pass(window / 2).await;
        // A later count does not move the window's end.
        assert_eq!(s.count(&[(a, 5)], window).await, Ok(Counted::Yes));
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"2".to_vec())]));
        t.pass(window / 2 + SLACK).await;
        assert_eq!(s.get(&[a]).await, Ok(vec![None]));
    }

    pub(crate) async fn uncount_keeps_the_window(s: &dyn Store, t: &Time) {
        let a = key(Kind::Failures, "user:grace");
        let window = TTL * 2;
        assert_eq!(s.count(&[(a, 5)], window).await, Ok(Counted::Yes));
        assert_eq!(s.count(&[(a, 5)], window).await, Ok(Counted::Yes));
        assert_eq!(s.uncount(&[a], &[]).await, Ok(()));
        assert_eq!(s.get(&[a]).await, Ok(vec![Some(b"1".to_vec())]));
        t.pass(window + SLACK).await;
        assert_eq!(s.get(&[a]).await, Ok(vec![None]));
    }
    /// A limit of 0 has been reached before any count: limited at once, nothing counted.
    pub(crate) async fn count_limit_zero_is_limited_at_once(s: &dyn Store, _: &Time) {
        let a = key(Kind::Failures, "user:zero");
        let b = key(Kind::Failures, "peer:zero");
        assert_eq!(s.count(&[(a, 0)], LONG).await, Ok(Counted::Limited));
        assert_eq!(s.count(&[(b, 5), (a, 0)], LONG).await, Ok(Counted::Limited));
        assert_eq!(s.get(&[a, b]).await, Ok(vec![None, None]));
    }

    /// A time-to-live or window of `Duration::MAX` (a configured "forever", which the
    /// crate's time arithmetic supports) keeps the entry; it is no error.
    pub(crate) async fn the_longest_durations_are_kept(s: &dyn Store, t: &Time) {
        let sub = key(Kind::RevokedSubject, "sub-forever");
        assert_eq!(s.put(sub, b"1", Some(Duration::MAX)).await, Ok(()));
        let sig = key(Kind::Replay, "sig-forever");
        assert_eq!(s.insert_new(sig, b"1", Some(Duration::MAX)).await, Ok(true));
        let user = key(Kind::Failures, "user:forever");
        assert_eq!(s.count(&[(user, 2)], Duration::MAX).await, Ok(Counted::Yes));
        assert_eq!(s.count(&[(user, 2)], Duration::MAX).await, Ok(Counted::Yes));
        assert_eq!(
            s.count(&[(user, 2)], Duration::MAX).await,
            Ok(Counted::Limited)
        );
        t.pass(TTL + SLACK).await;
        assert_eq!(
            s.get(&[sub, sig, user]).await,
            Ok(vec![
                Some(b"1".to_vec()),
                Some(b"1".to_vec()),
                Some(b"2".to_vec())
            ])
        );
    }
}

/// One test per behaviour for each store: `memory::name` and `redis::name`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, time) = super::memory();
                    super::behaviour::$name(&store, &time).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(server) = super::RedisServer::start() else {
                        return;
                    };
                    let store = super::redis_store(&server, "suite:");
                    super::behaviour::$name(&store, &super::Time::Real).await;
                }
            )*
        }
    };
}

suite!(
    insert_new_is_true_once,
    insert_new_again_after_the_ttl,
    no_ttl_is_kept,
    put_replaces_and_get_keeps_order,
    remove_says_whether_it_held_a_value,
    count_up_to_the_limit,
    count_is_all_or_nothing,
    uncount_takes_one_back_or_clears,
    count_window_ends,
    count_window_starts_at_the_first_count,
    uncount_keeps_the_window,
    count_limit_zero_is_limited_at_once,
    the_longest_durations_are_kept,
);

/// The names of the keys `server` holds, but for a store's own marker key
/// The keys but `{prefix}seq` and `{prefix}epoch` (the data-loss counter and marker,
/// no key material).
fn data_keys(server: &RedisServer, prefix: &str) -> Vec<String> {
    let (seq, epoch) = (format!("{prefix}seq"), format!("{prefix}epoch"));
    server
        .keys()
        .into_iter()
        .filter(|n| *n != seq && *n != epoch)
        .collect()
}

/// Every key Redis holds is `{prefix}{kind}:{43 base64url characters}`, the name of a
/// digest: no user name, peer address, token or key id appears.
#[tokio::test]
async fn redis_keys_are_prefixed_digests() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = "billing-svc:";
    let store = redis_store(&server, prefix);
    let materials = [
        (Kind::Replay, "hmac-signature-AAAA"),
        (Kind::Failures, "user:ada@example.com"),
        (Kind::Failures, "peer:192.0.2.7"),
        (Kind::RevokedJti, "jti-0123456789"),
        (Kind::RevokedSubject, "sub-ada"),
        (Kind::Token, "opaque-token-s3cr3t"),
    ];
    let mut expected = Vec::new();
    for (kind, material) in materials {
        let k = key(kind, material);
        match kind {
            Kind::Failures => assert_eq!(store.count(&[(k, 5)], LONG).await, Ok(Counted::Yes)),
            Kind::Token | Kind::RevokedSubject => {
                assert_eq!(store.put(k, b"record", Some(LONG)).await, Ok(()))
            }
            _ => assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(true)),
        }
        expected.push(k.name(prefix));
    }
    expected.sort();

    let all = server.keys();
    for name in &all {
        assert!(name.starts_with(prefix), "{name} lacks the prefix");
        for (_, material) in materials {
            assert!(!name.contains(material), "{name} holds {material}");
        }
    }
    let names = data_keys(&server, prefix);
    assert_eq!(names, expected);
    for name in &names {
        let rest = name
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{name} lacks the prefix"));
        let (kind, digest) = rest.split_once(':').expect("kind:digest");
        assert!(
            ["replay", "fail", "jti", "sub", "token"].contains(&kind),
            "{name}"
        );
        assert_eq!(digest.len(), 43, "{name}");
        assert!(
            digest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{name}"
        );
        for (_, material) in materials {
            assert!(!name.contains(material), "{name} holds {material}");
            for part in material.split([':', '@', '.', '-']).filter(|p| p.len() > 3) {
                assert!(!digest.contains(part), "{name} holds {part}");
            }
        }
    }
}

/// Without `.prefix(..)`, keys are under `grpc-auth:`.
#[tokio::test]
async fn redis_default_prefix() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("build");
    assert_eq!(store.prefix(), "grpc-auth:");
    let k = key(Kind::Replay, "sig");
    assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(true));
    assert!(server.keys().iter().all(|n| n.starts_with("grpc-auth:")));
    assert_eq!(data_keys(&server, "grpc-auth:"), vec![k.name("grpc-auth:")]);
    assert!(k.name("grpc-auth:").starts_with("grpc-auth:replay:"));
}

/// Two replicas on one Redis and prefix share their state; another prefix does not see it.
#[tokio::test]
async fn redis_replicas_share_a_prefix_and_only_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = redis_store(&server, "svc:");
    let two = redis_store(&server, "svc:");
    let other = redis_store(&server, "other-svc:");
    let sig = key(Kind::Replay, "signature-seen-by-one");
    assert_eq!(one.insert_new(sig, b"1", Some(LONG)).await, Ok(true));
    assert_eq!(two.insert_new(sig, b"1", Some(LONG)).await, Ok(false));
    assert_eq!(two.get(&[sig]).await, Ok(vec![Some(b"1".to_vec())]));
    assert_eq!(other.get(&[sig]).await, Ok(vec![None]));
    assert_eq!(other.insert_new(sig, b"2", Some(LONG)).await, Ok(true));
    assert_eq!(one.get(&[sig]).await, Ok(vec![Some(b"1".to_vec())]));

    // A revocation by one holds on two; removal by two is seen by one.
    let jti = key(Kind::RevokedJti, "jti-revoked");
    assert_eq!(one.put(jti, b"1", Some(LONG)).await, Ok(()));
    assert_eq!(two.get(&[jti]).await, Ok(vec![Some(b"1".to_vec())]));
    assert_eq!(two.remove(jti).await, Ok(true));
    assert_eq!(one.remove(jti).await, Ok(false));

    // One failure limit for the cluster.
    let user = key(Kind::Failures, "user:ada");
    assert_eq!(one.count(&[(user, 2)], LONG).await, Ok(Counted::Yes));
    assert_eq!(two.count(&[(user, 2)], LONG).await, Ok(Counted::Yes));
    assert_eq!(one.count(&[(user, 2)], LONG).await, Ok(Counted::Limited));
    assert_eq!(two.count(&[(user, 2)], LONG).await, Ok(Counted::Limited));
    assert_eq!(other.count(&[(user, 2)], LONG).await, Ok(Counted::Yes));
    assert_eq!(two.uncount(&[], &[user]).await, Ok(()));
    assert_eq!(one.count(&[(user, 2)], LONG).await, Ok(Counted::Yes));
}

/// 50 concurrent `insert_new` of one key through two replicas: exactly one wins. And
/// 50 concurrent counts against a limit of 10: exactly 10 are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_concurrent_replicas_agree() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let stores = [redis_store(&server, "svc:"), redis_store(&server, "svc:")];
    // Each replica has made a call (seen the data-loss marker) before the race; the
    // race of first calls is redis_concurrent_first_calls_on_a_fresh_redis.
    for store in &stores {
        until_answers(store, Duration::from_secs(5)).await;
        let warm = key(Kind::Replay, "warm-up");
        assert!(store.insert_new(warm, b"1", Some(LONG)).await.is_ok());
    }
    let sig = key(Kind::Replay, "one-signature");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move { store.insert_new(sig, b"1", Some(LONG)).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task").expect("insert_new") {
            won += 1;
        }
    }
    assert_eq!(won, 1);

    let user = key(Kind::Failures, "user:guesser");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move { store.count(&[(user, 10)], LONG).await })
        })
        .collect();
    let mut counted = 0;
    for task in tasks {
        if task.await.expect("task").expect("count") == Counted::Yes {
            counted += 1;
        }
    }
    assert_eq!(counted, 10);
    assert_eq!(stores[0].get(&[user]).await, Ok(vec![Some(b"10".to_vec())]));
}

/// Concurrent first calls of two replicas on a Redis no store has marked yet (a new
/// prefix each round): one insert wins, the others see a replay, and none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_concurrent_first_calls_on_a_fresh_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for round in 0..10 {
        let prefix = format!("fresh-{round}:");
        let stores = [redis_store(&server, &prefix), redis_store(&server, &prefix)];
        let sig = key(Kind::Replay, "first-signature");
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let store = stores[i % 2].clone();
                tokio::spawn(async move { store.insert_new(sig, b"1", Some(LONG)).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(true) => won += 1,
                Ok(false) => {}
                Err(e) => panic!("round {round}: a first call was refused: {e}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
}

/// The same for the memory store's clones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_clones_agree() {
    let store = MemoryStore::new(100);
    let sig = key(Kind::Replay, "one-signature");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_new(sig, b"1", Some(LONG)).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task").expect("insert_new") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// Each call of `store`, all expected to fail closed within `timeout` + 1 s.
async fn assert_every_call_unavailable(store: &RedisStore, timeout: Duration, secrets: &[&str]) {
    let bound = timeout + Duration::from_secs(1);
    let k = key(Kind::Replay, "down-material");
    let f = key(Kind::Failures, "user:down-material");
    let (r, took) = timed(store.insert_new(k, b"1", Some(LONG))).await;
    assert_unavailable(&r, secrets);
    assert!(took < bound, "insert_new took {took:?}");
    let (r, took) = timed(store.put(k, b"1", None)).await;
    assert_unavailable(&r, secrets);
    assert!(took < bound, "put took {took:?}");
    let (r, took) = timed(store.get(&[k, f])).await;
    assert_unavailable(&r, secrets);
    assert!(took < bound, "get took {took:?}");
    let (r, took) = timed(store.remove(k)).await;
    assert_unavailable(&r, secrets);
    assert!(took < bound, "remove took {took:?}");
    let (r, took) = timed(store.count(&[(f, 3)], LONG)).await;
    assert_unavailable(&r, secrets);
    assert!(took < bound, "count took {took:?}");
    let (r, took) = timed(store.uncount(&[f], &[k])).await;
    assert_unavailable(&r, secrets);
    assert!(took < bound, "uncount took {took:?}");
}

/// What an error must never show of `store`'s keys: the materials and the key names.
fn key_secrets(prefix: &str) -> Vec<String> {
    let k = key(Kind::Replay, "down-material");
    let f = key(Kind::Failures, "user:down-material");
    vec![
        "down-material".to_owned(),
        k.name(prefix),
        f.name(prefix),
        k.name("")
            .split_once(':')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default(),
    ]
}

/// Built while Redis is down: every call fails closed within the timeout; once Redis
/// is up, the same store object answers.
#[tokio::test]
async fn redis_down_at_build_fails_closed_then_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    server.stop();
    let timeout = Duration::from_millis(300);
    let store = RedisStore::builder(server.url())
        .prefix("down:")
        .timeout(timeout)
        .build()
        .expect("a store builds while Redis is down");
    let secrets = key_secrets("down:");
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_every_call_unavailable(&store, timeout, &secrets).await;
    // Still down: still refusing.
    assert_every_call_unavailable(&store, timeout, &secrets).await;

    server.restart();
    until_answers(&store, Duration::from_secs(5)).await;
    let k = key(Kind::Replay, "after-recovery");
    assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(true));
    assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(false));
}

/// How long the stores of the data-loss tests refuse replay and revocation checks.
const QUARANTINE: Duration = Duration::from_secs(1);

/// Polls a guarded call (a replay lookup) until `store` answers it again after a
/// data-loss quarantine: how long that took.
async fn until_guarded_answers(store: &dyn Store, within: Duration) -> Duration {
    let start = Instant::now();
    let probe = key(Kind::Replay, "guarded-probe");
    loop {
        match store.get(&[probe]).await {
            Ok(_) => return start.elapsed(),
            Err(e) if start.elapsed() >= within => {
                panic!("replay checks did not answer again within {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Asserts `r` is the data-loss refusal (`Unreliable`: never failed open).
#[track_caller]
fn assert_data_loss<T: std::fmt::Debug>(r: &Result<T, StoreError>, secrets: &[&str]) {
    let Err(e) = r else {
        panic!("expected Unreliable, got {r:?}");
    };
    assert!(
        matches!(e, StoreError::Unreliable { store: "redis", .. }),
        "{e:?}"
    );
    assert!(!e.is_unreachable());
    let shown = format!("{e} {e:?}");
    assert!(
        e.to_string()
            .starts_with("redis store unreliable: redis lost data"),
        "{shown}"
    );
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} shown in {shown}");
    }
}

/// Redis stopped mid-run: calls fail closed within the timeout. Restarted empty (no
/// persistence), the same store object answers again within a few seconds, without a
/// rebuild: at once for counts and tokens; replay and revocation checks only after
/// the data-loss quarantine (a replay of what the old Redis held is refused, not
/// taken as first seen).
#[tokio::test]
async fn redis_stopped_mid_run_fails_closed_then_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let store = RedisStore::builder(server.url())
        .prefix("mid:")
        .timeout(timeout)
        .data_loss_quarantine(QUARANTINE)
        .build()
        .expect("build");
    let before = key(Kind::Replay, "before-the-stop");
    assert_eq!(store.insert_new(before, b"1", Some(LONG)).await, Ok(true));

    let secrets = key_secrets("mid:");
    let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    secrets.push("before-the-stop");
    for outage in 0..2 {
        server.stop();
        assert_every_call_unavailable(&store, timeout, &secrets).await;
        // A replay of `before` is refused too.
        assert_unavailable(&store.insert_new(before, b"1", Some(LONG)).await, &secrets);

        server.restart();
        let took = until_answers(&store, Duration::from_secs(5)).await;
        eprintln!("outage {outage}: answered again {took:?} after the restart");
        // The restarted Redis forgot `before`: its replay is refused, not first seen.
        let (r, took) = timed(store.insert_new(before, b"1", Some(LONG))).await;
        assert_data_loss(&r, &secrets);
        assert!(took < timeout + Duration::from_secs(1), "{took:?}");
        assert_data_loss(&store.get(&[before]).await, &secrets);
        let jti = key(Kind::RevokedJti, "jti-after-the-restart");
        assert_data_loss(&store.put(jti, b"1", Some(LONG)).await, &secrets);
        // Counts and tokens are not guarded: they work at once, from scratch.
        let user = key(Kind::Failures, "user:after-the-restart");
        assert_eq!(store.get(&[user]).await, Ok(vec![None]));
        assert_eq!(store.count(&[(user, 5)], LONG).await, Ok(Counted::Yes));
        let token = key(Kind::Token, "token-after-the-restart");
        assert_eq!(store.put(token, b"record", Some(LONG)).await, Ok(()));
        assert_eq!(
            store.get(&[token]).await,
            Ok(vec![Some(b"record".to_vec())])
        );

        let took = until_guarded_answers(&store, QUARANTINE + Duration::from_secs(5)).await;
        assert!(took >= QUARANTINE / 2, "quarantine ended after {took:?}");
        let k = key(Kind::Replay, &format!("after-restart-{outage}"));
        assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(true));
        assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(false));
    }
}

/// A Redis flushed under a running store is data loss too: the replay of a signature
/// it held is refused, and a replica that never saw the loss (built afterwards) is not
/// refused. Past the quarantine, both agree again.
#[tokio::test]
async fn redis_flushed_is_data_loss() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("flush:")
        .timeout(Duration::from_secs(2))
        .data_loss_quarantine(QUARANTINE)
        .build()
        .expect("build");
    let sig = key(Kind::Replay, "flushed-signature");
    assert_eq!(store.insert_new(sig, b"1", Some(LONG)).await, Ok(true));
    assert_eq!(
        server.command(&[b"FLUSHALL"]).expect("FLUSHALL"),
        redis_server::Reply::Simple("OK".to_owned())
    );
    assert_data_loss(
        &store.insert_new(sig, b"1", Some(LONG)).await,
        &["flushed-signature"],
    );
    let later = redis_store(&server, "flush:");
    let next = key(Kind::Replay, "next-signature");
    assert_eq!(later.insert_new(next, b"1", Some(LONG)).await, Ok(true));
    assert_data_loss(
        &store.insert_new(next, b"1", Some(LONG)).await,
        &["next-signature"],
    );
    until_guarded_answers(&store, QUARANTINE + Duration::from_secs(5)).await;
    assert_eq!(store.insert_new(next, b"1", Some(LONG)).await, Ok(false));
    let last = key(Kind::Replay, "last-signature");
    assert_eq!(store.insert_new(last, b"1", Some(LONG)).await, Ok(true));
    assert_eq!(later.insert_new(last, b"1", Some(LONG)).await, Ok(false));
}

/// A slow Redis (`DEBUG SLEEP 2`) and a 200 ms timeout: `Unavailable` in about the
/// timeout; once it wakes, answers are again each call's own.
#[tokio::test]
async fn redis_slow_times_out() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(200);
    let store = RedisStore::builder(server.url())
        .prefix("slow:")
        .timeout(timeout)
        .build()
        .expect("build");
    until_answers(&store, Duration::from_secs(5)).await;

    let sleeper = server.pause(Duration::from_secs(2));
    let k = key(Kind::Replay, "slow-material");
    let (r, took) = timed(store.insert_new(k, b"1", Some(LONG))).await;
    assert_unavailable(&r, &["slow-material", &k.name("slow:")]);
    let Err(e) = r else { unreachable!() };
    assert!(e.to_string().contains("redis store unavailable"), "{e}");
    assert!(took >= timeout - Duration::from_millis(20), "{took:?}");
    assert!(took < timeout + Duration::from_secs(1), "{took:?}");
    let (r, took) = timed(store.get(&[k])).await;
    assert_unavailable(&r, &["slow-material"]);
    assert!(took < timeout + Duration::from_secs(1), "{took:?}");

    sleeper.join().expect("DEBUG SLEEP");
    until_answers(&store, Duration::from_secs(5)).await;
    // Replies are not shifted by the ones that came late.
    let a = key(Kind::Token, "a");
    let b = key(Kind::Token, "b");
    assert_eq!(store.put(a, b"va", None).await, Ok(()));
    assert_eq!(store.put(b, b"vb", None).await, Ok(()));
    assert_eq!(
        store.get(&[b, a]).await,
        Ok(vec![Some(b"vb".to_vec()), Some(b"va".to_vec())])
    );
    let fresh = key(Kind::Replay, "after-the-sleep");
    assert_eq!(store.insert_new(fresh, b"1", Some(LONG)).await, Ok(true));
    assert_eq!(store.insert_new(fresh, b"1", Some(LONG)).await, Ok(false));
    assert_eq!(store.remove(a).await, Ok(true));
    assert_eq!(store.remove(a).await, Ok(false));
}

/// `max_in_flight(2)`: with two calls waiting on a sleeping Redis, a third fails at once.
#[tokio::test]
async fn redis_max_in_flight_fails_the_next_call_at_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_secs(1);
    let store = RedisStore::builder(server.url())
        .prefix("busy:")
        .timeout(timeout)
        .max_in_flight(2)
        .build()
        .expect("build");
    until_answers(&store, Duration::from_secs(5)).await;

    let sleeper = server.pause(Duration::from_secs(2));
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let k = key(Kind::Replay, &format!("waiting-{i}"));
                store.insert_new(k, b"1", Some(LONG)).await
            })
        })
        .collect();
    // Both are polled (and hold their permits) while this task sleeps.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(waiting.iter().all(|t| !t.is_finished()));

    let k = key(Kind::Replay, "third");
    let (r, took) = timed(store.insert_new(k, b"1", Some(LONG))).await;
    assert_unavailable(&r, &["third", &k.name("busy:")]);
    assert!(took < Duration::from_millis(100), "{took:?}");
    let (r, took) = timed(store.get(&[k])).await;
    assert_unavailable(&r, &[]);
    assert!(took < Duration::from_millis(100), "{took:?}");

    // The two waiting time out on their own.
    for task in waiting {
        let (r, took) = timed(task).await;
        assert_unavailable(&r.expect("task"), &[]);
        assert!(took < timeout + Duration::from_secs(1), "{took:?}");
    }
    sleeper.join().expect("DEBUG SLEEP");
    // The permits were given back.
    until_answers(&store, Duration::from_secs(5)).await;
    assert_eq!(store.insert_new(k, b"1", Some(LONG)).await, Ok(true));
}

/// A password in the URL shows nowhere: not in the builder's or the store's `Debug`,
/// not in the errors of a failed login, a refused connection or a malformed URL.
#[tokio::test]
async fn redis_password_never_shown() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "right-pw-123"]) else {
        return;
    };
    let port = server.port();
    let secret = "hunter2";
    let timeout = Duration::from_millis(300);

    // The right password works.
    let good = RedisStore::builder(format!("redis://:right-pw-123@127.0.0.1:{port}"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("build");
    let k = key(Kind::Replay, "pw-material");
    assert_eq!(good.insert_new(k, b"1", Some(LONG)).await, Ok(true));
    assert!(!format!("{good:?}").contains("right-pw-123"));

    // The wrong one: refused, and said without the password.
    let builder = RedisStore::builder(format!("redis://:{secret}@127.0.0.1:{port}"))
        .prefix("pw:")
        .timeout(timeout);
    let shown = format!("{builder:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(!shown.contains(&port.to_string()), "{shown}");
    let bad = builder.build().expect("build");
    let shown = format!("{bad:?}");
    assert!(!shown.contains(secret), "{shown}");
    let secrets = key_secrets("pw:");
    let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    secrets.extend([secret, "right-pw-123"]);
    assert_every_call_unavailable(&bad, timeout, &secrets).await;

    // A user and password against a server without auth.
    let Some(open) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(format!("redis://ada:{secret}@127.0.0.1:{}", open.port()))
        .timeout(timeout)
        .build()
        .expect("build");
    assert_every_call_unavailable(&store, timeout, &secrets).await;

    // Nothing listening.
    let closed = open.port();
    drop(open);
    let store = RedisStore::builder(format!("redis://:{secret}@127.0.0.1:{closed}"))
        .timeout(timeout)
        .build();
    match store {
        Ok(store) => assert_every_call_unavailable(&store, timeout, &secrets).await,
        Err(e) => assert_unavailable::<()>(&Err(e), &secrets),
    }

    // A malformed URL fails the build, without the password.
    for url in [
        format!("redis://:{secret}@127.0.0.1:notaport"),
        format!("redis://:{secret}@[::1"),
        format!("http://:{secret}@127.0.0.1:{port}"),
    ] {
        let r = RedisStore::builder(url.as_str()).build();
        assert_unavailable(&r, &secrets);
        let Err(e) = r else { unreachable!() };
        assert!(e.to_string().contains("bad URL"), "{e}");
    }
}
