//! Incoming Raft RPCs on the peer port, handed to the local openraft instance once the
//! sender is known to belong to this cluster and the message is well formed. Nothing a
//! peer sends may panic this member: undecodable or inconsistent messages are refused
//! with INVALID_ARGUMENT before openraft sees them.

use std::sync::Arc;

use kahuna_proto::v1::peer_server::Peer;
use kahuna_proto::v1::{InfoRequest, InfoResponse, PeerMessage};
use kahuna_proto::ErrorKind;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::cluster_id::{CheckError, ClusterIdentity, CLUSTER_ID_KEY, NODE_ID_KEY};
use super::network::cluster_id_of;
use super::node::Contact;
use super::peer_input::{self, SnapshotStream};
use crate::errors::status;
use crate::store::StateMachineStore;
use crate::types::{NodeId, Raft, TypeConfig};

pub struct PeerService {
    raft: Raft,
    info: InfoResponse,
    identity: Arc<ClusterIdentity>,
    snapshot: SnapshotStream,
    /// For the members recorded as replicated to (see `raft::replicated`).
    sm: StateMachineStore,
    /// Touched whenever a leader's message is accepted (see `raft::removal`).
    contact: Arc<Contact>,
}

impl PeerService {
    pub fn new(
        raft: Raft,
        info: InfoResponse,
        identity: Arc<ClusterIdentity>,
        sm: StateMachineStore,
        contact: Arc<Contact>,
    ) -> Self {
        Self {
            raft,
            info,
            identity,
            snapshot: SnapshotStream::default(),
            sm,
            contact,
        }
    }

    /// This member's current term, the reference for how far a peer's may be ahead.
    fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Checks the sender's cluster id (learning it if this member knows none yet) and
    /// decodes the message.
    fn accept<T: DeserializeOwned>(&self, req: Request<PeerMessage>) -> Result<T, Status> {
        let sender = req
            .metadata()
            .get(NODE_ID_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        match self.identity.check(cluster_id_of(req.metadata())) {
            Ok(()) => {}
            Err(CheckError::Mismatch(m)) => {
                let addr = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
                let msg = format!(
                    "Raft message refused: member {} belongs to cluster {}, the sender (node {sender} from {addr}) to \
                     cluster {}; a member from another cluster, or started on the wrong data directory, is \
                     configured as a peer",
                    self.info.node_id, m.ours, m.theirs
                );
                if self.identity.should_log() {
                    tracing::error!("{msg}");
                }
                return Err(status(ErrorKind::Membership, msg));
            }
            Err(e @ CheckError::Storage(_)) => return Err(status(ErrorKind::Unavailable, e.to_string())),
        }
        bincode::deserialize(&req.into_inner().data).map_err(|e| invalid(format!("undecodable peer message: {e}")))
    }

    fn reply<T: Serialize>(&self, value: &T) -> Result<Response<PeerMessage>, Status> {
        let data = bincode::serialize(value).map_err(|e| Status::internal(format!("cannot encode peer reply: {e}")))?;
        let mut resp = Response::new(PeerMessage { data });
        if let Some(v) = self
            .identity
            .id()
            .and_then(|id| MetadataValue::try_from(id.as_str()).ok())
        {
            resp.metadata_mut().insert(CLUSTER_ID_KEY, v);
        }
        Ok(resp)
    }
}

/// A message `peer_input` refused: the sender learns why; openraft never sees it.
fn refused(e: peer_input::Refused) -> Status {
    invalid(format!("Raft message refused: {e}"))
}

fn invalid(message: String) -> Status {
    status(ErrorKind::InvalidArgument, message)
}

/// openraft assumes (and in debug builds asserts) that the entries of an append follow
/// `prev_log_id` one index after another; a peer that breaks that is refused here.
fn check_append(req: &AppendEntriesRequest<TypeConfig>) -> Result<(), Status> {
    let Some(mut expected) = req.prev_log_id.as_ref().map_or(Some(0), |p| p.index.checked_add(1)) else {
        return Err(invalid("append-entries after the last possible log index".into()));
    };
    for entry in &req.entries {
        if entry.log_id.index != expected {
            return Err(invalid(format!(
                "append-entries out of order: entry {} where {expected} was expected",
                entry.log_id
            )));
        }
        expected = expected.saturating_add(1);
    }
    Ok(())
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, req: Request<PeerMessage>) -> Result<Response<PeerMessage>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = self.accept(req)?;
        check_append(&req)?;
        peer_input::append_entries(&req, self.term()).map_err(refused)?;
        let resp = self.raft.append_entries(req).await;
        // From the leader of this member's term (a stale one gets HigherVote).
        if matches!(
            resp,
            Ok(AppendEntriesResponse::Success
                | AppendEntriesResponse::PartialSuccess(_)
                | AppendEntriesResponse::Conflict)
        ) {
            self.contact.touch();
        }
        self.reply(&resp)
    }

    async fn vote(&self, req: Request<PeerMessage>) -> Result<Response<PeerMessage>, Status> {
        let req: VoteRequest<NodeId> = self.accept(req)?;
        peer_input::vote(&req, self.term()).map_err(refused)?;
        self.reply(&self.raft.vote(req).await)
    }

    async fn install_snapshot(&self, req: Request<PeerMessage>) -> Result<Response<PeerMessage>, Status> {
        let req: InstallSnapshotRequest<TypeConfig> = self.accept(req)?;
        peer_input::install_snapshot(&req, self.term()).map_err(refused)?;
        self.snapshot.admit(&req).map_err(refused)?;
        let resp = self.raft.install_snapshot(req).await;
        if resp.is_ok() {
            self.contact.touch();
        }
        self.reply(&resp)
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let mut info = self.info.clone();
        info.cluster_id = self.identity.id().unwrap_or_default();
        let metrics = self.raft.metrics().borrow().clone();
        info.applied_index = metrics.last_applied.map_or(0, |l| l.index);
        let mut replicated = {
            let st = self.sm.read().map_err(|e| Status::internal(e.to_string()))?;
            info.committed_members = st.membership.membership().nodes().map(|(id, _)| *id).collect();
            info.committed_membership_index = st.membership.log_id().as_ref().map(|l| l.index);
            st.sm.replicated.clone()
        };
        replicated.extend(super::replicated::replicated_by_this_leader(&metrics));
        info.replicated_to = replicated.into_iter().collect();
        info.members = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        Ok(Response::new(info))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{Entry, EntryPayload, LogId, Vote};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[test]
    fn appends_must_follow_prev_log_id() {
        let req = |prev: Option<u64>, idx: &[u64]| AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: prev.map(|i| LogId::new(openraft::CommittedLeaderId::new(1, 1), i)),
            entries: idx.iter().map(|i| entry(1, *i)).collect(),
            leader_commit: None,
        };
        assert!(check_append(&req(None, &[0, 1, 2])).is_ok());
        assert!(check_append(&req(Some(4), &[5, 6])).is_ok());
        assert!(check_append(&req(Some(4), &[])).is_ok());
        assert!(check_append(&req(Some(4), &[6])).is_err());
        assert!(check_append(&req(None, &[1])).is_err());
        assert!(check_append(&req(Some(4), &[5, 7])).is_err());
        assert!(check_append(&req(Some(u64::MAX), &[0])).is_err());
    }
}
