//! Fourth adversarial review: the fixes of the third (the `{prefix}seq` data-loss
//! counter and the `INFO memory` eviction check of `RedisStore`, the per-verifier skew
//! registry of the HMAC replay check, `MemoryStore`'s per-kind capacity and expiry
//! index, revocation of opaque exchange tokens).
//!
//! Every test asserts the secure (or available) outcome: a test that fails records a
//! protection that fails open, or an outage the store causes itself. The Redis tests
//! start their own `redis-server` (tests/support/redis.rs) and skip when none is
//! installed, unless `GRPC_AUTH_REQUIRE_INTEROP=1`.

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grpc_auth::authn::hmac::{HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
use grpc_auth::authn::revocation::Revocations;
use grpc_auth::authn::token_exchange::{OpaqueTokens, StoreTokens, TokenExchange, TokenIssuer};
use grpc_auth::authn::{AuthRequest, JwtAuthenticator};
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::HmacSigner;
use grpc_auth::store::{Counted, Key, Kind, MemoryStore, Store, StoreError};
use grpc_auth::{Authenticator, Principal};
use http::{HeaderMap, HeaderValue};
use serde_json::json;

const METHOD: &str = "/helloworld.Greeter/SayHello";
const HMAC_SECRET: &str = "adversarial-review-4-hmac-secret";
const JWT_SECRET: &str = "adversarial-review-4-jwt-secret-0123456789abcdef";
/// A fixed instant for the manual clocks.
const NOW: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn hmac_keys() -> StaticHmacKeys {
    StaticHmacKeys::new().key("svc-a", HMAC_SECRET)
}

/// A request signed by `svc-a` (date from `clock`, a fresh nonce, the request target).
fn signed_at(clock: &ManualClock) -> HeaderMap {
    let mut h = HeaderMap::new();
    HmacSigner::new("svc-a", HMAC_SECRET)
        .clock(clock.clone())
        .sign(METHOD, &mut h)
        .expect("sign");
    h
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII value"),
    );
    h
}

fn replay_key(name: &str) -> Key {
    Key::digest(Kind::Replay, &[name.as_bytes()])
}

// ---------------------------------------------------------------------------------
// MemoryStore.
// ---------------------------------------------------------------------------------

/// Finding (Medium, availability): `State::purge` walks the expiry index by wall
/// deadline and stops at the first entry whose monotonic deadline has not passed. After
/// the wall clock steps forward (a VM or laptop resumed from suspend: `CLOCK_MONOTONIC`
/// does not count the suspension, the wall clock does; an NTP step), one long-lived
/// entry of *another* kind (a revoked jti kept for a day, an opaque token) heads the
/// index and blocks every purge until its monotonic deadline. The per-kind capacity of
/// the replay marks then fills with marks that are expired on both clocks, and every
/// new signed call is refused `UNAVAILABLE` ("replay cache full") for up to that
/// entry's whole lifetime.
#[tokio::test]
async fn memory_one_long_lived_entry_does_not_block_purging_after_a_wall_clock_step() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(4).clock(clock.clone());
    let revoked = Key::digest(Kind::RevokedJti, &[b"j-1"]);
    store
        .put(revoked, b"1", Some(Duration::from_secs(DAY)))
        .await
        .expect("revocation kept");
    // Resumed from a two-day suspension: the wall clock jumps, the monotonic one not.
    clock.set_unix(NOW + 2 * DAY);
    for i in 0..4 {
        let key = replay_key(&format!("old-{i}"));
        assert_eq!(
            store
                .insert_new(key, b"1", Some(Duration::from_secs(10)))
                .await,
            Ok(true)
        );
    }
    clock.advance(Duration::from_secs(20));
    // Every replay mark is now past its deadline on both clocks.
    assert_eq!(
        store
            .insert_new(replay_key("new"), b"1", Some(Duration::from_secs(10)))
            .await,
        Ok(true),
        "four expired replay marks must make room for a new one"
    );
    assert_eq!(
        store.get(&[revoked]).await,
        Ok(vec![Some(b"1".to_vec())]),
        "the revocation (live on the monotonic clock) stays"
    );
}

