//! The ephemeral tier (Kahuna's fast mode): locks and keys kept in the leader's
//! memory only, with no log entry and no fsync.
//!
//! Safety rests on three rules. Every operation first confirms leadership through
//! the batched read-index, so an isolated old leader cannot grant. The tier belongs
//! to one leader term and starts empty in each new one. And for one maximum
//! ephemeral TTL after the tier starts, no lock is granted: any lease an earlier
//! leader granted has run out by then, in its holder's own view. Tokens are
//! `(term << 32) | counter`, so they keep increasing across leader changes.
//!
//! The same key/value store and lock table as the replicated state machine are
//! used, run on the leader's clock with tokens as revisions.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sm::{KvStore, LockReply, LockTable, Reply};

/// Expired ephemeral keys and locks removed per operation, to keep memory bounded
/// without a background task.
const SWEEP_PER_OP: u32 = 64;

pub struct Tier {
    term: u64,
    since: Instant,
    counter: u32,
    pub kv: KvStore,
    pub locks: LockTable,
}

impl Tier {
    fn new(term: u64) -> Self {
        Self {
            term,
            since: Instant::now(),
            counter: 0,
            kv: KvStore::default(),
            locks: LockTable::default(),
        }
    }

    /// The next token/revision of this term. `None` once 2^32 - 1 were handed out in
    /// one term: granting more would break token order.
    pub fn next_token(&mut self) -> Option<u64> {
        self.counter = self.counter.checked_add(1)?;
        Some((self.term << 32) | u64::from(self.counter))
    }

    /// The revision of the latest change in this tier.
    pub fn revision(&self) -> u64 {
        (self.term << 32) | u64::from(self.counter)
    }

    pub fn sweep(&mut self, now_ms: u64) {
        let rev = self.revision();
        self.kv.sweep(rev, now_ms, SWEEP_PER_OP);
        self.locks.sweep(now_ms, SWEEP_PER_OP);
    }
}

/// A lock answer from the tier: the reply, or how long until grants resume.
pub enum EphemeralLock {
    Reply(LockReply),
    RetryAfter(Duration),
}

pub struct EphemeralTier {
    max_ttl: Duration,
    tier: Mutex<Option<Tier>>,
}

impl EphemeralTier {
    pub fn new(max_ttl: Duration) -> Self {
        Self {
            max_ttl,
            tier: Mutex::new(None),
        }
    }

    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Called whenever this member's term may have changed: a new term starts an
    /// empty tier (and its grace period) right away rather than at its first use.
    pub fn observe_term(&self, term: u64) {
        if let Ok(mut t) = self.tier.lock() {
            if t.as_ref().is_none_or(|t| t.term != term) {
                *t = Some(Tier::new(term));
            }
        }
    }

    /// Runs `f` on the tier of `term` (the term leadership was just confirmed in).
    pub fn with<R>(&self, term: u64, now_ms: u64, f: impl FnOnce(&mut Tier) -> R) -> Option<R> {
        let mut guard = self.tier.lock().ok()?;
        if guard.as_ref().is_none_or(|t| t.term != term) {
            *guard = Some(Tier::new(term));
        }
        let tier = guard.as_mut()?;
        tier.sweep(now_ms);
        Some(f(tier))
    }

    pub fn try_lock(
        &self,
        term: u64,
        now_ms: u64,
        resource: &[u8],
        owner: &[u8],
        ttl_ms: u64,
    ) -> Option<EphemeralLock> {
        let max_ttl = self.max_ttl;
        self.with(term, now_ms, |tier| {
            let age = tier.since.elapsed();
            if age < max_ttl {
                return Some(EphemeralLock::RetryAfter(max_ttl - age));
            }
            let token = tier.next_token()?;
            Some(EphemeralLock::Reply(
                tier.locks.try_lock(token, now_ms, resource, owner, ttl_ms),
            ))
        })
        .flatten()
    }

    /// A key write: `f` gets the store and the revision to write at.
    pub fn write(&self, term: u64, now_ms: u64, f: impl FnOnce(&mut KvStore, u64) -> Reply) -> Option<Reply> {
        self.with(term, now_ms, |tier| {
            let rev = tier.next_token()?;
            Some(f(&mut tier.kv, rev))
        })
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_grant_during_grace_and_tokens_grow_across_terms() {
        let tier = EphemeralTier::new(Duration::from_millis(50));
        assert!(matches!(
            tier.try_lock(3, 0, b"r", b"A", 10),
            Some(EphemeralLock::RetryAfter(_))
        ));
        std::thread::sleep(Duration::from_millis(60));
        let Some(EphemeralLock::Reply(a)) = tier.try_lock(3, 0, b"r", b"A", 10) else {
            panic!("grant expected after the grace period");
        };
        let a_token = a.lock.map(|l| l.token).unwrap_or_default();
        assert_eq!(a_token >> 32, 3);
        // A new term forgets everything and starts a new grace period.
        tier.observe_term(4);
        assert!(matches!(
            tier.try_lock(4, 0, b"r", b"B", 10),
            Some(EphemeralLock::RetryAfter(_))
        ));
        std::thread::sleep(Duration::from_millis(60));
        let Some(EphemeralLock::Reply(b)) = tier.try_lock(4, 0, b"r", b"B", 10) else {
            panic!("grant expected");
        };
        assert!(b.ok);
        assert!(b.lock.map(|l| l.token).unwrap_or_default() > a_token);
    }
}
