//! A member removed from the cluster stops instead of campaigning.
//!
//! openraft 0.9's leader stops replicating to a removed member as soon as it appends
//! the membership without it, so the removed member usually never receives that
//! membership: it keeps the joint one, in which it is still a voter, and stands for
//! election again and again (the others refuse it: their log is ahead). Nothing tells
//! it that it was removed, so it asks: once it has heard from no leader for an
//! election timeout (or its own membership already leaves it out), it asks the other
//! members for the membership they have committed. One committed after this member's
//! own membership that leaves it out means it was removed, and the member stops.
//!
//! Only a member that has been in a membership can be removed: one started with
//! `--join` is in none until it is added and waits, and a voter demoted to learner is
//! still in the membership.

use std::sync::Arc;
use std::time::Duration;

use super::cluster_id::ClusterIdentity;
use super::network::peer_info;
use super::node::Node;
use crate::types::NodeId;

/// How often the membership is checked.
const POLL: Duration = Duration::from_millis(500);
/// How long each member gets to answer.
const ASK: Duration = Duration::from_secs(1);

/// Resolves, after logging why, once this member learns it was removed from the
/// cluster; never otherwise.
pub async fn removed(node: Arc<Node>, identity: Arc<ClusterIdentity>) {
    // A healthy member hears from its leader every heartbeat; one that has not for the
    // longest election timeout has been cut off, or dropped.
    let quiet = Duration::from_millis(node.raft.config().election_timeout_max);
    let mut was_member = false;
    loop {
        tokio::time::sleep(POLL).await;
        let (in_membership, own_index, committed, others) = {
            let metrics = node.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let in_membership = membership.nodes().any(|(id, _)| *id == node.id);
            let own_index = m.membership_config.log_id().as_ref().map(|l| l.index);
            let applied = m.last_applied.as_ref().map(|l| l.index);
            let others: Vec<(NodeId, String)> = membership
                .nodes()
                .filter(|(id, _)| **id != node.id)
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            if m.state == openraft::ServerState::Leader {
                node.contact.touch();
            }
            (
                in_membership,
                own_index,
                own_index.is_some() && own_index <= applied,
                others,
            )
        };
        if in_membership {
            was_member = true;
            if node.contact.since() < quiet {
                continue;
            }
        }
        if !was_member {
            continue;
        }
        if !in_membership && committed {
            tracing::error!(
                node_id = node.id,
                "this member was removed from the cluster: the membership it applied (log index {}) leaves it out; \
                 it stops. To bring it back, empty its data directory, start it with --join and add it again",
                own_index.unwrap_or(0)
            );
            return;
        }
        if let Some((by, index)) = ask(&node, &identity, own_index, &others).await {
            tracing::error!(
                node_id = node.id,
                reported_by = by,
                "this member was removed from the cluster: member {by} has committed a membership (log index \
                 {index}) that leaves it out, later than this member's own (log index {}); it stops instead of \
                 standing for election. To bring it back, empty its data directory, start it with --join and add \
                 it again",
                own_index.map_or("none".to_owned(), |i| i.to_string())
            );
            return;
        }
    }
}

/// Asks the other members for their committed membership; returns a member whose one,
/// later than `own_index`, leaves this member out, and that membership's index.
async fn ask(
    node: &Node,
    identity: &ClusterIdentity,
    own_index: Option<u64>,
    others: &[(NodeId, String)],
) -> Option<(NodeId, u64)> {
    let cluster = identity.id()?;
    let cluster = cluster.as_str();
    let transport = node.network.transport();
    let asks = others.iter().map(|(id, addr)| async move {
        let info = peer_info(transport, addr, ASK).await.ok()?;
        let index = info.committed_membership_index?;
        let left_out = info.node_id == *id
            && info.cluster_id == cluster
            && !info.committed_members.is_empty()
            && !info.committed_members.contains(&node.id)
            && Some(index) > own_index;
        left_out.then_some((*id, index))
    });
    futures::future::join_all(asks).await.into_iter().flatten().next()
}
