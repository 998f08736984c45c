//! Accept and reject events carry the method and the reason, at levels that keep a
//! flood of bad requests out of default (info) logs, and never the credential.

use std::io::Write;
use std::sync::{Arc, Mutex};

use grpc_auth::authn::ApiKeyAuthenticator;
use grpc_auth::{AuthLayer, Policy};
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, ServiceExt, service_fn};

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

async fn run(key: &'static str, path: &str) {
    let svc = AuthLayer::new(ApiKeyAuthenticator::new().key("GOOD-KEY-VALUE", "svc"))
        .policy(Policy::new().require_scope("/a.B/Scoped", "admin"))
        .layer(service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
    let req = Request::builder()
        .uri(format!("http://localhost{path}"))
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    svc.oneshot(req).await.unwrap();
}

fn logs(level: tracing::Level, f: impl AsyncFnOnce()) -> String {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f());
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn rejections_are_logged_at_debug_with_method_and_reason_never_the_key() {
    let out = logs(tracing::Level::DEBUG, async || {
        run("BAD-KEY-VALUE", "/a.B/C").await;
        run("GOOD-KEY-VALUE", "/a.B/Scoped").await;
    });
    assert!(out.contains("grpc-auth: rejected"), "{out}");
    assert!(
        out.contains("method=\"/a.B/C\"") || out.contains("method=/a.B/C"),
        "{out}"
    );
    assert!(out.contains("reason=invalid API key"), "{out}");
    assert!(out.contains("reason=missing scope: admin"), "{out}");
    assert!(out.contains("code=PermissionDenied"), "{out}");
    assert!(
        !out.contains("BAD-KEY") && !out.contains("GOOD-KEY"),
        "{out}"
    );
}

#[test]
fn accepts_are_logged_at_trace_with_subject_never_the_key() {
    let out = logs(tracing::Level::TRACE, async || {
        run("GOOD-KEY-VALUE", "/a.B/C").await
    });
    assert!(out.contains("grpc-auth: accepted"), "{out}");
    assert!(
        out.contains("subject=\"svc\"") || out.contains("subject=svc"),
        "{out}"
    );
    assert!(!out.contains("GOOD-KEY"), "{out}");
}

#[test]
fn nothing_is_logged_at_info_for_bad_requests() {
    let out = logs(tracing::Level::INFO, async || {
        for _ in 0..100 {
            run("BAD-KEY-VALUE", "/a.B/C").await;
        }
    });
    assert_eq!(out, "");
}
