//! Exactly-once retries: the first answer to each `(client_id, request_id)`.
//!
//! Each answer is kept with a digest of the request it answered, so a request id
//! reused for a different request is refused instead of being answered with the
//! first request's answer (which would silently drop the new write).
//!
//! Part of the replicated state (every member applies the same log and keeps the same
//! table; it survives failover and is in snapshots), so it is bounded by rules every
//! member applies alike:
//! - per client, the newest [`MAX_PER_CLIENT`] request ids, and a client not heard
//!   from for [`CLIENT_IDLE_MS`] of state-machine time is forgotten at the next sweep;
//! - at most [`MAX_CLIENTS`] clients: a new one makes room by forgetting the client
//!   heard from least recently;
//! - by bytes: only what a retry needs is kept. A set that succeeded is kept without
//!   its value (the retry carries it). An answer over [`MAX_ANSWER_BYTES`], or older
//!   answers once a client's exceed [`MAX_CLIENT_ANSWER_BYTES`], keep only their id
//!   and digest: the request is still never applied twice, and its retry is told it
//!   was applied (ALREADY_APPLIED) instead of getting the answer again.
//!
//! Worst case: [`MAX_CLIENTS`] × ([`MAX_CLIENT_ANSWER_BYTES`] + [`MAX_PER_CLIENT`] ×
//! about 100 bytes of ids, digests and headers) ≈ 900 MiB on every member.

use serde::{Deserialize, Serialize};

use super::{Command, KeyValue, Map, Op, Reply, Seq};

pub const MAX_PER_CLIENT: usize = 256;
pub const CLIENT_IDLE_MS: u64 = 60 * 60 * 1000;
pub const MAX_CLIENTS: usize = 10_000;
/// Bytes of keys and values one client's kept answers may hold.
pub const MAX_CLIENT_ANSWER_BYTES: u64 = 64 * 1024;
/// The largest answer kept whole.
pub const MAX_ANSWER_BYTES: u64 = MAX_CLIENT_ANSWER_BYTES;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct ClientAnswers {
    last_seen_ms: u64,
    /// (request id, request digest, answer).
    answers: Seq<(u64, u64, Reply)>,
}

impl ClientAnswers {
    fn bytes(&self) -> u64 {
        self.answers.iter().map(|(_, _, r)| weight(r)).sum()
    }
}

/// A request id seen before with a different request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch;

