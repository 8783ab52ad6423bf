//! The leader's clock for stamping commands: wall-clock Unix milliseconds that never
//! go backwards within this process, even if the system clock is stepped back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last.fetch_max(wall, Ordering::SeqCst).max(wall)
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
