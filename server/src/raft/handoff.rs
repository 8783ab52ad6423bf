//! Leadership hand-off: a leader that is asked to stop makes an up-to-date follower
//! leader of the next term before it exits, so clients see a pause of a few round trips
//! instead of an election timeout; `cluster transfer-leader` runs the same hand-off to a
//! chosen voter, and this member then keeps running as a follower.
//!
//! openraft 0.9 has no transfer-leader call, and a plain election cannot work quickly:
//! followers refuse to vote while the leader's lease (`election_timeout_max` after its
//! last heartbeat) runs, which the ephemeral tier relies on. So the leader runs the
//! election of its successor itself, through openraft's vote rule (a member accepts a
//! vote at least as high as its own, and a committed vote for itself makes it leader):
//!
//! 1. The successor (the chosen voter, or the first to catch up) is waited for, while
//!    writes still flow, until its log reaches the leader's last entry as of the start:
//!    a lagging target costs this bounded wait, not a pause of every write.
//! 2. The ephemeral tier closes (in-flight ephemeral operations finish first), so this
//!    member grants nothing once another may lead; proposals pause after the entry in
//!    flight. The successor's replicated log must then reach this leader's last entry
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
//! On shutdown, any failure leaves this member a follower with proposals paused; the
//! cluster then elects a leader after an election timeout, as after a crash. After a
//! transfer, successful or not, this member serves again (see [`transfer`]): its
//! ephemeral tier reopens only once it has moved on to the new term, so nothing is
//! granted in the term it handed over, and a later term it leads starts a fresh tier
//! that waits out the successor's leases like any new leader.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{BasicNode, Vote};

use super::network::PeerNetwork;
use super::node::Node;
use crate::types::{NodeId, TypeConfig};

/// Why a hand-off did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("this member is not the leader")]
    NotLeader,
    #[error("no other voter to hand the leadership to")]
    NoSuccessor,
    #[error("a membership change is in progress; transfer the leadership once it has finished")]
    JointConfig,
    #[error("member {id} is not in the cluster (its members are {members:?})")]
    UnknownMember { id: NodeId, members: Vec<NodeId> },
    #[error("member {0} is a learner; only a voter can lead (promote it first)")]
    Learner(NodeId),
    #[error("{}", not_caught_up(.target, .matched, .last, .waited))]
    NotCaughtUp {
        /// The chosen member, or `None` when any voter would do.
        target: Option<NodeId>,
        /// The highest index the leader knows the target (the most advanced voter when
        /// none was chosen) to hold.
        matched: Option<u64>,
        /// The leader's last log index.
        last: u64,
        waited: Duration,
    },
    #[error("another leadership transfer is in progress")]
    Busy,
    #[error("{0}")]
    Refused(String),
}

fn not_caught_up(target: &Option<NodeId>, matched: &Option<u64>, last: &u64, waited: &Duration) -> String {
    let (who, it) = match target {
        Some(t) => (format!("member {t} did not catch up"), "it"),
        None => ("no voter caught up".to_owned(), "the most advanced voter"),
    };
    let behind = match matched {
        Some(m) => format!(
            "holds the log up to index {m}, {} entries behind",
            last.saturating_sub(*m)
        ),
        None => "has no entry the leader knows of".to_owned(),
    };
    format!("{who} with the leader's log within {waited:?}: the leader's last index is {last} and {it} {behind}")
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

/// The membership and replication state a successor is chosen from.
struct View {
    term: u64,
    last: Option<u64>,
    voters: BTreeSet<NodeId>,
    nodes: Vec<(NodeId, BasicNode)>,
    /// Each other voter's matched index.
    matched: Vec<(NodeId, Option<u64>)>,
}

fn view(node: &Node, target: Option<NodeId>) -> Result<View, HandoffError> {
    let metrics = node.raft.metrics();
    let m = metrics.borrow();
    if m.state != openraft::ServerState::Leader || m.current_leader != Some(node.id) {
        return Err(HandoffError::NotLeader);
    }
    let membership = m.membership_config.membership();
    let nodes: Vec<(NodeId, BasicNode)> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    if let Some(t) = target {
        if !nodes.iter().any(|(id, _)| *id == t) {
            return Err(HandoffError::UnknownMember {
                id: t,
                members: nodes.iter().map(|(id, _)| *id).collect(),
            });
        }
        if !voters.contains(&t) {
            return Err(HandoffError::Learner(t));
        }
    }
    if membership.get_joint_config().len() != 1 {
        return Err(HandoffError::JointConfig);
    }
    if !voters.iter().any(|v| *v != node.id) {
        return Err(HandoffError::NoSuccessor);
    }
    let matched = m
        .replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != node.id && voters.contains(id) && target.is_none_or(|t| t == **id))
        .map(|(id, l)| (*id, l.as_ref().map(|l| l.index)))
        .collect();
    Ok(View {
        term: m.current_term,
        last: m.last_log_index,
        voters,
        nodes,
        matched,
    })
}

