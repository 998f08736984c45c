//! The layer's metrics (`grpc_auth::metrics`) through a recorder installed for this test
//! binary: every decision counted by method, scheme and code; a histogram sample for each
//! call that ran the authenticator; the `method` label bounded.
//!
//! The recorder is global (the layer's futures may run on any thread), so tests running
//! in parallel share it: each test calls methods of its own (`/m.<Test>/...`) and reads
//! only those series, or series no other test writes (a scheme of its own, or the
//! `unknown` method, written by one test only).

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use grpc_auth::authn::jwt::{Algorithm, JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::{ApiKeyAuthenticator, AuthRequest, AuthResult, Authenticator};
use grpc_auth::authz::AuthorizationPolicy;
use grpc_auth::metrics::{AUTHENTICATION_SECONDS, DECISIONS, MAX_METHOD_LEN};
use grpc_auth::{AuthError, AuthLayer, Policy, Principal};
use http::{Request, Response};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::json;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

// ---- a recorder that keeps everything ----

type Labels = BTreeMap<String, String>;

#[derive(Default)]
struct Store {
    counters: Mutex<HashMap<(String, Labels), u64>>,
    histograms: Mutex<HashMap<(String, Labels), Vec<f64>>>,
    units: Mutex<HashMap<String, Option<Unit>>>,
}

struct TestRecorder(Arc<Store>);

struct Series {
    store: Arc<Store>,
    id: (String, Labels),
}

fn id(key: &Key) -> (String, Labels) {
    let labels = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    (key.name().to_owned(), labels)
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        *self
            .store
            .counters
            .lock()
            .unwrap()
            .entry(self.id.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.store
            .counters
            .lock()
            .unwrap()
            .insert(self.id.clone(), value);
    }
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        self.store
            .histograms
            .lock()
            .unwrap()
            .entry(self.id.clone())
            .or_default()
            .push(value);
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        let mut units = self.0.units.lock().unwrap();
        units.insert(key.as_str().to_owned(), unit);
    }
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        let mut units = self.0.units.lock().unwrap();
        units.insert(key.as_str().to_owned(), unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Series {
            store: self.0.clone(),
            id: id(key),
        }))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Series {
            store: self.0.clone(),
            id: id(key),
        }))
    }
}

/// The binary's recorder, installed on first use.
fn store() -> &'static Arc<Store> {
    static STORE: OnceLock<Arc<Store>> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = Arc::new(Store::default());
        metrics::set_global_recorder(TestRecorder(store.clone())).expect("the only recorder");
        store
    })
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `grpc_auth_decisions_total{method, scheme, code}`.
fn decisions(method: &str, scheme: &str, code: &str) -> u64 {
    let id = (
        DECISIONS.to_owned(),
        labels(&[("method", method), ("scheme", scheme), ("code", code)]),
    );
    store()
        .counters
        .lock()
        .unwrap()
        .get(&id)
        .copied()
        .unwrap_or(0)
}

/// Every decision series of `method`, as `(scheme, code) -> count`.
fn decisions_of(method: &str) -> BTreeMap<(String, String), u64> {
    let counters = store().counters.lock().unwrap();
    counters
        .iter()
        .filter(|((name, l), _)| name == DECISIONS && l["method"] == method)
        .map(|((_, l), n)| ((l["scheme"].clone(), l["code"].clone()), *n))
        .collect()
}

/// Samples of `grpc_auth_authentication_seconds{scheme, code}`.
fn samples(scheme: &str, code: &str) -> Vec<f64> {
    let id = (
        AUTHENTICATION_SECONDS.to_owned(),
        labels(&[("scheme", scheme), ("code", code)]),
    );
    store()
        .histograms
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or_default()
}

// ---- the layer over a service that answers OK ----

#[derive(Clone)]
struct Ok200;

