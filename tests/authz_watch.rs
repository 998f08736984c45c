//! `PolicyWatcher` over real files: refused at start when invalid, reloaded when the
//! file changes, the last valid policy kept (and the failure reported) when the file
//! turns invalid or disappears, the audit registry used for every load, the task gone
//! with the watcher, and the layer following the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grpc_auth::AuthLayer;
use grpc_auth::authn::ApiKeyAuthenticator;
use grpc_auth::authz::{
    AuditEvent, AuditLogger, AuditLoggerRegistry, Peer, PolicyFileError, PolicyWatcher,
    SharedPolicy,
};
use http::{HeaderMap, Request, Response};
use tonic::body::Body;
use tower::{Layer, ServiceExt, service_fn};

const INTERVAL: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_secs(10);

/// Allows everything to `api-key:billing`.
const BILLING: &str = r#"{"name": "v1", "allow_rules": [
  {"name": "billing", "source": {"principals": ["api-key:billing"]}}]}"#;

/// Denies `/a.B/Hello`, allows the rest to `api-key:billing`.
const NO_HELLO: &str = r#"{"name": "v2",
  "deny_rules": [{"name": "no_hello", "request": {"paths": ["/a.B/Hello"]}}],
  "allow_rules": [{"name": "billing", "source": {"principals": ["api-key:billing"]}}]}"#;

/// Allows everything to `api-key:ops` only.
const OPS: &str = r#"{"name": "v3", "allow_rules": [
  {"name": "ops", "source": {"principals": ["api-key:ops"]}}]}"#;

/// Not JSON (a policy cut short).
const TRUNCATED: &str = r#"{"name": "v4", "allow_rules": [{"name": "#;

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "grpc-auth-watch-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces `path` whole (a temporary file renamed over it), as a deployment would: a
/// check never sees it half-written, which would count a failure of its own.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Whether the policy in force lets `principal` (`api-key:billing`) call `method`.
fn allows(policy: &SharedPolicy, principal: &str, method: &str) -> bool {
    policy
        .current()
        .decide(method, &HeaderMap::new(), &Peer::tls([principal]))
        .allowed
}

/// Waits (polling) until `done`, failing the test after `DEADLINE`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn watch(path: &Path) -> PolicyWatcher {
    PolicyWatcher::builder(path)
        .interval(INTERVAL)
        .start()
        .unwrap()
}

