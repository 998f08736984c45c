//! [`Store`]: where every protection that remembers across calls keeps its state.
//!
//! Four protections keep state: the HMAC replay check ("first seen"), revocations
//! ([`Revocations`](crate::authn::revocation::Revocations): JWTs by `jti`, a subject's
//! tokens issued before an instant), failed-login limits
//! ([`FailureLimits`](crate::authn::FailureLimits)) and opaque exchange tokens
//! ([`StoreTokens`](crate::authn::token_exchange::StoreTokens)). Each reaches its state
//! through this one small interface, so one implementation serves them all:
//!
//! - [`MemoryStore`], the default: in the process, bounded, lost on restart. What one
//!   replica needs.
//! - `RedisStore` (crate feature `redis`): one Redis shared by every replica, so a
//!   signature accepted by one replica is a replay on the others, a revocation holds
//!   everywhere, and a password guesser meets one limit for the cluster.
//!
//! A key is a [`Kind`] and a SHA-256 digest ([`Key`]): a store never holds a raw
//! credential, key id or user name. A store that cannot answer returns
//! [`StoreError`], which the protections turn into `UNAVAILABLE` naming the store:
//! a check that cannot be made never accepts.
//!
//! ```
//! use grpc_auth::store::{Key, Kind, MemoryStore, Store};
//! use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = MemoryStore::new(10_000);
//! let key = Key::digest(Kind::Replay, &[b"signature"]);
//! let ttl = Some(Duration::from_secs(300));
//! assert_eq!(store.insert_new(key, b"1", ttl).await, Ok(true)); // first seen
//! assert_eq!(store.insert_new(key, b"1", ttl).await, Ok(false)); // a replay
//! # }
//! ```

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

use crate::AuthError;

/// What a key is for: its namespace within the store (and the second part of a Redis
/// key name, after the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// An accepted HMAC signature (digest of its MAC).
    Replay,
    /// A failed-login counter (digest of a user name or a peer address).
    Failures,
    /// A revoked JWT (digest of its `jti`).
    RevokedJti,
    /// A revoked subject (digest of its `sub`); the value is the instant before which
    /// its tokens were issued.
    RevokedSubject,
    /// An opaque token (digest of the token); the value is its record.
    Token,
}

impl Kind {
    /// Every kind, in [`index`](Self::index) order.
    pub(crate) const ALL: [Kind; 5] = [
        Self::Replay,
        Self::Failures,
        Self::RevokedJti,
        Self::RevokedSubject,
        Self::Token,
    ];

    /// The kind's place in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Replay => 0,
            Self::Failures => 1,
            Self::RevokedJti => 2,
            Self::RevokedSubject => 3,
            Self::Token => 4,
        }
    }

    /// The kind's short name: `replay`, `fail`, `jti`, `sub` or `token`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Failures => "fail",
            Self::RevokedJti => "jti",
            Self::RevokedSubject => "sub",
            Self::Token => "token",
        }
    }
}

/// A store key: a [`Kind`] and the SHA-256 digest of what it stands for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    kind: Kind,
    digest: [u8; 32],
}

impl Key {
    /// The key of `parts` (each length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ).
    pub fn digest(kind: Kind, parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self {
            kind,
            digest: h.finalize().into(),
        }
    }

    /// A key from a digest made elsewhere (a token's [`TokenDigest`](crate::authn::token_exchange::TokenDigest)).
    pub fn from_digest(kind: Kind, digest: [u8; 32]) -> Self {
        Self { kind, digest }
    }

    /// What the key is for.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The key's name under `prefix`: `{prefix}{kind}:{base64url digest}`.
    pub fn name(&self, prefix: &str) -> String {
        use base64::Engine as _;
        let mut name = String::with_capacity(prefix.len() + 50);
        name.push_str(prefix);
        name.push_str(self.kind.as_str());
        name.push(':');
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(self.digest, &mut name);
        name
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.name("").get(..14).unwrap_or_default())
    }
}

