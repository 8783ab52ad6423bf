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

use crate::errors::{overloaded, status, RaftFailure};
use crate::poison::Recover;
use crate::types::Raft;
use kahuna_proto::ErrorKind;

/// Callers waiting for a round, at most. Each holds a request in memory; past this
/// the member sheds reads with RESOURCE_EXHAUSTED (those that stopped waiting are
/// dropped first, so only live load is refused).
pub const MAX_WAITERS: usize = 20_000;

type Waiter = oneshot::Sender<Result<(), RaftFailure>>;

pub struct ReadIndex {
    raft: Raft,
    lease: Duration,
    /// Longest one round may take: without a quorum openraft's check never returns,
    /// and every caller waiting on it would wait as long.
    round_timeout: Duration,
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
    pub fn new(raft: Raft, round_timeout: Duration) -> Arc<Self> {
        let lease = Duration::from_millis(raft.config().election_timeout_max / 2);
        Arc::new(Self {
            raft,
            lease,
            round_timeout,
            state: Mutex::default(),
        })
    }

    /// Returns once this member is known to lead in `term` now: at once while a
    /// round that started less than the lease ago confirmed that term, else after
    /// a new round. The caller checks afterwards that it still leads in `term`.
    pub async fn leader_lease(self: &Arc<Self>, term: u64) -> Result<(), RaftFailure> {
        if let Some((started, confirmed_term)) = self.state().confirmed {
            if confirmed_term == term && started.elapsed() < self.lease {
                return Ok(());
            }
        }
        self.read_barrier().await
    }

    /// Returns once this member has confirmed it is leader, after the call began, and
    /// has applied everything committed before the confirmation.
    pub async fn read_barrier(self: &Arc<Self>) -> Result<(), RaftFailure> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state();
            if st.waiting.len() >= MAX_WAITERS {
                st.waiting.retain(|w| !w.is_closed());
                if st.waiting.len() >= MAX_WAITERS {
                    return Err(RaftFailure::Status(overloaded(
                        format!("{MAX_WAITERS} reads already wait for the leader's read barrier (the limit)"),
                        self.lease.as_millis() as u64,
                    )));
                }
            }
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(self.clone().rounds());
        }
        // The round this caller waits for may start only when the one in flight ends:
        // bound the wait as a whole, not each round.
        match tokio::time::timeout(self.round_timeout, rx).await {
            Ok(answer) => {
                answer.unwrap_or_else(|_| Err(RaftFailure::internal("read-index round ended without an answer")))
            }
            Err(_) => Err(self.unconfirmed()),
        }
    }

    fn unconfirmed(&self) -> RaftFailure {
        RaftFailure::Status(status(
            ErrorKind::Unavailable,
            format!(
                "no quorum confirmed this member's leadership within {} ms (its request timeout); nothing was applied",
                self.round_timeout.as_millis()
            ),
        ))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().recover()
    }

    async fn rounds(self: Arc<Self>) {
        loop {
            let batch = {
                let mut st = self.state();
                if st.waiting.is_empty() {
                    st.running = false;
                    return;
                }
                std::mem::take(&mut st.waiting)
            };
            // The term is read before the round: a round that succeeds confirms that
            // this member led in it when the round started, or in a later term, which
            // then does not match and confirms nothing.
            let started = Instant::now();
            crate::metrics::registry()
                .read_index_rounds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let term = self.raft.metrics().borrow().current_term;
            let result = match tokio::time::timeout(self.round_timeout, self.raft.ensure_linearizable()).await {
                Ok(r) => r.map(|_| ()).map_err(RaftFailure::from),
                Err(_) => Err(self.unconfirmed()),
            };
            if result.is_ok() {
                self.state().confirmed = Some((started, term));
            }
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
        }
    }
}
