//! Metrics: every decision of the [`AuthLayer`](crate::AuthLayer), and the time spent
//! authenticating, through the [`metrics`](https://docs.rs/metrics/0.24) facade. Turn
//! them on with [`AuthLayer::metrics(true)`](crate::AuthLayer::metrics) and install any
//! recorder (a Prometheus exporter, OpenTelemetry, ...). Off (the default), the layer
//! makes no call into the facade and reads no clock: one branch per call. On, with no
//! recorder, a public call costs about 15 ns more and an authenticated one about 75 ns
//! (two clock reads for the histogram; `benches/layer.rs`, group `metrics_no_recorder`).
//! [`describe`] gives the recorder their units and descriptions.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `grpc_auth_decisions_total` | counter | `method`, `scheme`, `code` | one per call the layer decided: let through (`OK`) or refused (with `code`) |
//! | `grpc_auth_authentication_seconds` | histogram, seconds | `scheme`, `code` | time in the authenticator (its future, awaited), for each call that ran it |
//!
//! | label | values |
//! |---|---|
//! | `method` | the gRPC method path, `/helloworld.Greeter/SayHello`, when known (below); else `unknown` |
//! | `scheme` | the authenticated caller's scheme ([`Principal::scheme`](crate::Principal::scheme): `jwt`, `api-key`, `basic`, `hmac`, `jwt+api-key`, ...), for calls accepted and for calls refused `PERMISSION_DENIED` after authentication; `none` when no caller was authenticated (public methods, methods the policy denies, missing, invalid or uncheckable credentials); `other` beyond the first 8 distinct schemes |
//! | `code` | the gRPC code name: `OK` (let through to the service: not whether the service then succeeded), `UNAUTHENTICATED`, `PERMISSION_DENIED`, `UNAVAILABLE`, `RESOURCE_EXHAUSTED` |
//!
//! Which calls count:
//! - A public method ([`Policy::public`](crate::Policy::public)) is a decision `OK`,
//!   scheme `none` (or `PERMISSION_DENIED` if an
//!   [authorization policy](crate::AuthLayer::authorization_policy) denies it); its
//!   authenticator does not run, so no histogram sample.
//! - A method the [`Policy`](crate::Policy) denies: `PERMISSION_DENIED`, scheme `none`,
//!   no histogram sample.
//! - Every other call runs the authenticator: one decision and one histogram sample,
//!   both with the call's scheme and code (none if the call is dropped while
//!   authenticating: a client that went away).
//!
//! No label names a caller, a credential or anything else per request: the series are
//! bounded by methods × schemes × codes.
//!
//! ## The `method` label is bounded
//!
//! The path is chosen by the client, and the layer runs before routing: an unknown
//! method reaches it like any other. Labelling every path would let anyone create
//! series without end (`/x.Y/1`, `/x.Y/2`, ...) and exhaust the recorder's memory. So
//! a path is its own label only once it is *learned*, and learning is limited:
//! - only a well-formed gRPC path is learned: `/service/method`, the service made of
//!   ASCII letters, digits, `_` and `.`, the method of letters, digits and `_`, at
//!   most [`MAX_METHOD_LEN`] bytes in all;
//! - by a call whose caller was authenticated (accepted, or refused
//!   `PERMISSION_DENIED` after authentication): up to [`MAX_METHODS`] paths in the
//!   process;
//! - or by a call from anyone to a path the [`Policy`](crate::Policy) names, by method
//!   or by service (a public health service, a denied service): up to
//!   [`MAX_ANONYMOUS_METHODS`] of the [`MAX_METHODS`], so that anonymous calls to
//!   made-up methods of a named service cannot use up the room authenticated callers
//!   teach real methods in.
//!
//! Every other call is labelled `unknown`: garbage and over-long paths always, a
//! well-formed path until a call that may teach it comes (a first call without
//! credentials to a method the policy leaves to its default rule is `unknown`; once
//! an authenticated caller called it, failed calls to it carry its name too), and
//! every new path once the room is used. What is learned stays for the life of the
//! process (all layers share it, as they share the recorder). At most
//! `MAX_METHODS + 1` method values, 10 schemes and 5 codes: the decision counter has
//! at most 25 650 series, the histogram 50, whatever clients send.
//!
//! ## Cost
//!
//! The metrics are always emitted; with no recorder installed a decision costs a hash
//! of the path and a lookup in a table read without locks (no allocation), and a call
//! that runs the authenticator also reads the clock twice. `cargo bench --bench layer
//! -- metrics` measures both.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use ::metrics::{Key, Label, Level, Metadata, Unit};
use tonic::Code;

