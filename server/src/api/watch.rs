//! `Kv.Watch`: a stream of every change to a key or a prefix from a revision on.
//!
//! A watch is served by the member it was opened at, from the changes that member
//! has applied and still retains (the state machine's history), so it needs no
//! leader round trip and adds nothing to the log. It never buffers changes of its
//! own: after each apply it reads what is new since the last revision it delivered,
//! so a slow watcher costs the server no memory, only the risk of falling out of the
//! retained history (then it ends with COMPACTED). Every message says up to which
//! revision the watcher is complete, which is where a client resumes, at any member,
//! after a disconnect.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kahuna_proto::v1 as pb;
use kahuna_proto::ErrorKind;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{kv::event_to_pb, limits, Api};
use crate::errors::{invalid, status};
use crate::raft::node::Node;
use crate::sm::{HistoryError, Keys};

/// Changes one message gathers before it stops at the end of a revision. A revision
/// is never split: a transaction's changes are bounded by the request size (2 MiB),
/// a sweep's by 1,000 keys without values, so a message stays under about 6 MiB.
const MAX_EVENTS_PER_MESSAGE: usize = 1000;
const MAX_BYTES_PER_MESSAGE: usize = 1 << 20;
pub const DEFAULT_PROGRESS_INTERVAL_MS: u64 = 5_000;
pub const MIN_PROGRESS_INTERVAL_MS: u64 = 100;
pub const MAX_PROGRESS_INTERVAL_MS: u64 = 600_000;
/// Messages a watch may have made and not yet sent: the rest wait in the history.
const QUEUED_MESSAGES: usize = 4;

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

fn watched(r: &pb::WatchRequest) -> Result<Keys, Status> {
    if r.prefix {
        limits::text("key", &r.key, limits::MAX_KEY_BYTES, true)?;
        Ok(Keys::Prefix(r.key.clone()))
    } else {
        limits::key(&r.key)?;
        Ok(Keys::Key(r.key.clone()))
    }
}

fn progress_interval(ms: u64) -> Result<Duration, Status> {
    let ms = if ms == 0 { DEFAULT_PROGRESS_INTERVAL_MS } else { ms };
    if !(MIN_PROGRESS_INTERVAL_MS..=MAX_PROGRESS_INTERVAL_MS).contains(&ms) {
        return Err(invalid(format!(
            "progress_interval_ms is {ms}; it must be from {MIN_PROGRESS_INTERVAL_MS} to {MAX_PROGRESS_INTERVAL_MS} \
             (0 = {DEFAULT_PROGRESS_INTERVAL_MS})"
        )));
    }
    Ok(Duration::from_millis(ms))
}

fn compacted(from: u64, retained_from: u64) -> Status {
    status(
        ErrorKind::Compacted,
        format!(
            "the watch cannot start at revision {from}: changes before revision {retained_from} are no longer \
             retained; read the keys again and watch from the revision of that read"
        ),
    )
}

impl Api {
    pub async fn open_watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        let watched = watched(&r)?;
        let interval = progress_interval(r.progress_interval_ms)?;
        let slot = self.node.watches.take()?;
        // Subscribed before reading, so no apply after the read goes unnoticed.
        let applied = self.node.sm.subscribe();
        let from = {
            let st = self.node.state()?;
            let latest = st.revision();
            let from = if r.start_revision == 0 {
                latest + 1
            } else {
                r.start_revision
            };
            // Checked here so a start that cannot be served fails the call itself.
            let retained = st.sm.kv.retained_from(latest);
            if from <= latest && from < retained {
                return Err(compacted(from, retained));
            }
            from
        };
        let (tx, rx) = mpsc::channel(QUEUED_MESSAGES);
        let node = self.node.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let watch = Watch {
                node,
                watched,
                next: from,
                interval,
                tx,
            };
            watch.run(applied).await;
        });
        let stream: WatchStream = Box::pin(ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }
}

