//! Leadership hand-off on shutdown: a leader that is asked to stop makes an up-to-date
//! follower leader of the next term before it exits, so clients see a pause of a few
//! round trips instead of an election timeout.
//!
//! openraft 0.9 has no transfer-leader call, and a plain election cannot work quickly:
//! followers refuse to vote while the leader's lease (`election_timeout_max` after its
//! last heartbeat) runs, which the ephemeral tier relies on. So the leader runs the
//! election of its successor itself, through openraft's vote rule (a member accepts a
//! vote at least as high as its own, and a committed vote for itself makes it leader):
//!
//! 1. The ephemeral tier closes (in-flight ephemeral operations finish first), so this
//!    member grants nothing once another may lead; proposals pause after the entry in
//!    flight.
//! 2. The successor is a voter whose replicated log reaches this leader's last entry
//!    (its log is then at least as up to date as any voter's, the condition Raft puts
//!    on a vote).
//! 3. This member, then other voters, accept the committed vote (term + 1, successor),
//!    carried by an empty append-entries message. Accepting it is a member's vote for
//!    the successor in term + 1, saved durably before the reply, and ends any lease it
//!    held for this leader. A member that already voted in term + 1 refuses it.
//! 4. Once a quorum (counting the successor) has accepted, the successor gets the same
//!    message and becomes leader of term + 1 at once (openraft: "node-a electing for
//!    node-b"). Since it had every entry of this leader, nothing committed is lost;
//!    since a quorum accepted its vote first, no other member can win term + 1.
//!
//! Any failure leaves this member a follower with proposals paused; the cluster then
//! elects a leader after an election timeout, as after a crash.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{BasicNode, Vote};

use super::network::PeerNetwork;
use super::node::Node;
use super::types::{NodeId, TypeConfig};

/// Why a hand-off did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("not the leader")]
    NotLeader,
    #[error("no other voter to hand the leadership to")]
    NoSuccessor,
    #[error("a membership change is in progress")]
    JointConfig,
    #[error("no voter caught up with the leader's log within {0:?}")]
    NotCaughtUp(Duration),
    #[error("{0}")]
    Refused(String),
}

/// The vote message: an empty append-entries carrying `vote`.
fn vote_message(vote: Vote<NodeId>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote,
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    }
}

async fn send(
    network: &mut PeerNetwork,
    id: NodeId,
    node: &BasicNode,
    vote: Vote<NodeId>,
    timeout: Duration,
) -> Result<(), String> {
    let mut conn = network.new_client(id, node).await;
    match conn.append_entries(vote_message(vote), RPCOption::new(timeout)).await {
        Ok(AppendEntriesResponse::Success) => Ok(()),
        Ok(other) => Err(format!("member {id} refused: {other:?}")),
        Err(e) => Err(format!("member {id} unreachable: {e}")),
    }
}

/// Hands the leadership of this member to an up-to-date voter and returns its id.
/// `catch_up` bounds the wait for a voter to have this leader's last entry; `rpc` each
/// message. On success this member is a follower of the successor.
pub async fn hand_off(
    node: &Node,
    network: &PeerNetwork,
    catch_up: Duration,
    rpc: Duration,
) -> Result<NodeId, HandoffError> {
    if !node.is_leader() {
        return Err(HandoffError::NotLeader);
    }
    // 1. Nothing is granted or proposed from here on.
    node.close_ephemeral();
    node.proposer.pause().await;

    // 2. The successor: the first voter whose log reaches our last entry.
    let deadline = Instant::now() + catch_up;
    let mut metrics = node.raft.metrics();
    let (term, successor, voters, nodes) = loop {
        let (term, successor, voters, nodes) = {
            let m = metrics.borrow_and_update();
            if m.state != openraft::ServerState::Leader || m.current_leader != Some(node.id) {
                return Err(HandoffError::NotLeader);
            }
            let membership = m.membership_config.membership();
            if membership.get_joint_config().len() != 1 {
                return Err(HandoffError::JointConfig);
            }
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            if !voters.iter().any(|v| *v != node.id) {
                return Err(HandoffError::NoSuccessor);
            }
            let last = m.last_log_index;
            let successor = m.replication.as_ref().and_then(|r| {
                r.iter()
                    .filter(|(id, matched)| {
                        **id != node.id && voters.contains(id) && matched.as_ref().map(|l| l.index) == last
                    })
                    .map(|(id, _)| *id)
                    .next()
            });
            let nodes: Vec<(NodeId, BasicNode)> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
            (m.current_term, successor, voters, nodes)
        };
        if let Some(s) = successor {
            break (term, s, voters, nodes);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HandoffError::NotCaughtUp(catch_up));
        }
        // Replication progress arrives as a metrics change; poll too, in case it is quiet.
        let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), metrics.changed()).await;
    };
    let vote = Vote::new_committed(term + 1, successor);
    tracing::info!(term, successor, "handing the leadership over to member {successor}");

    // 3. This member's own vote first: it stops leading here.
    match node.raft.append_entries(vote_message(vote)).await {
        Ok(AppendEntriesResponse::Success) => {}
        Ok(other) => return Err(HandoffError::Refused(format!("this member refused: {other:?}"))),
        Err(e) => return Err(HandoffError::Refused(format!("raft stopped: {e}"))),
    }
    // A quorum of voters, the successor's own vote included.
    let quorum = voters.len() / 2 + 1;
    let mut accepted = 2; // this member and the successor
    let mut network = network.clone();
    let others: Vec<(NodeId, BasicNode)> = nodes
        .iter()
        .filter(|(id, _)| *id != node.id && *id != successor && voters.contains(id))
        .cloned()
        .collect();
    let mut pending: FuturesUnordered<_> = others
        .into_iter()
        .map(|(id, n)| {
            let mut net = network.clone();
            async move { send(&mut net, id, &n, vote, rpc).await }
        })
        .collect();
    let mut refusals = Vec::new();
    while accepted < quorum {
        match pending.next().await {
            Some(Ok(())) => accepted += 1,
            Some(Err(e)) => refusals.push(e),
            None => {
                return Err(HandoffError::Refused(format!(
                    "only {accepted} of {} voters accepted member {successor}: {}",
                    voters.len(),
                    refusals.join("; ")
                )))
            }
        }
    }
    // The others still learn of the new term, from the successor's first heartbeat if
    // not from these messages; finishing them is not waited for.
    tokio::spawn(async move { while pending.next().await.is_some() {} });

    // 4. The successor becomes leader.
    let target = nodes
        .iter()
        .find(|(id, _)| *id == successor)
        .map(|(_, n)| n.clone())
        .ok_or(HandoffError::NoSuccessor)?;
    send(&mut network, successor, &target, vote, rpc)
        .await
        .map_err(HandoffError::Refused)?;
    Ok(successor)
}