/// Finding (Low, bound): `count_now` sizes the room it needs before `make_room`
/// purges, counting a key whose entry is present but expired as "not new". When the
/// purge then drops that very entry, `set` creates it afresh on top of the new keys
/// the room was made for, and the kind holds more than its capacity (here 3 of 2).
#[tokio::test]
async fn memory_count_stays_within_the_capacity_of_its_kind() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(2).clock(clock.clone());
    let window = Duration::from_secs(10);
    let key = |s: &str| Key::digest(Kind::Failures, &[s.as_bytes()]);
    assert_eq!(
        store.count(&[(key("a"), 5)], window).await,
        Ok(Counted::Yes)
    );
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        store.count(&[(key("b"), 5)], window).await,
        Ok(Counted::Yes)
    );
    // `a` has expired, `b` is live: room for one new counter, and two are written.
    clock.advance(Duration::from_secs(7));
    let counted = store.count(&[(key("a"), 5), (key("c"), 5)], window).await;
    assert!(
        store.len() <= store.capacity(),
        "{} entries of one kind in a store of capacity {} (count answered {counted:?})",
        store.len(),
        store.capacity()
    );
}

/// Regression guard: per-kind counts stay exact through replace, remove, expiry and
/// purge; a kind at capacity refuses, another kind is unaffected, and a freed place
/// is usable again.
#[tokio::test]
async fn memory_per_kind_counts_stay_exact_through_replace_remove_and_purge() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(2).clock(clock.clone());
    let ttl = Some(Duration::from_secs(10));
    let (a, b, c) = (replay_key("a"), replay_key("b"), replay_key("c"));
    store.put(a, b"1", ttl).await.expect("a");
    store
        .put(a, b"2", Some(Duration::from_secs(20)))
        .await
        .expect("replace a");
    store.put(a, b"3", None).await.expect("replace a, no ttl");
    store.put(b, b"1", ttl).await.expect("b");
    assert_eq!(
        store.put(c, b"1", ttl).await,
        Err(StoreError::Full { store: "memory" })
    );
    let other = Key::digest(Kind::RevokedSubject, &[b"ada"]);
    store.put(other, b"1", None).await.expect("another kind");
    assert_eq!(store.remove(a).await, Ok(true));
    store.put(c, b"1", ttl).await.expect("room after a remove");
    clock.advance(Duration::from_secs(10));
    store.put(a, b"1", ttl).await.expect("room after expiry");
    assert_eq!(
        store.insert_new(b, b"1", ttl).await,
        Ok(true),
        "b expired: first seen again"
    );
    assert_eq!(store.insert_new(a, b"1", ttl).await, Ok(false));
    assert_eq!(store.get(&[other]).await, Ok(vec![Some(b"1".to_vec())]));
    assert_eq!(store.len(), 3);
}

// ---------------------------------------------------------------------------------
// HMAC replay.
// ---------------------------------------------------------------------------------

/// Finding (Low, panic): `Replay::first_use` computes `Duration::from_secs(max_skew) +
/// margin` with `+`, which panics on overflow. With a store the user gave the margin
/// is 31 s, so `max_skew` within 30 s of `u64::MAX` seconds (not `Duration::MAX`, which
/// means "no skew check") panics on the first signed call instead of keeping the entry.
#[tokio::test]
async fn hmac_a_huge_max_skew_on_a_given_store_does_not_panic() {
    let verifier = HmacVerifier::new(hmac_keys())
        .max_skew(Duration::from_secs(u64::MAX - 1))
        .replay_store(MemoryStore::new(16));
    let h = signed_at(&ManualClock::now());
    let call = {
        let verifier = verifier.clone();
        let h = h.clone();
        tokio::spawn(async move { verifier.verify("POST", METHOD, &h).await.is_ok() })
    };
    assert!(
        matches!(call.await, Ok(true)),
        "a correctly signed call must be accepted, not panic"
    );
    assert!(
        verifier.verify("POST", METHOD, &h).await.is_err(),
        "and its replay refused"
    );
}

/// Regression guard: a stricter clone (and the drop of the verifier it was cloned
/// from) does not shorten what a laxer live clone needs; `replay_cache_size` on a
/// verifier with a given store keeps the store and its registry.
#[tokio::test]
async fn hmac_replay_entries_live_as_long_as_the_laxest_live_clone_needs() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(64).clock(clock.clone());
    let lax = HmacVerifier::new(hmac_keys())
        .clock(clock.clone())
        .max_skew(Duration::from_secs(300))
        .replay_store(store);
    let strict = lax
        .clone()
        .max_skew(Duration::from_secs(10))
        .replay_cache_size(8);
    let lax = {
        let kept = lax.clone();
        drop(lax);
        kept
    };
    let h = signed_at(&clock);
    strict.verify("POST", METHOD, &h).await.expect("accepted");
    drop(strict);
    clock.advance(Duration::from_secs(200));
    assert!(
        lax.verify("POST", METHOD, &h).await.is_err(),
        "a replay within the lax clone's 300 s window must be refused"
    );
}

