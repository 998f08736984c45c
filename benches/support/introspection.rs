//! An OAuth 2.0 introspection endpoint (RFC 7662) for the benches, on 127.0.0.1:0:
//! [`ACTIVE`] is active as `load-ada` (scope `greeter.read`), every other token inactive.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub(crate) const ACTIVE: &str = "load-opaque-token-0123456789abcdef";
pub(crate) const INACTIVE: &str = "load-opaque-token-inactive";

/// Starts the endpoint on the current runtime; its URL.
pub(crate) async fn endpoint() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/introspect", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async {
                    let form = req.into_body().collect().await.map(|b| b.to_bytes());
                    let active = form.is_ok_and(|f| {
                        f.split(|b| *b == b'&')
                            .any(|kv| kv == format!("token={ACTIVE}").as_bytes())
                    });
                    let body = if active {
                        r#"{"active":true,"sub":"load-ada","scope":"greeter.read","token_type":"Bearer"}"#
                    } else {
                        r#"{"active":false}"#
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}
