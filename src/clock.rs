//! [`Clock`]: where expiry, not-before and cache lifetimes read the time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time. The default is [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch (0 before it).
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Time that only moves forward, whatever the wall clock does (NTP steps, a resumed
    /// VM): how long the replay cache is sure an entry has lived. Default: the time since
    /// the process first asked, from [`std::time::Instant`].
    fn monotonic(&self) -> Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use grpc_auth::clock::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::at_unix(1_000);
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.unix_seconds(), 1_005);
/// ```
///
/// Its monotonic time moves with [`advance`](Self::advance) only: [`set_unix`](Self::set_unix)
/// steps the wall clock as NTP would.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>, Arc<AtomicU64>);

impl ManualClock {
    /// A clock set to `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self(
            Arc::new(AtomicU64::new(secs.saturating_mul(1_000_000))),
            Arc::default(),
        )
    }

    /// A clock set to the system's current time.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self(Arc::new(AtomicU64::new(micros)), Arc::default())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        for t in [&self.0, &self.1] {
            let _ = t.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(micros))
            });
        }
    }

    /// Sets the clock to `secs` seconds after the Unix epoch.
    pub fn set_unix(&self, secs: u64) {
        self.0
            .store(secs.saturating_mul(1_000_000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        add(
            UNIX_EPOCH,
            Duration::from_micros(self.0.load(Ordering::SeqCst)),
        )
    }

    fn monotonic(&self) -> Duration {
        Duration::from_micros(self.1.load(Ordering::SeqCst))
    }
}

/// `t + d`, or a time some 35 000 years after the epoch when that is not representable:
/// a configured duration (`Duration::MAX` included) never makes time arithmetic panic.
pub(crate) fn add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or_else(|| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(1 << 40))
            .map_or(t, |far| far.max(t))
    })
}

/// The clock used when none is configured.
pub(crate) fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod add_tests {
    use super::*;

    #[test]
    fn add_saturates() {
        let far = add(UNIX_EPOCH, Duration::MAX);
        assert!(far > UNIX_EPOCH + Duration::from_secs(1 << 39));
        assert_eq!(
            add(UNIX_EPOCH, Duration::from_secs(5)),
            UNIX_EPOCH + Duration::from_secs(5)
        );
        assert_eq!(add(far, Duration::MAX), far);
    }
}
