//! Transactions: every compare is checked against the state before the entry, then
//! one branch runs in order, as one command (one revision).

use serde::{Deserialize, Serialize};

use super::kv::{KeyValue, KvStore};
use super::locks::LockTable;
use super::{Conditions, DeleteOp, Reply, SetOp};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Target {
    Value,
    ModRevision,
    CreateRevision,
    Version,
    Exists,
    LockToken,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum CmpOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub target: Target,
    pub op: CmpOp,
    pub value: Vec<u8>,
    pub number: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Step {
    Set { key: Vec<u8>, value: Vec<u8>, ttl_ms: u64 },
    Delete { key: Vec<u8> },
    Get { key: Vec<u8> },
    Extend { key: Vec<u8>, ttl_ms: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub then: Vec<Step>,
    pub otherwise: Vec<Step>,
}

impl Txn {
    /// The most keys either branch would create in `kv` (distinct keys it sets that
    /// are not stored).
    pub fn new_keys(&self, kv: &KvStore) -> usize {
        let creates = |steps: &[Step]| {
            let keys: std::collections::BTreeSet<&[u8]> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Set { key, .. } if !kv.contains(key) => Some(key.as_slice()),
                    _ => None,
                })
                .collect();
            keys.len()
        };
        creates(&self.then).max(creates(&self.otherwise))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepResult {
    pub succeeded: bool,
    pub kv: Option<KeyValue>,
}

fn holds<T: Ord>(op: CmpOp, actual: T, expected: T) -> bool {
    match op {
        CmpOp::Equal => actual == expected,
        CmpOp::NotEqual => actual != expected,
        CmpOp::Greater => actual > expected,
        CmpOp::Less => actual < expected,
    }
}

fn check(kv: &KvStore, locks: &LockTable, now_ms: u64, c: &Compare) -> bool {
    let current = kv.get(now_ms, &c.key);
    match c.target {
        // A missing key has no value: only NOT_EQUAL holds.
        Target::Value => match &current {
            Some(k) => holds(c.op, k.value.as_slice(), c.value.as_slice()),
            None => c.op == CmpOp::NotEqual,
        },
        Target::ModRevision => holds(c.op, current.map_or(0, |k| k.mod_revision), c.number),
        Target::CreateRevision => holds(c.op, current.map_or(0, |k| k.create_revision), c.number),
        Target::Version => holds(c.op, current.map_or(0, |k| k.version), c.number),
        Target::Exists => holds(c.op, u64::from(current.is_some()), c.number.min(1)),
        Target::LockToken => locks.token_holds(now_ms, &c.key, |token| holds(c.op, token, c.number)),
    }
}

pub fn apply(kv: &mut KvStore, locks: &LockTable, revision: u64, now_ms: u64, txn: &Txn) -> Reply {
    let succeeded = txn.compares.iter().all(|c| check(kv, locks, now_ms, c));
    let steps = if succeeded { &txn.then } else { &txn.otherwise };
    let results = steps
        .iter()
        .map(|step| {
            let reply = match step {
                Step::Set { key, value, ttl_ms } => kv.set(
                    revision,
                    now_ms,
                    &SetOp {
                        key: key.clone(),
                        value: value.clone(),
                        ttl_ms: *ttl_ms,
                        conditions: Conditions::default(),
                    },
                ),
                Step::Delete { key } => kv.delete(
                    revision,
                    now_ms,
                    &DeleteOp {
                        key: key.clone(),
                        conditions: Conditions::default(),
                    },
                ),
                Step::Extend { key, ttl_ms } => kv.extend(now_ms, key, *ttl_ms),
                Step::Get { key } => {
                    let kv = kv.get(now_ms, key);
                    Reply::Write {
                        succeeded: kv.is_some(),
                        kv,
                    }
                }
            };
            match reply {
                Reply::Write { succeeded, kv } => StepResult { succeeded, kv },
                Reply::Delete { deleted, kv, .. } => StepResult { succeeded: deleted, kv },
                _ => StepResult::default(),
            }
        })
        .collect();
    Reply::Txn { succeeded, results }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(key: &str, target: Target, op: CmpOp, value: &str, number: u64) -> Compare {
        Compare {
            key: key.into(),
            target,
            op,
            value: value.into(),
            number,
        }
    }

    #[test]
    fn branches_on_compares_atomically() {
        let mut kv = KvStore::default();
        let mut locks = LockTable::default();
        locks.try_lock(1, 0, b"L", b"A", 1000);
        let txn = Txn {
            compares: vec![
                cmp("a", Target::Exists, CmpOp::Equal, "", 0),
                cmp("L", Target::LockToken, CmpOp::Equal, "", 1),
            ],
            then: vec![
                Step::Set {
                    key: "a".into(),
                    value: "1".into(),
                    ttl_ms: 0,
                },
                Step::Set {
                    key: "b".into(),
                    value: "2".into(),
                    ttl_ms: 0,
                },
                Step::Get { key: "a".into() },
            ],
            otherwise: vec![Step::Get { key: "a".into() }],
        };
        match apply(&mut kv, &locks, 5, 10, &txn) {
            Reply::Txn { succeeded, results } => {
                assert!(succeeded);
                assert_eq!(results.len(), 3);
                assert_eq!(results[2].kv.as_ref().map(|k| k.mod_revision), Some(5));
            }
            other => panic!("{other:?}"),
        }
        // Now "a" exists: the else branch runs and writes nothing.
        match apply(&mut kv, &locks, 6, 10, &txn) {
            Reply::Txn { succeeded, results } => {
                assert!(!succeeded);
                assert_eq!(results[0].kv.as_ref().map(|k| k.value.clone()), Some(b"1".to_vec()));
            }
            other => panic!("{other:?}"),
        }
        assert!(check(&kv, &locks, 10, &cmp("a", Target::Value, CmpOp::Equal, "1", 0)));
        assert!(check(
            &kv,
            &locks,
            10,
            &cmp("zz", Target::Value, CmpOp::NotEqual, "1", 0)
        ));
        assert!(!check(&kv, &locks, 10, &cmp("zz", Target::Value, CmpOp::Equal, "", 0)));
        assert!(check(
            &kv,
            &locks,
            10,
            &cmp("a", Target::Version, CmpOp::Greater, "", 0)
        ));
    }
}