// ---------------------------------------------------------------------------------
// Opaque exchange tokens and revocations.
// ---------------------------------------------------------------------------------

fn jwt_key() -> JwtKey {
    JwtKey::secret(Algorithm::HS256, JWT_SECRET.as_bytes()).expect("HS256 key")
}

/// Finding (Medium, revocation bypass): `OpaqueTokens::verify` takes a token's issue
/// time to be `expires_at - self.ttl`, with the verifying issuer's *current* TTL. Tokens
/// in a shared store outlive a configuration change (a restart, a rolling deploy, or
/// replicas configured differently): a token issued with a 1 h TTL, verified by an
/// issuer now configured for 10 minutes, is dated 50 minutes after its real issue,
/// so `revoke_subject` (its tokens "issued at or before" the instant) misses it.
#[tokio::test]
async fn opaque_token_subject_revocation_survives_a_shorter_ttl() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(64).clock(clock.clone());
    let revocations = Revocations::new(store.clone()).clock(clock.clone());
    let tokens = |ttl: u64| {
        OpaqueTokens::new(StoreTokens::new(store.clone()).clock(clock.clone()), "svc")
            .ttl(Duration::from_secs(ttl))
            .clock(clock.clone())
            .revocations(revocations.clone())
    };
    let before = tokens(3600);
    let stolen = before
        .issue(&Principal::new("ada", "basic"))
        .await
        .expect("issued");
    let stolen = std::str::from_utf8(stolen.expose())
        .expect("ASCII")
        .to_owned();
    clock.advance(Duration::from_secs(60));
    revocations
        .revoke_subject("ada", at(NOW + 60))
        .await
        .expect("revoked");
    assert!(before.verify(&stolen).await.is_err(), "refused as issued");
    // The service is redeployed with a 10-minute TTL; the token is in the shared store.
    let after = tokens(600);
    let verdict = after.verify(&stolen).await;
    assert!(
        verdict.is_err(),
        "a token issued before its subject's revocation must stay refused: {verdict:?}"
    );
}

/// Finding (Medium, revocation bypass): an opaque token minted from a JWT login
/// carries the JWT's `jti`, and `revoke_jti(jti, exp)` is documented to revoke that
/// token too. But the jti entry is kept until the *JWT's* `exp` plus 5 minutes (or the
/// leeway), while the opaque token lives its own TTL (15 minutes by default) from the
/// exchange, capped by nothing. A JWT stolen shortly before it expires and exchanged
/// yields a token that is refused after the revocation and accepted again once the
/// jti entry leaves, for the rest of its TTL.
#[tokio::test]
async fn opaque_token_of_a_revoked_jti_stays_refused_for_its_whole_life() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(64).clock(clock.clone());
    let revocations = Revocations::new(store.clone()).clock(clock.clone());
    let jwt = JwtAuthenticator::new(StaticKeys::new().with(jwt_key()))
        .clock(clock.clone())
        .revocations(revocations.clone());
    let exchange = TokenExchange::new(
        jwt,
        OpaqueTokens::new(StoreTokens::new(store.clone()).clock(clock.clone()), "svc")
            .clock(clock.clone())
            .revocations(revocations.clone()),
    );
    let stolen = tokens::hs256(
        JWT_SECRET,
        &json!({ "sub": "ada", "jti": "j-short", "iat": NOW - 10, "exp": NOW + 60 }),
    );
    let found = exchange
        .authenticate(&AuthRequest::new(METHOD, &bearer(&stolen)))
        .await
        .expect("login accepted")
        .expect("a credential");
    let opaque = found
        .response_headers()
        .and_then(|h| h.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("an issued token")
        .to_owned();
    revocations
        .revoke_jti("j-short", at(NOW + 60))
        .await
        .expect("revoked");
    let now = exchange
        .authenticate(&AuthRequest::new(METHOD, &bearer(&opaque)))
        .await;
    assert!(now.is_err(), "refused right after the revocation");
    // Past the JWT's exp and the 5-minute slack; the opaque token lives until NOW + 900.
    clock.advance(Duration::from_secs(400));
    let later = exchange
        .authenticate(&AuthRequest::new(METHOD, &bearer(&opaque)))
        .await
        .map(|found| found.map(|f| f.principal.subject().to_owned()));
    assert!(
        later.is_err(),
        "a token minted from a revoked JWT must stay refused while it is valid: {later:?}"
    );
}

// ---------------------------------------------------------------------------------
// RedisStore.
// ---------------------------------------------------------------------------------

