//! The leader's clock for stamping commands and judging leases: Unix milliseconds
//! taken from the wall clock once at start, then advanced by the monotonic clock.
//! A stepped system clock (NTP jump, operator) therefore cannot shorten or stretch
//! a lease on this member; only the start offset differs between members, and a
//! leader change extends every lease by a full TTL to absorb that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub struct Clock {
    start_wall_ms: u64,
    start: Instant,
    last: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            start_wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        let now = self.start_wall_ms + self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(now, Ordering::SeqCst).max(now)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic() {
        let c = super::Clock::default();
        let a = c.now_ms();
        c.last.store(a + 10_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(c.now_ms(), a + 10_000);
    }
}