/// The decision counter's name.
pub const DECISIONS: &str = "grpc_auth_decisions_total";
/// The authentication-time histogram's name (seconds).
pub const AUTHENTICATION_SECONDS: &str = "grpc_auth_authentication_seconds";
/// The `method` label of a call whose path is not learned (see the [module docs](self)).
pub const UNKNOWN_METHOD: &str = "unknown";
/// The `scheme` label of a call without an authenticated caller.
pub const NO_SCHEME: &str = "none";
/// The `scheme` label of a scheme beyond the first [`MAX_SCHEMES`].
pub const OTHER_SCHEME: &str = "other";
/// How many method paths the process learns as labels, at most.
pub const MAX_METHODS: usize = 512;
/// How many of the [`MAX_METHODS`] calls without an authenticated caller may teach.
pub const MAX_ANONYMOUS_METHODS: usize = 256;
/// The longest path learned as a label, in bytes.
pub const MAX_METHOD_LEN: usize = 128;
/// How many distinct schemes are labels, at most (then [`OTHER_SCHEME`]).
pub const MAX_SCHEMES: usize = 8;
/// The longest scheme that is a label, in bytes (a longer one is [`OTHER_SCHEME`]).
const MAX_SCHEME_LEN: usize = 64;

/// Gives the installed recorder the metrics' units and descriptions. Optional: the
/// metrics are recorded without it. Call it after installing the recorder.
pub fn describe() {
    ::metrics::describe_counter!(
        DECISIONS,
        Unit::Count,
        "Calls the grpc-auth layer let through (code OK) or refused (code), by method and scheme"
    );
    ::metrics::describe_histogram!(
        AUTHENTICATION_SECONDS,
        Unit::Seconds,
        "Time spent in the grpc-auth authenticator, by scheme and decision code"
    );
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The codes a decision has (the layer's own: `OK` and [`AuthError`](crate::AuthError)'s).
const CODES: [Code; 5] = [
    Code::Ok,
    Code::Unauthenticated,
    Code::PermissionDenied,
    Code::Unavailable,
    Code::ResourceExhausted,
];

fn code_index(code: Code) -> Option<usize> {
    CODES.iter().position(|c| *c == code)
}

/// The gRPC name of a code, as the `code` label.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

// ---- schemes ----

/// Slots for scheme labels: `none`, the learned ones, `other`.
const SCHEME_SLOTS: usize = MAX_SCHEMES + 2;
const OTHER_SCHEME_INDEX: usize = MAX_SCHEMES + 1;

static SCHEMES: [OnceLock<Box<str>>; MAX_SCHEMES] = [const { OnceLock::new() }; MAX_SCHEMES];

/// A call's `scheme` label: that of its authenticated caller, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scheme(usize);

impl Scheme {
    /// No authenticated caller.
    pub(crate) const NONE: Self = Self(0);

    /// The label of an authenticated caller's scheme (learned when new, while there is
    /// room).
    pub(crate) fn of(scheme: &str) -> Self {
        if scheme.len() > MAX_SCHEME_LEN {
            return Self(OTHER_SCHEME_INDEX);
        }
        for (i, slot) in SCHEMES.iter().enumerate() {
            // The first empty slot takes it; a slot another thread filled is compared.
            if **slot.get_or_init(|| scheme.into()) == *scheme {
                return Self(i + 1);
            }
        }
        Self(OTHER_SCHEME_INDEX)
    }

    fn is_authenticated(self) -> bool {
        self != Self::NONE
    }

    fn label(self) -> &'static str {
        match self.0 {
            0 => NO_SCHEME,
            i => SCHEMES
                .get(i - 1)
                .and_then(OnceLock::get)
                .map_or(OTHER_SCHEME, |s| s),
        }
    }
}

// ---- methods ----

/// A learned method label and its decision keys (built once, on first use).
struct Entry {
    path: Box<str>,
    /// `SCHEME_SLOTS * CODES.len()` keys, by scheme then code.
    keys: Box<[OnceLock<Key>]>,
}

