//! Durations to the whole milliseconds the wire carries.
//!
//! Always rounded up: a TTL is never shortened, and a positive TTL never becomes 0,
//! which the server reads as "no expiry" for keys. A lock guard trusts its lease for
//! the TTL it asked for, so the server must hold it at least that long.

use std::time::Duration;

/// `d` in milliseconds, rounded up (500 ns is 1 ms, 1.5 ms is 2 ms).
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_and_never_to_zero() {
        assert_eq!(ceil_ms(Duration::from_nanos(500)), 1);
        assert_eq!(ceil_ms(Duration::from_micros(500)), 1);
        assert_eq!(ceil_ms(Duration::from_micros(1500)), 2);
        assert_eq!(ceil_ms(Duration::from_millis(30)), 30);
        assert_eq!(ceil_ms(Duration::ZERO), 0);
        assert_eq!(ceil_ms(Duration::MAX), u64::MAX);
    }
}
