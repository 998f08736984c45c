//! Third adversarial review: the store-backed protections (HMAC replay, JWT revocations,
//! failed-login limits, opaque exchange tokens) on `MemoryStore` and `RedisStore`,
//! attacked with captured signed requests, revoked tokens, password floods, replicas
//! whose clocks or configurations differ, and a Redis that loses or evicts its data.
//!
//! Every test asserts the secure outcome: a test that fails records a protection that
//! fails open. The Redis tests start their own `redis-server` (tests/support/redis.rs)
//! and skip when none is installed, unless `GRPC_AUTH_REQUIRE_INTEROP=1`.

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grpc_auth::authn::hmac::{HmacError, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{Algorithm, JwtKey, StaticKeys};
use grpc_auth::authn::revocation::Revocations;
use grpc_auth::authn::token_exchange::{OpaqueTokens, StoreTokens, TokenExchange};
use grpc_auth::authn::{AuthRequest, BasicAuthenticator, JwtAuthenticator};
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::HmacSigner;
use grpc_auth::store::MemoryStore;
use grpc_auth::{AuthError, Authenticator};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use tonic::Code;

const METHOD: &str = "/helloworld.Greeter/SayHello";
const HMAC_SECRET: &str = "adversarial-review-3-hmac-secret";
const JWT_SECRET: &str = "adversarial-review-3-jwt-secret-0123456789abcdef";
/// A fixed instant for the manual clocks.
const NOW: u64 = 1_700_000_000;

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

fn metadata(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).expect("ASCII value"));
    h
}

fn bearer(token: &str) -> HeaderMap {
    metadata("authorization", &format!("Bearer {token}"))
}

fn basic(user: &str, password: &str) -> HeaderMap {
    let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    metadata("authorization", &value)
}

/// What `auth` makes of a call with `headers`: the subject, or the code and message.
async fn outcome(auth: &impl Authenticator, headers: &HeaderMap) -> Result<String, (Code, String)> {
    match auth.authenticate(&AuthRequest::new(METHOD, headers)).await {
        Ok(Some(found)) => Ok(found.principal.subject().to_owned()),
        Ok(None) => Err((Code::Unauthenticated, "no credential".to_owned())),
        Err(e) => Err(status(&e)),
    }
}

fn status(e: &AuthError) -> (Code, String) {
    (e.code(), e.to_string())
}

fn revoked() -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, "token revoked".to_owned()))
}

fn jwt_key() -> JwtKey {
    JwtKey::secret(Algorithm::HS256, JWT_SECRET.as_bytes()).expect("HS256 key")
}

/// An HS256 JWT for `sub` with `jti`, issued at `iat`, expiring at `exp`.
fn jwt_token(sub: &str, jti: &str, iat: u64, exp: u64) -> String {
    tokens::hs256(
        JWT_SECRET,
        &json!({ "sub": sub, "jti": jti, "iat": iat, "exp": exp }),
    )
}

// ---------------------------------------------------------------------------------
// HMAC replay, in memory.
// ---------------------------------------------------------------------------------

/// Finding: `HmacVerifier::no_skew_check()` followed by `max_skew(300 s)` leaves a
/// verifier that checks a 300 s window, but its replay check was ratcheted to "no skew
/// check" for good (`Replay::register` keeps the largest skew ever registered, and
/// `u64::MAX` means "keep forever"). Every accepted signature is then kept forever:
/// the verifier's memory store fills and refuses every new signed call
/// (`UNAVAILABLE` "replay cache full") long after the remembered dates left the window;
/// on Redis the same keys are written without a TTL and grow without bound
/// (`redis_replay_keys_expire_after_no_skew_check_then_max_skew`).
#[tokio::test]
async fn hmac_replay_entries_expire_after_no_skew_check_then_max_skew() {
    let clock = ManualClock::at_unix(NOW);
    let verifier = HmacVerifier::new(hmac_keys())
        .clock(clock.clone())
        .replay_cache_size(4)
        .no_skew_check()
        .max_skew(Duration::from_secs(300));
    for _ in 0..4 {
        let h = signed_at(&clock);
        verifier.verify("POST", METHOD, &h).await.expect("accepted");
    }
    // An hour later the four dates are far outside the 300 s window: a replay of them
    // fails the date check, so the replay memory needs none of them.
    clock.advance(Duration::from_secs(3600));
    let fresh = signed_at(&clock);
    assert_eq!(
        verifier.verify("POST", METHOD, &fresh).await.map(|_| ()),
        Ok(()),
        "a fresh signature an hour later must be accepted: entries whose date left the \
         300 s window must have left the replay memory"
    );
}