impl Entry {
    fn new(path: &str) -> Self {
        Self {
            path: path.into(),
            keys: (0..SCHEME_SLOTS * CODES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// The decision counter's key for this method, `scheme` and `code`.
    fn key(&'static self, scheme: Scheme, code: usize) -> Option<&'static Key> {
        let slot = self.keys.get(scheme.0 * CODES.len() + code)?;
        let code = CODES.get(code)?;
        Some(slot.get_or_init(|| decision_key(&self.path, scheme, *code)))
    }
}

fn decision_key(method: &'static str, scheme: Scheme, code: Code) -> Key {
    Key::from_parts(
        DECISIONS,
        vec![
            Label::from_static_parts("method", method),
            Label::from_static_parts("scheme", scheme.label()),
            Label::from_static_parts("code", code_name(code)),
        ],
    )
}

/// Open addressing, twice the room needed; slots are never emptied, so a lookup stops
/// at the first empty one. Reads take no lock.
const TABLE: usize = 2 * MAX_METHODS;
static METHODS: [OnceLock<Entry>; TABLE] = [const { OnceLock::new() }; TABLE];
static LEARNED: AtomicUsize = AtomicUsize::new(0);
static LEARNED_ANONYMOUS: AtomicUsize = AtomicUsize::new(0);
static UNKNOWN: LazyLock<Entry> = LazyLock::new(|| Entry::new(UNKNOWN_METHOD));
/// Keyed per process: which paths share a probe sequence cannot be known in advance.
static SEED: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(0x5eed_u64));

/// A seeded hash of `path`, 8 bytes at a time (std's SipHash takes longer, and this
/// one only picks a slot: the table bounds the probes whatever it gives).
#[inline]
fn hash(path: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let bytes = path.as_bytes();
    let mut h = *SEED ^ (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h ^ word(w)).wrapping_mul(K).rotate_left(31);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // The last 8 bytes (overlapping the words before), or the few there are.
        let last = match bytes.len().checked_sub(8) {
            Some(start) => bytes.get(start..).map_or(0, word),
            None => tail.iter().fold(0, |t, b| t << 8 | u64::from(*b)),
        };
        h = (h ^ last).wrapping_mul(K);
    }
    // MurmurHash3's finalizer: every input bit reaches the low bits the slot uses.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The slots `path` may be in, in probe order.
#[inline]
fn slots(path: &str) -> impl Iterator<Item = &'static OnceLock<Entry>> {
    let start = hash(path) as usize;
    (0..TABLE).filter_map(move |i| METHODS.get(start.wrapping_add(i) % TABLE))
}

fn lookup(path: &str) -> Option<&'static Entry> {
    for slot in slots(path) {
        match slot.get() {
            None => return None,
            Some(e) if *e.path == *path => return Some(e),
            Some(_) => {}
        }
    }
    None
}

/// Learns `path` if the budget(s) allow; the entry, new or already there.
fn learn(path: &str, anonymous: bool) -> Option<&'static Entry> {
    if anonymous && !reserve(&LEARNED_ANONYMOUS, MAX_ANONYMOUS_METHODS) {
        return None;
    }
    if !reserve(&LEARNED, MAX_METHODS) {
        if anonymous {
            LEARNED_ANONYMOUS.fetch_sub(1, Ordering::Relaxed);
        }
        return None;
    }
    let mut created = false;
    let mut found = None;
    for slot in slots(path) {
        let e = slot.get_or_init(|| {
            created = true;
            Entry::new(path)
        });
        if *e.path == *path {
            found = Some(e);
            break;
        }
    }
    if !created {
        // Another call learned it meanwhile (or no slot: cannot happen at half load).
        LEARNED.fetch_sub(1, Ordering::Relaxed);
        if anonymous {
            LEARNED_ANONYMOUS.fetch_sub(1, Ordering::Relaxed);
        }
    }
    found
}

fn reserve(count: &AtomicUsize, max: usize) -> bool {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// `/service/method` in the characters protobuf names use, at most [`MAX_METHOD_LEN`].
fn well_formed(path: &str) -> bool {
    if path.len() > MAX_METHOD_LEN {
        return false;
    }
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return false;
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !service.is_empty()
        && !method.is_empty()
        && service.bytes().all(|c| ident(c) || c == b'.')
        && method.bytes().all(ident)
}

/// A call's `method` label, as far as it is known before the decision.
#[derive(Clone, Copy)]
pub(crate) struct Method(Lookup);

#[derive(Clone, Copy)]
enum Lookup {
    /// Learned: its own label.
    Known(&'static Entry),
    /// Well-formed, not learned yet; whether the policy names it (method or service).
    New { policy_names: bool },
    /// `unknown`.
    Unknown,
}

impl Method {
    /// Looks `path` up; `policy_names` is asked only for a well-formed path not learned.
    pub(crate) fn of(path: &str, policy_names: impl FnOnce() -> bool) -> Self {
        if path.len() > MAX_METHOD_LEN {
            return Self(Lookup::Unknown);
        }
        if let Some(e) = lookup(path) {
            return Self(Lookup::Known(e));
        }
        Self(if well_formed(path) {
            Lookup::New {
                policy_names: policy_names(),
            }
        } else {
            Lookup::Unknown
        })
    }

    fn entry(self, path: &str, scheme: Scheme) -> &'static Entry {
        let learned = match self.0 {
            Lookup::Known(e) => Some(e),
            Lookup::New { .. } if scheme.is_authenticated() => learn(path, false),
            Lookup::New { policy_names: true } => learn(path, true),
            Lookup::New { .. } | Lookup::Unknown => None,
        };
        learned.unwrap_or(&*UNKNOWN)
    }
}

/// Counts a decision of the layer on `path`.
pub(crate) fn decision(method: Method, path: &str, scheme: Scheme, code: Code) {
    let entry = method.entry(path, scheme);
    match code_index(code).and_then(|c| entry.key(scheme, c)) {
        Some(key) => ::metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1)),
        // A code the layer does not answer today: built for the call.
        None => {
            let key = decision_key(&entry.path, scheme, code);
            ::metrics::with_recorder(|r| r.register_counter(&key, &METADATA).increment(1))
        }
    }
}