#[cfg(feature = "redis")]
#[path = "support/redis.rs"]
mod redis_server;

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    use std::time::Instant;

    use grpc_auth::store::RedisStore;

    use crate::redis_server::{RedisServer, Reply};

    fn store_at(url: String, prefix: &str) -> RedisStore {
        RedisStore::builder(url)
            .prefix(prefix)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("build RedisStore")
    }

    fn store(server: &RedisServer, prefix: &str) -> RedisStore {
        store_at(server.url(), prefix)
    }

    fn signed() -> HeaderMap {
        signed_at(&ManualClock::now())
    }

    fn ok(server: &RedisServer, args: &[&[u8]]) {
        let reply = server.command(args).expect("redis command");
        assert_eq!(reply, Reply::Simple("OK".to_owned()), "{args:?}");
    }

    /// Accepted signatures on `verifier`, captured by an attacker.
    async fn captured(verifier: &HmacVerifier, n: usize) -> Vec<HeaderMap> {
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            let h = signed();
            verifier.verify("POST", METHOD, &h).await.expect("accepted");
            all.push(h);
        }
        all
    }

    /// Waits until `store` reaches Redis again, with a call that is not guarded (it
    /// reads no counter and cannot start a quarantine).
    async fn reconnected(store: &RedisStore) {
        let probe = Key::digest(Kind::Token, &[b"probe"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.get(&[probe]).await.is_err() {
            assert!(Instant::now() < deadline, "Redis did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Finding (High, fail open): `check_policy` takes *any* server error answering
    /// `INFO` (`e.code().is_some()`) for "this Redis refuses INFO", sets `info_refused`
    /// for good and never reads the policy again. A transient refusal does it: while
    /// another client's script runs past `busy-reply-threshold`, every command but a few
    /// is answered `-BUSY`, INFO included. Once the script ends, the store skips the
    /// eviction check for the rest of the process's life: an evicting policy set later
    /// (or one that was always there, never read) lets replay marks and revocations be
    /// evicted silently.
    #[tokio::test]
    async fn redis_a_transient_info_error_does_not_turn_the_eviction_check_off() {
        let Some(server) = RedisServer::start_with(&["--busy-reply-threshold", "50"]) else {
            return;
        };
        let shared = store(&server, "busy:");
        let verifier = HmacVerifier::new(hmac_keys()).replay_store(shared.clone());
        // Another client runs a long script.
        let port = server.port();
        let script = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            conn.write_all(b"*3\r\n$4\r\nEVAL\r\n$17\r\nwhile true do end\r\n$1\r\n0\r\n")
                .expect("send EVAL");
            let mut answer = [0u8; 64];
            let _ = conn.read(&mut answer);
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match server.command(&[b"PING"]) {
                Ok(Reply::Error(e)) if e.starts_with("BUSY") => break,
                _ => assert!(
                    Instant::now() < deadline,
                    "the script never made Redis busy"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let during = verifier.verify("POST", METHOD, &signed()).await;
        assert!(during.is_err(), "refused while Redis is busy");
        ok(&server, &[b"SCRIPT", b"KILL"]);
        script.join().expect("script client");
        // Later, Redis is given a memory cap and an evicting policy.
        ok(&server, &[b"CONFIG", b"SET", b"maxmemory", b"64mb"]);
        ok(
            &server,
            &[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"],
        );
        let after = verifier.verify("POST", METHOD, &signed()).await;
        assert!(
            after
                .as_ref()
                .is_err_and(|e| e.to_string().contains("may evict")),
            "the policy was never read: replay checks must be refused while Redis may evict, \
             got {after:?}"
        );
    }

    /// Finding (Medium, fail open by configuration): `INFO` is in the `@dangerous` ACL
    /// category, which least-privilege ACLs for applications commonly deny
    /// (`+@all -@dangerous`). Such a user gets `-NOPERM` for INFO, the store logs one
    /// warning and skips the eviction check for good, and replay and revocation checks
    /// run on a Redis that may evict their keys (`volatile-lru` here), the exact case
    /// the third review's fix refuses for a user that may read INFO.
    #[tokio::test]
    async fn redis_a_user_denied_info_is_not_trusted_with_an_evicting_redis() {
        let Some(server) =
            RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", "volatile-lru"])
        else {
            return;
        };
        ok(
            &server,
            &[
                b"ACL",
                b"SETUSER",
                b"app",
                b"on",
                b">app-password",
                b"~*",
                b"&*",
                b"+@all",
                b"-@dangerous",
            ],
        );
        let url = format!("redis://app:app-password@127.0.0.1:{}", server.port());
        let verifier = HmacVerifier::new(hmac_keys()).replay_store(store_at(url, "acl:"));
        let verdict = verifier.verify("POST", METHOD, &signed()).await;
        assert!(
            verdict.is_err(),
            "a Redis whose eviction policy cannot be read, and is evicting, must not be \
             trusted with replay marks: {verdict:?}"
        );
    }

    /// Finding (Medium, false negative): the floor is per process. After Redis restarts
    /// empty, a replica that made no guarded call before the loss (a new pod, one that
    /// restarted with Redis) cannot tell, as documented; but its writes also push
    /// `{prefix}seq` back above the floors of the replicas that *did*, before they make
    /// their next call. Those replicas then see no loss either: a captured request
    /// replays on them, with no quarantine anywhere.
    #[tokio::test]
    async fn redis_a_new_replica_does_not_hide_a_restart_from_the_others() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let old_store = store(&server, "hide:");
        let old = HmacVerifier::new(hmac_keys()).replay_store(old_store.clone());
        let requests = captured(&old, 3).await;
        server.restart();
        // A new replica serves 10 signed calls before the old one's next call.
        let new = HmacVerifier::new(hmac_keys()).replay_store(store(&server, "hide:"));
        captured(&new, 10).await;
        reconnected(&old_store).await;
        let replay = old.verify("POST", METHOD, &requests[0]).await;
        assert!(
            replay.is_err(),
            "a request the lost Redis had seen must not replay on the replica that saw it: \
             {replay:?}"
        );
    }

    /// Finding (Medium, false negative): a restart from an older snapshot is caught only
    /// by a replica that read the counter after the snapshot. A signed call accepted by
    /// replica B after the snapshot (its mark lost in the crash) replays on replica A,
    /// whose last guarded call was before the snapshot: A reads a counter at or above
    /// its floor and takes the lost mark's absence for "first seen".
    ///
    /// Known limitation, documented on `RedisStore` ("Limits"): without a reference
    /// outside Redis, replica A cannot tell a rollback to a snapshot that already held
    /// the marker from a Redis that never saw B's call. The remedy is Redis's own
    /// durability (`appendonly yes`, `appendfsync always`). Kept, ignored, so that a
    /// future design that closes it has the test.
    #[tokio::test]
    #[ignore = "known limitation: a rollback to a snapshot holding the marker is seen only \
        by replicas that read the counter after the snapshot (RedisStore docs, Limits)"]
    async fn redis_a_snapshot_rollback_does_not_let_another_replicas_request_replay() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let a_store = store(&server, "roll:");
        let a = HmacVerifier::new(hmac_keys()).replay_store(a_store.clone());
        let b = HmacVerifier::new(hmac_keys()).replay_store(store(&server, "roll:"));
        captured(&a, 1).await;
        ok(&server, &[b"SAVE"]);
        let requests = captured(&b, 3).await;
        server.stop();
        server.restart();
        reconnected(&a_store).await;
        let replay = a.verify("POST", METHOD, &requests[0]).await;
        assert!(
            replay.is_err(),
            "a request accepted before the crash must not replay on another replica: {replay:?}"
        );
    }

    /// Regression guard: several `RedisStore`s in one process on one prefix (one per
    /// protection, say), mixing guarded writes and reads with unguarded counts and
    /// token reads, concurrently, never mistake each other's counter for data loss.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_several_stores_in_one_process_do_not_quarantine_each_other() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let stores: Vec<RedisStore> = (0..4).map(|_| store(&server, "many:")).collect();
        let mut calls = tokio::task::JoinSet::new();
        for (n, s) in stores.iter().enumerate() {
            for i in 0..50u32 {
                let s = s.clone();
                calls.spawn(async move {
                    let key = replay_key(&format!("{n}-{i}"));
                    let ttl = Some(Duration::from_secs(60));
                    let jti = Key::digest(Kind::RevokedJti, &[b"j"]);
                    let fail = Key::digest(Kind::Failures, &[b"u"]);
                    let token = Key::digest(Kind::Token, &[b"t"]);
                    s.insert_new(key, b"1", ttl).await.map(|_| ())?;
                    s.get(&[jti, key]).await.map(|_| ())?;
                    s.count(&[(fail, u32::MAX)], Duration::from_secs(60))
                        .await
                        .map(|_| ())?;
                    s.get(&[token]).await.map(|_| ())?;
                    s.put(jti, b"1", ttl).await?;
                    s.remove(key).await.map(|_| ())
                });
            }
        }
        while let Some(result) = calls.join_next().await {
            assert_eq!(result.expect("no panic"), Ok(()));
        }
    }
}
