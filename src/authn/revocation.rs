//! [`Revocations`]: JWTs revoked by `jti`, a subject's tokens issued before an instant,
//! and opaque exchange tokens, kept in a [`Store`] every replica reads.
//!
//! ```
//! use grpc_auth::authn::revocation::Revocations;
//! use grpc_auth::authn::jwt::{Algorithm, JwtAuthenticator, JwtKey, StaticKeys};
//! use grpc_auth::store::MemoryStore;
//! use std::time::{Duration, SystemTime};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One store for the service: a RedisStore shared by its replicas, or a MemoryStore
//! // for one process (its capacity holds for each kind of entry, so failed-login
//! // counters in the same store cannot crowd revocations out).
//! let revocations = Revocations::new(MemoryStore::new(100_000));
//! let key = JwtKey::secret(Algorithm::HS256, b"0123456789abcdef0123456789abcdef")?;
//! let jwt = JwtAuthenticator::new(StaticKeys::new().with(key))
//!     .revocations(revocations.clone());
//!
//! // From an admin endpoint: this token, or everything "ada" holds now.
//! let exp = SystemTime::now() + Duration::from_secs(900);
//! revocations.revoke_jti("4f1c-0e9a", exp).await?;
//! revocations.revoke_subject("ada", SystemTime::now()).await?;
//! # let _ = jwt; Ok(()) }
//! ```
//!
//! A JWT authenticator with revocations asks the store on every call, after the
//! signature and claims check (cached or not): one `MGET` of the token's `jti` and
//! `sub` keys (with a Redis store, and a read of its data-loss counter), one round
//! trip. A revoked token is refused `UNAUTHENTICATED` "token revoked"; when the store
//! cannot answer, `UNAVAILABLE` "revocation check unavailable:
//! ..." (a check that cannot be made never accepts). Every replica sees a revocation on
//! its next call.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::authn::token_exchange::TokenDigest;
use crate::clock::{self, Clock};
use crate::store::{Key, Kind, SharedStore, Store, StoreError};
use crate::{AuthError, Principal};

/// Default time a subject's revocation is kept: 24 hours.
pub(crate) const DEFAULT_SUBJECT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Kept past a revoked token's `exp`, for validators that allow clock leeway: 5 minutes.
pub(crate) const EXP_SLACK: Duration = Duration::from_secs(300);

/// The revocation list: see the [module docs](self). Clones share the store.
#[derive(Clone)]
pub struct Revocations {
    store: SharedStore,
    subject_retention: Duration,
    clock: Arc<dyn Clock>,
    /// The largest leeway (seconds) of the JWT authenticators checking these
    /// revocations: a revoked `jti` is kept at least that long past its `exp`.
    leeway: Arc<AtomicU64>,
}

impl Revocations {
    /// Revocations kept in `store` (a `RedisStore` (feature `redis`) shared by
    /// the replicas, or a [`MemoryStore`](crate::store::MemoryStore) for one process).
    pub fn new(store: impl Store) -> Self {
        Self {
            store: Arc::new(store),
            subject_retention: DEFAULT_SUBJECT_RETENTION,
            clock: clock::system(),
            leeway: Arc::default(),
        }
    }

    /// A JWT authenticator with `leeway` checks these revocations.
    pub(crate) fn register_leeway(&self, leeway: Duration) {
        self.leeway.fetch_max(leeway.as_secs(), Ordering::SeqCst);
    }

    /// How long a [`revoke_subject`](Self::revoke_subject) is kept (default 24 hours):
    /// set it to the longest lifetime of the tokens you accept. A token issued before
    /// the instant and still valid after this time would be accepted again.
    pub fn subject_retention(mut self, retention: Duration) -> Self {
        self.subject_retention = retention;
        self
    }

