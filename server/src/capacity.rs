//! Caps on how many things the cluster holds: keys, locks, sequences and entries of
//! the ephemeral tier; and on the watches one member serves at once. Every member holds the whole state in memory, so these bound
//! its memory the way the size limits in `limits` bound one request.
//!
//! Checked by the leader before it proposes (or, for the ephemeral tier, before it
//! writes): a request that would add an item past its cap is refused with
//! RESOURCE_EXHAUSTED and nothing is applied; changing what exists is always allowed.
//! The check is not part of the replicated state machine, so members may be started
//! with different caps (the leader's apply), and writes racing in one batch may pass a
//! cap by at most that batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tonic::Status;

use crate::errors::{full, overloaded};

/// The caps, from the server's flags.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub keys: usize,
    pub locks: usize,
    pub sequences: usize,
    pub ephemeral: usize,
    pub lock_waiters: usize,
    pub rate_limiters: usize,
}

/// What a cap covers, for the message and the flag to raise it.
#[derive(Clone, Copy, Debug)]
pub enum Item {
    Keys,
    Locks,
    Sequences,
    Ephemeral,
    LockWaiters,
    RateLimiters,
}

impl Item {
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Item::Keys => ("keys", "--max-keys"),
            Item::Locks => ("locks", "--max-locks"),
            Item::Sequences => ("sequences", "--max-sequences"),
            Item::Ephemeral => ("ephemeral keys and locks", "--max-ephemeral-entries"),
            Item::LockWaiters => ("callers waiting in lock queues", "--max-lock-waiters"),
            Item::RateLimiters => ("rate limiters", "--max-rate-limiters"),
        }
    }
}

impl Caps {
    fn cap(&self, item: Item) -> usize {
        match item {
            Item::Keys => self.keys,
            Item::Locks => self.locks,
            Item::Sequences => self.sequences,
            Item::Ephemeral => self.ephemeral,
            Item::LockWaiters => self.lock_waiters,
            Item::RateLimiters => self.rate_limiters,
        }
    }

    /// Admits a request that adds `adding` items to the `held` there are.
    pub fn admit(&self, item: Item, held: usize, adding: usize) -> Result<(), Status> {
        let cap = self.cap(item);
        if adding == 0 || held.saturating_add(adding) <= cap {
            return Ok(());
        }
        let (what, flag) = item.describe();
        Err(full(format!(
            "the cluster holds {held} {what} and this request would add {adding}; the limit is {cap} ({flag}): \
             remove some, or raise the limit on every member"
        )))
    }
}

/// How many watches a member has open, against `--max-watches`.
pub struct WatchSlots {
    open: Arc<AtomicUsize>,
    /// `--max-watches`.
    max: usize,
}

/// One open watch; frees its slot when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WatchSlots {
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::default(),
            max,
        }
    }

    /// A slot for one more watch, or RESOURCE_EXHAUSTED at the limit.
    pub fn take(&self) -> Result<Slot, Status> {
        let max = self.max;
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        match taken {
            Ok(_) => Ok(Slot(self.open.clone())),
            Err(_) => Err(overloaded(
                format!("this member has {max} watches open, its limit (--max-watches); open it at another member or close some"),
                1_000,
            )),
        }
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_what_would_pass_the_cap_and_names_it() {
        let caps = Caps {
            keys: 10,
            locks: 1,
            sequences: 1,
            ephemeral: 1,
            lock_waiters: 1,
            rate_limiters: 1,
        };
        assert!(caps.admit(Item::Keys, 9, 1).is_ok());
        assert!(
            caps.admit(Item::Keys, 10, 0).is_ok(),
            "changing existing keys is allowed"
        );
        let e = caps.admit(Item::Keys, 10, 1).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("limit is 10 (--max-keys)"), "{}", e.message());
        assert!(caps.admit(Item::Keys, 5, 6).is_err());
        assert!(caps
            .admit(Item::Ephemeral, 1, 1)
            .unwrap_err()
            .message()
            .contains("--max-ephemeral-entries"));
    }
}
