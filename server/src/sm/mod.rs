//! The deterministic state machine.
//!
//! Every replica applies the same log to the same initial state and reaches the same
//! state: nothing here reads a clock, a random source or the environment. Time comes
//! from the leader's stamp on each command ([`Command::time_ms`]) and only moves
//! forward (`now = max(now, stamp)`). A log entry carries a batch of commands; each
//! applied command takes the next revision, so revisions (and the fencing tokens
//! made from them) increase by one per command, in log order.

pub mod dedupe;

/// The state machine's collections are persistent (structurally shared): cloning the
/// whole state is O(1), so a snapshot clones it under the read lock and serializes the
/// clone after releasing it, and applies go on meanwhile (a write then copies only
/// the tree nodes it touches, while the clone lives). They encode like the std
/// collections they replace (maps as maps, sets and sequences as sequences), so
/// snapshots taken before read back unchanged.
pub type Map<K, V> = imbl::OrdMap<K, V>;
pub type Set<T> = imbl::OrdSet<T>;

/// An entry of an expiry index: a tuple ordered by its time first.
pub trait Due: Ord + Clone {
    fn due_at(&self) -> u64;
}

impl<A: Ord + Clone> Due for (u64, A) {
    fn due_at(&self) -> u64 {
        self.0
    }
}

impl<A: Ord + Clone, B: Ord + Clone> Due for (u64, A, B) {
    fn due_at(&self) -> u64 {
        self.0
    }
}

/// Up to `limit` entries of an expiry index that are due at `now_ms`, earliest first
/// (copied out, so the caller can remove them as it goes).
pub fn due<E: Due>(index: &Set<E>, now_ms: u64, limit: u32) -> Vec<E> {
    index
        .iter()
        .take_while(|e| e.due_at() <= now_ms)
        .take(limit as usize)
        .cloned()
        .collect()
}
pub type Seq<T> = imbl::Vector<T>;
mod kv;
pub mod limiters;
pub mod locks;
pub mod sequences;
pub mod txn;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use dedupe::Dedupe;
pub use kv::{
    retained_from, Event, EventKind, HistoryError, KeyValue, Keys, KvStore, ENTRY_OVERHEAD_BYTES,
    HISTORY_RETENTION_REVISIONS, MAX_HISTORY_BYTES,
};
pub use locks::{LockReply, LockTable, LockView, Refusal};
pub use sequences::{Range, SeqRefusal, Sequences};

/// A state-machine command as stored in the Raft log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Command {
    /// The proposing leader's wall clock (Unix ms), made monotonic by the leader.
    pub time_ms: u64,
    /// `(client_id, request_id)` for exactly-once retries; `None` disables dedupe.
    pub request: Option<(String, u64)>,
    /// `(resource, token)`: apply only while that persistent lock is held with that token.
    pub fence: Option<(Vec<u8>, u64)>,
    pub op: Op,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Op {
    Set(SetOp),
    Delete(DeleteOp),
    Extend {
        key: Vec<u8>,
        ttl_ms: u64,
    },
    Txn(txn::Txn),
    TryLock {
        resource: Vec<u8>,
        owner: Vec<u8>,
        ttl_ms: u64,
    },
    ExtendLock {
        resource: Vec<u8>,
        owner: Vec<u8>,
        ttl_ms: u64,
    },
    Unlock {
        resource: Vec<u8>,
        owner: Vec<u8>,
    },
    /// Reserve `count` identifiers; `key` is remembered for `window_ms`.
    SeqNext {
        name: String,
        count: u64,
        key: Option<String>,
        window_ms: u64,
    },
    /// Proposed by the leader: remove what has expired (keys, locks, idempotency
    /// keys), at most `limit` of each.
    Sweep {
        limit: u32,
    },
    /// Proposed by a leader before it grants an ephemeral lease longer than any it
    /// granted so far in its term: the next leader waits this long before granting
    /// (see `ephemeral`).
    EphemeralLeaseMark {
        ttl_ms: u64,
    },
    /// Take the lock, or a place in its queue held for `place_ms` (see `locks`).
    /// Appended last: the log's encoding names variants by position.
    WaitLock {
        resource: Vec<u8>,
        owner: Vec<u8>,
        ttl_ms: u64,
        place_ms: u64,
        /// The holder's value once granted (an election candidate's).
        value: Vec<u8>,
    },
    /// Replace the value of a lock the owner holds (an election leader's).
    Proclaim {
        resource: Vec<u8>,
        owner: Vec<u8>,
        value: Vec<u8>,
    },
    /// Take `cost` units from rate limiter `name` if it has them.
    RateCheck {
        name: String,
        policy: limiters::Policy,
        cost: u64,
    },
    /// Take a permit of semaphore `name` (of `limit` permits), or a place in its queue
    /// held for `place_ms` when that is not 0 (see `locks`).
    AcquirePermit {
        name: Vec<u8>,
        owner: Vec<u8>,
        limit: u32,
        ttl_ms: u64,
        place_ms: u64,
    },
    /// Proposed by the leader: the members a leader of this cluster has replicated
    /// entries to (still in the membership), so that every member, not only the
    /// leader of the moment, can tell that one of them starting empty lost its data.
    MembersReplicated {
        members: Vec<u64>,
    },
}

