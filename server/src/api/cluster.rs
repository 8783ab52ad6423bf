//! The `Cluster` service: status as this member sees it, and membership changes
//! (served by the leader).

use kahuna_proto::ErrorKind;
use std::collections::BTreeSet;

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::cluster_client::ClusterClient;
use kahuna_proto::v1::cluster_server::Cluster;
use openraft::{BasicNode, ServerState};
use tonic::{Request, Response, Status};

use super::errors::{invalid, status};
use super::{forward_unless_leader, Api};

impl Api {
    /// The members with their client addresses, asked of all members at once so one
    /// unreachable member costs one timeout, not one each.
    async fn member_list(&self) -> Vec<pb::Member> {
        let lookups = self
            .node
            .members()
            .into_iter()
            .map(|(id, peer_addr, voter)| async move {
                let role = if voter {
                    pb::MemberRole::Voter
                } else {
                    pb::MemberRole::Learner
                };
                pb::Member {
                    id,
                    peer_addr,
                    client_addr: self.node.client_addr_of(id).await.unwrap_or_default(),
                    role: role as i32,
                }
            });
        futures::future::join_all(lookups).await
    }

    async fn membership_response(&self) -> Response<pb::MembershipResponse> {
        Response::new(pb::MembershipResponse {
            header: Some(self.node.header()),
            members: self.member_list().await,
        })
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        self.authorize(&req)?;
        let m = self.node.raft.metrics().borrow().clone();
        let state = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.node.header()),
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            members: self.member_list().await,
            // The leader knows what is committed; a follower reports what it applied.
            committed_index: m.last_applied.map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            state: state.into(),
            storage: self.node.storage.into(),
            usage: Some(self.usage()?),
        }))
    }

    async fn add_learner(
        &self,
        req: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, ClusterClient, add_learner);
        let r = req.into_inner();
        if r.node_id == 0 {
            return Err(invalid("node_id must be greater than 0"));
        }
        if r.peer_addr.is_empty() || !r.peer_addr.contains(':') {
            return Err(invalid(format!("peer_addr {:?} is not HOST:PORT", r.peer_addr)));
        }
        let node = BasicNode { addr: r.peer_addr };
        if let Err(e) = self.node.raft.add_learner(r.node_id, node, r.blocking).await {
            return Err(self.fail(e.into()).await);
        }
        Ok(self.membership_response().await)
    }

    async fn change_membership(
        &self,
        req: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, ClusterClient, change_membership);
        let r = req.into_inner();
        let voters: BTreeSet<u64> = r.voters.into_iter().collect();
        if voters.is_empty() {
            return Err(invalid("voters must name at least one member"));
        }
        if let Err(e) = self.node.raft.change_membership(voters, r.retain).await {
            return Err(self.fail(e.into()).await);
        }
        Ok(self.membership_response().await)
    }

    async fn trigger_snapshot(
        &self,
        req: Request<pb::TriggerSnapshotRequest>,
    ) -> Result<Response<pb::TriggerSnapshotResponse>, Status> {
        self.authorize(&req)?;
        self.node
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| status(ErrorKind::Unavailable, format!("raft stopped: {e}")))?;
        Ok(Response::new(pb::TriggerSnapshotResponse {
            header: Some(self.node.header()),
        }))
    }
}

impl Api {
    /// What this member holds, against the caps (for `cluster status`).
    fn usage(&self) -> Result<pb::Usage, Status> {
        let n = |v: usize| v as u64;
        let caps = self.node.caps;
        let mut usage = {
            let st = self
                .node
                .sm
                .read()
                .map_err(|e| super::errors::internal(e.to_string()))?;
            pb::Usage {
                keys: n(st.sm.kv.len()),
                locks: n(st.sm.locks.len()),
                sequences: n(st.sm.sequences.len()),
                history_bytes: st.sm.kv.history_bytes(),
                dedupe_clients: n(st.sm.dedupe.clients()),
                dedupe_answer_bytes: st.sm.dedupe.answer_bytes(),
                ..pb::Usage::default()
            }
        };
        usage.max_keys = n(caps.keys);
        usage.max_locks = n(caps.locks);
        usage.max_sequences = n(caps.sequences);
        usage.max_ephemeral_entries = n(caps.ephemeral);
        usage.max_history_bytes = crate::sm::MAX_HISTORY_BYTES;
        if self.node.is_leader() {
            usage.ephemeral_entries = n(self.node.ephemeral.peek(crate::ephemeral::Tier::entries).unwrap_or(0));
            usage.queued_proposals = n(self.node.proposer.queued());
        }
        Ok(usage)
    }
}