/// Finding: the replay entry's time-to-live is computed from the accepting replica's
/// own wall clock (`date + max_skew + 1 s - now`), so two replicas whose clocks are
/// more than 1 s apart disagree: a request accepted by a replica whose clock runs 3 s
/// ahead is forgotten by the shared store 3 s before a replica on the right time stops
/// accepting its date, and replays there.
#[tokio::test]
async fn hmac_replay_across_replicas_whose_clocks_are_3_s_apart_is_refused() {
    let store_time = ManualClock::at_unix(NOW);
    let ahead = ManualClock::at_unix(NOW + 3);
    let on_time = ManualClock::at_unix(NOW);
    let client = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(1_000).clock(store_time.clone());
    let replica_a = HmacVerifier::new(hmac_keys())
        .clock(ahead.clone())
        .replay_store(store.clone());
    let replica_b = HmacVerifier::new(hmac_keys())
        .clock(on_time.clone())
        .replay_store(store);
    let captured = signed_at(&client);
    replica_a
        .verify("POST", METHOD, &captured)
        .await
        .expect("accepted once");
    assert_eq!(
        replica_b.verify("POST", METHOD, &captured).await.err(),
        Some(HmacError::Replay)
    );
    for clock in [&store_time, &ahead, &on_time] {
        clock.advance(Duration::from_secs(299));
    }
    // 299 s after its date: inside replica B's 300 s window.
    assert_eq!(
        replica_b.verify("POST", METHOD, &captured).await.err(),
        Some(HmacError::Replay),
        "a signature replica A accepted must stay a replay on replica B for as long as \
         B accepts its date"
    );
}

// ---------------------------------------------------------------------------------
// JWT revocations.
// ---------------------------------------------------------------------------------

/// Finding: `revoke_jti` keeps the revocation until `exp` + 5 minutes (`EXP_SLACK`),
/// whatever the authenticator's `leeway`. An authenticator with a leeway over 300 s
/// accepts the revoked token again between `exp + 300 s` and `exp + leeway`.
#[tokio::test]
async fn a_revoked_jti_is_refused_for_the_whole_leeway() {
    let clock = ManualClock::at_unix(NOW);
    let store = MemoryStore::new(100).clock(clock.clone());
    let revocations = Revocations::new(store).clock(clock.clone());
    let jwt = JwtAuthenticator::new(StaticKeys::new().with(jwt_key()))
        .leeway(Duration::from_secs(900))
        .clock(clock.clone())
        .revocations(revocations.clone());
    let exp = NOW + 60;
    let token = jwt_token("ada", "j-leeway", NOW, exp);
    assert_eq!(outcome(&jwt, &bearer(&token)).await, Ok("ada".to_owned()));
    revocations
        .revoke_jti("j-leeway", at(exp))
        .await
        .expect("revoked");
    assert_eq!(outcome(&jwt, &bearer(&token)).await, revoked());
    // exp + 420 s: still inside the 900 s leeway, so the token itself still verifies.
    clock.advance(Duration::from_secs(60 + 420));
    assert_eq!(
        outcome(&jwt, &bearer(&token)).await,
        revoked(),
        "a token the authenticator still accepts (leeway) must stay revoked"
    );
}

/// The exchange under test: a JWT login (with revocations) answered with opaque
/// tokens, both kept in one store.
fn jwt_exchange(
    store: &MemoryStore,
    revocations: &Revocations,
) -> TokenExchange<JwtAuthenticator, OpaqueTokens<StoreTokens>> {
    let jwt =
        JwtAuthenticator::new(StaticKeys::new().with(jwt_key())).revocations(revocations.clone());
    // Fixed: opaque tokens check the revocations they are given
    // (`OpaqueTokens::revocations`), as the JWT authenticator does.
    TokenExchange::new(
        jwt,
        OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter")
            .revocations(revocations.clone()),
    )
}

/// Logs in with `token` and returns the opaque token handed out.
async fn exchange_for_opaque(
    exchange: &TokenExchange<JwtAuthenticator, OpaqueTokens<StoreTokens>>,
    token: &str,
) -> String {
    let found = exchange
        .authenticate(&AuthRequest::new(METHOD, &bearer(token)))
        .await
        .expect("login accepted")
        .expect("a credential");
    let value = found
        .response_headers()
        .and_then(|h| h.get("authorization"))
        .expect("an issued token")
        .to_str()
        .expect("ASCII")
        .to_owned();
    value
        .strip_prefix("Bearer ")
        .expect("a Bearer value")
        .to_owned()
}

