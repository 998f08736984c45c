//! [`CallOutcome`]: how a call ended, as shown to credentials that observe responses.

use std::fmt;

use http::HeaderMap;
use tonic::Code;

use super::CallContext;
use crate::secret::RedactedHeaders;

/// A call's outcome, as shown to [`CallCredentials::on_response`](super::CallCredentials::on_response). Its `Debug` shows
/// metadata keys, never values (they carry credentials: the bearer a login returned).
#[derive(Clone, Copy)]
pub struct CallOutcome<'a> {
    ctx: CallContext<'a>,
    sent: &'a HeaderMap,
    response: Option<&'a HeaderMap>,
}

impl fmt::Debug for CallOutcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOutcome")
            .field("ctx", &self.ctx)
            .field("sent", &RedactedHeaders(self.sent))
            .field("response", &self.response.map(RedactedHeaders))
            .finish()
    }
}

impl<'a> CallOutcome<'a> {
    /// An outcome: `response` is the response's initial headers, `None` when no
    /// response arrived (a transport error, or the call was dropped first).
    pub fn new(ctx: CallContext<'a>, sent: &'a HeaderMap, response: Option<&'a HeaderMap>) -> Self {
        Self {
            ctx,
            sent,
            response,
        }
    }

    /// The call's context.
    pub fn context(&self) -> &CallContext<'a> {
        &self.ctx
    }

    /// The request metadata as sent, the credentials' entries included.
    pub fn sent(&self) -> &'a HeaderMap {
        self.sent
    }

    /// The response's initial headers; `None` when no response arrived.
    pub fn headers(&self) -> Option<&'a HeaderMap> {
        self.response
    }

    /// The `grpc-status` in the initial headers (a trailers-only response), if any.
    pub fn status(&self) -> Option<Code> {
        self.response?
            .get("grpc-status")
            .map(|v| Code::from_bytes(v.as_bytes()))
    }

    /// The `grpc-message` in the initial headers, percent-decoded.
    pub fn message(&self) -> Option<String> {
        let raw = self.response?.get("grpc-message")?;
        Some(
            percent_encoding::percent_decode(raw.as_bytes())
                .decode_utf8_lossy()
                .into_owned(),
        )
    }
}