impl Service<Request<Body>> for Ok200 {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<Body>) -> Self::Future {
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

/// Calls `path` through `layer`; the `grpc-status` of the answer ("0": let through).
async fn call<A: Authenticator>(layer: &AuthLayer<A>, path: &str, md: &[(&str, &str)]) -> String {
    let mut b = Request::builder().uri(format!("http://localhost{path}"));
    for (k, v) in md {
        b = b.header(*k, *v);
    }
    let res = layer
        .layer(Ok200)
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    res.headers()
        .get("grpc-status")
        .map_or("0".into(), |v| v.to_str().unwrap().to_owned())
}

const SECRET: &str = "metrics-test-secret-0123456789abcdef";

fn jwt_or_api_key() -> impl Authenticator {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, SECRET.as_bytes()).unwrap(),
    ))
    .issuer("https://issuer.test")
    .or(ApiKeyAuthenticator::new().key_for(
        "k-reader",
        Principal::new("reader", "api-key").with_scopes(["read"]),
    ))
}

fn bearer() -> String {
    let claims = tokens::claims(
        "ada",
        "https://issuer.test",
        "any",
        json!({"scope": "read write"}),
    );
    format!("Bearer {}", tokens::hs256(SECRET, &claims))
}

/// An authenticator with a fixed answer.
struct Answer(fn() -> AuthResult);
impl Authenticator for Answer {
    async fn authenticate(&self, _: &AuthRequest<'_>) -> AuthResult {
        (self.0)()
    }
}

// ---- the tests ----

#[tokio::test]
async fn accepted_calls_are_ok_with_the_callers_scheme() {
    store();
    let layer = AuthLayer::new(jwt_or_api_key()).metrics(true);
    let token = bearer();
    for _ in 0..2 {
        assert_eq!(
            call(&layer, "/m.Accept/Jwt", &[("authorization", &token)]).await,
            "0"
        );
    }
    assert_eq!(
        call(&layer, "/m.Accept/Key", &[("x-api-key", "k-reader")]).await,
        "0"
    );
    assert_eq!(
        decisions_of("/m.Accept/Jwt"),
        BTreeMap::from([(("jwt".into(), "OK".into()), 2)])
    );
    assert_eq!(
        decisions_of("/m.Accept/Key"),
        BTreeMap::from([(("api-key".into(), "OK".into()), 1)])
    );
}

#[tokio::test]
async fn missing_and_invalid_credentials_are_unauthenticated_without_a_scheme() {
    store();
    // The policy names the methods, so their paths are labels from the first call.
    let layer = AuthLayer::new(jwt_or_api_key()).metrics(true).policy(
        Policy::new()
            .authenticated("/m.Unauth/Missing")
            .authenticated("/m.Unauth/Wrong"),
    );
    assert_eq!(call(&layer, "/m.Unauth/Missing", &[]).await, "16");
    assert_eq!(
        call(&layer, "/m.Unauth/Wrong", &[("x-api-key", "nope")]).await,
        "16"
    );
    assert_eq!(
        call(
            &layer,
            "/m.Unauth/Wrong",
            &[("authorization", "Bearer x.y.z")]
        )
        .await,
        "16"
    );
    assert_eq!(
        decisions_of("/m.Unauth/Missing"),
        BTreeMap::from([(("none".into(), "UNAUTHENTICATED".into()), 1)])
    );
    assert_eq!(
        decisions_of("/m.Unauth/Wrong"),
        BTreeMap::from([(("none".into(), "UNAUTHENTICATED".into()), 2)])
    );
}

