//! The leader's expiry sweeper: proposes a `Sweep` entry when a key's or lock's
//! expiry has passed, so expired state is removed by the log (the state machine never reads a
//! clock of its own), and removes expired entries of the ephemeral tier, which lives
//! outside the log. Followers run the loop too and do nothing until they lead.

use std::sync::Arc;
use std::time::Duration;

use crate::raft::node::Node;
use crate::sm::{Command, Op};

const INTERVAL: Duration = Duration::from_millis(200);
/// Keys removed per sweep entry, so one entry stays small.
const SWEEP_LIMIT: u32 = 1000;
/// Also sweep this often with nothing expiring, to let the dedupe table forget idle clients.
const IDLE_SWEEP: Duration = Duration::from_secs(60);

pub async fn run(node: Arc<Node>) {
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(INTERVAL).await;
        if !node.is_leader() {
            continue;
        }
        let now = node.clock.now_ms();
        // The ephemeral tier is not in the log: the leader sweeps it in place.
        node.ephemeral.sweep(now);
        let due = match node.sm.read() {
            Ok(st) => st.sm.next_expiry().is_some_and(|at| at <= now),
            Err(_) => false,
        };
        if !due && last_sweep.elapsed() < IDLE_SWEEP {
            continue;
        }
        last_sweep = tokio::time::Instant::now();
        let cmd = Command {
            time_ms: now,
            request: None,
            fence: None,
            op: Op::Sweep { limit: SWEEP_LIMIT },
        };
        if let Err(e) = node.proposer.propose(cmd).await {
            tracing::debug!("sweep not proposed: {e:?}");
        }
    }
}