/// Conditions a write is subject to; all given ones must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Conditions {
    pub if_not_exists: bool,
    pub if_exists: bool,
    pub compare_value: Option<Vec<u8>>,
    /// `Some(0)` means "must not exist".
    pub compare_revision: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetOp {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub ttl_ms: u64,
    pub conditions: Conditions,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeleteOp {
    pub key: Vec<u8>,
    pub conditions: Conditions,
}

/// What one log entry carries: commands proposed together, applied in order.
pub type Batch = Vec<Command>;

/// What applying one command produced: its revision and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub revision: u64,
    pub reply: Reply,
}

/// The answer to a command, returned to the proposer and kept for dedupe.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Reply {
    /// Set and extend: whether it happened, and the key as it now stands.
    Write {
        succeeded: bool,
        kv: Option<KeyValue>,
    },
    /// Delete: whether the compare held, whether a key was removed, and the key
    /// before the delete (or as it stands, when the compare failed).
    Delete {
        succeeded: bool,
        deleted: bool,
        kv: Option<KeyValue>,
    },
    Sweep {
        removed: u32,
    },
    Txn {
        succeeded: bool,
        results: Vec<txn::StepResult>,
    },
    Lock(LockReply),
    Seq(Result<Range, SeqRefusal>),
    /// The fence did not hold: the lock is not held with the given token. `current`
    /// is the live token (0 when free).
    Fenced {
        current: u64,
    },
    /// A leader's bookkeeping entry was applied.
    Recorded,
    /// The `(client_id, request_id)` was first used for a different request (another
    /// operation or other arguments): nothing was applied.
    RequestReused,
    /// A retry of a request applied earlier whose answer was not kept (it was larger
    /// than the dedupe table keeps per answer, or its client's answers outgrew their
    /// budget): applied once, not again.
    AnswerNotKept,
    /// Kept by the dedupe table for a set that succeeded: the key as written without
    /// its value, which the retry carries (see `dedupe`). Never leaves the table.
    WrittenAsSent {
        kv: KeyValue,
    },
    Rate(limiters::Decision),
}

/// All replicated application state, snapshotted as a whole.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateMachine {
    /// The revision of the last applied command (0 before the first).
    pub revision: u64,
    /// Deterministic time: the largest leader stamp applied so far.
    pub now_ms: u64,
    /// The leader term whose first command last extended every lease.
    pub lease_term: u64,
    pub kv: KvStore,
    pub locks: LockTable,
    pub sequences: Sequences,
    pub dedupe: Dedupe,
    /// The longest ephemeral lease TTL granted in `ephemeral_mark_term`, the latest
    /// term that granted any (whose leader waited out every earlier term's leases).
    pub ephemeral_mark_ms: u64,
    pub ephemeral_mark_term: u64,
    pub limiters: limiters::Limiters,
    /// The members a leader has replicated entries to (see `Op::MembersReplicated`).
    pub replicated: BTreeSet<u64>,
}