#[tokio::test]
async fn an_invalid_or_unreadable_file_at_start_is_an_error_naming_it() {
    let dir = TempDir::new("start");

    let path = dir.file("truncated.json");
    std::fs::write(&path, TRUNCATED).unwrap();
    let e = PolicyWatcher::builder(&path).start().unwrap_err();
    assert!(matches!(e, PolicyFileError::Invalid { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("failed to unmarshal policy"), "{msg}");

    let path = dir.file("no-allow-rules.json");
    std::fs::write(&path, r#"{"name": "p", "allow_rules": []}"#).unwrap();
    let msg = PolicyWatcher::builder(&path)
        .start()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no-allow-rules.json"), "{msg}");
    assert!(msg.contains(r#""allow_rules" is not present"#), "{msg}");

    let path = dir.file("unregistered-logger.json");
    std::fs::write(
        &path,
        r#"{"name": "p", "allow_rules": [{"name": "all"}],
            "audit_logging_options": {"audit_condition": "ON_DENY",
              "audit_loggers": [{"name": "capture", "config": {}}]}}"#,
    )
    .unwrap();
    let msg = PolicyWatcher::builder(&path)
        .start()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unregistered-logger.json"), "{msg}");
    assert!(
        msg.contains("audit logger capture is not registered"),
        "{msg}"
    );

    let path = dir.file("missing.json");
    let e = PolicyWatcher::builder(&path).start().unwrap_err();
    assert!(
        matches!(&e, PolicyFileError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(e.to_string().contains("missing.json"), "{e}");

    std::fs::write(&path, BILLING).unwrap();
    let e = PolicyWatcher::builder(&path)
        .interval(Duration::ZERO)
        .start()
        .unwrap_err();
    assert!(matches!(e, PolicyFileError::ZeroInterval { .. }), "{e:?}");
}

#[test]
fn starting_outside_a_tokio_runtime_is_an_error() {
    let dir = TempDir::new("no-runtime");
    let path = dir.file("policy.json");
    std::fs::write(&path, BILLING).unwrap();
    let e = PolicyWatcher::builder(&path).start().unwrap_err();
    assert!(matches!(e, PolicyFileError::NoRuntime { .. }), "{e:?}");
    assert!(e.to_string().contains("policy.json"), "{e}");
}

#[tokio::test]
async fn decisions_follow_the_file_and_its_changes() {
    let dir = TempDir::new("follow");
    let path = dir.file("policy.json");
    std::fs::write(&path, BILLING).unwrap();
    let watcher = watch(&path);
    assert_eq!(watcher.path(), path);
    assert_eq!(watcher.interval(), INTERVAL);
    assert_eq!(
        PolicyWatcher::builder(&path).start().unwrap().interval(),
        PolicyWatcher::DEFAULT_INTERVAL
    );
    let policy = watcher.policy();
    assert_eq!(policy.current().name(), "v1");
    assert!(allows(&policy, "api-key:billing", "/a.B/Hello"));
    assert!(!allows(&policy, "api-key:ops", "/a.B/Hello"));
    assert_eq!((watcher.reloads(), watcher.failures()), (0, 0));
    assert_eq!(watcher.last_error(), None);

    replace(&path, NO_HELLO);
    eventually("the second policy", || policy.current().name() == "v2").await;
    assert!(!allows(&policy, "api-key:billing", "/a.B/Hello"));
    assert!(allows(&policy, "api-key:billing", "/a.B/Other"));

    replace(&path, OPS);
    eventually("the third policy", || policy.current().name() == "v3").await;
    assert!(allows(&policy, "api-key:ops", "/a.B/Hello"));
    assert!(!allows(&policy, "api-key:billing", "/a.B/Other"));
    assert_eq!((watcher.reloads(), watcher.failures()), (2, 0));
    assert_eq!(watcher.last_error(), None);
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What was logged at warn and above, by any test of this binary: a global subscriber
/// (a scoped one would miss events whose callsites another test's thread registered
/// first); a test picks its lines by its file's unique path.
fn warnings() -> &'static Buf {
    static LOGS: OnceLock<Buf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

impl Buf {
    /// The lines that contain `needle`.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn an_invalid_file_keeps_the_last_valid_policy_warns_once_and_a_fixed_one_is_served() {
    let logs = warnings();
    let dir = TempDir::new("invalid");
    let path = dir.file("policy.json");
    std::fs::write(&path, BILLING).unwrap();
    {
        let watcher = watch(&path);
        let policy = watcher.policy();

        replace(&path, TRUNCATED);
        eventually("the failure", || watcher.failures() == 1).await;
        assert_eq!(policy.current().name(), "v1");
        assert!(allows(&policy, "api-key:billing", "/a.B/Hello"));
        let error = watcher.last_error().unwrap();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("failed to unmarshal policy"), "{error}");

        // Valid JSON, invalid policy: also refused, also reported.
        replace(&path, r#"{"name": "v5", "allow_rules": [{"source": {}}]}"#);
        eventually("the second failure", || watcher.failures() == 2).await;
        let error = watcher.last_error().unwrap();
        assert!(
            error.contains(r#""allow_rules" 0: "name" is not present"#),
            "{error}"
        );
        assert_eq!(policy.current().name(), "v1");

        // The same invalid content is not parsed (nor warned about) again.
        tokio::time::sleep(INTERVAL * 5).await;
        assert_eq!(watcher.failures(), 2);

        replace(&path, NO_HELLO);
        eventually("the fixed policy", || policy.current().name() == "v2").await;
        assert!(!allows(&policy, "api-key:billing", "/a.B/Hello"));
        assert_eq!(watcher.last_error(), None);
        assert_eq!((watcher.reloads(), watcher.failures()), (1, 2));
    }
    let logged = logs.lines_with(&dir.0.display().to_string());
    assert_eq!(logged.len(), 2, "{logged:#?}");
    assert!(
        logged.iter().all(|l| l.contains("WARN")
            && l.contains("authorization policy reload failed")
            && l.contains(&format!("file={}", path.display()))),
        "{logged:#?}"
    );
    assert!(
        logged[0].contains("failed to unmarshal policy"),
        "{logged:#?}"
    );
    // The message is a quoted field: its quotes escaped.
    assert!(
        logged[1].contains(r#"\"allow_rules\" 0: \"name\" is not present"#),
        "{logged:#?}"
    );
}

#[tokio::test]
async fn a_deleted_file_keeps_the_last_valid_policy() {
    let dir = TempDir::new("deleted");
    let path = dir.file("policy.json");
    std::fs::write(&path, NO_HELLO).unwrap();
    let watcher = watch(&path);
    let policy = watcher.policy();

    std::fs::remove_file(&path).unwrap();
    eventually("the read failure", || watcher.failures() == 1).await;
    let error = watcher.last_error().unwrap();
    assert!(error.contains("cannot read"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert_eq!(policy.current().name(), "v2");
    assert!(allows(&policy, "api-key:billing", "/a.B/Other"));

    // Back unchanged: nothing to reload, nothing wrong any more.
    replace(&path, NO_HELLO);
    eventually("the file readable again", || watcher.last_error().is_none()).await;
    assert_eq!((watcher.reloads(), watcher.failures()), (0, 1));

    // Gone again, then back with another policy: that one is served.
    std::fs::remove_file(&path).unwrap();
    eventually("the second read failure", || watcher.failures() == 2).await;
    replace(&path, BILLING);
    eventually("the new policy", || policy.current().name() == "v1").await;
    assert!(allows(&policy, "api-key:billing", "/a.B/Hello"));
    assert_eq!(watcher.last_error(), None);
    assert_eq!((watcher.reloads(), watcher.failures()), (1, 2));
}

/// Records the audited events.
#[derive(Debug, Default)]
struct Capture(Mutex<Vec<AuditEvent>>);

impl AuditLogger for Capture {
    fn log(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn audited(name: &str, logger: &str) -> String {
    format!(
        r#"{{"name": "{name}",
            "deny_rules": [{{"name": "no_hello", "request": {{"paths": ["/a.B/Hello"]}}}}],
            "allow_rules": [{{"name": "all"}}],
            "audit_logging_options": {{"audit_condition": "ON_DENY",
              "audit_loggers": [{{"name": "{logger}", "config": {{}}}}]}}}}"#
    )
}

#[tokio::test]
async fn the_audit_registry_serves_every_load_and_the_task_ends_with_the_watcher() {
    let dir = TempDir::new("audit-drop");
    let path = dir.file("policy.json");
    std::fs::write(&path, audited("a1", "capture")).unwrap();
    let capture = Arc::new(Capture::default());
    // Held by the registry only: released when the watcher's task ends.
    let token = Arc::new(());
    let held: Weak<()> = Arc::downgrade(&token);
    let registry = {
        let capture = capture.clone();
        AuditLoggerRegistry::new().register("capture", move |_| {
            let _ = Arc::strong_count(&token);
            Ok(capture.clone() as Arc<dyn AuditLogger>)
        })
    };
    let watcher = PolicyWatcher::builder(&path)
        .interval(INTERVAL)
        .audit_loggers(registry)
        .start()
        .unwrap();
    let policy = watcher.policy();
    let peer = Peer::tls(["api-key:billing"]);
    let headers = HeaderMap::new();
    assert!(
        !policy
            .current()
            .check("/a.B/Hello", &headers, &peer)
            .allowed
    );

    replace(&path, &audited("a2", "capture"));
    eventually("the reloaded policy", || policy.current().name() == "a2").await;
    assert!(
        !policy
            .current()
            .check("/a.B/Hello", &headers, &peer)
            .allowed
    );
    let names: Vec<String> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.policy_name.clone())
        .collect();
    assert_eq!(names, ["a1", "a2"]);

    // A logger the registry does not have: the reload is refused.
    replace(&path, &audited("a3", "elsewhere"));
    eventually("the refused reload", || watcher.failures() == 1).await;
    let error = watcher.last_error().unwrap();
    assert!(
        error.contains("audit logger elsewhere is not registered"),
        "{error}"
    );
    assert_eq!(policy.current().name(), "a2");

    assert!(held.upgrade().is_some());
    drop(watcher);
    eventually("the task to end", || held.upgrade().is_none()).await;
    // The layer's handle keeps the last policy in force.
    assert_eq!(policy.current().name(), "a2");
    replace(&path, &audited("a4", "capture"));
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(policy.current().name(), "a2");
}

#[tokio::test]
async fn through_the_layer_a_call_allowed_is_denied_once_the_file_says_so() {
    let dir = TempDir::new("layer");
    let path = dir.file("policy.json");
    std::fs::write(&path, BILLING).unwrap();
    let watcher = watch(&path);
    let svc = AuthLayer::new(ApiKeyAuthenticator::new().key("k-billing", "billing"))
        .authorization_policy(watcher.policy())
        .layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
    let call = |method: &'static str| {
        let svc = svc.clone();
        async move {
            let req = Request::builder()
                .uri(format!("http://localhost{method}"))
                .header("x-api-key", "k-billing")
                .body(Body::empty())
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            (
                res.headers()
                    .get("grpc-status")
                    .map(|v| v.to_str().unwrap().to_owned()),
                res.headers()
                    .get("grpc-message")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        }
    };
    assert_eq!(call("/a.B/Hello").await, (None, None));

    replace(&path, NO_HELLO);
    let start = Instant::now();
    loop {
        let (status, message) = call("/a.B/Hello").await;
        if status.is_some() {
            assert_eq!(status.as_deref(), Some("7"));
            assert_eq!(
                message.as_deref(),
                Some("unauthorized%20RPC%20request%20rejected")
            );
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the call was never denied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(call("/a.B/Other").await, (None, None));
    assert_eq!(watcher.reloads(), 1);
}

#[tokio::test]
async fn a_policy_file_over_a_mebibyte_is_refused() {
    let dir = std::env::temp_dir().join(format!("grpc-auth-watch-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.json");
    std::fs::write(&path, vec![b' '; (1 << 20) + 1]).unwrap();
    let err = PolicyWatcher::builder(&path)
        .start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    assert!(err.contains("big.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
