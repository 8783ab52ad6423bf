//! `Locks.Observe`: the holder of a persistent lock now and after every change, for
//! an election's observers.
//!
//! Like a watch, it is served by the member asked from its applied state, woken by
//! each apply, and needs no history: an observer wants the holder as it stands, so
//! holders between two messages may be skipped, but tokens only rise. The lease is
//! judged by the applied state's time, so an expiry shows once the leader's sweep
//! (or any later entry) is applied. Observes count against `--max-watches`.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use kahuna_proto::v1 as pb;
use kahuna_proto::v1::Durability;
use kahuna_proto::ErrorKind;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::locks::info;
use super::{limits, Api};
use crate::errors::{shutting_down, status};
use crate::raft::node::Node;
use crate::sm::LockView;

/// An observer that hears nothing for this long is sent the holder again, so it
/// can tell a quiet lock from a dead stream.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

pub type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::ObserveResponse, Status>> + Send>>;

impl Api {
    pub async fn open_observe(&self, req: Request<pb::ObserveRequest>) -> Result<Response<ObserveStream>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        limits::resource("resource", &r.resource)?;
        let slot = self.node.watches.take()?;
        let applied = self.node.sm.subscribe();
        let (tx, rx) = mpsc::channel(2);
        let node = self.node.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(s) = observe(&node, &r.resource, applied, &tx).await {
                let _ = tx.send(Err(s)).await;
            }
        });
        let stream: ObserveStream = Box::pin(ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }
}

type Sender = mpsc::Sender<Result<pb::ObserveResponse, Status>>;
/// What an observer was last told: the holder's (owner, token, value), or none.
type Told = Option<Option<(Vec<u8>, u64, Vec<u8>)>>;

/// The holder as the applied state has it: `(revision, holder)`.
fn holder(node: &Node, resource: &[u8]) -> Result<(u64, Option<LockView>), Status> {
    let st = node.state()?;
    Ok((st.revision(), st.sm.locks.get(st.sm.now_ms, resource)))
}

/// Sends the holder now and whenever it changes; `Ok` when the observer went away.
async fn observe(
    node: &Node,
    resource: &[u8],
    mut applied: tokio::sync::watch::Receiver<u64>,
    tx: &Sender,
) -> Result<(), Status> {
    let mut last: Told = None;
    let mut last_sent = tokio::time::Instant::now();
    loop {
        let (revision, lock) = holder(node, resource)?;
        let now = lock.as_ref().map(|l| (l.owner.clone(), l.token, l.value.clone()));
        if last.as_ref() != Some(&now) {
            let mut header = node.header();
            header.revision = revision;
            let st_now = node.clock.now_ms();
            let msg = pb::ObserveResponse {
                header: Some(header),
                lock: lock.map(|v| info(v, st_now, Durability::Persistent)),
            };
            if tx.send(Ok(msg)).await.is_err() {
                return Ok(());
            }
            last = Some(now);
            last_sent = tokio::time::Instant::now();
        }
        tokio::select! {
            changed = applied.changed() => {
                if changed.is_err() {
                    return Err(shutting_down());
                }
            }
            () = tokio::time::sleep_until(last_sent + HEARTBEAT) => {
                if node.leader().is_none() {
                    return Err(status(
                        ErrorKind::Unavailable,
                        "this member has no leader, so the holder it knows may be out of date; observe at another member",
                    ));
                }
                // Sent again below: the observer's sign of life.
                last = None;
            }
            () = tx.closed() => return Ok(()),
            () = node.stopping.cancelled() => return Err(shutting_down()),
        }
    }
}