static AUTHENTICATION_KEYS: [OnceLock<Key>; SCHEME_SLOTS * CODES.len()] =
    [const { OnceLock::new() }; SCHEME_SLOTS * CODES.len()];

fn authentication_key(scheme: Scheme, code: Code) -> Key {
    Key::from_parts(
        AUTHENTICATION_SECONDS,
        vec![
            Label::from_static_parts("scheme", scheme.label()),
            Label::from_static_parts("code", code_name(code)),
        ],
    )
}

/// Records the time a call spent in the authenticator.
pub(crate) fn authentication(scheme: Scheme, code: Code, took: Duration) {
    let seconds = took.as_secs_f64();
    let slot = code_index(code).and_then(|c| AUTHENTICATION_KEYS.get(scheme.0 * CODES.len() + c));
    match slot {
        Some(slot) => {
            let key = slot.get_or_init(|| authentication_key(scheme, code));
            ::metrics::with_recorder(|r| r.register_histogram(key, &METADATA).record(seconds))
        }
        None => {
            let key = authentication_key(scheme, code);
            ::metrics::with_recorder(|r| r.register_histogram(&key, &METADATA).record(seconds))
        }
    }
}

/// The emission the layer makes per request, for `benches/layer.rs` (a `pub(crate)`
/// function is out of a bench's reach). Not a public API; no stability promised.
#[doc(hidden)]
pub mod bench {
    use std::time::{Duration, Instant};

    use tonic::Code;

    use super::{Method, Scheme};

    /// What the layer does for a public method's call: look the path up, count `OK`.
    pub fn public_decision(path: &str) {
        let method = Method::of(path, || true);
        super::decision(method, path, Scheme::NONE, Code::Ok);
    }

    /// What the layer adds around an authenticated call: the clock read before and
    /// after `authenticate`, the scheme's label, the histogram sample and the decision.
    pub fn authenticated<T>(path: &str, scheme: &str, authenticate: impl FnOnce() -> T) -> T {
        let method = Method::of(path, || false);
        let started = Instant::now();
        let out = authenticate();
        let took: Duration = started.elapsed();
        let scheme = Scheme::of(scheme);
        super::authentication(scheme, Code::Ok, took);
        super::decision(method, path, scheme, Code::Ok);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_paths() {
        assert!(well_formed("/helloworld.Greeter/SayHello"));
        assert!(well_formed("/grpc.health.v1.Health/Check"));
        assert!(well_formed("/a/b"));
        for bad in [
            "", "/", "//", "/a/", "//b", "a/b", "/a/b/c", "/a.B/c.d", "/a B/c", "/a.B/%41",
            "/a.B/é",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        let long = format!("/a.B/{}", "m".repeat(MAX_METHOD_LEN - 5));
        assert_eq!(long.len(), MAX_METHOD_LEN);
        assert!(well_formed(&long));
        assert!(!well_formed(&format!("{long}m")));
    }

    #[test]
    fn code_names_are_grpcs() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
        assert_eq!(code_name(Code::PermissionDenied), "PERMISSION_DENIED");
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
    }

    #[test]
    fn schemes_are_bounded() {
        assert_eq!(Scheme::NONE.label(), NO_SCHEME);
        assert_eq!(
            Scheme::of(&"x".repeat(MAX_SCHEME_LEN + 1)).label(),
            OTHER_SCHEME
        );
        let jwt = Scheme::of("jwt");
        assert_eq!((jwt, jwt.label()), (Scheme::of("jwt"), "jwt"));
        // The table is process-wide: fill it, then any new scheme is `other`.
        for i in 0..MAX_SCHEMES {
            Scheme::of(&format!("unit-{i}"));
        }
        assert_eq!(Scheme::of("unit-new").label(), OTHER_SCHEME);
        assert_eq!(Scheme::of("jwt").label(), "jwt");
    }

    #[test]
    fn the_table_learns_once_and_finds_again() {
        let path = "/unit.Table/Learn";
        assert!(lookup(path).is_none());
        let e = learn(path, false).unwrap();
        assert!(std::ptr::eq(e, lookup(path).unwrap()));
        assert!(std::ptr::eq(e, learn(path, false).unwrap()));
        let key = e.key(Scheme::NONE, 0).unwrap();
        let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
        assert_eq!(
            labels,
            [("method", path), ("scheme", "none"), ("code", "OK")]
        );
    }
}
