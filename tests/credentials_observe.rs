//! `CallCredentials::on_response` through `CredentialsLayer`, in process: what an
//! observing credential is shown (what was sent, the initial headers, a trailers-only
//! status), that non-observers are never called, and that a call that ends without a
//! response (credentials failed, transport error, dropped) is still reported.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use grpc_auth::credentials::{
    CallContext, CallCredentials, CallOutcome, Composite, CredentialsLayer, PerCallCredentials,
};
use http::{HeaderMap, Request, Response};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer, Service, ServiceExt};

/// What a recorder saw of one outcome.
#[derive(Debug, PartialEq)]
struct Seen {
    method: String,
    sent: Option<String>,
    response: Option<String>,
    status: Option<Code>,
    message: Option<String>,
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    observes: bool,
    fail: Option<Status>,
}

impl Recorder {
    fn observing() -> Self {
        Self {
            observes: true,
            ..Self::default()
        }
    }
    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl CallCredentials for Recorder {
    async fn apply(&self, _: &CallContext<'_>, md: &mut HeaderMap) -> Result<(), Status> {
        if let Some(s) = &self.fail {
            return Err(s.clone());
        }
        md.insert("x-recorder", "sent".parse().unwrap());
        Ok(())
    }
    fn observes_responses(&self) -> bool {
        self.observes
    }
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        let header = |h: &HeaderMap, k: &str| h.get(k).map(|v| v.to_str().unwrap().to_owned());
        self.seen.lock().unwrap().push(Seen {
            method: outcome.context().method_name().to_owned(),
            sent: header(outcome.sent(), "x-recorder"),
            response: outcome.headers().and_then(|h| header(h, "x-answer")),
            status: outcome.status(),
            message: outcome.message(),
        });
    }
}

/// Answers with `x-answer: yes`, or trailers-only UNAUTHENTICATED when asked by
/// `x-refuse`, or never (`x-hang`).
#[derive(Clone)]
struct Server;

impl Service<Request<Body>> for Server {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let refuse = req.headers().contains_key("x-refuse");
        let hang = req.headers().contains_key("x-hang");
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            if refuse {
                return Ok(Status::unauthenticated("token expired").into_http());
            }
            let mut res = Response::new(Body::empty());
            res.headers_mut().insert("x-answer", "yes".parse().unwrap());
            Ok(res)
        })
    }
}

fn request(extra: &[&'static str]) -> Request<Body> {
    let mut b = Request::builder().uri("/helloworld.Greeter/SayHello");
    for k in extra {
        b = b.header(*k, "1");
    }
    b.body(Body::empty()).unwrap()
}

fn layer<C: CallCredentials>(creds: C) -> CredentialsLayer<C> {
    CredentialsLayer::new(creds, "https://greeter.example".parse().unwrap())
}

fn seen(sent: bool, response: bool, status: Option<Code>, message: Option<&str>) -> Seen {
    Seen {
        method: "SayHello".into(),
        sent: sent.then(|| "sent".into()),
        response: response.then(|| "yes".into()),
        status,
        message: message.map(str::to_owned),
    }
}

#[tokio::test]
async fn an_observer_sees_what_was_sent_and_the_initial_headers() {
    let rec = Recorder::observing();
    let svc = layer(rec.clone()).layer(Server);
    svc.clone().oneshot(request(&[])).await.unwrap();
    assert_eq!(rec.seen(), [seen(true, true, None, None)]);
    svc.oneshot(request(&["x-refuse"])).await.unwrap();
    assert_eq!(
        rec.seen(),
        [seen(
            true,
            false,
            Some(Code::Unauthenticated),
            Some("token expired")
        )]
    );
}

#[tokio::test]
async fn a_credential_that_does_not_observe_is_never_shown_responses() {
    let rec = Recorder::default();
    layer(rec.clone())
        .layer(Server)
        .oneshot(request(&[]))
        .await
        .unwrap();
    assert_eq!(rec.seen(), []);
}

#[tokio::test]
async fn a_call_without_a_response_is_reported_as_such() {
    // Dropped before its response.
    let rec = Recorder::observing();
    let svc = layer(rec.clone()).layer(Server);
    let mut call = Box::pin(svc.clone().oneshot(request(&["x-hang"])));
    let pending = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_pending())).await;
    assert!(pending, "the call was sent and waits for its response");
    assert_eq!(rec.seen(), []);
    drop(call);
    assert_eq!(rec.seen(), [seen(true, false, None, None)]);
    // Credentials that failed after the observer wrote its entry: not sent.
    let failing = Recorder {
        fail: Some(Status::unavailable("vault down")),
        ..Recorder::default()
    };
    let composite = Composite::new().with(rec.clone()).with(failing);
    let res = layer(composite)
        .layer(Server)
        .oneshot(request(&[]))
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(rec.seen(), [seen(true, false, None, None)]);
}

#[tokio::test]
async fn per_call_credentials_observe_and_replace_the_channels() {
    let channel = Recorder::observing();
    let per_call = Recorder::observing();
    let svc = layer(channel.clone()).layer(Server);
    let mut req = request(&[]);
    req.extensions_mut()
        .insert(PerCallCredentials::replace(per_call.clone()));
    svc.clone().oneshot(req).await.unwrap();
    assert_eq!(channel.seen(), [], "replaced: not part of this call");
    assert_eq!(per_call.seen(), [seen(true, true, None, None)]);
    let mut req = request(&[]);
    req.extensions_mut()
        .insert(PerCallCredentials::add(per_call.clone()));
    svc.oneshot(req).await.unwrap();
    assert_eq!(channel.seen(), [seen(true, true, None, None)]);
    assert_eq!(per_call.seen(), [seen(true, true, None, None)]);
}
