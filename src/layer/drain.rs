//! Reading what is left of a rejected request's body, off the response path.
//!
//! A rejection answers before the request's message has been read. Dropping the body
//! then resets the stream, and the client's DATA frames that arrive after the reset
//! are charged to h2's per-connection budget for small frames and never refunded
//! (h2 0.4.20): a stream of rejected calls ends in `GOAWAY ENHANCE_YOUR_CALM` and kills
//! every call on the connection. Reading the rest of the body instead lets h2 account
//! for it normally. The reading is bounded: at most [`MAX_BYTES`] per request, for at
//! most [`MAX_TIME`], at most [`MAX_TASKS`] at once and [`MAX_TASKS_PER_PEER`] for one
//! peer (past that, the body is dropped as before).

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Buf;
use http_body::Body;

/// Bytes read from one rejected body before it is dropped: 64 KiB.
pub(crate) const MAX_BYTES: usize = 64 * 1024;
/// Time spent reading one rejected body before it is dropped.
pub(crate) const MAX_TIME: Duration = Duration::from_secs(2);
/// Rejected bodies read at once, process-wide.
pub(crate) const MAX_TASKS: usize = 1024;

/// Rejected bodies read at once for one peer (an IPv4 address or an IPv6 /64), so one
/// client cannot take every slot.
pub(crate) const MAX_TASKS_PER_PEER: usize = 64;

/// Bodies being read: in all, and per peer.
static TASKS: Mutex<Option<Tasks>> = Mutex::new(None);

#[derive(Default)]
struct Tasks {
    total: usize,
    per_peer: HashMap<u128, usize>,
}

/// One slot, released on drop.
struct Slot(Option<u128>);

impl Slot {
    fn take(peer: Option<IpAddr>) -> Option<Self> {
        let peer = peer.map(peer_key);
        let mut tasks = TASKS.lock().unwrap_or_else(PoisonError::into_inner);
        let tasks = tasks.get_or_insert_with(Tasks::default);
        if tasks.total >= MAX_TASKS {
            return None;
        }
        if let Some(peer) = peer {
            let n = tasks.per_peer.entry(peer).or_default();
            if *n >= MAX_TASKS_PER_PEER {
                return None;
            }
            *n += 1;
        }
        tasks.total += 1;
        Some(Slot(peer))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut tasks = TASKS.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tasks) = tasks.as_mut() else { return };
        tasks.total = tasks.total.saturating_sub(1);
        if let Some(peer) = self.0
            && let Some(n) = tasks.per_peer.get_mut(&peer)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                tasks.per_peer.remove(&peer);
            }
        }
    }
}

/// An IPv4 address, or an IPv6 /64 (one host is routinely given a whole /64).
fn peer_key(peer: IpAddr) -> u128 {
    match peer.to_canonical() {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => (u128::from(ip) >> 64) | (1 << 127),
    }
}

/// Reads and discards the rest of `body`, sent by `peer`, on the runtime, within the
/// bounds; drops it at once outside a tokio runtime or when the slots (in all, or the
/// peer's) are taken.
pub(crate) fn drain<B>(body: B, peer: Option<IpAddr>)
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
    let Some(slot) = Slot::take(peer) else {
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
    fn slots_are_bounded_per_peer_and_in_all_and_released() {
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b2: IpAddr = "2001:db8::ffff".parse().unwrap();
        let held: Vec<Slot> = std::iter::from_fn(|| Slot::take(Some(a)))
            .take(MAX_TASKS)
            .collect();
        assert_eq!(held.len(), MAX_TASKS_PER_PEER);
        assert!(Slot::take(Some(b)).is_some(), "another peer still gets one");
        let v6: Vec<Slot> = std::iter::from_fn(|| Slot::take(Some(b2)))
            .take(MAX_TASKS)
            .collect();
        assert_eq!(v6.len(), MAX_TASKS_PER_PEER, "b and b2 are one /64");
        drop(held);
        assert!(Slot::take(Some(a)).is_some());
        let anonymous: Vec<Slot> = std::iter::from_fn(|| Slot::take(None))
            .take(MAX_TASKS + 5)
            .collect();
        assert!(anonymous.len() <= MAX_TASKS);
    }
}
