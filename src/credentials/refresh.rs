//! The refresh state token sources and logins share: consecutive failures, the backoff
//! before the next try, and the error to answer with meanwhile. Times are the clock's
//! monotonic time ([`Clock::monotonic`](crate::clock::Clock::monotonic)): a wall clock
//! stepped back never stretches a backoff.

use std::time::Duration;

use tonic::Status;

/// Retry delays after failures: `min`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
        }
    }

    /// The wait after `failures` consecutive failures.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        self.min.saturating_mul(1 << exp).min(self.max)
    }
}

/// Consecutive failures and when the next try may start.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    count: u32,
    retry_at: Option<Duration>,
    last: Option<Status>,
}

impl Failures {
    /// The last failure's status while its backoff lasts at `now` (monotonic).
    pub(crate) fn backing_off(&self, now: Duration) -> Option<&Status> {
        self.last
            .as_ref()
            .filter(|_| self.retry_at.is_some_and(|t| now < t))
    }

    /// Whether a try at `now` must wait for the backoff.
    pub(crate) fn is_backing_off(&self, now: Duration) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// Whether the last backoff ended more than `backoff.max` before `now`: a streak of
    /// failures long over, so the next one counts as the first.
    pub(crate) fn lapsed(&self, now: Duration, backoff: Backoff) -> bool {
        self.retry_at
            .is_some_and(|t| now >= t.saturating_add(backoff.max))
    }

    /// Records a failure at `now`; returns the wait before the next try.
    pub(crate) fn failed(&mut self, now: Duration, backoff: Backoff, status: Status) -> Duration {
        self.count = self.count.saturating_add(1);
        let delay = backoff.delay(self.count);
        self.retry_at = Some(now.saturating_add(delay));
        self.last = Some(status);
        delay
    }

    /// A success: no backoff.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Consecutive failures so far.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max_and_saturate() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let d: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            Backoff::new(Duration::MAX, Duration::MAX).delay(u32::MAX),
            Duration::MAX
        );
        assert_eq!(
            Backoff::new(Duration::from_secs(5), Duration::ZERO).max,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_failure_backs_off_until_its_delay_and_a_success_clears() {
        let t0 = Duration::from_secs(1_000);
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(10));
        let mut f = Failures::default();
        assert!(f.backing_off(t0).is_none());
        assert_eq!(
            f.failed(t0, b, Status::unavailable("down")),
            Duration::from_secs(2)
        );
        assert_eq!(f.backing_off(t0).map(Status::message), Some("down"));
        assert!(f.backing_off(t0 + Duration::from_secs(2)).is_none());
        assert_eq!(
            f.failed(t0, b, Status::unavailable("down")),
            Duration::from_secs(4)
        );
        assert_eq!(f.count(), 2);
        f.clear();
        assert!(!f.is_backing_off(t0));
        // Duration::MAX never panics.
        f.failed(
            t0,
            Backoff::new(Duration::MAX, Duration::MAX),
            Status::unavailable("x"),
        );
        assert!(f.is_backing_off(t0 + Duration::from_secs(1 << 30)));
    }

    #[test]
    fn a_streak_lapses_once_its_backoff_ended_max_ago() {
        let t0 = Duration::from_secs(1_000);
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let mut f = Failures::default();
        assert!(!f.lapsed(t0, b));
        f.failed(t0, b, Status::unauthenticated("refused"));
        assert!(!f.lapsed(t0 + Duration::from_secs(30), b));
        assert!(f.lapsed(t0 + Duration::from_secs(31), b));
    }
}
