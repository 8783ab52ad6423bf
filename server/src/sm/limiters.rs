//! Rate limiters: fixed window, sliding window and token bucket, decided atomically
//! in the state machine's deterministic time (or the ephemeral tier's, which keeps
//! its own table on the leader).
//!
//! A limiter is created by its first check and forgotten once idle long enough to be
//! full again, so the table holds only limiters in use. A check naming a different
//! policy than the stored one starts the limiter afresh under the new policy.

use serde::{Deserialize, Serialize};

use super::{due, Map, Set};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Policy {
    FixedWindow { limit: u64, window_ms: u64 },
    SlidingWindow { limit: u64, window_ms: u64 },
    TokenBucket { capacity: u64, refill_per_second: u64 },
}

impl Policy {
    /// The most units the policy can ever allow at once.
    pub fn max_cost(&self) -> u64 {
        match *self {
            Policy::FixedWindow { limit, .. } | Policy::SlidingWindow { limit, .. } => limit,
            Policy::TokenBucket { capacity, .. } => capacity,
        }
    }
}

/// The answer to a check.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u64,
    pub retry_after_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Limiter {
    policy: Policy,
    /// Fixed and sliding window: units taken in the current window. Token bucket:
    /// thousandths of tokens in the bucket (a refill rate per second is then an
    /// integer per millisecond).
    current: u64,
    /// Sliding window: units taken in the previous window.
    previous: u64,
    /// Windows: the current window's start. Token bucket: the last refill.
    at_ms: u64,
    /// When the limiter is full again if nothing else is taken (then forgotten).
    idle_at_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limiters {
    limiters: Map<String, Limiter>,
    /// (idle_at_ms, name) for every limiter.
    idle: Set<(u64, String)>,
}

impl Limiter {
    fn new(policy: Policy, now_ms: u64) -> Self {
        let (current, at_ms) = match policy {
            Policy::TokenBucket { capacity, .. } => (capacity.saturating_mul(1000), now_ms),
            _ => (0, 0),
        };
        Limiter {
            policy,
            current,
            previous: 0,
            at_ms,
            idle_at_ms: now_ms,
        }
    }

    fn check(&mut self, now_ms: u64, cost: u64) -> Decision {
        match self.policy {
            Policy::FixedWindow { limit, window_ms } => {
                let start = now_ms - now_ms % window_ms;
                if self.at_ms != start {
                    self.at_ms = start;
                    self.current = 0;
                }
                let end = start + window_ms;
                self.idle_at_ms = end;
                if self.current + cost <= limit {
                    self.current += cost;
                    decision(true, limit - self.current, 0)
                } else {
                    decision(false, limit - self.current, end - now_ms)
                }
            }
            Policy::SlidingWindow { limit, window_ms } => {
                let start = now_ms - now_ms % window_ms;
                if self.at_ms != start {
                    self.previous = if start.checked_sub(window_ms) == Some(self.at_ms) {
                        self.current
                    } else {
                        0
                    };
                    self.current = 0;
                    self.at_ms = start;
                }
                // The previous window counts for the part of it still inside the
                // sliding window: (window - elapsed) / window. In units * window_ms:
                let elapsed = now_ms - start;
                let weighted = |prev: u64, cur: u64| {
                    u128::from(prev) * u128::from(window_ms - elapsed) + u128::from(cur) * u128::from(window_ms)
                };
                let cap = u128::from(limit) * u128::from(window_ms);
                self.idle_at_ms = start + 2 * window_ms;
                let taken = weighted(self.previous, self.current);
                let remaining = (cap.saturating_sub(taken) / u128::from(window_ms)) as u64;
                if taken + u128::from(cost) * u128::from(window_ms) <= cap {
                    self.current += cost;
                    let left = cap.saturating_sub(weighted(self.previous, self.current)) / u128::from(window_ms);
                    return decision(true, left as u64, 0);
                }
                // Refused: wait until enough of the previous window has slid out, or
                // for the next window when this one alone is full.
                let retry = if self.current + cost > limit || self.previous == 0 {
                    start + window_ms - now_ms
                } else {
                    // previous * (window - e) / window + current + cost <= limit
                    let room = u128::from(limit - self.current - cost) * u128::from(window_ms);
                    let keep = room / u128::from(self.previous);
                    let e = u128::from(window_ms).saturating_sub(keep) as u64;
                    e.saturating_sub(elapsed).max(1)
                };
                decision(false, remaining, retry)
            }
            Policy::TokenBucket {
                capacity,
                refill_per_second,
            } => {
                let full = capacity.saturating_mul(1000);
                let refilled = (now_ms - self.at_ms.min(now_ms)).saturating_mul(refill_per_second);
                self.current = self.current.saturating_add(refilled).min(full);
                self.at_ms = now_ms;
                let need = cost.saturating_mul(1000);
                let allowed = self.current >= need;
                if allowed {
                    self.current -= need;
                }
                let until_full = (full - self.current).div_ceil(refill_per_second.max(1));
                self.idle_at_ms = now_ms.saturating_add(until_full);
                let retry = if allowed {
                    0
                } else {
                    (need - self.current).div_ceil(refill_per_second.max(1))
                };
                decision(allowed, self.current / 1000, retry)
            }
        }
    }
}

fn decision(allowed: bool, remaining: u64, retry_after_ms: u64) -> Decision {
    Decision {
        allowed,
        remaining,
        retry_after_ms,
    }
}

impl Limiters {
    /// Takes `cost` units from limiter `name` under `policy` if it has them. The caller
    /// has checked that `cost` is at most the policy's maximum and that windows and
    /// rates are above zero.
    pub fn check(&mut self, now_ms: u64, name: &str, policy: Policy, cost: u64) -> Decision {
        let mut limiter = match self.limiters.get(name) {
            Some(l) if l.policy == policy => l.clone(),
            _ => Limiter::new(policy, now_ms),
        };
        if let Some(old) = self.limiters.get(name) {
            self.idle.remove(&(old.idle_at_ms, name.to_owned()));
        }
        let d = limiter.check(now_ms, cost);
        self.idle.insert((limiter.idle_at_ms, name.to_owned()));
        self.limiters.insert(name.to_owned(), limiter);
        d
    }

    /// Forgets up to `limit` limiters that are full again by `now_ms`.
    pub fn forget_idle(&mut self, now_ms: u64, limit: u32) -> u32 {
        let due = due(&self.idle, now_ms, limit);
        for entry in &due {
            self.idle.remove(entry);
            self.limiters.remove(&entry.1);
        }
        due.len() as u32
    }

    pub fn len(&self) -> usize {
        self.limiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiters.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.limiters.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(l: &mut Limiters, now: u64, p: Policy, n: u64) -> u64 {
        (0..n).filter(|_| l.check(now, "r", p, 1).allowed).count() as u64
    }

    #[test]
    fn fixed_window_allows_the_limit_per_aligned_window() {
        let p = Policy::FixedWindow {
            limit: 5,
            window_ms: 1000,
        };
        let mut l = Limiters::default();
        assert_eq!(allowed(&mut l, 10_100, p, 8), 5);
        let d = l.check(10_400, "r", p, 1);
        assert_eq!((d.allowed, d.remaining, d.retry_after_ms), (false, 0, 600));
        assert_eq!(allowed(&mut l, 11_000, p, 8), 5, "a new window");
        assert_eq!(l.forget_idle(11_999, 10), 0);
        assert_eq!(l.forget_idle(12_000, 10), 1, "forgotten once full again");
    }

    #[test]
    fn sliding_window_weighs_the_previous_window() {
        let p = Policy::SlidingWindow {
            limit: 10,
            window_ms: 1000,
        };
        let mut l = Limiters::default();
        assert_eq!(allowed(&mut l, 500, p, 20), 10);
        // Half-way through the next window half of the previous one still counts.
        assert_eq!(allowed(&mut l, 1500, p, 20), 5);
        let d = l.check(1500, "r", p, 1);
        assert!(!d.allowed);
        assert_eq!(
            d.retry_after_ms, 100,
            "10 * (1000 - e) / 1000 + 5 + 1 <= 10 from e = 600"
        );
        // This window alone full: wait for the next one.
        let mut l = Limiters::default();
        assert_eq!(allowed(&mut l, 200, p, 20), 10);
        assert_eq!(l.check(300, "r", p, 1).retry_after_ms, 700);
        // Early in a window after a full one: retry once enough has slid out.
        let mut l = Limiters::default();
        assert_eq!(allowed(&mut l, 999, p, 10), 10);
        let d = l.check(1000, "r", p, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 100, "10 * (1000 - e) / 1000 + 1 <= 10 from e = 100");
        assert!(l.check(1100, "r", p, 1).allowed);
        // A window skipped entirely forgets the previous count.
        assert_eq!(allowed(&mut l, 5000, p, 20), 10);
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let p = Policy::TokenBucket {
            capacity: 3,
            refill_per_second: 10,
        };
        let mut l = Limiters::default();
        assert_eq!(allowed(&mut l, 0, p, 5), 3);
        let d = l.check(0, "r", p, 1);
        assert_eq!((d.allowed, d.retry_after_ms), (false, 100));
        assert_eq!(allowed(&mut l, 99, p, 1), 0);
        assert_eq!(allowed(&mut l, 100, p, 5), 1);
        assert_eq!(allowed(&mut l, 10_000, p, 5), 3, "never more than the capacity");
        // A changed policy starts afresh.
        let bigger = Policy::TokenBucket {
            capacity: 10,
            refill_per_second: 10,
        };
        assert_eq!(allowed(&mut l, 10_000, bigger, 20), 10);
    }
}
