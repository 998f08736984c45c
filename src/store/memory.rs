//! [`MemoryStore`]: the in-process [`Store`], bounded, the default.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use super::{Counted, Key, Store, StoreError, StoreFuture};
use crate::clock::{self, Clock};

const NAME: &str = "memory";
/// Expired entries dropped per write at most, outside a full purge.
const PURGE_STEP: usize = 64;

/// The in-process [`Store`]: what one replica needs, lost on restart. Clones share it.
///
/// It holds at most `capacity` entries. An entry lives until its time-to-live has
/// passed on the wall clock and on the monotonic clock both (a wall clock stepped
/// back and forth forgets nothing). A live entry is never evicted: when every entry
/// is live and the store is full, a write that needs a new entry fails with
/// [`StoreError::Full`], and the protection refuses the call (`UNAVAILABLE`) rather
/// than forget a signature, a revocation or a failure count.
///
/// Memory: about 150 bytes per entry plus the value.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Entries with a time-to-live, by wall deadline (ms) and insertion number.
    expiry: BTreeMap<(u64, u64), Key>,
    seq: u64,
}

struct Entry {
    value: Value,
    /// Wall and monotonic deadlines (ms), `None`: never expires.
    deadline: Option<(u64, u64)>,
    seq: u64,
}

enum Value {
    Bytes(Vec<u8>),
    Count(u32),
}

/// The clocks' readings, in milliseconds.
#[derive(Clone, Copy)]
struct Now {
    wall: u64,
    mono: u64,
}

impl Now {
    fn of(clock: &dyn Clock) -> Self {
        let wall = clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mono = u64::try_from(clock.monotonic().as_millis()).unwrap_or(u64::MAX);
        Self { wall, mono }
    }

    fn deadline(self, ttl: Option<Duration>) -> Option<(u64, u64)> {
        let ms = u64::try_from(ttl?.as_millis()).unwrap_or(u64::MAX);
        Some((self.wall.saturating_add(ms), self.mono.saturating_add(ms)))
    }
}

