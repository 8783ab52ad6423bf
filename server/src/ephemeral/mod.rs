//! The ephemeral tier (Kahuna's fast mode): locks and keys kept in the leader's
//! memory only, with no log entry and no fsync.
//!
//! Safety rests on three rules. Every operation first confirms leadership through
//! the batched read-index, so an isolated old leader cannot grant. The tier belongs
//! to one leader term and starts empty in each new one. And no lock is granted until
//! every lease an earlier leader may have granted has run out in its holder's view:
//!
//! - Before a leader grants an ephemeral lease (or extends one) longer than any it
//!   granted so far in its term, it commits the new longest TTL to the log
//!   (`Op::EphemeralLeaseMark`), once per rise.
//! - A new leader reads that mark from the applied state (after a read-index, so every
//!   earlier term's mark is applied) and grants nothing for that long from when it
//!   was first seen leading (`Tier::since`). A fresh cluster has no mark and waits
//!   for nothing. The old leader granted its last lease before the new one was
//!   elected (its leadership confirmations lapse before followers elect anyone else),
//!   so waiting out the mark from the new leader's election waits out every old lease.
//!
//! Tokens are `(term << 32) | counter`, so they keep increasing across leader changes.
//! The same key/value store and lock table as the replicated state machine are used,
//! run on the leader's clock with tokens as revisions. Expired entries are swept
//! in the background ([`EphemeralTier::sweep`]) and a little on every operation.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sm::limiters::Limiters;
use crate::sm::{KvStore, LockReply, LockTable};

/// Expired ephemeral keys and locks removed per operation.
const SWEEP_PER_OP: u32 = 64;
/// Removed per background sweep (see `sweeper`).
pub const SWEEP_PER_TICK: u32 = 10_000;

pub struct Tier {
    term: u64,
    /// When this member was first seen leading in `term` (the tier's creation until
    /// then). The grace period counts from here: an old leader can grant until just
    /// before the new one is elected, which is after the new term began.
    since: Instant,
    leading: bool,
    /// How long after `since` no lock is granted; `None` until the mark of earlier
    /// terms has been read from the applied state.
    grace: Option<Duration>,
    /// The longest lease TTL committed to the log as granted in this term.
    mark_ms: u64,
    counter: u32,
    pub kv: KvStore,
    pub locks: LockTable,
    pub limiters: Limiters,
}

impl Tier {
    fn new(term: u64) -> Self {
        Self {
            term,
            since: Instant::now(),
            leading: false,
            grace: None,
            mark_ms: 0,
            counter: 0,
            kv: KvStore::default(),
            locks: LockTable::default(),
            limiters: Limiters::default(),
        }
    }

    /// Keys, locks and rate limiters held (expired ones not yet swept included): what
    /// the `--max-ephemeral-entries` cap counts.
    pub fn entries(&self) -> usize {
        self.kv.len() + self.locks.len() + self.limiters.len()
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

    fn sweep(&mut self, now_ms: u64, limit: u32) -> u32 {
        let rev = self.revision();
        self.kv.sweep(rev, now_ms, limit)
            + self.locks.sweep(rev, now_ms, limit)
            + self.limiters.forget_idle(now_ms, limit)
    }
}

/// Whether a lease of some TTL may be granted in this term now.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseGate {
    /// Yes.
    Open,
    /// The earlier terms' mark has not been read yet (see [`EphemeralTier::set_grace`]).
    GraceUnknown,
    /// Not before this much time has passed.
    Wait(Duration),
    /// The TTL is longer than the mark committed for this term: raise it first.
    RaiseMark,
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

    /// Called whenever this member's term or role may have changed: a new term starts
    /// an empty tier right away, and leading in it starts the grace period, rather
    /// than at the tier's first use.
    pub fn observe_term(&self, term: u64, leading: bool) {
        if let Ok(mut t) = self.tier.lock() {
            if t.as_ref().is_none_or(|t| t.term < term) {
                *t = Some(Tier::new(term));
            }
            if let Some(t) = t.as_mut().filter(|t| t.term == term && leading && !t.leading) {
                t.leading = true;
                t.since = Instant::now();
            }
        }
    }

    /// Runs `f` on the current tier, whatever its term (for counting what it holds);
    /// `None` before the first term or when the lock is poisoned.
    pub fn peek<R>(&self, f: impl FnOnce(&Tier) -> R) -> Option<R> {
        let guard = self.tier.lock().ok()?;
        guard.as_ref().map(f)
    }

    /// Runs `f` on the tier of `term` (the term leadership was just confirmed in).
    /// `None` when the lock is poisoned or the tier already belongs to a later term.
    pub fn with<R>(&self, term: u64, now_ms: u64, f: impl FnOnce(&mut Tier) -> R) -> Option<R> {
        let mut guard = self.tier.lock().ok()?;
        if guard.as_ref().is_none_or(|t| t.term < term) {
            *guard = Some(Tier::new(term));
        }
        let tier = guard.as_mut().filter(|t| t.term == term)?;
        tier.sweep(now_ms, SWEEP_PER_OP);
        Some(f(tier))
    }

    /// Sets the grace period of `term`'s tier: the longest lease earlier terms may
    /// have granted (their committed mark), counted from when this member was first
    /// seen leading in the term.
    pub fn set_grace(&self, term: u64, grace: Duration) {
        self.with(term, 0, |t| {
            if t.grace.is_none() {
                t.grace = Some(grace);
            }
        });
    }

    /// Records that a lease mark of `ttl_ms` is committed for `term`.
    pub fn raise_mark(&self, term: u64, ttl_ms: u64) {
        self.with(term, 0, |t| t.mark_ms = t.mark_ms.max(ttl_ms));
    }

