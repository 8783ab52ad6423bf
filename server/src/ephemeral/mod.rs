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

use crate::poison::Recover;
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
    fn new(term: u64, at: Instant) -> Self {
        Self {
            term,
            since: at,
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

/// The time an ephemeral operation runs at, passed in (never read inside the tier) so
/// tests can step it.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Cluster time (see `clock`): what expiry is judged by.
    pub ms: u64,
    /// This member's monotonic clock: what the grace period is measured on. Cluster
    /// time can jump forward when a new leader applies its predecessor's stamps, and
    /// that must not shorten the wait for an earlier leader's leases.
    pub at: Instant,
}

impl Now {
    /// Cluster time `ms`, now on this member's monotonic clock.
    pub fn new(ms: u64) -> Self {
        Self { ms, at: Instant::now() }
    }
}

/// A fence checked in the same critical section as an ephemeral write, so no unlock
/// and re-grant can come between the check and the write.
pub enum Fence<'a> {
    /// A lock of the tier itself.
    Ephemeral { resource: &'a [u8], token: u64 },
    /// A persistent lock, checked on the applied state's lock table, which the
    /// caller holds (read-locked, after a read-index) until the write is done.
    Persistent {
        locks: &'a LockTable,
        /// The applied state's time: the fence is judged at the later of it and the
        /// operation's.
        applied_ms: u64,
        resource: &'a [u8],
        token: u64,
    },
}

/// Why a fenced write was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The fence's lock is held with this token (0: not held), not the fence's.
    Fenced { current: u64 },
    /// No token is left in this term (see [`Tier::next_token`]).
    TokensExhausted,
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
    pub fn observe_term(&self, term: u64, leading: bool, at: Instant) {
        let mut t = self.tier.lock().recover();
        if t.as_ref().is_none_or(|t| t.term < term) {
            *t = Some(Tier::new(term, at));
        }
        if let Some(t) = t.as_mut().filter(|t| t.term == term && leading && !t.leading) {
            t.leading = true;
            t.since = at;
        }
    }

    /// Runs `f` on the current tier, whatever its term (for counting what it holds);
    /// `None` before the first term.
    pub fn peek<R>(&self, f: impl FnOnce(&Tier) -> R) -> Option<R> {
        self.tier.lock().recover().as_ref().map(f)
    }

    /// Runs `f` on the tier of `term` (the term leadership was just confirmed in).
    /// `None` when the tier already belongs to a later term.
    pub fn with<R>(&self, term: u64, now: Now, f: impl FnOnce(&mut Tier) -> R) -> Option<R> {
        let mut guard = self.tier.lock().recover();
        if guard.as_ref().is_none_or(|t| t.term < term) {
            *guard = Some(Tier::new(term, now.at));
        }
        let tier = guard.as_mut().filter(|t| t.term == term)?;
        tier.sweep(now.ms, SWEEP_PER_OP);
        Some(f(tier))
    }

    /// A key write with its fence checked first, in one critical section; `write` gets
    /// the store, the revision to write at and the time. `None` when the tier already
    /// belongs to a later term.
    pub fn write<R>(
        &self,
        term: u64,
        now: Now,
        fence: Option<Fence<'_>>,
        write: impl FnOnce(&mut KvStore, u64, u64) -> R,
    ) -> Option<Result<R, Refused>> {
        self.with(term, now, |tier| {
            let checked = match fence {
                None => Ok(()),
                Some(Fence::Ephemeral { resource, token }) => tier.locks.fence(now.ms, resource, token),
                Some(Fence::Persistent {
                    locks,
                    applied_ms,
                    resource,
                    token,
                }) => locks.fence(applied_ms.max(now.ms), resource, token),
            };
            checked.map_err(|current| Refused::Fenced { current })?;
            let rev = tier.next_token().ok_or(Refused::TokensExhausted)?;
            Ok(write(&mut tier.kv, rev, now.ms))
        })
    }

    /// Sets the grace period of `term`'s tier: the longest lease earlier terms may
    /// have granted (their committed mark), counted from when this member was first
    /// seen leading in the term.
    pub fn set_grace(&self, term: u64, grace: Duration, now: Now) {
        self.with(term, now, |t| {
            if t.grace.is_none() {
                t.grace = Some(grace);
            }
        });
    }

    /// Records that a lease mark of `ttl_ms` is committed for `term`.
    pub fn raise_mark(&self, term: u64, ttl_ms: u64, now: Now) {
        self.with(term, now, |t| t.mark_ms = t.mark_ms.max(ttl_ms));
    }

    fn gate(t: &Tier, ttl_ms: u64, at: Instant) -> LeaseGate {
        let Some(grace) = t.grace else {
            return LeaseGate::GraceUnknown;
        };
        let age = at.saturating_duration_since(t.since);
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
    /// caller opens (reads the grace, raises the mark) before trying again. `None`:
    /// the tier belongs to a later term, or no token is left in this one.
    pub fn try_lock(
        &self,
        term: u64,
        now: Now,
        resource: &[u8],
        owner: &[u8],
        ttl_ms: u64,
    ) -> Option<Result<EphemeralLock, LeaseGate>> {
        self.gated(term, now, ttl_ms, true, |tier| {
            let token = tier.next_token()?;
            Some(tier.locks.try_lock(token, now.ms, resource, owner, ttl_ms))
        })
    }

    /// Extends a lock held by `owner`, if the mark covers `ttl_ms`.
    pub fn extend(
        &self,
        term: u64,
        now: Now,
        resource: &[u8],
        owner: &[u8],
        ttl_ms: u64,
    ) -> Option<Result<EphemeralLock, LeaseGate>> {
        self.gated(term, now, ttl_ms, false, |tier| {
            Some(tier.locks.extend(now.ms, resource, owner, ttl_ms))
        })
    }

    /// Runs lock operation `op` on `term`'s tier once its gate is open for `ttl_ms`.
    /// An operation that `grants` waits out the grace period; one that does not (an
    /// extension: only a holder can extend, and there is none before the grace ends)
    /// runs during it.
    fn gated(
        &self,
        term: u64,
        now: Now,
        ttl_ms: u64,
        grants: bool,
        op: impl FnOnce(&mut Tier) -> Option<LockReply>,
    ) -> Option<Result<EphemeralLock, LeaseGate>> {
        self.with(term, now, |tier| {
            match Self::gate(tier, ttl_ms, now.at) {
                LeaseGate::Open => {}
                LeaseGate::Wait(_) if !grants => {}
                LeaseGate::Wait(d) => return Some(Ok(EphemeralLock::RetryAfter(d))),
                other => return Some(Err(other)),
            }
            op(tier).map(|reply| Ok(EphemeralLock::Reply(reply)))
        })
        .flatten()
    }

    /// Removes expired keys and locks (the background sweeper's tick); returns how many.
    pub fn sweep(&self, now_ms: u64) -> u32 {
        let mut t = self.tier.lock().recover();
        t.as_mut().map_or(0, |t| t.sweep(now_ms, SWEEP_PER_TICK))
    }

    /// Keys and locks held, expired or not (for tests and metrics).
    pub fn entries(&self) -> usize {
        self.peek(|t| t.kv.len() + t.locks.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cluster time `ms`, `after` past `t0` on the member's clock.
    fn at(t0: Instant, ms: u64, after: Duration) -> Now {
        Now { ms, at: t0 + after }
    }

    fn grant(tier: &EphemeralTier, term: u64, now: Now, owner: &[u8], ttl_ms: u64) -> Result<EphemeralLock, LeaseGate> {
        tier.try_lock(term, now, b"r", owner, ttl_ms).expect("tier usable")
    }

    fn token(answer: Result<EphemeralLock, LeaseGate>) -> u64 {
        match answer {
            Ok(EphemeralLock::Reply(r)) if r.ok => r.lock.map(|l| l.token).unwrap_or_default(),
            Ok(EphemeralLock::Reply(r)) => panic!("refused: {:?}", r.refusal),
            Ok(EphemeralLock::RetryAfter(d)) => panic!("asked to retry after {d:?}"),
            Err(gate) => panic!("gate: {gate:?}"),
        }
    }

    #[test]
    fn grants_wait_for_the_earlier_terms_mark_and_tokens_grow_across_terms() {
        let t0 = Instant::now();
        let tier = EphemeralTier::new(Duration::from_secs(30));
        let now = at(t0, 1_000, Duration::ZERO);
        // A fresh cluster: no earlier mark, no wait; a first grant needs a mark.
        assert!(matches!(grant(&tier, 3, now, b"A", 10), Err(LeaseGate::GraceUnknown)));
        tier.set_grace(3, Duration::ZERO, now);
        assert!(matches!(grant(&tier, 3, now, b"A", 10), Err(LeaseGate::RaiseMark)));
        tier.raise_mark(3, 10, now);
        let a_token = token(grant(&tier, 3, now, b"A", 10));
        assert_eq!(a_token >> 32, 3);
        // A longer TTL, also by extension, needs the mark raised again.
        assert!(matches!(grant(&tier, 3, now, b"A", 20), Err(LeaseGate::RaiseMark)));
        assert!(matches!(
            tier.extend(3, now, b"r", b"A", 20),
            Some(Err(LeaseGate::RaiseMark))
        ));
        // A new term forgets everything and waits out the earlier mark (50 ms here)
        // from when this member was first seen leading, on its own clock: cluster time
        // jumping ahead shortens nothing.
        let leading = at(t0, 2_000, Duration::from_secs(1));
        tier.observe_term(4, true, leading.at);
        tier.set_grace(4, Duration::from_millis(50), leading);
        let early = at(t0, 60_000, Duration::from_secs(1) + Duration::from_millis(20));
        match grant(&tier, 4, early, b"B", 10) {
            Ok(EphemeralLock::RetryAfter(d)) => assert_eq!(d, Duration::from_millis(30)),
            _ => panic!("a wait expected within the grace period"),
        }
        let later = at(t0, 2_050, Duration::from_secs(1) + Duration::from_millis(50));
        tier.raise_mark(4, 10, later);
        let b_token = token(grant(&tier, 4, later, b"B", 10));
        assert!(b_token > a_token);
        // The tier of an older term is never brought back.
        assert!(tier.try_lock(3, later, b"r", b"A", 10).is_none());
    }

    #[test]
    fn a_fenced_write_lands_only_with_the_current_token() {
        let t0 = Instant::now();
        let tier = EphemeralTier::new(Duration::from_secs(30));
        let now = at(t0, 1_000, Duration::ZERO);
        tier.set_grace(1, Duration::ZERO, now);
        tier.raise_mark(1, 100, now);
        let held = token(grant(&tier, 1, now, b"A", 100));
        let op = |v: &str| crate::sm::SetOp {
            key: b"k".to_vec(),
            value: v.as_bytes().to_vec(),
            ttl_ms: 1_000,
            conditions: Default::default(),
        };
        let fence = |token| Some(Fence::Ephemeral { resource: b"r", token });
        let wrote = tier.write(1, now, fence(held), |kv, rev, ms| kv.set(rev, ms, &op("a")));
        assert!(matches!(wrote, Some(Ok(_))));
        // A stale token is refused, naming the current one, and nothing is written.
        let refused = tier.write(1, now, fence(held - 1), |kv, rev, ms| kv.set(rev, ms, &op("b")));
        assert_eq!(refused.map(|r| r.err()), Some(Some(Refused::Fenced { current: held })));
        // Once the lease has run out (cluster time past the TTL), the holder's token
        // fences nothing.
        let expired = at(t0, 1_101, Duration::from_millis(101));
        let late = tier.write(1, expired, fence(held), |kv, rev, ms| kv.set(rev, ms, &op("c")));
        assert_eq!(late.map(|r| r.err()), Some(Some(Refused::Fenced { current: 0 })));
        let value = tier.with(1, now, |t| t.kv.get(now.ms, b"k").map(|e| e.value.clone()));
        assert_eq!(value.flatten(), Some(b"a".to_vec()));
    }

    #[test]
    fn a_persistent_fence_is_judged_on_the_applied_lock_table_at_the_later_time() {
        let t0 = Instant::now();
        let tier = EphemeralTier::new(Duration::from_secs(30));
        let mut locks = LockTable::default();
        let held = locks
            .try_lock(7, 1_000, b"p", b"A", 100)
            .lock
            .map(|l| l.token)
            .unwrap_or_default();
        assert_eq!(held, 7);
        let write = |now: Now, applied_ms| {
            let fence = Fence::Persistent {
                locks: &locks,
                applied_ms,
                resource: b"p",
                token: held,
            };
            tier.write(1, now, Some(fence), |_, rev, _| rev)
        };
        assert!(matches!(write(at(t0, 1_050, Duration::ZERO), 1_000), Some(Ok(_))));
        // The applied state is ahead of this operation's time, past the lease.
        assert_eq!(
            write(at(t0, 1_050, Duration::ZERO), 1_200).map(|r| r.err()),
            Some(Some(Refused::Fenced { current: 0 }))
        );
    }

    #[test]
    fn background_sweep_removes_expired_keys() {
        let tier = EphemeralTier::new(Duration::from_secs(30));
        tier.with(1, Now::new(0), |t| {
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