impl StateMachine {
    /// Applies `cmd`, a command of an entry written in leader term `term`, as the
    /// next revision.
    pub fn apply(&mut self, term: u64, cmd: &Command) -> Outcome {
        self.revision += 1;
        let revision = self.revision;
        let reply = self.run_command(revision, term, cmd);
        Outcome { revision, reply }
    }

    fn run_command(&mut self, revision: u64, term: u64, cmd: &Command) -> Reply {
        let before = self.now_ms;
        self.now_ms = self.now_ms.max(cmd.time_ms);
        let now = self.now_ms;
        if term > self.lease_term {
            // The first command of a new leader: every lease that was live at the
            // last time the old leader stamped ends no sooner than one full TTL of
            // the new leader's time. Judged at `before`, not `now`: a new leader
            // whose clock runs ahead must not see a live lease as already expired.
            self.lease_term = term;
            self.locks.extend_all_leases(before, now);
        }
        let digest = cmd.request.as_ref().map(|_| dedupe::digest(cmd));
        if let (Some((client, request_id)), Some(digest)) = (&cmd.request, digest) {
            match self.dedupe.lookup(client, *request_id, digest, &cmd.op) {
                Some(Ok(reply)) => return reply,
                Some(Err(dedupe::Mismatch)) => return Reply::RequestReused,
                None => {}
            }
        }
        let fenced = cmd
            .fence
            .as_ref()
            .and_then(|(resource, token)| self.locks.fence(now, resource, *token).err());
        let reply = match fenced {
            Some(current) => Reply::Fenced { current },
            None if self.is_stale_lock_request(cmd) => Reply::Lock(LockReply {
                ok: false,
                refusal: Refusal::NotHeld,
                lock: None,
            }),
            None => self.run(revision, term, now, &cmd.op),
        };
        if let (Op::Unlock { resource, owner }, Some((client, request_id))) = (&cmd.op, &cmd.request) {
            self.locks.withdraw(now, resource, owner, client, *request_id);
        }
        self.kv.prune_history(revision);
        if let (Some((client, request_id)), Some(digest)) = (&cmd.request, digest) {
            self.dedupe.record(client, *request_id, digest, now, &cmd.op, &reply);
        }
        reply
    }

    /// A lock request its client sent before the owner's unlock, applied after it
    /// (see `locks`): refused, so it neither queues nor takes a lock nobody renews.
    fn is_stale_lock_request(&self, cmd: &Command) -> bool {
        let Some((client, request_id)) = &cmd.request else {
            return false;
        };
        let (resource, owner) = match &cmd.op {
            Op::TryLock { resource, owner, .. } | Op::WaitLock { resource, owner, .. } => (resource, owner),
            Op::AcquirePermit { name, owner, .. } => (name, owner),
            _ => return false,
        };
        self.locks.is_withdrawn(resource, owner, client, *request_id)
    }