    /// Reads the time from `clock` (how long an entry is kept).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store's name (`memory`, `redis`).
    pub fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// Revokes the JWT whose `jti` is `jti` until `exp` (its expiry) plus the largest
    /// leeway of the JWT authenticators checking these revocations (at least 5
    /// minutes); nothing is stored for a token already past that. Revoking from another
    /// process (the `revoke` example, an admin tool) knows no server's leeway: there the
    /// 5 minutes must cover it.
    pub async fn revoke_jti(&self, jti: &str, exp: SystemTime) -> Result<(), StoreError> {
        let leeway = Duration::from_secs(self.leeway.load(Ordering::SeqCst).saturating_add(1));
        let until = clock::add(exp, EXP_SLACK.max(leeway));
        let Ok(ttl) = until.duration_since(self.clock.now()) else {
            return Ok(());
        };
        self.store.put(jti_key(jti), b"1", Some(ttl)).await?;
        tracing::info!(store = self.store.name(), "grpc-auth: JWT revoked by jti");
        Ok(())
    }

    /// Revokes every token of `subject` issued at or before `issued_before` (by its
    /// `iat`, to the second; a token without `iat` is refused too), for
    /// [`subject_retention`](Self::subject_retention). Tokens issued later are accepted.
    pub async fn revoke_subject(
        &self,
        subject: &str,
        issued_before: SystemTime,
    ) -> Result<(), StoreError> {
        let secs = issued_before
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.store
            .put(
                subject_key(subject),
                secs.to_string().as_bytes(),
                Some(self.subject_retention),
            )
            .await?;
        tracing::info!(store = self.store.name(), "grpc-auth: subject revoked");
        Ok(())
    }

    /// Lifts a subject's revocation; whether there was one.
    pub async fn unrevoke_subject(&self, subject: &str) -> Result<bool, StoreError> {
        self.store.remove(subject_key(subject)).await
    }

    /// Revokes an opaque exchange token kept in this store (see
    /// [`StoreTokens`](crate::authn::token_exchange::StoreTokens)); whether it was live.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, StoreError> {
        let digest = TokenDigest::of(token);
        self.store
            .remove(Key::from_digest(Kind::Token, *digest.as_bytes()))
            .await
    }

    /// Refuses `principal` (a verified JWT's) when its `jti` or its subject is revoked
    /// (for the subject: issued, by its `iat`, at or before the revocation's instant).
    pub async fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        let iat = principal
            .claims()
            .get("iat")
            .and_then(serde_json::Value::as_u64);
        self.check_issued(principal, iat).await
    }

    /// [`check`](Self::check) for a token issued at `iat` (Unix seconds), whatever its
    /// claims say: an opaque token carries its login credential's claims (a JWT's `jti`
    /// is revoked with it) but was issued when it was made.
    pub async fn check_issued(
        &self,
        principal: &Principal,
        iat: Option<u64>,
    ) -> Result<(), AuthError> {
        let claims = principal.claims();
        // RFC 7519 makes `jti` a string; a number is read as its decimal text, so that
        // `revoke_jti("42")` revokes it too.
        let jti = match claims.get("jti") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let mut keys = Vec::with_capacity(2);
        keys.push(subject_key(principal.subject()));
        if let Some(jti) = &jti {
            keys.push(jti_key(jti));
        }
        let values = self.store.get(&keys).await.map_err(|e| {
            tracing::warn!(
                store = self.store.name(),
                error = %e,
                "grpc-auth: revocation check unavailable; token refused"
            );
            AuthError::unavailable(format!("revocation check unavailable: {e}"))
        })?;
        if values.len() != keys.len() {
            return Err(AuthError::unavailable(format!(
                "revocation check unavailable: {} store answered {} values for {} keys",
                self.store.name(),
                values.len(),
                keys.len()
            )));
        }
        if values.get(1).is_some_and(Option::is_some) {
            return Err(revoked());
        }
        if let Some(Some(before)) = values.first() {
            let before = std::str::from_utf8(before)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match (before, iat) {
                (Some(before), Some(iat)) if iat > before => {}
                _ => return Err(revoked()),
            }
        }
        Ok(())
    }
}

fn revoked() -> AuthError {
    AuthError::unauthenticated("token revoked")
}

fn jti_key(jti: &str) -> Key {
    Key::digest(Kind::RevokedJti, &[jti.as_bytes()])
}

