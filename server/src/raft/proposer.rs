//! Proposal batching. openraft 0.9 appends and fsyncs each log entry before it
//! takes the next proposal, so one entry per client write would cap the leader at
//! one write per fsync. The proposer packs the commands that arrive while earlier
//! entries are in flight into one entry (a [`Batch`]): one append, one fsync and one
//! replication message serve all of them. With nothing in flight a command is
//! proposed at once, alone, so a lone client waits for nothing.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::types::Raft;
use crate::api::errors::RaftFailure;
use crate::sm::{Batch, Command, Outcome};

/// Entries proposed and not yet applied. Enough to keep the log busy while earlier
/// entries replicate; beyond it, waiting commands join the next entry instead.
const MAX_IN_FLIGHT: usize = 4;
/// Bounds on one entry, so one entry stays a reasonable replication message.
const MAX_COMMANDS: usize = 512;
const MAX_BYTES: u64 = 1 << 20;

type Answer = oneshot::Sender<Result<Outcome, RaftFailure>>;

struct Pending {
    command: Command,
    answer: Answer,
}

pub struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Proposer {
    /// Starts the batching task on the current runtime.
    pub fn start(raft: Raft) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, waiting));
        Self { queue }
    }

    /// Proposes `command` and waits until it is applied (or refused).
    pub async fn propose(&self, command: Command) -> Result<Outcome, RaftFailure> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { command, answer })
            .map_err(|_| RaftFailure::internal("the proposer has stopped"))?;
        answered
            .await
            .unwrap_or_else(|_| Err(RaftFailure::internal("a proposal was dropped without an answer")))
    }
}

fn size(command: &Command) -> u64 {
    bincode::serialized_size(command).unwrap_or(MAX_BYTES)
}

async fn run(raft: Raft, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        // While every slot is taken, more commands queue up and join this entry.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = size(&first.command);
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS && bytes < MAX_BYTES {
            let Ok(next) = waiting.try_recv() else { break };
            bytes += size(&next.command);
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (commands, answers): (Batch, Vec<Answer>) = batch.into_iter().map(|p| (p.command, p.answer)).unzip();
            let result = raft.client_write(commands).await;
            drop(slot);
            match result {
                // One outcome per command, in order. Were one missing, its caller
                // would get the "dropped without an answer" error, not a wrong answer.
                Ok(resp) => {
                    for (answer, outcome) in answers.into_iter().zip(resp.data) {
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let failure = RaftFailure::from(e);
                    for answer in answers {
                        let _ = answer.send(Err(failure.clone()));
                    }
                }
            }
        });
    }
}