/// Finding: a JWT exchanged for an opaque token before its revocation lives on as that
/// opaque token. `OpaqueTokens::verify` never consults `Revocations` (the stored record
/// carries the JWT's `jti` and `iat` in its claims), so `revoke_jti` stops the JWT and
/// not the token minted from it (until its TTL, 15 minutes by default).
#[tokio::test]
async fn a_revoked_jti_also_refuses_the_opaque_token_it_was_exchanged_for() {
    let store = MemoryStore::new(1_000);
    let revocations = Revocations::new(store.clone());
    let exchange = jwt_exchange(&store, &revocations);
    let now = u64::try_from(tokens::now()).expect("after the epoch");
    let stolen = jwt_token("ada", "j-stolen", now - 10, now + 3600);
    let opaque = exchange_for_opaque(&exchange, &stolen).await;
    assert_eq!(outcome(&exchange, &bearer(&opaque)).await, Ok("ada".into()));

    revocations
        .revoke_jti("j-stolen", at(now + 3600))
        .await
        .expect("revoked");
    assert_eq!(outcome(&exchange, &bearer(&stolen)).await, revoked());
    assert!(
        outcome(&exchange, &bearer(&opaque)).await.is_err(),
        "the opaque token minted from a revoked JWT must be refused too"
    );
}

/// Finding: `revoke_subject` ("every token of `subject` issued at or before", and the
/// `revoke --subject` example: "Revoke every token of this subject") does not reach
/// opaque exchange tokens of that subject, though they live in the same store.
#[tokio::test]
async fn a_revoked_subject_also_refuses_its_opaque_exchange_tokens() {
    let store = MemoryStore::new(1_000);
    let revocations = Revocations::new(store.clone());
    let exchange = jwt_exchange(&store, &revocations);
    let now = u64::try_from(tokens::now()).expect("after the epoch");
    let stolen = jwt_token("ada", "j-sub", now - 10, now + 3600);
    let opaque = exchange_for_opaque(&exchange, &stolen).await;

    revocations
        .revoke_subject("ada", at(now))
        .await
        .expect("revoked");
    assert_eq!(outcome(&exchange, &bearer(&stolen)).await, revoked());
    assert!(
        outcome(&exchange, &bearer(&opaque)).await.is_err(),
        "every token of a revoked subject must be refused, opaque exchange tokens included"
    );
}

/// Finding: one `MemoryStore` "for the whole service" (the `Revocations` docs) shared
/// with the failed-login limits can be filled by unauthenticated callers: each failed
/// login under a new user name takes an entry for the whole window. Once full, the
/// admin's `revoke_jti` is refused (`Full`) and the stolen token stays valid.
#[tokio::test]
async fn failed_logins_cannot_keep_a_shared_memory_store_from_recording_a_revocation() {
    let store = MemoryStore::new(500);
    let revocations = Revocations::new(store.clone());
    let login = BasicAuthenticator::new()
        .user("ada", "lovelace")
        .failure_store(store.clone());
    let jwt =
        JwtAuthenticator::new(StaticKeys::new().with(jwt_key())).revocations(revocations.clone());
    let now = u64::try_from(tokens::now()).expect("after the epoch");
    let stolen = jwt_token("ada", "j-flood", now - 10, now + 3600);
    assert_eq!(outcome(&jwt, &bearer(&stolen)).await, Ok("ada".into()));

    // A password-guessing botnet: one guess per made-up user name.
    for i in 0..500 {
        let r = outcome(&login, &basic(&format!("guess-{i}"), "password")).await;
        assert!(r.is_err(), "{r:?}");
    }
    assert_eq!(
        revocations.revoke_jti("j-flood", at(now + 3600)).await,
        Ok(()),
        "guessers must not be able to keep a revocation from being recorded"
    );
    assert_eq!(outcome(&jwt, &bearer(&stolen)).await, revoked());
}

// ---------------------------------------------------------------------------------
// Redis.
// ---------------------------------------------------------------------------------