impl Entry {
    fn live(&self, now: Now) -> bool {
        match self.deadline {
            None => true,
            Some((wall, mono)) => now.wall < wall || now.mono < mono,
        }
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` entries (at least 1), on the system clock.
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, clock::system())
    }

    /// Reads the time from `clock` (tests move it). The store is a new, empty one.
    pub fn clock(self, clock: impl Clock) -> Self {
        Self::with_clock(self.shared.capacity, Arc::new(clock))
    }

    pub(crate) fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// How many entries it holds (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Now {
        Now::of(&*self.shared.clock)
    }

    /// Room for `new` more entries: expired ones are dropped first; fails when the
    /// store would hold more than its capacity of live entries.
    fn make_room(&self, state: &mut State, now: Now, new: usize) -> Result<(), StoreError> {
        state.purge(now, PURGE_STEP);
        if new == 0 || state.entries.len().saturating_add(new) <= self.shared.capacity {
            return Ok(());
        }
        state.purge(now, usize::MAX);
        if state.entries.len().saturating_add(new) <= self.shared.capacity {
            return Ok(());
        }
        tracing::warn!(
            capacity = self.shared.capacity,
            "grpc-auth: memory store full of live entries; write refused"
        );
        Err(StoreError::Full { store: NAME })
    }

    fn insert_new_now(
        &self,
        key: Key,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        if state.entries.get(&key).is_some_and(|e| e.live(now)) {
            return Ok(false);
        }
        let new = usize::from(!state.entries.contains_key(&key));
        self.make_room(&mut state, now, new)?;
        state.set(key, Value::Bytes(value.to_vec()), now.deadline(ttl));
        Ok(true)
    }

    fn put_now(&self, key: Key, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let new = usize::from(!state.entries.contains_key(&key));
        self.make_room(&mut state, now, new)?;
        state.set(key, Value::Bytes(value.to_vec()), now.deadline(ttl));
        Ok(())
    }

    fn get_now(&self, keys: &[Key]) -> Vec<Option<Vec<u8>>> {
        let now = self.now();
        let state = self.lock();
        keys.iter()
            .map(|k| match state.entries.get(k) {
                Some(e) if e.live(now) => Some(match &e.value {
                    Value::Bytes(b) => b.clone(),
                    Value::Count(c) => c.to_string().into_bytes(),
                }),
                _ => None,
            })
            .collect()
    }

    fn count_now(&self, counters: &[(Key, u32)], window: Duration) -> Result<Counted, StoreError> {
        let now = self.now();
        let mut state = self.lock();
        let mut new = 0;
        for (key, limit) in counters {
            let count = match state.entries.get(key) {
                Some(e) if e.live(now) => match e.value {
                    Value::Count(c) => c,
                    Value::Bytes(_) => 0,
                },
                Some(_) => 0,
                None => {
                    new += 1;
                    0
                }
            };
            if count >= *limit {
                return Ok(Counted::Limited);
            }
        }
        self.make_room(&mut state, now, new)?;
        for (key, _) in counters {
            let current = match state.entries.get(key) {
                Some(e) if e.live(now) => match e.value {
                    Value::Count(c) => Some((c, e.deadline)),
                    Value::Bytes(_) => None,
                },
                _ => None,
            };
            match current {
                Some((c, deadline)) => state.set(*key, Value::Count(c.saturating_add(1)), deadline),
                None => state.set(*key, Value::Count(1), now.deadline(Some(window))),
            }
        }
        Ok(Counted::Yes)
    }

    fn uncount_now(&self, one: &[Key], all: &[Key]) {
        let now = self.now();
        let mut state = self.lock();
        for key in all {
            state.remove(key);
        }
        for key in one {
            let next = match state.entries.get(key) {
                Some(e) if e.live(now) => match e.value {
                    Value::Count(c) if c > 1 => Some((c - 1, e.deadline)),
                    _ => None,
                },
                _ => None,
            };
            match next {
                Some((c, deadline)) => state.set(*key, Value::Count(c), deadline),
                None => {
                    state.remove(key);
                }
            }
        }
    }

    fn remove_now(&self, key: Key) -> bool {
        let now = self.now();
        let mut state = self.lock();
        state.remove(&key).is_some_and(|e| e.live(now))
    }
}

impl State {
    fn set(&mut self, key: Key, value: Value, deadline: Option<(u64, u64)>) {
        self.remove(&key);
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        if let Some((wall, _)) = deadline {
            self.expiry.insert((wall, seq), key);
        }
        self.entries.insert(
            key,
            Entry {
                value,
                deadline,
                seq,
            },
        );
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some((wall, _)) = entry.deadline {
            self.expiry.remove(&(wall, entry.seq));
        }
        Some(entry)
    }

    /// Drops up to `max` expired entries, earliest wall deadline first, stopping at the
    /// first whose monotonic deadline has not passed.
    fn purge(&mut self, now: Now, max: usize) {
        for _ in 0..max {
            let Some((&(wall, seq), &key)) = self.expiry.first_key_value() else {
                return;
            };
            if now.wall < wall {
                return;
            }
            if self.entries.get(&key).is_some_and(|e| e.live(now)) {
                return;
            }
            self.expiry.remove(&(wall, seq));
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&key);
            }
        }
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn insert_new<'a>(
        &'a self,
        key: Key,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let result = self.insert_new_now(key, value, ttl);
        Box::pin(std::future::ready(result))
    }

    fn put<'a>(&'a self, key: Key, value: &'a [u8], ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        let result = self.put_now(key, value, ttl);
        Box::pin(std::future::ready(result))
    }

    fn get<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let result = Ok(self.get_now(keys));
        Box::pin(std::future::ready(result))
    }

    fn remove(&self, key: Key) -> StoreFuture<'_, bool> {
        let result = Ok(self.remove_now(key));
        Box::pin(std::future::ready(result))
    }

    fn count<'a>(
        &'a self,
        counters: &'a [(Key, u32)],
        window: Duration,
    ) -> StoreFuture<'a, Counted> {
        let result = self.count_now(counters, window);
        Box::pin(std::future::ready(result))
    }

    fn uncount<'a>(&'a self, one: &'a [Key], all: &'a [Key]) -> StoreFuture<'a, ()> {
        self.uncount_now(one, all);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::Kind;

    fn key(s: &str) -> Key {
        Key::digest(Kind::Replay, &[s.as_bytes()])
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    const TTL: Option<Duration> = Some(Duration::from_secs(300));

    #[test]
    fn first_seen_once_until_the_ttl_passes() {
        let clock = ManualClock::at_unix(1_000_000);
        let s = MemoryStore::new(8).clock(clock.clone());
        run(async {
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(true));
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(false));
            clock.advance(Duration::from_secs(299));
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(false));
            clock.advance(Duration::from_secs(1));
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(true));
        });
    }

    #[test]
    fn a_full_store_of_live_entries_refuses_and_forgets_nothing() {
        let clock = ManualClock::at_unix(1_000_000);
        let s = MemoryStore::new(3).clock(clock.clone());
        run(async {
            for k in ["a", "b", "c"] {
                assert_eq!(s.insert_new(key(k), b"1", TTL).await, Ok(true));
            }
            for _ in 0..100 {
                assert_eq!(
                    s.insert_new(key("d"), b"1", TTL).await,
                    Err(StoreError::Full { store: "memory" })
                );
            }
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(false));
            clock.advance(Duration::from_secs(300));
            assert_eq!(s.insert_new(key("d"), b"1", TTL).await, Ok(true));
            assert_eq!(s.len(), 1, "the expired entries were dropped");
        });
    }

    #[test]
    fn a_wall_clock_stepped_forward_and_back_forgets_nothing() {
        let clock = ManualClock::at_unix(1_000_000);
        let s = MemoryStore::new(8).clock(clock.clone());
        run(async {
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(true));
            clock.set_unix(1_000_000 + 86_400);
            // A write purges: the entry's wall deadline has passed, its monotonic one not.
            assert_eq!(s.insert_new(key("b"), b"1", TTL).await, Ok(true));
            clock.set_unix(1_000_001);
            assert_eq!(s.insert_new(key("a"), b"1", TTL).await, Ok(false));
        });
    }

    #[test]
    fn entries_without_a_ttl_stay() {
        let clock = ManualClock::at_unix(1_000_000);
        let s = MemoryStore::new(8).clock(clock.clone());
        run(async {
            s.put(key("a"), b"v", None).await.unwrap();
            clock.advance(Duration::from_secs(10_000_000));
            assert_eq!(
                s.get(&[key("a"), key("b")]).await,
                Ok(vec![Some(b"v".to_vec()), None])
            );
            assert_eq!(s.remove(key("a")).await, Ok(true));
            assert_eq!(s.remove(key("a")).await, Ok(false));
        });
    }

    #[test]
    fn counts_stop_at_their_limit_until_the_window_ends() {
        let clock = ManualClock::at_unix(1_000_000);
        let s = MemoryStore::new(8).clock(clock.clone());
        let w = Duration::from_secs(60);
        let (u, p) = (key("user"), key("peer"));
        run(async {
            for _ in 0..2 {
                assert_eq!(s.count(&[(u, 2), (p, 5)], w).await, Ok(Counted::Yes));
            }
            assert_eq!(s.count(&[(u, 2), (p, 5)], w).await, Ok(Counted::Limited));
            assert_eq!(
                s.get(&[p]).await,
                Ok(vec![Some(b"2".to_vec())]),
                "nothing counted"
            );
            s.uncount(&[p], &[u]).await.unwrap();
            assert_eq!(s.get(&[u, p]).await, Ok(vec![None, Some(b"1".to_vec())]));
            assert_eq!(s.count(&[(u, 2), (p, 2)], w).await, Ok(Counted::Yes));
            assert_eq!(s.count(&[(u, 2), (p, 2)], w).await, Ok(Counted::Limited));
            clock.advance(w);
            assert_eq!(s.count(&[(u, 2), (p, 2)], w).await, Ok(Counted::Yes));
        });
    }
}
