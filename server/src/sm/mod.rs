//! The deterministic state machine.
//!
//! Every replica applies the same log to the same initial state and reaches the same
//! state: nothing here reads a clock, a random source or the environment. Time comes
//! from the leader's stamp on each command ([`Command::time_ms`]) and only moves
//! forward (`now = max(now, stamp)`). A log entry carries a batch of commands; each
//! applied command takes the next revision, so revisions (and the fencing tokens
//! made from them) increase by one per command, in log order.

mod dedupe;
mod kv;
pub mod locks;
pub mod sequences;
pub mod txn;

use serde::{Deserialize, Serialize};

pub use dedupe::Dedupe;
pub use kv::{retained_from, Event, EventKind, HistoryError, KeyValue, KvStore, HISTORY_RETENTION_REVISIONS};
pub use locks::{LockReply, LockTable, LockView, Refusal};
pub use sequences::{Range, Sequences};

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
    /// `None` when the sequence is exhausted.
    Seq(Option<Range>),
    /// The fence did not hold: the lock is not held with the given token. `current`
    /// is the live token (0 when free).
    Fenced {
        current: u64,
    },
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
        self.now_ms = self.now_ms.max(cmd.time_ms);
        let now = self.now_ms;
        if term > self.lease_term {
            // The first command of a new leader: no lease may end sooner than one
            // full TTL of the new leader's time.
            self.lease_term = term;
            self.locks.extend_all_leases(now);
        }
        if let Some((client, request_id)) = &cmd.request {
            if let Some(reply) = self.dedupe.lookup(client, *request_id) {
                return reply;
            }
        }
        let reply = match &cmd.fence {
            Some((resource, token)) if self.locks.token_of(now, resource) != *token => Reply::Fenced {
                current: self.locks.token_of(now, resource),
            },
            _ => self.run(revision, now, &cmd.op),
        };
        self.kv.prune_history(revision);
        if let Some((client, request_id)) = &cmd.request {
            self.dedupe.record(client, *request_id, now, &reply);
        }
        reply
    }

    fn run(&mut self, revision: u64, now: u64, op: &Op) -> Reply {
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
            Op::Unlock { resource, owner } => Reply::Lock(self.locks.unlock(now, resource, owner)),
            Op::SeqNext {
                name,
                count,
                key,
                window_ms,
            } => Reply::Seq(self.sequences.next(now, name, *count, key.as_deref(), *window_ms)),
            Op::Sweep { limit } => {
                let removed = self.kv.sweep(revision, now, *limit) + self.locks.sweep(now, *limit);
                self.sequences.forget_expired(now);
                self.dedupe.forget_idle(now);
                Reply::Sweep { removed }
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
        let lock = |owner: &str, time_ms| Command {
            time_ms,
            request: None,
            fence: None,
            op: Op::TryLock {
                resource: b"r".to_vec(),
                owner: owner.into(),
                ttl_ms: 100,
            },
        };
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
