//! Keeps in the state machine the members a leader has replicated entries to.
//!
//! A member that starts with an empty data directory asks the others whether it
//! lost its data (see `server::plan_start`): a voter rejoining empty could help elect
//! a leader that lacks entries it had acknowledged. Only the leader of the moment
//! sees replication progress, and a leader elected after the member died never
//! replicated to it; so the leader records the set through the log, and every member
//! answers from it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::raft::node::Node;
use crate::sm::{Command, Op};
use crate::types::RaftMetrics;

const INTERVAL: Duration = Duration::from_millis(500);

pub async fn run(node: Arc<Node>) {
    loop {
        tokio::time::sleep(INTERVAL).await;
        if !node.is_leader() {
            continue;
        }
        let Some(members) = due(&node) else {
            continue;
        };
        let cmd = Command {
            time_ms: node.clock.now_ms(),
            request: None,
            fence: None,
            op: Op::MembersReplicated {
                members: members.into_iter().collect(),
            },
        };
        if let Err(e) = node.proposer.propose(cmd).await {
            tracing::debug!("replicated members not recorded: {e:?}");
        }
    }
}

/// The members a leader's replication map shows holding at least one entry (empty on
/// a follower, which has no replication map).
pub fn replicated_by_this_leader(metrics: &RaftMetrics) -> impl Iterator<Item = u64> + '_ {
    metrics
        .replication
        .iter()
        .flatten()
        .filter(|(_, matched)| matched.is_some_and(|l| l.index > 0))
        .map(|(id, _)| *id)
}

/// The set to record when it differs from the recorded one: the recorded members
/// still in the membership, and those this leader has replicated to.
fn due(node: &Node) -> Option<BTreeSet<u64>> {
    let metrics = node.raft.metrics().borrow().clone();
    let recorded = node.state().ok()?.sm.replicated.clone();
    let members: BTreeSet<u64> = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .collect();
    let mut now: BTreeSet<u64> = recorded.intersection(&members).copied().collect();
    now.extend(replicated_by_this_leader(&metrics));
    // The leader holds every committed entry itself.
    now.insert(node.id);
    (now != recorded).then_some(now)
}
