//! [`BoxCallCredentials`]: type-erased credentials, and credentials behind an `Arc`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;
use tonic::Status;

use super::{CallContext, CallCredentials, CallOutcome, StaticCallCredentials};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub(super) trait DynCallCredentials: Send + Sync + 'static {
    fn apply_boxed<'a>(
        &'a self,
        ctx: &'a CallContext<'a>,
        metadata: &'a mut HeaderMap,
    ) -> BoxFuture<'a, Result<(), Status>>;
    fn requires_transport_security_dyn(&self) -> bool;
    fn observes_responses_dyn(&self) -> bool;
    fn on_response_dyn(&self, outcome: &CallOutcome<'_>);
    fn as_static_dyn(&self) -> Option<&dyn StaticCallCredentials>;
}

impl<C: CallCredentials> DynCallCredentials for C {
    fn apply_boxed<'a>(
        &'a self,
        ctx: &'a CallContext<'a>,
        metadata: &'a mut HeaderMap,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(self.apply(ctx, metadata))
    }
    fn requires_transport_security_dyn(&self) -> bool {
        self.requires_transport_security()
    }
    fn observes_responses_dyn(&self) -> bool {
        self.observes_responses()
    }
    fn on_response_dyn(&self, outcome: &CallOutcome<'_>) {
        self.on_response(outcome)
    }
    fn as_static_dyn(&self) -> Option<&dyn StaticCallCredentials> {
        self.as_static()
    }
}

/// A type-erased, cheaply cloned [`CallCredentials`](super::CallCredentials).
#[derive(Clone)]
pub struct BoxCallCredentials(pub(super) Arc<dyn DynCallCredentials>);

impl CallCredentials for BoxCallCredentials {
    async fn apply(&self, ctx: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.0.apply_boxed(ctx, metadata).await
    }
    fn requires_transport_security(&self) -> bool {
        self.0.requires_transport_security_dyn()
    }
    fn observes_responses(&self) -> bool {
        self.0.observes_responses_dyn()
    }
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        self.0.on_response_dyn(outcome)
    }
    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        self.0.as_static_dyn()
    }
    fn boxed(self) -> BoxCallCredentials {
        self
    }
}

impl fmt::Debug for BoxCallCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxCallCredentials")
    }
}

impl<C: CallCredentials> CallCredentials for Arc<C> {
    fn apply(
        &self,
        ctx: &CallContext<'_>,
        metadata: &mut HeaderMap,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        (**self).apply(ctx, metadata)
    }
    fn requires_transport_security(&self) -> bool {
        (**self).requires_transport_security()
    }
    fn observes_responses(&self) -> bool {
        (**self).observes_responses()
    }
    fn on_response(&self, outcome: &CallOutcome<'_>) {
        (**self).on_response(outcome)
    }
    fn as_static(&self) -> Option<&dyn StaticCallCredentials> {
        (**self).as_static()
    }
}
