//! Proposal batching. openraft 0.9 appends and fsyncs each log entry before it
//! takes the next proposal, so one entry per client write would cap the leader at
//! one write per fsync, and every entry costs a turn of the Raft loop, a replication
//! message and an apply. The proposer keeps one entry in flight and packs every
//! command that arrives meanwhile into the next one (a [`Batch`]): one append, one
//! fsync and one replication message serve all of them. With nothing in flight a
//! command is proposed at once, alone, so a lone client waits for nothing.
//!
//! One entry in flight rather than several: on the benchmark machine 64 writing
//! clients got 16,000 writes/s with one, 14,000 with two, 12,000 with four and
//! 8,000 with sixteen, since the leader is CPU-bound and smaller entries cost more
//! per command (docs/performance.md).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch, Notify};

use crate::errors::{overloaded, RaftFailure};
use crate::poison::Recover;
use crate::sm::{Batch, Command, Outcome};
use crate::types::Raft;

/// Bounds on one entry, so one entry stays a reasonable replication message.
const MAX_COMMANDS: usize = 512;
const MAX_BYTES: u64 = 1 << 20;

/// Bounds on the commands waiting for the next entry. With the quorum gone the entry
/// in flight never commits and the queue only grows; past these, proposals are shed
/// with RESOURCE_EXHAUSTED instead of holding memory on the leader. Commands whose
/// callers stopped waiting are dropped first, so only live load is refused.
pub const MAX_QUEUED_COMMANDS: usize = 20_000;
pub const MAX_QUEUED_BYTES: u64 = 256 << 20;
/// What a shed caller is told to wait: about one entry's commit.
const RETRY_AFTER_MS: u64 = 100;

type Answer = oneshot::Sender<Result<Outcome, RaftFailure>>;

struct Pending {
    command: Command,
    bytes: u64,
    answer: Answer,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Pending>,
    bytes: u64,
    /// Set by [`Proposer::close`]: every waiting and later command gets it.
    closed: Option<RaftFailure>,
}

impl Queue {
    fn push(&mut self, p: Pending) -> Result<(), RaftFailure> {
        if let Some(f) = &self.closed {
            return Err(f.clone());
        }
        if self.waiting.len() >= MAX_QUEUED_COMMANDS || self.bytes + p.bytes > MAX_QUEUED_BYTES {
            self.waiting.retain(|w| !w.answer.is_closed());
            self.bytes = self.waiting.iter().map(|w| w.bytes).sum();
            if self.waiting.len() >= MAX_QUEUED_COMMANDS || self.bytes + p.bytes > MAX_QUEUED_BYTES {
                let what = format!(
                    "the leader's proposal queue is full ({} commands, {} bytes queued; the limits are \
                     {MAX_QUEUED_COMMANDS} commands and {MAX_QUEUED_BYTES} bytes)",
                    self.waiting.len(),
                    self.bytes
                );
                return Err(RaftFailure::Status(overloaded(what, RETRY_AFTER_MS)));
            }
        }
        self.bytes += p.bytes;
        self.waiting.push_back(p);
        Ok(())
    }

    /// The commands for the next entry, oldest first, within the entry's bounds.
    fn take_batch(&mut self) -> Vec<Pending> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < MAX_COMMANDS && bytes < MAX_BYTES {
            let Some(next) = self.waiting.pop_front() else { break };
            self.bytes -= next.bytes;
            bytes += next.bytes;
            batch.push(next);
        }
        batch
    }
}

/// Whether commands are proposed. A member handing its leadership over pauses the
/// proposer (commands wait in the queue); on shutdown it then closes it (every waiting
/// and later command gets the failure, e.g. NOT_LEADER naming the new leader), after a
/// transfer it resumes it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Paused,
    Closed,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a command is queued.
    queued: Notify,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue's invariants hold between statements, so a panic elsewhere while
        // it was locked leaves it usable.
        self.queue.lock().recover()
    }
}

pub struct Proposer {
    shared: Arc<Shared>,
    mode: watch::Sender<Mode>,
    /// Held by the batching task while an entry is in flight.
    busy: Arc<tokio::sync::Mutex<()>>,
}

impl Proposer {
    /// Starts the batching task on the current runtime.
    pub fn start(raft: Raft) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            queued: Notify::new(),
        });
        let (mode, mode_rx) = watch::channel(Mode::Open);
        let busy = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(run(raft, shared.clone(), mode_rx, busy.clone()));
        Self { shared, mode, busy }
    }

    /// Stops proposing: returns once the entry in flight (if any) has been answered;
    /// commands arriving meanwhile wait in the queue.
    pub async fn pause(&self) {
        self.mode.send_if_modified(|m| match m {
            Mode::Open => {
                *m = Mode::Paused;
                true
            }
            _ => false,
        });
        drop(self.busy.lock().await);
    }

    /// Proposes again after [`Proposer::pause`] (a leadership transfer that ended, or
    /// failed, while this member keeps running): the commands that waited meanwhile go
    /// into the next entry, and Raft refuses them with NOT_LEADER if this member no
    /// longer leads. A closed proposer stays closed.
    pub fn resume(&self) {
        self.mode.send_if_modified(|m| match m {
            Mode::Paused => {
                *m = Mode::Open;
                true
            }
            _ => false,
        });
    }

    /// Answers every waiting and later command with `failure` instead of proposing it.
    pub fn close(&self, failure: RaftFailure) {
        let waiting = {
            let mut q = self.shared.queue();
            q.closed = Some(failure.clone());
            q.bytes = 0;
            std::mem::take(&mut q.waiting)
        };
        for p in waiting {
            let _ = p.answer.send(Err(failure.clone()));
        }
        self.mode.send_replace(Mode::Closed);
    }

    /// Proposes `command` and waits until it is applied (or refused). Dropping the
    /// future before the command is taken into an entry withdraws it.
    pub async fn propose(&self, command: Command) -> Result<Outcome, RaftFailure> {
        let (answer, answered) = oneshot::channel();
        let bytes = size(&command);
        self.shared.queue().push(Pending { command, bytes, answer })?;
        self.shared.queued.notify_one();
        answered
            .await
            .unwrap_or_else(|_| Err(RaftFailure::internal("a proposal was dropped without an answer")))
    }

    /// Commands waiting for the next entry.
    pub fn queued(&self) -> usize {
        self.shared.queue().waiting.len()
    }
}

