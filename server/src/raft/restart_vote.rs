//! The vote a restarted leader starts with.
//!
//! openraft 0.9 restarts a member whose saved vote is a committed vote for itself as
//! leader at once, in the same term. Lease extension on a new leader's first entry and
//! the ephemeral tier (fresh tokens, grace period) both key on a new term, so such a
//! restart would skip them: a leader restarted with a clock that jumped ahead expired
//! live leases, and its ephemeral tier handed out tokens it had already granted. Saving
//! the vote uncommitted (still for itself, so it cannot vote for anyone else in that
//! term) makes a restarted leader stand for election in a new term instead.

use openraft::storage::RaftLogStorage;
use openraft::Vote;

use crate::store::LogStore;
use crate::types::NodeId;

/// Turns a saved committed vote for `me` into an uncommitted one in the same term;
/// returns that term when it did. Any other vote is left as it is.
pub async fn stand_for_election_again(log_store: &mut LogStore, me: NodeId) -> anyhow::Result<Option<u64>> {
    let vote = log_store
        .read_vote()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the saved vote: {e}"))?;
    let Some(v) = vote.filter(|v| v.committed && v.leader_id.voted_for() == Some(me)) else {
        return Ok(None);
    };
    let term = v.leader_id.term;
    log_store
        .save_vote(&Vote::new(term, me))
        .await
        .map_err(|e| anyhow::anyhow!("cannot save the vote: {e}"))?;
    tracing::info!(
        term,
        "was leader before the restart; standing for election in a new term"
    );
    Ok(Some(term))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, StorageKind};

    async fn after(saved: Option<Vote<NodeId>>) -> (Option<u64>, Option<Vote<NodeId>>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut log, _) = open(StorageKind::Memory, dir.path()).expect("open");
        if let Some(v) = saved {
            log.save_vote(&v).await.expect("save");
        }
        let changed = stand_for_election_again(&mut log, 1).await.expect("repair");
        (changed, log.read_vote().await.expect("read"))
    }

    #[tokio::test]
    async fn a_leader_restarts_as_a_candidate_of_the_next_term_and_others_keep_their_vote() {
        // Its own committed vote: the same term, uncommitted, still for itself.
        assert_eq!(
            after(Some(Vote::new_committed(7, 1))).await,
            (Some(7), Some(Vote::new(7, 1)))
        );
        // A vote for another member, committed or not, and an uncommitted own vote stay.
        assert_eq!(
            after(Some(Vote::new_committed(7, 2))).await,
            (None, Some(Vote::new_committed(7, 2)))
        );
        assert_eq!(after(Some(Vote::new(7, 2))).await, (None, Some(Vote::new(7, 2))));
        assert_eq!(after(Some(Vote::new(7, 1))).await, (None, Some(Vote::new(7, 1))));
        assert_eq!(after(None).await, (None, None));
    }
}
