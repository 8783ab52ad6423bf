//! Exactly-once retries: the first answer to each `(client_id, request_id)`.
//!
//! Each answer is kept with a digest of the request it answered, so a request id
//! reused for a different request is refused instead of being answered with the
//! first request's answer (which would silently drop the new write).
//!
//! Bounded per client (the newest [`MAX_PER_CLIENT`] answers) and in time: a client
//! not heard from for [`CLIENT_IDLE_MS`] of state-machine time is forgotten at the
//! next sweep. Part of the replicated state, so it survives failover and snapshots.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Command, Op, Reply};

pub const MAX_PER_CLIENT: usize = 256;
pub const CLIENT_IDLE_MS: u64 = 60 * 60 * 1000;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct ClientAnswers {
    last_seen_ms: u64,
    /// (request id, request digest, answer).
    answers: VecDeque<(u64, u64, Reply)>,
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

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dedupe {
    clients: BTreeMap<String, ClientAnswers>,
}

impl Dedupe {
    /// The first answer to `request_id`, or [`Mismatch`] when it answered another request.
    pub fn lookup(&self, client: &str, request_id: u64, digest: u64) -> Option<Result<Reply, Mismatch>> {
        let c = self.clients.get(client)?;
        c.answers.iter().find(|(id, _, _)| *id == request_id).map(|(_, d, r)| {
            if *d == digest {
                Ok(r.clone())
            } else {
                Err(Mismatch)
            }
        })
    }

    pub fn record(&mut self, client: &str, request_id: u64, digest: u64, now_ms: u64, reply: &Reply) {
        let c = self.clients.entry(client.to_owned()).or_default();
        c.last_seen_ms = now_ms;
        if c.answers.len() == MAX_PER_CLIENT {
            c.answers.pop_front();
        }
        c.answers.push_back((request_id, digest, reply.clone()));
    }

    pub fn forget_idle(&mut self, now_ms: u64) {
        self.clients
            .retain(|_, c| now_ms.saturating_sub(c.last_seen_ms) < CLIENT_IDLE_MS);
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_per_client_and_forgets_idle_clients() {
        let mut d = Dedupe::default();
        for id in 0..(MAX_PER_CLIENT as u64 + 10) {
            d.record("c", id, 7, 0, &Reply::Sweep { removed: id as u32 });
        }
        assert_eq!(d.lookup("c", 0, 7), None);
        assert_eq!(d.lookup("c", 10, 7), Some(Ok(Reply::Sweep { removed: 10 })));
        assert_eq!(d.lookup("c", 10, 8), Some(Err(Mismatch)));
        d.record("d", 1, 7, CLIENT_IDLE_MS, &Reply::Sweep { removed: 0 });
        d.forget_idle(CLIENT_IDLE_MS);
        assert_eq!(d.clients(), 1);
        assert_eq!(d.lookup("d", 1, 7), Some(Ok(Reply::Sweep { removed: 0 })));
    }
}