#[cfg(feature = "redis")]
#[path = "support/redis.rs"]
mod redis_server;

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    use grpc_auth::store::RedisStore;
    use tokio::task::JoinSet;

    use crate::redis_server::{RedisServer, Reply};

    fn store(server: &RedisServer, prefix: &str) -> RedisStore {
        RedisStore::builder(server.url())
            .prefix(prefix)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("build RedisStore")
    }

    fn flushall(server: &RedisServer) {
        assert_eq!(
            server.command(&[b"FLUSHALL"]).expect("FLUSHALL"),
            Reply::Simple("OK".to_owned())
        );
    }

    fn signed() -> HeaderMap {
        signed_at(&ManualClock::now())
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

    /// Replays `requests` at once on `verifier`: how many were accepted.
    async fn replay_at_once(verifier: &HmacVerifier, requests: Vec<HeaderMap>) -> usize {
        let mut calls = JoinSet::new();
        for h in requests {
            let v = verifier.clone();
            calls.spawn(async move { v.verify("POST", METHOD, &h).await.is_ok() });
        }
        let mut accepted = 0;
        while let Some(ok) = calls.join_next().await {
            if ok.expect("no panic") {
                accepted += 1;
            }
        }
        accepted
    }

    /// Finding (High, in cb8c3cd and before; fixed by 5c230bd during this review): data
    /// loss was noticed by the first guarded call that read the marker gone;
    /// `check_marker` then set `seen = None` and the quarantine. Every other guarded
    /// call already in flight (past `check_quarantine`, marker read gone too) then found
    /// `(seen None, marker None)`, took Redis for a fresh one, planted a new marker and
    /// returned its `SET NX` answer from the emptied Redis: "first seen". Flushing or
    /// restarting Redis and replaying captured requests in one burst got 19 of 20
    /// accepted. Kept as a regression test.
    #[tokio::test(flavor = "current_thread")]
    async fn redis_replays_in_flight_when_data_loss_is_noticed_are_refused() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let verifier = HmacVerifier::new(hmac_keys()).replay_store(store(&server, "burst:"));
        let requests = captured(&verifier, 20).await;
        flushall(&server);
        let accepted = replay_at_once(&verifier, requests).await;
        assert_eq!(
            accepted, 0,
            "replays of signatures the lost Redis held must be refused, not first seen"
        );
    }

    /// Regression guard for the marker rewrite (5c230bd): the replica that planted the
    /// marker must notice a flush too, not re-plant its own value and carry on.
    #[tokio::test]
    async fn redis_the_replica_that_planted_the_marker_notices_a_flush() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let verifier = HmacVerifier::new(hmac_keys()).replay_store(store(&server, "planter:"));
        let requests = captured(&verifier, 1).await;
        flushall(&server);
        let again = verifier.verify("POST", METHOD, &requests[0]).await;
        assert!(
            again.is_err(),
            "a replay after the flush must be refused: {again:?}"
        );
    }

    /// Finding: `replay_fails_open(true)` ("when the replay store cannot answer") also
    /// overrides the data-loss quarantine, where Redis did answer and the answer is
    /// known to be worthless: the replay the quarantine exists to refuse is accepted.
    #[tokio::test]
    async fn redis_fail_open_does_not_open_the_data_loss_quarantine() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let verifier = HmacVerifier::new(hmac_keys())
            .replay_store(store(&server, "open:"))
            .replay_fails_open(true);
        let requests = captured(&verifier, 1).await;
        flushall(&server);
        let again = verifier.verify("POST", METHOD, &requests[0]).await;
        assert!(
            again.is_err(),
            "a replay after data loss must be refused even by a fail-open verifier: {again:?}"
        );
    }

    /// Finding (Medium): eviction is data loss the marker cannot see. With a memory cap
    /// and an evicting policy (`volatile-lru`, the default of managed Redis services such
    /// as ElastiCache), Redis drops keys with a TTL (replay marks, revoked jtis and
    /// subjects) to make room, and unauthenticated password guessing (a failure counter
    /// per made-up user name) can make it need room: captured requests then replay.
    /// Fixed: the store reads the policy and refuses replay and revocation checks while
    /// Redis may evict (fail closed, even for a fail-open verifier).
    #[tokio::test]
    async fn redis_eviction_does_not_let_captured_requests_replay() {
        let Some(server) =
            RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", "volatile-lru"])
        else {
            return;
        };
        let verifier = HmacVerifier::new(hmac_keys())
            .replay_store(store(&server, "evict:"))
            .replay_fails_open(true);
        let refused = verifier
            .verify("POST", METHOD, &signed())
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "HMAC replay check unavailable: redis store unreliable: redis may evict keys \
             (maxmemory-policy volatile-lru); set maxmemory-policy noeviction"
        );
        assert!(refused.is_unavailable());
    }

    /// Under `noeviction` (what the store requires of a Redis with a memory cap), a
    /// guessing flood that fills Redis makes writes fail: signed calls are refused
    /// (`UNAVAILABLE`), and no captured request replays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_full_under_noeviction_refuses_instead_of_forgetting() {
        let Some(server) =
            RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
        else {
            return;
        };
        let shared = store(&server, "full:");
        let verifier = HmacVerifier::new(hmac_keys()).replay_store(shared.clone());
        let login = BasicAuthenticator::new()
            .user("ada", "lovelace")
            .failure_store(shared.clone());
        let requests = captured(&verifier, 50).await;
        // The botnet: failed logins under made-up names until Redis refuses writes.
        let mut sent = 0usize;
        let mut full = false;
        while !full && sent < 400_000 {
            let mut calls = JoinSet::new();
            for i in sent..sent + 500 {
                let login = login.clone();
                calls.spawn(async move {
                    let h = basic(&format!("botnet-{i}"), "guess");
                    login
                        .authenticate(&AuthRequest::new(METHOD, &h))
                        .await
                        .err()
                        .map(|e| e.code())
                });
            }
            while let Some(code) = calls.join_next().await {
                full |= code.expect("no panic") == Some(Code::Unavailable);
            }
            sent += 500;
        }
        assert!(full, "{sent} guesses never filled Redis");
        let accepted = replay_at_once(&verifier, requests).await;
        assert_eq!(accepted, 0, "no captured request may replay");
    }

    /// Finding (Medium): a restart that loads an older RDB snapshot (Redis's default
    /// persistence, after a crash or an OOM kill; likewise a failover to a lagging
    /// replica) loses everything written since, but the `{prefix}epoch` marker was in
    /// the snapshot: the marker check only detects a Redis that lost *all* its data.
    /// The replay marks and the revocation written after the snapshot are gone
    /// silently; captured requests replay and a revoked JWT is accepted again, with no
    /// quarantine.
    #[tokio::test]
    async fn redis_restart_from_an_older_snapshot_is_data_loss() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let shared = store(&server, "snap:");
        let verifier = HmacVerifier::new(hmac_keys()).replay_store(shared.clone());
        let revocations = Revocations::new(shared.clone());
        let jwt = JwtAuthenticator::new(StaticKeys::new().with(jwt_key()))
            .revocations(revocations.clone());
        let now = u64::try_from(tokens::now()).expect("after the epoch");
        let stolen = jwt_token("ada", "j-snap", now - 10, now + 3600);
        assert_eq!(outcome(&jwt, &bearer(&stolen)).await, Ok("ada".into()));
        // The periodic snapshot (`save` in redis.conf), taken once the marker is set.
        assert_eq!(
            server.command(&[b"SAVE"]).expect("SAVE"),
            Reply::Simple("OK".to_owned())
        );
        // After the snapshot: signed calls accepted, and a revocation.
        let requests = captured(&verifier, 5).await;
        revocations
            .revoke_jti("j-snap", at(now + 3600))
            .await
            .expect("revoked");
        assert_eq!(outcome(&jwt, &bearer(&stolen)).await, revoked());

        // Redis crashes (SIGKILL) and comes back from its last snapshot.
        server.stop();
        server.restart();
        let probe = grpc_auth::store::Key::digest(grpc_auth::store::Kind::Token, &[b"probe"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while grpc_auth::store::Store::get(&shared, &[probe])
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "Redis did not come back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let revoked_jwt = outcome(&jwt, &bearer(&stolen)).await;
        let mut replays = 0;
        for h in &requests {
            if verifier.verify("POST", METHOD, h).await.is_ok() {
                replays += 1;
            }
        }
        assert_eq!(
            (revoked_jwt.is_ok(), replays),
            (false, 0),
            "after Redis lost what it held since its snapshot, the revoked JWT ({revoked_jwt:?}) \
             and the 5 captured requests must be refused"
        );
    }

    /// The Redis side of `hmac_replay_entries_expire_after_no_skew_check_then_max_skew`:
    /// a verifier with a 300 s window writes replay keys that never expire.
    #[tokio::test]
    async fn redis_replay_keys_expire_after_no_skew_check_then_max_skew() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let verifier = HmacVerifier::new(hmac_keys())
            .replay_store(store(&server, "ratchet:"))
            .no_skew_check()
            .max_skew(Duration::from_secs(300));
        captured(&verifier, 3).await;
        let keys: Vec<String> = server
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("ratchet:replay:"))
            .collect();
        assert_eq!(keys.len(), 3);
        for key in keys {
            let ttl = server.command(&[b"PTTL", key.as_bytes()]).expect("PTTL");
            let Reply::Int(ms) = ttl else {
                panic!("PTTL answered {ttl:?}");
            };
            assert!(
                (1..=601_000).contains(&ms),
                "a replay key of a 300 s window must expire within 601 s, PTTL {ms}"
            );
        }
    }
}