    fn run(&mut self, revision: u64, term: u64, now: u64, op: &Op) -> Reply {
        match op {
            Op::Set(op) => self.kv.set(revision, now, op),
            Op::Delete(op) => self.kv.delete(revision, now, op),
            Op::Extend { key, ttl_ms } => self.kv.extend(now, key, *ttl_ms),
            Op::Txn(t) => txn::apply(&mut self.kv, &self.locks, revision, now, t),
            Op::TryLock {
                resource,
                owner,
                ttl_ms,
            } => Reply::Lock(self.locks.try_lock(revision, now, resource, owner, *ttl_ms)),
            Op::ExtendLock {
                resource,
                owner,
                ttl_ms,
            } => Reply::Lock(self.locks.extend(now, resource, owner, *ttl_ms)),
            Op::Unlock { resource, owner } => Reply::Lock(self.locks.unlock(revision, now, resource, owner)),
            Op::WaitLock {
                resource,
                owner,
                ttl_ms,
                place_ms,
                value,
            } => {
                let candidate = locks::Candidate {
                    owner,
                    ttl_ms: *ttl_ms,
                    place_ms: *place_ms,
                    value,
                };
                Reply::Lock(self.locks.wait_lock(revision, now, resource, &candidate))
            }
            Op::Proclaim { resource, owner, value } => Reply::Lock(self.locks.proclaim(now, resource, owner, value)),
            Op::AcquirePermit {
                name,
                owner,
                limit,
                ttl_ms,
                place_ms,
            } => {
                let candidate = locks::Candidate {
                    owner,
                    ttl_ms: *ttl_ms,
                    place_ms: *place_ms,
                    value: &[],
                };
                Reply::Lock(self.locks.acquire_permit(revision, now, name, *limit, &candidate))
            }
            Op::RateCheck { name, policy, cost } => Reply::Rate(self.limiters.check(now, name, *policy, *cost)),
            Op::SeqNext {
                name,
                count,
                key,
                window_ms,
            } => Reply::Seq(self.sequences.next(now, name, *count, key.as_deref(), *window_ms)),
            Op::Sweep { limit } => {
                let removed = self.kv.sweep(revision, now, *limit) + self.locks.sweep(revision, now, *limit);
                self.sequences.forget_expired(now);
                self.dedupe.forget_idle(now);
                self.limiters.forget_idle(now, *limit);
                Reply::Sweep { removed }
            }
            Op::EphemeralLeaseMark { ttl_ms } => {
                if term > self.ephemeral_mark_term {
                    self.ephemeral_mark_term = term;
                    self.ephemeral_mark_ms = *ttl_ms;
                } else {
                    self.ephemeral_mark_ms = self.ephemeral_mark_ms.max(*ttl_ms);
                }
                Reply::Recorded
            }
            Op::MembersReplicated { members } => {
                self.replicated = members.iter().copied().collect();
                Reply::Recorded
            }
        }
    }

