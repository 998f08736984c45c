//! A scripted OAuth 2.0 endpoint for the tests: an in-process HTTP/1 server (hyper 1) on
//! 127.0.0.1 whose answers each test scripts ([`Reply`]), recording every request it
//! received ([`Got`]: method, path, `authorization`, the form). Tests include it with
//! `#[path = "support/idp.rs"] mod idp;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// One request the provider received.
#[derive(Clone, Debug)]
pub(crate) struct Got {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) authorization: Option<String>,
    pub(crate) form: Vec<(String, String)>,
}

impl Got {
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the provider answers.
#[derive(Clone)]
pub(crate) enum Reply {
    /// A status, extra headers and a body (with a content-length).
    Full(u16, Vec<(&'static str, String)>, String),
    /// Never answers (no status line).
    Hang,
    /// Answers `Full` after a delay.
    Late(Duration, u16, String),
    /// A 200 whose body arrives one chunk every `every`, `count` chunks, no length.
    Drip {
        every: Duration,
        chunk: &'static str,
        count: usize,
    },
    /// A 200 with a chunked (no content-length) body of `count` copies of `chunk`.
    Chunked { chunk: String, count: usize },
}

pub(crate) fn json_reply(v: Value) -> Reply {
    Reply::Full(200, vec![], v.to_string())
}

pub(crate) fn raw(status: u16, body: &str) -> Reply {
    Reply::Full(status, vec![], body.to_owned())
}

pub(crate) type Script = Arc<dyn Fn(&Got) -> Reply + Send + Sync>;

pub(crate) struct Idp {
    pub(crate) base: String,
    pub(crate) seen: Arc<Mutex<Vec<Got>>>,
    pub(crate) script: Arc<Mutex<Script>>,
    pub(crate) arrived: Arc<AtomicUsize>,
}

impl Idp {
    /// A provider on `bind` (`127.0.0.1:0` usually) answering with `script`.
    pub(crate) async fn on(
        bind: &str,
        script: impl Fn(&Got) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(bind).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Got>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(script)));
        let arrived = Arc::new(AtomicUsize::new(0));
        let (st, sc, ar) = (seen.clone(), script.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, sc, ar) = (st.clone(), sc.clone(), ar.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (st, sc, ar) = (st.clone(), sc.clone(), ar.clone());
                        async move { Ok::<_, Infallible>(handle(&st, &sc, &ar, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base,
            seen,
            script,
            arrived,
        }
    }

    pub(crate) async fn start(script: impl Fn(&Got) -> Reply + Send + Sync + 'static) -> Self {
        Self::on("127.0.0.1:0", script).await
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/introspect", self.base)
    }

    pub(crate) fn set(&self, script: impl Fn(&Got) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    pub(crate) fn seen(&self) -> Vec<Got> {
        self.seen.lock().unwrap().clone()
    }

    /// POSTs to the introspection path received.
    pub(crate) fn introspections(&self) -> usize {
        self.seen()
            .iter()
            .filter(|g| g.method == "POST" && g.path == "/introspect")
            .count()
    }

    /// Requests answered or being answered so far.
    pub(crate) fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Waits (at most 5 s) until `n` requests have arrived (counted before answering).
    pub(crate) async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.arrived.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "{n} requests never arrived");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

pub(crate) async fn handle(
    seen: &Mutex<Vec<Got>>,
    script: &Mutex<Script>,
    arrived: &AtomicUsize,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let got = Got {
        method,
        path,
        authorization,
        form: parse_form(&String::from_utf8_lossy(&body)),
    };
    seen.lock().unwrap().push(got.clone());
    let script = script.lock().unwrap().clone();
    let reply = script(&got);
    arrived.fetch_add(1, Ordering::SeqCst);
    let (status, headers, body) = match reply {
        Reply::Full(status, headers, body) => (status, headers, MockBody::full(body)),
        Reply::Hang => std::future::pending().await,
        Reply::Late(delay, status, body) => {
            tokio::time::sleep(delay).await;
            (status, vec![], MockBody::full(body))
        }
        Reply::Drip {
            every,
            chunk,
            count,
        } => (200, vec![], MockBody::drip(chunk, count, Some(every))),
        Reply::Chunked { chunk, count } => (200, vec![], MockBody::drip(chunk, count, None)),
    };
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.body(body).unwrap()
}

/// A response body: whole, or in chunks (optionally one per interval), no length.
pub(crate) struct MockBody {
    chunks: VecDeque<Bytes>,
    every: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    exact: Option<u64>,
}

impl MockBody {
    fn full(body: String) -> Self {
        let exact = Some(body.len() as u64);
        Self {
            chunks: VecDeque::from([Bytes::from(body)]),
            every: None,
            sleep: None,
            exact,
        }
    }

    fn drip(chunk: impl Into<String>, count: usize, every: Option<Duration>) -> Self {
        let chunk = Bytes::from(chunk.into());
        Self {
            chunks: (0..count).map(|_| chunk.clone()).collect(),
            every,
            sleep: None,
            exact: None,
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        match this.chunks.pop_front() {
            None => Poll::Ready(None),
            Some(chunk) => {
                if let Some(every) = this.every {
                    this.sleep = Some(Box::pin(tokio::time::sleep(every)));
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

pub(crate) fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}