#[tokio::test]
async fn denied_calls_are_permission_denied() {
    store();
    let policy = AuthorizationPolicy::from_json(
        r#"{"name": "m", "allow_rules": [
            {"name": "keys", "source": {"principals": ["api-key:*"]}}
        ]}"#,
    )
    .unwrap();
    let layer = AuthLayer::new(jwt_or_api_key())
        .metrics(true)
        .policy(
            Policy::new()
                .deny("/m.Deny/Method")
                .public("/m.Deny/Public")
                .require_scope("/m.Deny/Admin", "admin"),
        )
        .authorization_policy(policy);
    let key = [("x-api-key", "k-reader")];
    let token = bearer();
    // Denied by the per-method policy, before any authentication: no scheme.
    assert_eq!(call(&layer, "/m.Deny/Method", &key).await, "7");
    // Authenticated, then lacking a scope: the caller's scheme.
    assert_eq!(call(&layer, "/m.Deny/Admin", &key).await, "7");
    // Authenticated, then denied by the authorization policy (only API keys allowed).
    assert_eq!(
        call(&layer, "/m.Deny/Other", &[("authorization", &token)]).await,
        "7"
    );
    assert_eq!(call(&layer, "/m.Deny/Other", &key).await, "0");
    // Public, checked by the authorization policy as an unauthenticated peer: denied.
    assert_eq!(call(&layer, "/m.Deny/Public", &[]).await, "7");
    assert_eq!(
        decisions_of("/m.Deny/Method"),
        BTreeMap::from([(("none".into(), "PERMISSION_DENIED".into()), 1)])
    );
    assert_eq!(
        decisions_of("/m.Deny/Admin"),
        BTreeMap::from([(("api-key".into(), "PERMISSION_DENIED".into()), 1)])
    );
    assert_eq!(
        decisions_of("/m.Deny/Other"),
        BTreeMap::from([
            (("jwt".into(), "PERMISSION_DENIED".into()), 1),
            (("api-key".into(), "OK".into()), 1),
        ])
    );
    assert_eq!(
        decisions_of("/m.Deny/Public"),
        BTreeMap::from([(("none".into(), "PERMISSION_DENIED".into()), 1)])
    );
}

#[tokio::test]
async fn a_dependency_down_is_unavailable_and_a_limit_resource_exhausted() {
    store();
    let down = AuthLayer::new(Answer(|| Err(AuthError::unavailable("store down"))))
        .metrics(true)
        .policy(Policy::new().authenticated("/m.Down/Call"));
    let limited = AuthLayer::new(Answer(|| {
        Err(AuthError::resource_exhausted("too many failed logins"))
    }))
    .metrics(true)
    .policy(Policy::new().authenticated("/m.Limited/Call"));
    assert_eq!(call(&down, "/m.Down/Call", &[]).await, "14");
    assert_eq!(call(&limited, "/m.Limited/Call", &[]).await, "8");
    assert_eq!(decisions("/m.Down/Call", "none", "UNAVAILABLE"), 1);
    assert_eq!(
        decisions("/m.Limited/Call", "none", "RESOURCE_EXHAUSTED"),
        1
    );
    // No other test answers these codes: one sample each.
    assert_eq!(samples("none", "UNAVAILABLE").len(), 1);
    assert_eq!(samples("none", "RESOURCE_EXHAUSTED").len(), 1);
}

#[tokio::test]
async fn public_methods_are_ok_without_a_scheme_and_not_timed() {
    store();
    let layer = AuthLayer::new(jwt_or_api_key())
        .metrics(true)
        .policy(Policy::new().public("/m.Public/*").deny("/m.Public/Denied"));
    for _ in 0..3 {
        assert_eq!(call(&layer, "/m.Public/Check", &[]).await, "0");
    }
    // Credentials are not read on a public method: still scheme none.
    assert_eq!(
        call(&layer, "/m.Public/Check", &[("x-api-key", "k-reader")]).await,
        "0"
    );
    assert_eq!(call(&layer, "/m.Public/Denied", &[]).await, "7");
    assert_eq!(
        decisions_of("/m.Public/Check"),
        BTreeMap::from([(("none".into(), "OK".into()), 4)])
    );
    assert_eq!(
        decisions_of("/m.Public/Denied"),
        BTreeMap::from([(("none".into(), "PERMISSION_DENIED".into()), 1)])
    );
    // Only the authenticator's outcomes are timed: OK and PERMISSION_DENIED come with
    // the caller's scheme there, never `none`.
    assert!(samples("none", "OK").is_empty());
    assert!(samples("none", "PERMISSION_DENIED").is_empty());
}