fn subject_key(subject: &str) -> Key {
    Key::digest(Kind::RevokedSubject, &[subject.as_bytes()])
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("store", &self.store.name())
            .field("subject_retention", &self.subject_retention)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn token(sub: &str, jti: Option<&str>, iat: Option<u64>) -> Principal {
        let mut claims = serde_json::Map::new();
        if let Some(j) = jti {
            claims.insert("jti".into(), json!(j));
        }
        if let Some(i) = iat {
            claims.insert("iat".into(), json!(i));
        }
        Principal::new(sub, "jwt").with_claims(claims)
    }

    fn setup() -> (ManualClock, Revocations) {
        let clock = ManualClock::at_unix(NOW);
        let store = MemoryStore::new(64).clock(clock.clone());
        (clock.clone(), Revocations::new(store).clock(clock))
    }

    #[tokio::test]
    async fn a_revoked_jti_is_refused_until_its_exp_and_slack() {
        let (clock, r) = setup();
        let t = token("ada", Some("j-1"), Some(NOW));
        assert_eq!(r.check(&t).await, Ok(()));
        r.revoke_jti("j-1", at(NOW + 60)).await.unwrap();
        assert_eq!(r.check(&t).await, Err(revoked()));
        assert_eq!(r.check(&token("ada", Some("j-2"), Some(NOW))).await, Ok(()));
        clock.advance(Duration::from_secs(60 + 299));
        assert_eq!(r.check(&t).await, Err(revoked()), "leeway slack");
        clock.advance(Duration::from_secs(1));
        assert_eq!(r.check(&t).await, Ok(()), "forgotten once it cannot verify");
    }

    #[tokio::test]
    async fn a_revoked_subject_refuses_tokens_issued_at_or_before_the_instant() {
        let (_, r) = setup();
        r.revoke_subject("ada", at(NOW)).await.unwrap();
        assert_eq!(
            r.check(&token("ada", None, Some(NOW - 10))).await,
            Err(revoked())
        );
        assert_eq!(
            r.check(&token("ada", None, Some(NOW))).await,
            Err(revoked())
        );
        assert_eq!(
            r.check(&token("ada", None, None)).await,
            Err(revoked()),
            "no iat"
        );
        assert_eq!(r.check(&token("ada", None, Some(NOW + 1))).await, Ok(()));
        assert_eq!(r.check(&token("bob", None, Some(NOW - 10))).await, Ok(()));
        assert_eq!(r.unrevoke_subject("ada").await, Ok(true));
        assert_eq!(r.check(&token("ada", None, Some(NOW - 10))).await, Ok(()));
    }

    #[tokio::test]
    async fn a_subject_revocation_lasts_its_retention() {
        let (clock, r) = setup();
        let r = r.subject_retention(Duration::from_secs(3600));
        r.revoke_subject("ada", at(NOW)).await.unwrap();
        clock.advance(Duration::from_secs(3599));
        assert_eq!(
            r.check(&token("ada", None, Some(NOW))).await,
            Err(revoked())
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(r.check(&token("ada", None, Some(NOW))).await, Ok(()));
    }

    #[tokio::test]
    async fn a_full_memory_store_refuses_the_revocation_not_the_check() {
        let clock = ManualClock::at_unix(NOW);
        let r = Revocations::new(MemoryStore::new(1).clock(clock.clone())).clock(clock);
        r.revoke_jti("j-1", at(NOW + 60)).await.unwrap();
        assert_eq!(
            r.revoke_jti("j-2", at(NOW + 60)).await,
            Err(StoreError::Full { store: "memory" })
        );
        assert_eq!(
            r.check(&token("ada", Some("j-1"), Some(NOW))).await,
            Err(revoked())
        );
    }

    #[tokio::test]
    async fn a_numeric_jti_is_revoked_by_its_decimal_text() {
        let (_, r) = setup();
        let mut claims = serde_json::Map::new();
        claims.insert("jti".into(), json!(42));
        claims.insert("iat".into(), json!(NOW));
        let t = Principal::new("ada", "jwt").with_claims(claims);
        r.revoke_jti("42", at(NOW + 60)).await.unwrap();
        assert_eq!(r.check(&t).await, Err(revoked()));
    }

    #[tokio::test]
    async fn an_expired_token_needs_no_entry() {
        let (_, r) = setup();
        r.revoke_jti("old", at(NOW - 3600)).await.unwrap();
        assert_eq!(r.check(&token("ada", Some("old"), Some(NOW))).await, Ok(()));
    }
}
