//! Rate limits for log lines a remote peer can trigger.
//!
//! A hostile peer can send malformed requests as fast as the network
//! carries them; each one is refused, counted in a metric, and would be one
//! `warn` line. A [`LogLimit`] per call site lets a burst through, then one
//! line per interval, and says how many were held back, so the log stays
//! readable and the disk stays free however hard a peer pushes. The metric
//! still counts every event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket for one call site: `burst` lines at once, then one per
/// `interval`.
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    interval: Duration,
    state: Mutex<Option<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
    suppressed: u64,
}

impl LogLimit {
    pub const fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst,
            interval,
            state: Mutex::new(None),
        }
    }

    /// `Some(n)` if a line may be written now, `n` being how many were held
    /// back since the last one; `None` to hold this one back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = state.get_or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
            suppressed: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled);
        let earned = (elapsed.as_nanos() / self.interval.as_nanos().max(1)) as u64;
        if earned > 0 {
            let tokens = u64::from(bucket.tokens).saturating_add(earned);
            bucket.tokens = tokens.min(u64::from(self.burst)) as u32;
            bucket.refilled = now;
        }
        if bucket.tokens == 0 {
            bucket.suppressed = bucket.suppressed.saturating_add(1);
            return None;
        }
        bucket.tokens -= 1;
        Some(std::mem::take(&mut bucket.suppressed))
    }
}

/// `tracing::warn!` through a [`LogLimit`] of its own for this call site:
/// 10 lines at once, then one a second, each saying how many were held
/// back (`suppressed`).
#[macro_export]
macro_rules! peer_warn {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimit =
            $crate::log_limit::LogLimit::new(10, ::std::time::Duration::from_secs(1));
        if let Some(suppressed) = LIMIT.allow() {
            ::tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_per_interval_with_the_count_held_back() {
        let limit = LogLimit::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limit.allow_at(t0), Some(0));
        assert_eq!(limit.allow_at(t0), Some(0));
        assert_eq!(limit.allow_at(t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(limit.allow_at(t0), None);
        }
        assert_eq!(limit.allow_at(t0 + Duration::from_millis(999)), None);
        assert_eq!(limit.allow_at(t0 + Duration::from_secs(1)), Some(1001));
        assert_eq!(limit.allow_at(t0 + Duration::from_secs(1)), None);
        // A long quiet spell refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(limit.allow_at(later), Some(1));
        assert_eq!(limit.allow_at(later), Some(0));
        assert_eq!(limit.allow_at(later), Some(0));
        assert_eq!(limit.allow_at(later), None);
    }
}
