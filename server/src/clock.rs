//! Cluster time: the clock a leader stamps commands with and judges leases by.
//!
//! Cluster time is continuous and monotone whatever the members' wall clocks say.
//! It starts once, from the wall clock of the first member that stamps a command in
//! a fresh cluster; from then on every member continues from the latest stamp it has
//! applied ([`Clock::observe`]), advanced by its own monotonic clock. A new leader
//! therefore picks up where the last applied entry left off (plus the time that has
//! passed since it applied it, which is never more than what really passed), so a
//! member whose wall clock is a year ahead or behind neither jumps expiry forward
//! nor freezes it. A stepped system clock (NTP, an operator) changes nothing either.
//!
//! A member's estimate can only lag true cluster time (a stamp is applied after it
//! was taken), and a lagging clock only makes leases last longer; the first entry of
//! every leader term also extends every live lease by a full TTL (`sm::locks`).
//! Wall time still shows in `expires_at_ms` answers, as the cluster's start offset.

use crate::poison::Recover;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy)]
struct Anchor {
    /// Cluster time at `at`.
    ms: u64,
    at: Instant,
}

impl Anchor {
    fn at(&self, when: Instant) -> u64 {
        let elapsed = when.saturating_duration_since(self.at).as_millis() as u64;
        self.ms.saturating_add(elapsed)
    }
}

#[derive(Default)]
pub struct Clock {
    /// `None` until a stamp is observed or, in a fresh cluster, the first stamp is taken.
    anchor: Mutex<Option<Anchor>>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Clock {
    /// Records that a command stamped `stamp_ms` has been applied: cluster time is
    /// at least that now. Called for every applied entry and restored snapshot, so
    /// the member continues from there when it leads.
    pub fn observe(&self, stamp_ms: u64) {
        self.observe_at(stamp_ms, Instant::now());
    }

    pub(crate) fn observe_at(&self, stamp_ms: u64, when: Instant) {
        if stamp_ms == 0 {
            return;
        }
        let mut a = self.anchor.lock().recover();
        if a.is_none_or(|a| stamp_ms > a.at(when)) {
            *a = Some(Anchor { ms: stamp_ms, at: when });
        }
    }

    /// Cluster time now, in Unix-like milliseconds. Never goes backwards.
    pub fn now_ms(&self) -> u64 {
        self.now_at(Instant::now(), wall_ms)
    }

    pub(crate) fn now_at(&self, when: Instant, wall: impl FnOnce() -> u64) -> u64 {
        let mut a = self.anchor.lock().recover();
        match *a {
            Some(anchor) => anchor.at(when),
            // Nothing ever applied (openraft re-applies the committed log before
            // a member serves): a fresh cluster, whose time starts here.
            None => {
                let ms = wall().max(1);
                *a = Some(Anchor { ms, at: when });
                ms
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn continues_from_the_last_applied_stamp_whatever_the_wall_clock() {
        let t0 = Instant::now();
        let c = Clock::default();
        // A member that applied a stamp from a leader a year ahead continues from it...
        let year = 365 * 24 * 3600 * 1000;
        c.observe_at(1_000_000 + year, t0);
        assert_eq!(
            c.now_at(t0 + Duration::from_millis(250), || 1_000_000),
            1_000_250 + year
        );
        // ...and one that applied a stamp from a leader a year behind does not jump
        // back to its own wall clock either.
        let d = Clock::default();
        d.observe_at(5_000, t0);
        assert_eq!(d.now_at(t0 + Duration::from_millis(10), || 9_999_999), 5_010);
    }

    #[test]
    fn monotone_and_only_moved_forward_by_observed_stamps() {
        let t0 = Instant::now();
        let c = Clock::default();
        c.observe_at(10_000, t0);
        // An older stamp (applied late) does not move it back.
        c.observe_at(9_000, t0 + Duration::from_millis(100));
        assert_eq!(c.now_at(t0 + Duration::from_millis(100), || 0), 10_100);
        // A newer one moves it forward.
        c.observe_at(20_000, t0 + Duration::from_millis(100));
        assert_eq!(c.now_at(t0 + Duration::from_millis(150), || 0), 20_050);
    }

    #[test]
    fn a_fresh_cluster_starts_from_the_wall_clock_once() {
        let t0 = Instant::now();
        let c = Clock::default();
        assert_eq!(c.now_at(t0, || 42_000), 42_000);
        // Later wall readings do not matter any more.
        assert_eq!(c.now_at(t0 + Duration::from_millis(5), || 99_000_000), 42_005);
    }
}