#[tokio::test]
async fn each_call_that_runs_the_authenticator_is_timed_once() {
    store();
    // A scheme no other test uses: these samples are this test's.
    let layer = AuthLayer::new(Answer(|| {
        Ok(Some(
            Principal::new("t", "timed").with_scopes(["read"]).into(),
        ))
    }))
    .metrics(true)
    .policy(
        Policy::new()
            .public("/m.Timed/Public")
            .deny("/m.Timed/Denied")
            .require_scope("/m.Timed/Admin", "admin"),
    );
    for _ in 0..3 {
        assert_eq!(call(&layer, "/m.Timed/Call", &[]).await, "0");
    }
    assert_eq!(call(&layer, "/m.Timed/Admin", &[]).await, "7");
    assert_eq!(call(&layer, "/m.Timed/Public", &[]).await, "0");
    assert_eq!(call(&layer, "/m.Timed/Denied", &[]).await, "7");
    let ok = samples("timed", "OK");
    assert_eq!(ok.len(), 3);
    assert!(ok.iter().all(|s| (0.0..1.0).contains(s)), "{ok:?}");
    assert_eq!(samples("timed", "PERMISSION_DENIED").len(), 1);
    assert_eq!(decisions("/m.Timed/Call", "timed", "OK"), 3);
    assert_eq!(decisions("/m.Timed/Admin", "timed", "PERMISSION_DENIED"), 1);
}

#[tokio::test]
async fn series_have_exactly_the_documented_labels() {
    store();
    let layer = AuthLayer::new(jwt_or_api_key()).metrics(true);
    call(&layer, "/m.Labels/Call", &[("x-api-key", "k-reader")]).await;
    call(&layer, "/m.Labels/Call", &[]).await;
    let counters = store().counters.lock().unwrap();
    for (name, l) in counters.keys() {
        assert_eq!(name, DECISIONS);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["code", "method", "scheme"]);
    }
    drop(counters);
    let histograms = store().histograms.lock().unwrap();
    assert!(!histograms.is_empty());
    for (name, l) in histograms.keys() {
        assert_eq!(name, AUTHENTICATION_SECONDS);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["code", "scheme"]);
    }
}

#[tokio::test]
async fn method_labels_are_bounded() {
    store();
    // Only this test writes `unknown` with scheme `none` and with scheme `jwt`.
    let unknown = |scheme: &str, code: &str| decisions("unknown", scheme, code);
    let before = (
        unknown("none", "UNAUTHENTICATED"),
        unknown("jwt", "OK"),
        unknown("none", "OK"),
    );
    let layer = AuthLayer::new(jwt_or_api_key())
        .metrics(true)
        .policy(Policy::new().public("/m.Bound.Open/*"));
    let token = bearer();
    let jwt = [("authorization", token.as_str())];

    // Not gRPC method paths, or too long: `unknown`, authenticated or not.
    let long = format!("/m.Bound/{}", "A".repeat(MAX_METHOD_LEN));
    let garbage = [
        "/",
        "/m.Bound",
        "/m.Bound/A/B",
        "/m.Bound/A.B",
        "/m.Bound/%41",
        "/m%20Bound/A",
        long.as_str(),
    ];
    for path in garbage {
        assert_eq!(call(&layer, path, &[]).await, "16", "{path}");
        assert_eq!(call(&layer, path, &jwt).await, "0", "{path}");
    }
    assert_eq!(unknown("none", "UNAUTHENTICATED") - before.0, 7);
    assert_eq!(unknown("jwt", "OK") - before.1, 7);
    for path in garbage {
        assert!(decisions_of(path).is_empty(), "{path}");
    }

    // Well-formed, not named by the policy: anyone's first calls are `unknown`...
    assert_eq!(call(&layer, "/m.Bound/Later", &[]).await, "16");
    assert_eq!(unknown("none", "UNAUTHENTICATED") - before.0, 8);
    assert!(decisions_of("/m.Bound/Later").is_empty());
    // ... until an authenticated caller calls it; then it is a label for everyone.
    assert_eq!(call(&layer, "/m.Bound/Later", &jwt).await, "0");
    assert_eq!(call(&layer, "/m.Bound/Later", &[]).await, "16");
    assert_eq!(
        decisions_of("/m.Bound/Later"),
        BTreeMap::from([
            (("jwt".into(), "OK".into()), 1),
            (("none".into(), "UNAUTHENTICATED".into()), 1),
        ])
    );

    // Anyone's calls to a made-up method of a service the policy names (public here):
    // a label (from a budget of their own, see the fresh-process test below).
    assert_eq!(call(&layer, "/m.Bound.Open/Made", &[]).await, "0");
    assert_eq!(decisions("/m.Bound.Open/Made", "none", "OK"), 1);
    assert_eq!(unknown("none", "OK"), before.2);
}