struct Watch {
    node: Arc<Node>,
    watched: Keys,
    /// The first revision not yet delivered.
    next: u64,
    interval: Duration,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
}

/// Why a watch ended on the server's side.
enum End {
    /// The watcher went away.
    Gone,
    /// Tell the watcher why (it resumes elsewhere, or gives up on a final error).
    Failed(Status),
}

impl Watch {
    async fn run(mut self, mut applied: tokio::sync::watch::Receiver<u64>) {
        let end = self.serve(&mut applied).await;
        if let End::Failed(s) = end {
            let _ = self.tx.send(Err(s)).await;
        }
    }

    async fn serve(&mut self, applied: &mut tokio::sync::watch::Receiver<u64>) -> End {
        let created = pb::WatchResponse {
            header: Some(self.node.header()),
            created: true,
            events: Vec::new(),
            revision: self.next - 1,
        };
        if self.tx.send(Ok(created)).await.is_err() {
            return End::Gone;
        }
        let mut last_sent = Instant::now();
        loop {
            // Everything applied so far, in messages of whole revisions.
            loop {
                let (msg, caught_up) = match self.gather() {
                    Ok(m) => m,
                    Err(s) => return End::Failed(s),
                };
                if let Some(msg) = msg {
                    if self.tx.send(Ok(msg)).await.is_err() {
                        return End::Gone;
                    }
                    last_sent = Instant::now();
                }
                if caught_up {
                    break;
                }
            }
            tokio::select! {
                changed = applied.changed() => {
                    if changed.is_err() {
                        return End::Failed(crate::errors::shutting_down());
                    }
                }
                () = tokio::time::sleep_until(last_sent + self.interval) => {
                    // A member cut off from the leader would deliver nothing while the
                    // cluster goes on: end the watch so the client resumes elsewhere.
                    if self.node.leader().is_none() {
                        return End::Failed(status(
                            ErrorKind::Unavailable,
                            format!(
                                "this member has no leader, so its changes may be behind the cluster's; resume the \
                                 watch at another member from revision {}",
                                self.next
                            ),
                        ));
                    }
                    let progress = pb::WatchResponse {
                        header: Some(self.node.header()),
                        created: false,
                        events: Vec::new(),
                        revision: self.next - 1,
                    };
                    if self.tx.send(Ok(progress)).await.is_err() {
                        return End::Gone;
                    }
                    last_sent = Instant::now();
                }
                () = self.tx.closed() => return End::Gone,
                () = self.node.stopping.cancelled() => {
                    return End::Failed(status(
                        ErrorKind::Unavailable,
                        format!("this member is shutting down; resume the watch at another member from revision {}", self.next),
                    ));
                }
            }
        }
    }

    /// The next message of changes, if there are any since the last one, and whether
    /// it reaches the latest applied revision.
    fn gather(&mut self) -> Result<(Option<pb::WatchResponse>, bool), Status> {
        let st = self.node.state()?;
        let latest = st.revision();
        if self.next > latest {
            return Ok((None, true));
        }
        let (events, through) = st
            .sm
            .kv
            .changes(
                self.next,
                latest,
                &self.watched,
                MAX_EVENTS_PER_MESSAGE,
                MAX_BYTES_PER_MESSAGE,
            )
            .map_err(|HistoryError::Compacted { retained_from }| {
                status(
                    ErrorKind::Compacted,
                    format!(
                        "the watch fell behind: changes from revision {} on are no longer retained (the oldest \
                         retained is {retained_from}); read the keys again and watch from the revision of that read",
                        self.next
                    ),
                )
            })?;
        drop(st);
        self.next = through + 1;
        if events.is_empty() {
            return Ok((None, through == latest));
        }
        let msg = pb::WatchResponse {
            header: Some(self.node.header()),
            created: false,
            events: events.into_iter().map(event_to_pb).collect(),
            revision: through,
        };
        Ok((Some(msg), through == latest))
    }
}