    fn gate(t: &Tier, ttl_ms: u64) -> LeaseGate {
        let Some(grace) = t.grace else {
            return LeaseGate::GraceUnknown;
        };
        let age = t.since.elapsed();
        if age < grace {
            return LeaseGate::Wait(grace - age);
        }
        if ttl_ms > t.mark_ms {
            return LeaseGate::RaiseMark;
        }
        LeaseGate::Open
    }

    /// Grants or refreshes a lock, if the gate is open for `ttl_ms`, in the same
    /// critical section as the gate check; otherwise answers the gate, which the
    /// caller opens (reads the grace, raises the mark) before trying again.
    pub fn try_lock(
        &self,
        term: u64,
        now_ms: u64,
        resource: &[u8],
        owner: &[u8],
        ttl_ms: u64,
    ) -> Option<Result<EphemeralLock, LeaseGate>> {
        self.with(term, now_ms, |tier| {
            match Self::gate(tier, ttl_ms) {
                LeaseGate::Open => {}
                LeaseGate::Wait(d) => return Some(Ok(EphemeralLock::RetryAfter(d))),
                other => return Some(Err(other)),
            }
            let token = tier.next_token()?;
            Some(Ok(EphemeralLock::Reply(
                tier.locks.try_lock(token, now_ms, resource, owner, ttl_ms),
            )))
        })
        .flatten()
    }

    /// Extends a lock held by `owner`, if the mark covers `ttl_ms`.
    pub fn extend(
        &self,
        term: u64,
        now_ms: u64,
        resource: &[u8],
        owner: &[u8],
        ttl_ms: u64,
    ) -> Option<Result<EphemeralLock, LeaseGate>> {
        self.with(term, now_ms, |tier| {
            match Self::gate(tier, ttl_ms) {
                // Only a holder can extend, and there is none before the grace ends.
                LeaseGate::Open | LeaseGate::Wait(_) => {}
                other => return Err(other),
            }
            Ok(EphemeralLock::Reply(tier.locks.extend(now_ms, resource, owner, ttl_ms)))
        })
    }

    /// Removes expired keys and locks (the background sweeper's tick); returns how many.
    pub fn sweep(&self, now_ms: u64) -> u32 {
        match self.tier.lock() {
            Ok(mut t) => t.as_mut().map_or(0, |t| t.sweep(now_ms, SWEEP_PER_TICK)),
            Err(_) => 0,
        }
    }

    /// Keys and locks held, expired or not (for tests and metrics).
    pub fn entries(&self) -> usize {
        match self.tier.lock() {
            Ok(t) => t.as_ref().map_or(0, |t| t.kv.len() + t.locks.len()),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tier: &EphemeralTier, term: u64, owner: &[u8], ttl_ms: u64) -> Result<EphemeralLock, LeaseGate> {
        tier.try_lock(term, 0, b"r", owner, ttl_ms).expect("tier usable")
    }

    #[test]
    fn grants_wait_for_the_earlier_terms_mark_and_tokens_grow_across_terms() {
        let tier = EphemeralTier::new(Duration::from_secs(30));
        // A fresh cluster: no earlier mark, no wait; a first grant needs a mark.
        assert!(matches!(grant(&tier, 3, b"A", 10), Err(LeaseGate::GraceUnknown)));
        tier.set_grace(3, Duration::ZERO);
        assert!(matches!(grant(&tier, 3, b"A", 10), Err(LeaseGate::RaiseMark)));
        tier.raise_mark(3, 10);
        let Ok(EphemeralLock::Reply(a)) = grant(&tier, 3, b"A", 10) else {
            panic!("grant expected once the mark is raised");
        };
        let a_token = a.lock.map(|l| l.token).unwrap_or_default();
        assert_eq!(a_token >> 32, 3);
        // A longer TTL, also by extension, needs the mark raised again.
        assert!(matches!(grant(&tier, 3, b"A", 20), Err(LeaseGate::RaiseMark)));
        assert!(matches!(
            tier.extend(3, 0, b"r", b"A", 20),
            Some(Err(LeaseGate::RaiseMark))
        ));
        // A new term forgets everything and waits out the earlier mark (50 ms here).
        tier.observe_term(4, true);
        tier.set_grace(4, Duration::from_millis(50));
        assert!(matches!(grant(&tier, 4, b"B", 10), Ok(EphemeralLock::RetryAfter(_))));
        std::thread::sleep(Duration::from_millis(60));
        tier.raise_mark(4, 10);
        let Ok(EphemeralLock::Reply(b)) = grant(&tier, 4, b"B", 10) else {
            panic!("grant expected after the grace period");
        };
        assert!(b.ok);
        assert!(b.lock.map(|l| l.token).unwrap_or_default() > a_token);
        // The tier of an older term is never brought back.
        assert!(tier.try_lock(3, 0, b"r", b"A", 10).is_none());
    }

    #[test]
    fn background_sweep_removes_expired_keys() {
        let tier = EphemeralTier::new(Duration::from_secs(30));
        tier.with(1, 0, |t| {
            for i in 0..100u32 {
                let rev = t.next_token().unwrap_or_default();
                let op = crate::sm::SetOp {
                    key: format!("k{i}").into_bytes(),
                    value: Vec::new(),
                    ttl_ms: 10,
                    conditions: Default::default(),
                };
                t.kv.set(rev, 0, &op);
            }
        });
        assert_eq!(tier.entries(), 100);
        assert_eq!(tier.sweep(5), 0);
        assert_eq!(tier.sweep(10), 100);
        assert_eq!(tier.entries(), 0);
    }
}