/// The learning budgets are per process: this runs [`budgets_in_a_fresh_process`] in a
/// process of its own (this binary again), where the tables start empty.
#[test]
fn learning_is_bounded_per_process() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "budgets_in_a_fresh_process", "--ignored"])
        .env(FRESH, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FRESH: &str = "GRPC_AUTH_METRICS_TEST_FRESH_PROCESS";

#[tokio::test]
#[ignore = "run by learning_is_bounded_per_process, in a process of its own"]
async fn budgets_in_a_fresh_process() {
    use grpc_auth::metrics::{MAX_ANONYMOUS_METHODS, MAX_METHODS};
    if std::env::var_os(FRESH).is_none() {
        return; // among the other tests, the tables are not empty
    }
    store();
    let layer = AuthLayer::new(jwt_or_api_key())
        .metrics(true)
        .policy(Policy::new().public("/m.Open/*"));
    let token = bearer();
    let jwt = [("authorization", token.as_str())];
    let learned = |path: &str| !decisions_of(path).is_empty();

    // Anonymous calls to made-up methods of a named (public) service: the first
    // MAX_ANONYMOUS_METHODS are labels, then `unknown`.
    for i in 0..MAX_ANONYMOUS_METHODS + 10 {
        let path = format!("/m.Open/Anon{i}");
        assert_eq!(call(&layer, &path, &[]).await, "0");
        assert_eq!(learned(&path), i < MAX_ANONYMOUS_METHODS, "{path}");
    }
    assert_eq!(decisions("unknown", "none", "OK"), 10);
    // Authenticated callers still teach, up to MAX_METHODS in all.
    for i in 0..MAX_METHODS - MAX_ANONYMOUS_METHODS + 10 {
        let path = format!("/m.Auth/Call{i}");
        assert_eq!(call(&layer, &path, &jwt).await, "0");
        assert_eq!(
            learned(&path),
            i < MAX_METHODS - MAX_ANONYMOUS_METHODS,
            "{path}"
        );
    }
    assert_eq!(decisions("unknown", "jwt", "OK"), 10);
    // What was learned stays a label.
    assert_eq!(call(&layer, "/m.Open/Anon0", &[]).await, "0");
    assert_eq!(decisions("/m.Open/Anon0", "none", "OK"), 2);
    assert_eq!(call(&layer, "/m.Auth/Call0", &[]).await, "16");
    assert_eq!(decisions("/m.Auth/Call0", "none", "UNAUTHENTICATED"), 1);
}

#[test]
fn describe_gives_units() {
    store();
    grpc_auth::metrics::describe();
    let units = store().units.lock().unwrap();
    assert_eq!(units[DECISIONS], Some(Unit::Count));
    assert_eq!(units[AUTHENTICATION_SECONDS], Some(Unit::Seconds));
}
