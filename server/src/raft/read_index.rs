//! Batched leadership confirmation (read-index). Callers that arrive while a round
//! is in flight wait for the next round, which starts after they arrived, so every
//! caller gets a confirmation that happened after its request: linearizable reads
//! and ephemeral operations cost one heartbeat round per batch, not per request.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::types::Raft;
use crate::api::errors::RaftFailure;

type Waiter = oneshot::Sender<Result<(), RaftFailure>>;

pub struct ReadIndex {
    raft: Raft,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<Waiter>,
}

impl ReadIndex {
    pub fn new(raft: Raft) -> Arc<Self> {
        Arc::new(Self {
            raft,
            state: Mutex::default(),
        })
    }

    /// Returns once this member has confirmed it is leader, after the call began, and
    /// has applied everything committed before the confirmation.
    pub async fn confirm(self: &Arc<Self>) -> Result<(), RaftFailure> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| RaftFailure::internal("read-index lock poisoned"))?;
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(self.clone().rounds());
        }
        rx.await
            .unwrap_or_else(|_| Err(RaftFailure::internal("read-index round ended without an answer")))
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
            let result = self
                .raft
                .ensure_linearizable()
                .await
                .map(|_| ())
                .map_err(RaftFailure::from);
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
        }
    }
}
