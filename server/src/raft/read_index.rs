//! Batched leadership confirmation (read-index). Callers that arrive while a round
//! is in flight wait for the next round, which starts after they arrived, so every
//! caller gets a confirmation that happened after its request: linearizable reads
//! cost one heartbeat round per batch, not per request.
//!
//! Operations that need only to know this member still leads, not the applied
//! state (the ephemeral tier), may instead rely on a recent round: a follower that
//! acknowledged a heartbeat refuses to vote for anyone else for openraft's leader
//! lease (`election_timeout_max`) after receiving it, and any new leader needs the
//! vote of a member of that acknowledging quorum (or of this leader, which steps
//! down as it votes). So for `election_timeout_max / 2` after a round *started*
//! (half, for clock-rate differences between members), no other member can lead.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::types::Raft;
use crate::api::errors::RaftFailure;

type Waiter = oneshot::Sender<Result<(), RaftFailure>>;

pub struct ReadIndex {
    raft: Raft,
    lease: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<Waiter>,
    /// When the last successful round started, and the term it confirmed.
    confirmed: Option<(Instant, u64)>,
}

impl ReadIndex {
    pub fn new(raft: Raft) -> Arc<Self> {
        let lease = Duration::from_millis(raft.config().election_timeout_max / 2);
        Arc::new(Self {
            raft,
            lease,
            state: Mutex::default(),
        })
    }

    /// Returns once this member is known to lead in `term` now: at once while a
    /// round that started less than the lease ago confirmed that term, else after
    /// a new round. The caller checks afterwards that it still leads in `term`.
    pub async fn confirm_leadership(self: &Arc<Self>, term: u64) -> Result<(), RaftFailure> {
        if let Some((started, confirmed_term)) = self.state()?.confirmed {
            if confirmed_term == term && started.elapsed() < self.lease {
                return Ok(());
            }
        }
        self.confirm().await
    }

    /// Returns once this member has confirmed it is leader, after the call began, and
    /// has applied everything committed before the confirmation.
    pub async fn confirm(self: &Arc<Self>) -> Result<(), RaftFailure> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state()?;
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(self.clone().rounds());
        }
        rx.await
            .unwrap_or_else(|_| Err(RaftFailure::internal("read-index round ended without an answer")))
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, RaftFailure> {
        self.state
            .lock()
            .map_err(|_| RaftFailure::internal("read-index lock poisoned"))
    }

    async fn rounds(self: Arc<Self>) {
        loop {
            let batch = match self.state.lock() {
                Ok(mut st) if st.waiting.is_empty() => {
                    st.running = false;
                    return;
                }
                Ok(mut st) => std::mem::take(&mut st.waiting),
                Err(_) => return,
            };
            // The term is read before the round: a round that succeeds confirms that
            // this member led in it when the round started, or in a later term, which
            // then does not match and confirms nothing.
            let started = Instant::now();
            let term = self.raft.metrics().borrow().current_term;
            let result = self
                .raft
                .ensure_linearizable()
                .await
                .map(|_| ())
                .map_err(RaftFailure::from);
            if result.is_ok() {
                if let Ok(mut st) = self.state.lock() {
                    st.confirmed = Some((started, term));
                }
            }
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
        }
    }
}