/// Why a store could not answer. Every variant becomes `UNAVAILABLE` for the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached, answered an error, or did not answer in time.
    #[error("{store} store unavailable: {reason}")]
    Unavailable {
        /// The store's name (`redis`, `memory`).
        store: &'static str,
        /// What went wrong (never a key or a value).
        reason: String,
    },
    /// A bounded store holds only live entries and may forget none of them.
    #[error("{store} store full")]
    Full {
        /// The store's name.
        store: &'static str,
    },
    /// The store answered, but it lost entries it held (restarted empty, rolled back to
    /// an older snapshot) or may drop them (an evicting memory policy): what depends on
    /// remembering (replay, revocation) cannot be checked. Never "fail open".
    #[error("{store} store unreliable: {reason}")]
    Unreliable {
        /// The store's name.
        store: &'static str,
        /// What it lost or may lose (never a key or a value).
        reason: String,
    },
}

impl StoreError {
    /// `Unavailable` with a reason.
    pub fn unavailable(store: &'static str, reason: impl Into<String>) -> Self {
        Self::Unavailable {
            store,
            reason: reason.into(),
        }
    }
}

impl StoreError {
    /// Whether the store could not be reached or did not answer in time: the one case
    /// an opt-in "fail open" may accept. A store that answered with lost data is not.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::unavailable(e.to_string())
    }
}

/// What [`Store::count`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Every counter was under its limit, and each now counts one more.
    Yes,
    /// A counter had reached its limit: nothing was counted.
    Limited,
}

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The state behind replay protection, revocation, failed-login limits and opaque tokens.
///
/// Each method is one atomic step on the store (one round trip to a remote one), so
/// replicas sharing it agree: of two replicas inserting one key at once, one wins.
/// A time-to-live of `None` keeps an entry until it is removed. Implementations must
/// bound how long a call waits and must never invent an answer: a store that cannot
/// answer returns [`StoreError`], and the protections then refuse the call.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The store's name in errors and logs (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Stores `value` under `key` for `ttl` unless `key` holds a value: `true` when this
    /// call stored it (first seen), `false` when it was there.
    fn insert_new<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// Stores `value` under `key` for `ttl`, replacing what was there.
    fn put<'a>(&'a self, key: Key, value: &'a [u8], ttl: Option<Duration>) -> StoreFuture<'a, ()>;

    /// The values of `keys`, in order (`None` for an absent or expired key), in one step.
    fn get<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>>;

    /// Removes `key`: whether it held a value.
    fn remove(&self, key: Key) -> StoreFuture<'_, bool>;

    /// Counts one event against each `(key, limit)` unless some count has reached its
    /// limit (then counts nothing: [`Counted::Limited`]). A count starts when it is
    /// first incremented and ends `window` later.
    fn count<'a>(
        &'a self,
        counters: &'a [(Key, u32)],
        window: Duration,
    ) -> StoreFuture<'a, Counted>;

    /// Takes one event back from each of `one` and clears each of `all`.
    fn uncount<'a>(&'a self, one: &'a [Key], all: &'a [Key]) -> StoreFuture<'a, ()>;
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn insert_new<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        (**self).insert_new(key, value, ttl)
    }
    fn put<'a>(&'a self, key: Key, value: &'a [u8], ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        (**self).put(key, value, ttl)
    }
    fn get<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        (**self).get(keys)
    }
    fn remove(&self, key: Key) -> StoreFuture<'_, bool> {
        (**self).remove(key)
    }
    fn count<'a>(
        &'a self,
        counters: &'a [(Key, u32)],
        window: Duration,
    ) -> StoreFuture<'a, Counted> {
        (**self).count(counters, window)
    }
    fn uncount<'a>(&'a self, one: &'a [Key], all: &'a [Key]) -> StoreFuture<'a, ()> {
        (**self).uncount(one, all)
    }
}

/// A shared handle to some store: what the protections hold.
pub type SharedStore = Arc<dyn Store>;