fn size(command: &Command) -> u64 {
    bincode::serialized_size(command).unwrap_or(MAX_BYTES)
}

async fn run(raft: Raft, shared: Arc<Shared>, mut mode: watch::Receiver<Mode>, busy: Arc<tokio::sync::Mutex<()>>) {
    loop {
        match mode.wait_for(|m| *m != Mode::Paused).await {
            Ok(m) if *m == Mode::Closed => return,
            Ok(_) => {}
            Err(_) => return,
        }
        let _busy = busy.lock().await;
        let batch = shared.queue().take_batch();
        if batch.is_empty() {
            tokio::select! {
                () = shared.queued.notified() => continue,
                // Paused or closed meanwhile: decide again, not holding `busy`.
                changed = mode.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            }
        }
        // A caller that stopped waiting (deadline passed, connection gone) has been
        // told nothing and may retry elsewhere: do not apply its command late.
        let batch: Vec<Pending> = batch.into_iter().filter(|p| !p.answer.is_closed()).collect();
        if batch.is_empty() {
            continue;
        }
        let (commands, answers): (Batch, Vec<Answer>) = batch.into_iter().map(|p| (p.command, p.answer)).unzip();
        crate::metrics::registry()
            .proposal_commands
            .observe(answers.len() as f64);
        // While this entry commits, new commands queue up for the next one.
        match raft.client_write(commands).await {
            // One outcome per command, in order. Were one missing, its caller would
            // get the "dropped without an answer" error, not a wrong answer.
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::Op;

    fn pending(key_bytes: usize) -> (Pending, oneshot::Receiver<Result<Outcome, RaftFailure>>) {
        let command = Command {
            time_ms: 0,
            request: None,
            fence: None,
            op: Op::Extend {
                key: vec![b'k'; key_bytes],
                ttl_ms: 1,
            },
        };
        let (answer, answered) = oneshot::channel();
        let bytes = size(&command);
        (Pending { command, bytes, answer }, answered)
    }

    fn refusal(r: Result<(), RaftFailure>) -> tonic::Status {
        match r {
            Err(RaftFailure::Status(s)) => s,
            Err(RaftFailure::NotLeader) => panic!("NOT_LEADER instead of a shed"),
            Ok(()) => panic!("accepted past the limit"),
        }
    }

    #[test]
    fn a_full_queue_sheds_live_load_but_first_drops_callers_that_left() {
        let mut q = Queue::default();
        let mut live = Vec::new();
        for _ in 0..MAX_QUEUED_COMMANDS {
            let (p, rx) = pending(8);
            q.push(p).map_err(|_| "refused below the limit").unwrap();
            live.push(rx);
        }
        let s = refusal(q.push(pending(8).0));
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            s.metadata().get("kahuna-error").map(|v| v.to_str().ok()),
            Some(Some("RESOURCE_EXHAUSTED"))
        );
        assert!(s.metadata().contains_key("kahuna-retry-after-ms"));
        assert!(
            s.message().contains(&MAX_QUEUED_COMMANDS.to_string()),
            "{}",
            s.message()
        );
        // Callers whose deadline passed are dropped, making room for live ones.
        live.truncate(MAX_QUEUED_COMMANDS / 2);
        assert!(q.push(pending(8).0).is_ok());
        assert_eq!(q.waiting.len(), MAX_QUEUED_COMMANDS / 2 + 1);
        assert_eq!(q.bytes, q.waiting.iter().map(|p| p.bytes).sum::<u64>());
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_batches_by_entry_bounds() {
        let mut q = Queue::default();
        let mut held = Vec::new();
        let big = 1 << 20;
        loop {
            let (p, rx) = pending(big);
            match q.push(p) {
                Ok(()) => held.push(rx),
                Err(e) => {
                    assert_eq!(refusal(Err(e)).code(), tonic::Code::ResourceExhausted);
                    break;
                }
            }
        }
        assert!(q.bytes <= MAX_QUEUED_BYTES && q.bytes > MAX_QUEUED_BYTES - 2 * (big as u64));
        // One entry takes commands until it reaches MAX_BYTES: here, one.
        let batch = q.take_batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(q.bytes, q.waiting.iter().map(|p| p.bytes).sum::<u64>());
        let mut small = Queue::default();
        let _rx: Vec<_> = (0..MAX_COMMANDS + 5)
            .map(|_| {
                let (p, rx) = pending(8);
                small.push(p).map_err(|_| "refused").unwrap();
                rx
            })
            .collect();
        assert_eq!(small.take_batch().len(), MAX_COMMANDS);
        assert_eq!(small.waiting.len(), 5);
    }

    #[test]
    fn a_closed_queue_answers_with_the_failure() {
        let mut q = Queue {
            closed: Some(RaftFailure::NotLeader),
            ..Queue::default()
        };
        assert!(matches!(q.push(pending(8).0), Err(RaftFailure::NotLeader)));
    }
}