/// A digest of what a client asked for: the operation and its fence, not the
/// leader's stamp (a retry is stamped again) nor the sequence window (the leader's
/// setting). FNV-1a over the bincode encoding: stable across builds and platforms,
/// as every replica must compute the same value.
pub fn digest(cmd: &Command) -> u64 {
    let op = match &cmd.op {
        Op::SeqNext { name, count, key, .. } => Op::SeqNext {
            name: name.clone(),
            count: *count,
            key: key.clone(),
            window_ms: 0,
        },
        other => other.clone(),
    };
    let bytes = bincode::serialize(&(&op, &cmd.fence)).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bytes of keys and values an answer holds (what grows with the request).
fn weight(reply: &Reply) -> u64 {
    let kv = |kv: &Option<KeyValue>| kv.as_ref().map_or(0, |kv| (kv.key.len() + kv.value.len()) as u64);
    match reply {
        Reply::Write { kv: k, .. } | Reply::Delete { kv: k, .. } => kv(k),
        Reply::WrittenAsSent { kv: k } => (k.key.len() + k.value.len()) as u64,
        Reply::Txn { results, .. } => results.iter().map(|s| kv(&s.kv)).sum(),
        _ => 0,
    }
}

/// What is kept of `reply`: a set that succeeded without the value its retry carries.
fn slim(op: &Op, reply: &Reply) -> Reply {
    match (op, reply) {
        (
            Op::Set(set),
            Reply::Write {
                succeeded: true,
                kv: Some(kv),
            },
        ) if kv.value == set.value => Reply::WrittenAsSent {
            kv: KeyValue {
                value: Vec::new(),
                ..kv.clone()
            },
        },
        _ if weight(reply) > MAX_ANSWER_BYTES => Reply::AnswerNotKept,
        _ => reply.clone(),
    }
}

/// The answer a retry of `op` gets from what was kept.
fn restore(op: &Op, kept: &Reply) -> Reply {
    match (kept, op) {
        (Reply::WrittenAsSent { kv }, Op::Set(set)) => Reply::Write {
            succeeded: true,
            kv: Some(KeyValue {
                value: set.value.clone(),
                ..kv.clone()
            }),
        },
        // The digest matched, so the op is the same set; anything else is a bug that
        // must not hand out a wrong answer.
        (Reply::WrittenAsSent { .. }, _) => Reply::AnswerNotKept,
        (other, _) => other.clone(),
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dedupe {
    clients: Map<String, ClientAnswers>,
}

impl Dedupe {
    /// The first answer to `request_id` (for a retry of `op`), or [`Mismatch`] when it
    /// answered another request.
    pub fn lookup(&self, client: &str, request_id: u64, digest: u64, op: &Op) -> Option<Result<Reply, Mismatch>> {
        let c = self.clients.get(client)?;
        c.answers.iter().find(|(id, _, _)| *id == request_id).map(|(_, d, r)| {
            if *d == digest {
                Ok(restore(op, r))
            } else {
                Err(Mismatch)
            }
        })
    }

    pub fn record(&mut self, client: &str, request_id: u64, digest: u64, now_ms: u64, op: &Op, reply: &Reply) {
        if !self.clients.contains_key(client) && self.clients.len() >= MAX_CLIENTS {
            // Deterministic on every member: the least recently seen, ties by name.
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, c)| c.last_seen_ms)
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                self.clients.remove(&name);
            }
        }
        let c = self.clients.entry(client.to_owned()).or_default();
        c.last_seen_ms = now_ms;
        if c.answers.len() == MAX_PER_CLIENT {
            c.answers.pop_front();
        }
        let kept = slim(op, reply);
        let mut bytes = c.bytes() + weight(&kept);
        // Oldest first, answers give way to their id and digest until the client's
        // answers fit their budget again.
        for (_, _, old) in c.answers.iter_mut() {
            if bytes <= MAX_CLIENT_ANSWER_BYTES {
                break;
            }
            let w = weight(old);
            if w > 0 {
                *old = Reply::AnswerNotKept;
                bytes -= w;
            }
        }
        c.answers.push_back((request_id, digest, kept));
    }

    pub fn forget_idle(&mut self, now_ms: u64) {
        let idle: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, c)| now_ms.saturating_sub(c.last_seen_ms) >= CLIENT_IDLE_MS)
            .map(|(name, _)| name.clone())
            .collect();
        for name in idle {
            self.clients.remove(&name);
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Bytes of keys and values in the kept answers, over all clients.
    pub fn answer_bytes(&self) -> u64 {
        self.clients.values().map(ClientAnswers::bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::txn::StepResult;
    use crate::sm::{Conditions, SetOp};

    fn op() -> Op {
        Op::Extend {
            key: b"k".to_vec(),
            ttl_ms: 1,
        }
    }

    fn kv(key: &str, value_bytes: usize) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: vec![b'v'; value_bytes],
            mod_revision: 3,
            create_revision: 2,
            version: 1,
            expires_at_ms: 0,
        }
    }

    #[test]
    fn bounded_per_client_and_forgets_idle_clients() {
        let mut d = Dedupe::default();
        for id in 0..(MAX_PER_CLIENT as u64 + 10) {
            d.record("c", id, 7, 0, &op(), &Reply::Sweep { removed: id as u32 });
        }
        assert_eq!(d.lookup("c", 0, 7, &op()), None);
        assert_eq!(d.lookup("c", 10, 7, &op()), Some(Ok(Reply::Sweep { removed: 10 })));
        assert_eq!(d.lookup("c", 10, 8, &op()), Some(Err(Mismatch)));
        d.record("d", 1, 7, CLIENT_IDLE_MS, &op(), &Reply::Sweep { removed: 0 });
        d.forget_idle(CLIENT_IDLE_MS);
        assert_eq!(d.clients(), 1);
        assert_eq!(d.lookup("d", 1, 7, &op()), Some(Ok(Reply::Sweep { removed: 0 })));
    }

    #[test]
    fn a_set_is_kept_without_its_value_and_answered_with_the_retrys() {
        let mut d = Dedupe::default();
        let written = kv("k", 1 << 20);
        let set = Op::Set(SetOp {
            key: written.key.clone(),
            value: written.value.clone(),
            ttl_ms: 0,
            conditions: Conditions::default(),
        });
        let reply = Reply::Write {
            succeeded: true,
            kv: Some(written),
        };
        for id in 0..MAX_PER_CLIENT as u64 {
            d.record("c", id, 7, 0, &set, &reply);
        }
        assert_eq!(d.answer_bytes(), MAX_PER_CLIENT as u64, "only the keys are kept");
        assert_eq!(d.lookup("c", 5, 7, &set), Some(Ok(reply)));
    }

    /// Issue 18's attack: a transaction of 127 gets of a 1 MiB key.
    #[test]
    fn a_large_answer_keeps_only_its_id_and_its_retry_is_told_it_was_applied() {
        let mut d = Dedupe::default();
        let big = Reply::Txn {
            succeeded: true,
            results: (0..127)
                .map(|_| StepResult {
                    succeeded: true,
                    kv: Some(kv("big", 1 << 20)),
                })
                .collect(),
        };
        for client in 0..20 {
            d.record(&format!("c{client}"), 1, 7, 0, &op(), &big);
        }
        assert_eq!(d.answer_bytes(), 0);
        assert_eq!(d.lookup("c3", 1, 7, &op()), Some(Ok(Reply::AnswerNotKept)));
        assert_eq!(d.lookup("c3", 1, 8, &op()), Some(Err(Mismatch)));
    }

    #[test]
    fn older_answers_give_way_when_a_clients_answers_outgrow_their_budget() {
        let mut d = Dedupe::default();
        let delete = |n: usize| Reply::Delete {
            succeeded: true,
            deleted: true,
            kv: Some(kv(&format!("k{n}"), 10_000)),
        };
        for id in 0..20u64 {
            d.record("c", id, 7, 0, &op(), &delete(id as usize));
        }
        assert!(d.answer_bytes() <= MAX_CLIENT_ANSWER_BYTES, "{}", d.answer_bytes());
        assert_eq!(d.lookup("c", 19, 7, &op()), Some(Ok(delete(19))));
        assert_eq!(d.lookup("c", 0, 7, &op()), Some(Ok(Reply::AnswerNotKept)));
    }

    #[test]
    fn a_new_client_past_the_limit_forgets_the_least_recently_seen() {
        let mut d = Dedupe::default();
        for client in 0..=MAX_CLIENTS as u64 {
            let now = if client == 0 { 10 } else { client + 100 };
            d.record(&format!("c{client}"), 1, 7, now, &op(), &Reply::Recorded);
        }
        assert_eq!(d.clients(), MAX_CLIENTS);
        // c0 was seen least recently (at 10), so it is the one forgotten.
        assert_eq!(d.lookup("c0", 1, 7, &op()), None);
        assert!(d.lookup("c1", 1, 7, &op()).is_some());
        assert!(d.lookup(&format!("c{MAX_CLIENTS}"), 1, 7, &op()).is_some());
    }
}
