//! The `Maintenance` service: backups. The leader confirms its leadership (so the
//! state includes every write acknowledged before the call), takes the applied state
//! (an O(1) clone of persistent collections), encodes the backup file on a background
//! thread and streams it in chunks. A follower forwards the call to the leader (or
//! answers NOT_LEADER on a TLS client port, like every other request).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kahuna_proto::v1 as pb;
use kahuna_proto::v1::maintenance_client::MaintenanceClient;
use kahuna_proto::v1::maintenance_server::Maintenance;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{forward_failed, forwarded, Api};
use crate::errors::{internal, overloaded};
use crate::raft::cluster_id::ClusterIdentity;
use crate::raft::node::Route;

/// Bytes of the file per message: well under the 4 MiB a client decodes by default.
const CHUNK_BYTES: usize = 1 << 20;

pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

#[derive(Clone)]
pub struct MaintenanceService {
    api: Api,
    identity: Arc<ClusterIdentity>,
    /// One snapshot at a time per member: each holds an encoded copy of the state.
    taking: Arc<tokio::sync::Mutex<()>>,
}

impl MaintenanceService {
    pub fn new(api: Api, identity: Arc<ClusterIdentity>) -> Self {
        Self {
            api,
            identity,
            taking: Arc::default(),
        }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, req: Request<pb::SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        self.api.authorize(&req)?;
        if let Route::Forward(channel) = self.api.route(&req).await? {
            let mut forwarded = forwarded(req);
            // The stream lasts as long as the file takes to send, not one request's time.
            forwarded.metadata_mut().remove("grpc-timeout");
            let leader = MaintenanceClient::new(channel)
                .snapshot(forwarded)
                .await
                .map_err(forward_failed)?
                .into_inner();
            let stream: SnapshotStream = Box::pin(leader.map(|chunk| chunk.map_err(forward_failed)));
            return Ok(Response::new(stream));
        }
        let taking = self.taking.clone().try_lock_owned().map_err(|_| {
            overloaded(
                "this member is already taking a snapshot; retry when it has finished",
                1_000,
            )
        })?;
        self.api.read_barrier().await?;
        let applied = self.api.node.state()?.clone();
        let cluster_id = self.identity.id().unwrap_or_default();
        let mut first = pb::SnapshotChunk {
            header: Some(self.api.node.header()),
            revision: applied.sm.revision,
            keys: applied.sm.kv.len() as u64,
            ..Default::default()
        };
        if let Some(h) = first.header.as_mut() {
            h.revision = applied.sm.revision;
        }
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let _taking = taking;
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            let taken_unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let encoded =
                crate::store::in_background(move || crate::backup::encode(&applied, &cluster_id, taken_unix_ms)).await;
            let file = match encoded
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(file) => file,
                Err(e) => {
                    let _ = tx.send(Err(internal(format!("cannot encode the snapshot: {e}")))).await;
                    return;
                }
            };
            for chunk in file.chunks(CHUNK_BYTES) {
                let msg = pb::SnapshotChunk {
                    data: chunk.to_vec(),
                    ..Default::default()
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return; // the client went away
                }
            }
            let last = pb::SnapshotChunk {
                total_bytes: file.len() as u64,
                sha256: crate::backup::checksum_hex(&file),
                ..Default::default()
            };
            let _ = tx.send(Ok(last)).await;
        });
        let stream: SnapshotStream = Box::pin(ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }
}