    /// The earliest time something expires, to know when a sweep is due.
    pub fn next_expiry(&self) -> Option<u64> {
        [self.kv.next_expiry(), self.locks.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots written when the state used std collections read back into the
    /// persistent ones, and the persistent ones encode the same bytes.
    #[test]
    fn persistent_collections_encode_like_the_std_ones() {
        use std::collections::{BTreeMap, BTreeSet, VecDeque};
        let map: BTreeMap<Vec<u8>, u64> = [(b"a".to_vec(), 1), (b"b".to_vec(), 2)].into_iter().collect();
        let set: BTreeSet<(u64, Vec<u8>)> = [(3, b"x".to_vec()), (1, b"y".to_vec())].into_iter().collect();
        let seq: VecDeque<(u64, Vec<u8>)> = [(5, b"p".to_vec()), (4, b"q".to_vec())].into_iter().collect();
        let old = bincode::serialize(&(&map, &set, &seq)).expect("encode");
        type Entry = (u64, Vec<u8>);
        let new: (Map<Vec<u8>, u64>, Set<Entry>, Seq<Entry>) = bincode::deserialize(&old).expect("decode");
        assert_eq!(new.0.get(b"b".as_slice()), Some(&2));
        assert_eq!(new.1.get_min(), Some(&(1, b"y".to_vec())));
        assert_eq!(new.2.front(), Some(&(5, b"p".to_vec())));
        assert_eq!(bincode::serialize(&new).expect("encode"), old);
    }

    /// A clone (what a snapshot serializes) is unaffected by later applies.
    #[test]
    fn a_clone_of_the_state_is_a_stable_view() {
        let mut sm = StateMachine::default();
        sm.apply(1, &set("k", "1", 10));
        let view = sm.clone();
        sm.apply(1, &set("k", "2", 11));
        sm.apply(1, &set("other", "3", 12));
        assert_eq!(view.kv.get(10, b"k").map(|k| k.value), Some(b"1".to_vec()));
        assert_eq!(view.kv.len(), 1);
        assert_eq!(sm.kv.get(12, b"k").map(|k| k.value), Some(b"2".to_vec()));
    }

    fn set(key: &str, value: &str, time_ms: u64) -> Command {
        Command {
            time_ms,
            request: None,
            fence: None,
            op: Op::Set(SetOp {
                key: key.into(),
                value: value.into(),
                ttl_ms: 0,
                conditions: Conditions::default(),
            }),
        }
    }

    /// A mixed log of every kind of command, with leader changes, fences and retries.
    fn mixed_log() -> Vec<(u64, Command)> {
        (0..400u64)
            .map(|i| {
                let key = format!("k{}", i % 7).into_bytes();
                let resource = format!("r{}", i % 3).into_bytes();
                let owner = format!("o{}", i % 4).into_bytes();
                let op = match i % 9 {
                    0 => Op::Sweep { limit: 10 },
                    1 => Op::TryLock {
                        resource,
                        owner,
                        ttl_ms: 40,
                    },
                    2 => Op::ExtendLock {
                        resource,
                        owner,
                        ttl_ms: 40,
                    },
                    3 => Op::Unlock { resource, owner },
                    4 => Op::SeqNext {
                        name: "s".into(),
                        count: 1 + i % 5,
                        key: (i % 2 == 0).then(|| format!("idem{}", i % 10)),
                        window_ms: 100,
                    },
                    5 => Op::Txn(txn::Txn {
                        compares: vec![txn::Compare {
                            key: key.clone(),
                            target: txn::Target::Version,
                            op: txn::CmpOp::Less,
                            value: Vec::new(),
                            number: 3,
                        }],
                        then: vec![txn::Step::Set {
                            key: key.clone(),
                            value: format!("t{i}").into_bytes(),
                            ttl_ms: 30,
                        }],
                        otherwise: vec![txn::Step::Delete { key }],
                    }),
                    6 => Op::Delete(DeleteOp {
                        key,
                        conditions: Conditions::default(),
                    }),
                    _ => Op::Set(SetOp {
                        key,
                        value: format!("v{i}").into_bytes(),
                        ttl_ms: if i % 3 == 0 { 25 } else { 0 },
                        conditions: Conditions::default(),
                    }),
                };
                let cmd = Command {
                    time_ms: 1000 + i * 7 - (i % 5) * 11,
                    request: (i % 4 == 0).then(|| ("c".to_owned(), i / 8)),
                    fence: (i % 13 == 0).then(|| (b"r1".to_vec(), i)),
                    op,
                };
                // A leader change every 50 entries.
                (1 + i / 50, cmd)
            })
            .collect()
    }

    #[test]
    fn same_log_same_state() {
        let mut a = StateMachine::default();
        let mut b = StateMachine::default();
        for (term, c) in mixed_log().iter() {
            assert_eq!(a.apply(*term, c), b.apply(*term, c));
        }
        assert_eq!(a, b);
        // A replica restored from a snapshot mid-way ends in the same state too.
        let mut c = StateMachine::default();
        let log = mixed_log();
        for (term, cmd) in log.iter().take(200) {
            c.apply(*term, cmd);
        }
        let bytes = bincode::serialize(&c).expect("serialize");
        let mut c: StateMachine = bincode::deserialize(&bytes).expect("deserialize");
        for (term, cmd) in log.iter().skip(200) {
            c.apply(*term, cmd);
        }
        assert_eq!(a, c);
    }

    #[test]
    fn new_term_extends_leases_before_anything_else() {
        let mut sm = StateMachine::default();
        let lock = |owner: &str, time_ms| lock_cmd(owner, 100, time_ms);
        assert!(matches!(
            sm.apply(1, &lock("A", 1000)).reply,
            Reply::Lock(LockReply { ok: true, .. })
        ));
        // A new leader whose clock is 90 ms ahead: without the extension A's lease
        // would have 10 ms left in B's request; with it, A keeps a full TTL.
        assert!(matches!(
            sm.apply(2, &lock("B", 1090)).reply,
            Reply::Lock(LockReply { ok: false, .. })
        ));
        assert_eq!(sm.locks.get(1090, b"r").map(|l| l.expires_at_ms), Some(1190));
        // A fence with A's token holds; with any other it does not.
        let fenced = |token| Command {
            time_ms: 1100,
            request: None,
            fence: Some((b"r".to_vec(), token)),
            op: Op::Sweep { limit: 0 },
        };
        assert_eq!(sm.apply(2, &fenced(2)).reply, Reply::Fenced { current: 1 });
        assert!(matches!(sm.apply(2, &fenced(1)).reply, Reply::Sweep { .. }));
    }

    fn lock_cmd(owner: &str, ttl_ms: u64, time_ms: u64) -> Command {
        Command {
            time_ms,
            request: None,
            fence: None,
            op: Op::TryLock {
                resource: b"r".to_vec(),
                owner: owner.into(),
                ttl_ms,
            },
        }
    }

    #[test]
    fn a_lock_request_sent_before_the_owners_unlock_is_stale() {
        let mut sm = StateMachine::default();
        let from = |id: u64, op: Op| Command {
            time_ms: 1_000,
            request: Some(("client-1".into(), id)),
            fence: None,
            op,
        };
        let wait = |owner: &str| Op::WaitLock {
            resource: b"r".to_vec(),
            owner: owner.into(),
            ttl_ms: 10_000,
            place_ms: 7_000,
            value: Vec::new(),
        };
        let unlock = |owner: &str| Op::Unlock {
            resource: b"r".to_vec(),
            owner: owner.into(),
        };
        sm.apply(1, &lock_cmd("holder", 10_000, 1_000));
        // W queued (request 5), gave up (request 7); its attempt 6, forwarded late,
        // reaches the log after the unlock: it must not take W's place again.
        sm.apply(1, &from(5, wait("W")));
        assert!(sm.locks.is_waiting(b"r", b"W"));
        sm.apply(1, &from(7, unlock("W")));
        assert!(!sm.locks.is_waiting(b"r", b"W"));
        let late = sm.apply(1, &from(6, wait("W"))).reply;
        assert!(matches!(late, Reply::Lock(LockReply { ok: false, .. })), "{late:?}");
        assert!(!sm.locks.is_waiting(b"r", b"W"), "a withdrawn request took a place");
        // Nor a permit, nor a free lock.
        sm.apply(1, &from(8, unlock("holder")));
        let late = sm.apply(1, &from(6, wait("W"))).reply;
        assert!(matches!(late, Reply::Lock(LockReply { ok: false, .. })), "{late:?}");
        assert_eq!(sm.locks.get(1_000, b"r"), None);
        // The same owner asking again afterwards (a later request) is served; so is
        // another client using the same owner name.
        assert!(matches!(
            sm.apply(1, &from(9, wait("W"))).reply,
            Reply::Lock(LockReply { ok: true, .. })
        ));
        sm.apply(1, &from(10, unlock("W")));
        let other = Command {
            request: Some(("client-2".into(), 1)),
            ..from(0, wait("W"))
        };
        assert!(matches!(
            sm.apply(1, &other).reply,
            Reply::Lock(LockReply { ok: true, .. })
        ));
        // The withdrawal is forgotten after its window, by a sweep.
        let sweep = Command {
            time_ms: 1_000 + locks::WITHDRAWN_MS,
            request: None,
            fence: None,
            op: Op::Sweep { limit: 100 },
        };
        assert_eq!(sm.next_expiry(), Some(11_000), "W's 10 s lease comes first");
        sm.apply(1, &sweep);
        assert!(!sm.locks.is_withdrawn(b"r", b"W", "client-1", 0));
    }

    #[test]
    fn a_new_leader_whose_clock_is_ahead_does_not_cut_leases() {
        let mut sm = StateMachine::default();
        // A holds a 60 s lease granted at t = 1,000 s by the term-1 leader.
        let granted = sm.apply(1, &lock_cmd("A", 60_000, 1_000_000)).reply;
        assert!(matches!(granted, Reply::Lock(LockReply { ok: true, .. })));
        // The term-2 leader's clock is 120 s ahead: at its stamp, A's lease has
        // "expired", but it was live at the last time the state machine knew.
        let b = sm.apply(2, &lock_cmd("B", 60_000, 1_120_000)).reply;
        assert!(
            matches!(
                b,
                Reply::Lock(LockReply {
                    ok: false,
                    refusal: Refusal::HeldByOther,
                    ..
                })
            ),
            "B was granted a lock whose holder's lease was still valid: {b:?}"
        );
        // A keeps one full TTL from the new leader's first stamp.
        assert_eq!(
            sm.locks.get(1_120_000, b"r").map(|l| (l.owner, l.expires_at_ms)),
            Some((b"A".to_vec(), 1_180_000))
        );
        // A lease that had already ended under the old leader is not revived.
        let mut sm = StateMachine::default();
        sm.apply(1, &lock_cmd("A", 100, 1_000));
        sm.apply(1, &set("x", "1", 1_200));
        assert!(matches!(
            sm.apply(2, &lock_cmd("B", 100, 1_300)).reply,
            Reply::Lock(LockReply { ok: true, .. })
        ));
    }

    #[test]
    fn time_continues_after_a_leader_whose_clock_was_far_ahead() {
        use std::time::{Duration, Instant};
        let year_ms = 365 * 24 * 3600 * 1000;
        let true_wall = 1_000_000u64;
        let mut sm = StateMachine::default();
        // Term 1 was led by a member whose wall clock was a year ahead: it stamped a
        // key with a 100 ms TTL.
        let mut put = set("k", "v", true_wall + year_ms);
        if let Op::Set(op) = &mut put.op {
            op.ttl_ms = 100;
        }
        sm.apply(1, &put);
        // The next leader applied that entry, and its own wall clock is true. Its
        // stamps continue from the applied stamp, advanced by its monotonic clock.
        let t0 = Instant::now();
        let clock = crate::clock::Clock::default();
        clock.observe_at(sm.now_ms, t0);
        let stamp = |after_ms: u64| clock.now_at(t0 + Duration::from_millis(after_ms), || true_wall);
        let sweep = |time_ms| Command {
            time_ms,
            request: None,
            fence: None,
            op: Op::Sweep { limit: 10 },
        };
        assert_eq!(sm.apply(2, &sweep(stamp(50))).reply, Reply::Sweep { removed: 0 });
        assert!(sm.kv.get(sm.now_ms, b"k").is_some());
        // 150 ms of the new leader's time later the key has expired and is swept:
        // expiry did not freeze at the far-future stamp.
        assert_eq!(sm.apply(2, &sweep(stamp(150))).reply, Reply::Sweep { removed: 1 });
        assert_eq!(sm.now_ms, true_wall + year_ms + 150);
    }

    #[test]
    fn a_request_id_reused_for_another_request_is_refused() {
        let mut sm = StateMachine::default();
        let mut first = set("a", "1", 10);
        first.request = Some(("client-1".into(), 7));
        assert!(matches!(
            sm.apply(1, &first).reply,
            Reply::Write { succeeded: true, .. }
        ));
        // The same id for a different write: refused, and nothing is applied.
        let mut other = set("a", "2", 20);
        other.request = Some(("client-1".into(), 7));
        assert_eq!(sm.apply(1, &other).reply, Reply::RequestReused);
        assert_eq!(sm.kv.get(20, b"a").map(|kv| kv.value), Some(b"1".to_vec()));
        // The true retry (stamped again by another leader) still gets the first answer.
        let mut retry = first.clone();
        retry.time_ms = 30;
        assert!(matches!(
            sm.apply(2, &retry).reply,
            Reply::Write { succeeded: true, .. }
        ));
        assert_eq!(sm.kv.get(30, b"a").map(|kv| kv.version), Some(1));
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut sm = StateMachine::default();
        sm.apply(1, &set("a", "1", 5000));
        sm.apply(1, &set("b", "1", 4000));
        assert_eq!(sm.now_ms, 5000);
    }

    #[test]
    fn retried_request_gets_first_answer() {
        let mut sm = StateMachine::default();
        let mut c = set("a", "1", 10);
        c.request = Some(("client-1".into(), 7));
        if let Op::Set(op) = &mut c.op {
            op.conditions.if_not_exists = true;
        }
        let first = sm.apply(1, &c).reply;
        let again = sm.apply(1, &c).reply;
        assert_eq!(first, again);
        assert!(matches!(first, Reply::Write { succeeded: true, .. }));
        assert_eq!(sm.kv.get(10, b"a").map(|kv| kv.version), Some(1));
    }
}