/// Waits up to `within` for a candidate (the target, or any other voter) whose log
/// reaches `upto` (the leader's last index when `None`); returns it and the view.
async fn caught_up(
    node: &Node,
    target: Option<NodeId>,
    upto: Option<Option<u64>>,
    within: Duration,
) -> Result<(NodeId, View), HandoffError> {
    let deadline = Instant::now() + within;
    let mut metrics = node.raft.metrics();
    loop {
        // What `view` reads now counts as seen: the wait below is for a later change.
        drop(metrics.borrow_and_update());
        let v = view(node, target)?;
        let goal = upto.unwrap_or(v.last);
        if let Some((id, _)) = v.matched.iter().find(|(_, m)| *m >= goal) {
            return Ok((*id, v));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HandoffError::NotCaughtUp {
                target,
                matched: v.matched.iter().filter_map(|(_, m)| *m).max(),
                last: v.last.unwrap_or(0),
                waited: within,
            });
        }
        // Replication progress arrives as a metrics change; poll too, in case it is quiet.
        let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), metrics.changed()).await;
    }
}

/// What a hand-off that got as far as this member's own vote leaves behind: the term
/// this member moved to.
struct SteppedDown(Option<u64>);

/// Hands the leadership of this member to `target` (any up-to-date voter when `None`)
/// and returns it. `catch_up` bounds the wait for the successor's log while writes
/// flow, `settle` the wait for its last entries once they are paused, `rpc` each
/// message. Leaves the ephemeral tier closed and proposals paused, whatever the
/// outcome; `stepped_down` is set once this member has accepted the successor's vote.
async fn hand_off(
    node: &Node,
    target: Option<NodeId>,
    catch_up: Duration,
    settle: Duration,
    rpc: Duration,
    stepped_down: &mut SteppedDown,
) -> Result<NodeId, HandoffError> {
    // 1. A successor close behind while writes still flow.
    let start = view(node, target)?.last;
    caught_up(node, target, Some(start), catch_up).await?;

    // 2. Nothing is granted or proposed from here on; the successor gets every entry.
    node.close_ephemeral();
    node.proposer.pause().await;
    let (successor, v) = caught_up(node, target, None, settle).await?;
    let View {
        term, voters, nodes, ..
    } = v;
    let vote = Vote::new_committed(term + 1, successor);
    tracing::info!(term, successor, "handing the leadership over to member {successor}");

    // 3. This member's own vote first: it stops leading here.
    match node.raft.append_entries(vote_message(vote)).await {
        Ok(AppendEntriesResponse::Success) => stepped_down.0 = Some(term + 1),
        Ok(other) => return Err(HandoffError::Refused(format!("this member refused: {other:?}"))),
        Err(e) => return Err(HandoffError::Refused(format!("raft stopped: {e}"))),
    }
    // A quorum of voters, the successor's own vote included.
    let quorum = voters.len() / 2 + 1;
    let mut accepted = 2; // this member and the successor
    let mut network = node.network.clone();
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

/// The hand-off of a member that is shutting down: on success this member is a
/// follower of the returned successor; either way its ephemeral tier stays closed and
/// proposals stay paused (the caller closes the proposer).
pub async fn hand_off_on_shutdown(node: &Node, catch_up: Duration, rpc: Duration) -> Result<NodeId, HandoffError> {
    // A transfer in flight finishes first; this member may no longer lead after it.
    let _running = node.handoff.lock().await;
    if !node.is_leader() {
        return Err(HandoffError::NotLeader);
    }
    hand_off(node, None, catch_up, catch_up, rpc, &mut SteppedDown(None)).await
}

/// Transfers the leadership to `target` (any up-to-date voter when `None`) and returns
/// the successor and the term it leads in. This member keeps running: whether or not
/// the transfer succeeded, its proposals resume and its ephemeral tier reopens, as a
/// follower (whose requests Raft refuses or forwards) or as the leader it still is.
/// Writes pause for at most `settle` plus two messages (`rpc` each).
pub async fn transfer(
    node: &Node,
    target: Option<NodeId>,
    catch_up: Duration,
    settle: Duration,
    rpc: Duration,
) -> Result<(NodeId, u64), HandoffError> {
    let Ok(_running) = node.handoff.try_lock() else {
        return Err(HandoffError::Busy);
    };
    let mut stepped_down = SteppedDown(None);
    let result = hand_off(node, target, catch_up, settle, rpc, &mut stepped_down).await;
    if let Some(term) = stepped_down.0 {
        // The tier of the term handed over must be gone before operations are admitted
        // again: one that confirmed leadership in that term just before the hand-off
        // then finds no tier of its term and is refused, instead of granting while the
        // successor leads.
        node.ephemeral.observe_term(term, false, std::time::Instant::now());
        let mut metrics = node.raft.metrics();
        let _ = tokio::time::timeout(rpc, metrics.wait_for(|m| m.current_term >= term)).await;
    }
    node.proposer.resume();
    node.reopen_ephemeral();
    result.map(|successor| (successor, stepped_down.0.unwrap_or_else(|| node.term())))
}
