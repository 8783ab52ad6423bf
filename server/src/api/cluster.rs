//! The `Cluster` service: status as this member sees it, and membership changes
//! (served by the leader).

use kahuna_proto::ErrorKind;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::cluster_client::ClusterClient;
use kahuna_proto::v1::cluster_server::Cluster;
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::{Request, Response, Status};

use super::{forward_unless_leader, Api};
use crate::errors::{invalid, status, RaftFailure};
use crate::raft::handoff::{transfer, HandoffError};
use crate::types::NodeId;

/// The leader's view of one member's replication (see `Member` in cluster.proto).
struct Replication {
    matched: Option<u64>,
    lag: u64,
    since_answer: Option<Duration>,
}

impl Api {
    /// The leader's view of every member's replication; empty on other members.
    fn replication(&self) -> BTreeMap<NodeId, Replication> {
        let m = self.node.raft.metrics().borrow().clone();
        let Some(replication) = m.replication.as_ref().filter(|_| m.state == ServerState::Leader) else {
            return BTreeMap::new();
        };
        let last = m.last_log_index;
        // Entries held: indexes 0..=matched (openraft's log starts at index 0).
        let held = |i: Option<u64>| i.map_or(0, |i| i + 1);
        let mut out: BTreeMap<NodeId, Replication> = replication
            .iter()
            .map(|(id, matched)| {
                let matched = matched.as_ref().map(|l| l.index);
                let since_answer = self.node.network.acks().since(*id);
                let lag = held(last).saturating_sub(held(matched));
                (
                    *id,
                    Replication {
                        matched,
                        lag,
                        since_answer,
                    },
                )
            })
            .collect();
        out.insert(
            self.node.id,
            Replication {
                matched: last,
                lag: 0,
                since_answer: Some(Duration::ZERO),
            },
        );
        out
    }

    /// The members with their client addresses, asked of all members at once so one
    /// unreachable member costs one timeout, not one each; on the leader, with their
    /// replication.
    async fn member_list(&self) -> Vec<pb::Member> {
        let replication = self.replication();
        // A member that has not answered for an election timeout would have started an
        // election by now, were it a healthy follower cut off from this leader.
        let answer_window = Duration::from_millis(self.node.raft.config().election_timeout_min);
        let lookups = self.node.members().into_iter().map(|(id, peer_addr, voter)| {
            let r = replication.get(&id);
            async move {
                let role = if voter {
                    pb::MemberRole::Voter
                } else {
                    pb::MemberRole::Learner
                };
                let since = r.and_then(|r| r.since_answer);
                pb::Member {
                    id,
                    peer_addr,
                    client_addr: self.node.client_addr_of(id).await.unwrap_or_default(),
                    role: role as i32,
                    leader_view: r.is_some(),
                    matched_index: r.and_then(|r| r.matched).unwrap_or(0),
                    lag: r.map_or(0, |r| r.lag),
                    answering: since.is_some_and(|s| s < answer_window),
                    last_answer_ms: since.map_or(0, |s| s.as_millis() as u64),
                }
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

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, ClusterClient, transfer_leader);
        let target = req.into_inner().node_id;
        let (leader_id, term) = if target == self.node.id {
            // Already the leader: nothing to hand over.
            (self.node.id, self.node.term())
        } else {
            self.transfer_to((target != 0).then_some(target)).await?
        };
        Ok(Response::new(pb::TransferLeaderResponse {
            header: Some(self.node.header()),
            leader_id,
            term,
        }))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, ClusterClient, remove_member);
        let id = req.get_ref().node_id;
        if id == 0 {
            return Err(invalid("node_id must be greater than 0"));
        }
        let members = self.node.members();
        let Some((_, _, voter)) = members.iter().find(|(m, _, _)| *m == id) else {
            // Already gone (a retry, or removed by someone else): what was asked holds.
            return Ok(self.membership_response().await);
        };
        if id == self.node.id {
            // The leader removing itself: it hands the leadership to another voter first,
            // so the others need not wait out an election timeout, and the new leader
            // removes it.
            let (successor, _) = self.transfer_to(None).await?;
            let mut metrics = self.node.raft.metrics();
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                metrics.wait_for(|m| m.current_leader == Some(successor)),
            )
            .await;
            forward_unless_leader!(self, req, ClusterClient, remove_member);
            return Err(self.fail(RaftFailure::NotLeader).await);
        }
        let change: ChangeMembers<NodeId, BasicNode> = if *voter {
            let voters: BTreeSet<NodeId> = members
                .iter()
                .filter(|(m, _, v)| *v && *m != id)
                .map(|(m, _, _)| *m)
                .collect();
            ChangeMembers::ReplaceAllVoters(voters)
        } else {
            // A learner is no voter to leave out: it is removed from the nodes.
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        if let Err(e) = self.node.raft.change_membership(change, false).await {
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
    /// Runs a leadership transfer from this member (the leader) and turns its refusals
    /// into typed errors.
    async fn transfer_to(&self, target: Option<NodeId>) -> Result<(NodeId, u64), Status> {
        let config = self.node.raft.config();
        // A successor that does not catch up within an election timeout is too far
        // behind to lead without a long pause. Once writes are paused it only lacks the
        // entries of the last moments, which take one message. The whole stays within a
        // client's attempt timeout (2 s by default) in the usual case.
        let catch_up = Duration::from_millis(config.election_timeout_min);
        let rpc = Duration::from_millis((config.election_timeout_min / 2).max(100));
        let started = std::time::Instant::now();
        match transfer(&self.node, target, catch_up, rpc, rpc).await {
            Ok((successor, term)) => {
                tracing::info!(
                    successor,
                    term,
                    took_ms = started.elapsed().as_millis() as u64,
                    "leadership transferred to member {successor}"
                );
                Ok((successor, term))
            }
            Err(HandoffError::NotLeader) => Err(self.fail(RaftFailure::NotLeader).await),
            Err(e @ HandoffError::UnknownMember { .. }) => Err(invalid(e.to_string())),
            Err(
                e @ (HandoffError::Learner(_)
                | HandoffError::NoSuccessor
                | HandoffError::JointConfig
                | HandoffError::NotCaughtUp { .. }),
            ) => Err(status(
                ErrorKind::Membership,
                format!("leadership not transferred: {e}"),
            )),
            // A retry of a transfer whose answer was lost finds it running: the client
            // tries again, and then finds the target leading.
            Err(e @ HandoffError::Busy) => Err(status(ErrorKind::Unavailable, e.to_string())),
            Err(e @ HandoffError::Refused(_)) => Err(status(
                ErrorKind::Unavailable,
                format!(
                    "leadership transfer failed ({e}); the members elect a leader after an election timeout if none                      leads"
                ),
            )),
        }
    }

    /// What this member holds, against the caps (for `cluster status`).
    fn usage(&self) -> Result<pb::Usage, Status> {
        let n = |v: usize| v as u64;
        let caps = self.node.caps;
        let mut usage = {
            let st = self.node.state()?;
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
