//! [`ResponseFuture`]: authenticate, then call the inner service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tonic::Status;
use tower_service::Service;

type Authorize<B> =
    Pin<Box<dyn Future<Output = Result<(Request<B>, Option<Box<HeaderMap>>), Status>> + Send>>;

pin_project! {
    /// Response future of [`AuthService`](super::AuthService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Authorizing {
            authorize: Authorize<B>,
            // Unpinned: called in place once the authorization is done.
            inner: S,
        },
        Calling {
            #[pin]
            future: S::Future,
            headers: Option<Box<HeaderMap>>,
        },
        Rejected {
            response: Option<S::Response>,
        },
    }
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    pub(crate) fn call(future: S::Future) -> Self {
        Self {
            state: State::Calling {
                future,
                headers: None,
            },
        }
    }

    pub(crate) fn authorize(authorize: Authorize<B>, inner: S) -> Self {
        Self {
            state: State::Authorizing { authorize, inner },
        }
    }

    /// A response decided before any authentication (a denied method).
    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authorizing { authorize, inner } => {
                    match ready!(authorize.as_mut().poll(cx)) {
                        Ok((req, headers)) => {
                            let future = inner.call(req);
                            this.state.set(State::Calling { future, headers });
                        }
                        Err(status) => {
                            // Polled again after this: an empty response, never a panic.
                            this.state.set(State::Rejected { response: None });
                            return Poll::Ready(Ok(status.into_http()));
                        }
                    }
                }
                StateProj::Calling { future, headers } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(headers) = headers.take() {
                        response.headers_mut().extend(*headers);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Rejected { response } => {
                    // Polled again after completion: an empty response, never a panic.
                    return Poll::Ready(Ok(response.take().unwrap_or_default()));
                }
            }
        }
    }
}
