//! Exactly-once retries: the first answer to each `(client_id, request_id)`.
//!
//! Bounded per client (the newest [`MAX_PER_CLIENT`] answers) and in time: a client
//! not heard from for [`CLIENT_IDLE_MS`] of state-machine time is forgotten at the
//! next sweep. Part of the replicated state, so it survives failover and snapshots.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::Reply;

pub const MAX_PER_CLIENT: usize = 256;
pub const CLIENT_IDLE_MS: u64 = 60 * 60 * 1000;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct ClientAnswers {
    last_seen_ms: u64,
    answers: VecDeque<(u64, Reply)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dedupe {
    clients: BTreeMap<String, ClientAnswers>,
}

impl Dedupe {
    pub fn lookup(&self, client: &str, request_id: u64) -> Option<Reply> {
        let c = self.clients.get(client)?;
        c.answers
            .iter()
            .find(|(id, _)| *id == request_id)
            .map(|(_, r)| r.clone())
    }

    pub fn record(&mut self, client: &str, request_id: u64, now_ms: u64, reply: &Reply) {
        let c = self.clients.entry(client.to_owned()).or_default();
        c.last_seen_ms = now_ms;
        if c.answers.len() == MAX_PER_CLIENT {
            c.answers.pop_front();
        }
        c.answers.push_back((request_id, reply.clone()));
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
            d.record("c", id, 0, &Reply::Sweep { removed: id as u32 });
        }
        assert_eq!(d.lookup("c", 0), None);
        assert_eq!(d.lookup("c", 10), Some(Reply::Sweep { removed: 10 }));
        d.record("d", 1, CLIENT_IDLE_MS, &Reply::Sweep { removed: 0 });
        d.forget_idle(CLIENT_IDLE_MS);
        assert_eq!(d.clients(), 1);
        assert_eq!(d.lookup("d", 1), Some(Reply::Sweep { removed: 0 }));
    }
}
