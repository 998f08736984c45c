//! Reading what is left of a rejected request's body, off the response path.
//!
//! A rejection answers before the request's message has been read. Dropping the body
//! then resets the stream, and the client's DATA frames that arrive after the reset
//! are charged to h2's per-connection budget for small frames and never refunded
//! (h2 0.4.20): a stream of rejected calls ends in `GOAWAY ENHANCE_YOUR_CALM` and kills
//! every call on the connection. Reading the rest of the body instead lets h2 account
//! for it normally. The reading is bounded: at most [`MAX_BYTES`] per request, for at
//! most [`MAX_TIME`], and at most [`MAX_TASKS`] at once (past that, the body is dropped
//! as before).

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Buf;
use http_body::Body;

/// Bytes read from one rejected body before it is dropped: 64 KiB.
pub(crate) const MAX_BYTES: usize = 64 * 1024;
/// Time spent reading one rejected body before it is dropped.
pub(crate) const MAX_TIME: Duration = Duration::from_secs(2);
/// Rejected bodies read at once, process-wide.
pub(crate) const MAX_TASKS: usize = 1024;

static TASKS: AtomicUsize = AtomicUsize::new(0);

/// One slot of [`MAX_TASKS`], released on drop.
struct Slot;

impl Slot {
    fn take() -> Option<Self> {
        TASKS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_TASKS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        TASKS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads and discards the rest of `body` on the runtime, within the bounds; drops it
/// at once outside a tokio runtime or when [`MAX_TASKS`] bodies are being read.
pub(crate) fn drain<B>(body: B)
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    if body.is_end_stream() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(slot) = Slot::take() else {
        return;
    };
    runtime.spawn(async move {
        let _slot = slot;
        let _ = tokio::time::timeout(MAX_TIME, read_up_to(body, MAX_BYTES)).await;
    });
}

/// Reads frames until the end, an error, or more than `limit` bytes.
async fn read_up_to<B: Body>(body: B, limit: usize) -> usize {
    let mut body = pin!(body);
    let mut read = 0usize;
    while let Some(Ok(frame)) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.remaining());
            if read > limit {
                break;
            }
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::Frame;

    use super::*;

    /// `n` chunks of `size` bytes, then the end.
    struct Chunks(VecDeque<Bytes>);

    impl Chunks {
        fn new(n: usize, size: usize) -> Self {
            Self((0..n).map(|_| Bytes::from(vec![0u8; size])).collect())
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn reads_to_the_end_within_the_limit() {
        assert_eq!(read_up_to(Chunks::new(4, 100), MAX_BYTES).await, 400);
    }

    #[tokio::test]
    async fn stops_past_the_limit() {
        assert_eq!(read_up_to(Chunks::new(100, 1_000), 2_500).await, 3_000);
    }

    #[test]
    fn slots_are_bounded_and_released() {
        let held: Vec<Slot> = std::iter::from_fn(Slot::take).take(MAX_TASKS + 5).collect();
        assert!(held.len() <= MAX_TASKS);
        assert!(Slot::take().is_none());
        drop(held);
        assert!(Slot::take().is_some());
    }
}
