//! Bounds on what a peer's Raft message (or a peer's reply) may claim, checked before
//! openraft sees it. openraft trusts its peers: a vote with term `u64::MAX` overflows
//! `term + 1` inside its core (a panic that stops the member's Raft for good), a log
//! index at the top of the range overflows the next index, and a snapshot chunk at an
//! offset far past what arrived makes the in-memory snapshot buffer grow to that
//! offset. Members of one cluster never send such things, so refusing them costs an
//! honest cluster nothing; it turns a corrupt or hostile message into an error.

use std::sync::Mutex;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{LogId, Vote};

use crate::poison::Recover;
use crate::types::{NodeId, TypeConfig};

/// How far a peer's term may run ahead of this member's. Terms grow by one per
/// election; a member cut off and campaigning every 100 ms would need more than 13
/// years to get this far ahead, while a term within this bound of ours can be
/// incremented ~4 billion times more before overflowing.
pub const MAX_TERM_LEAD: u64 = 1 << 32;

/// The highest log index a peer may name: far beyond any log, and leaves room for
/// every `index + 1` openraft computes.
pub const MAX_LOG_INDEX: u64 = 1 << 62;

/// The largest snapshot this member receives. A snapshot is held in memory while it
/// arrives (`SnapshotData` is a `Cursor<Vec<u8>>`), so this bounds what a stream can
/// make a member allocate; the whole state of a member is far smaller in practice
/// (1M keys ~ 100 MB, docs/performance.md).
pub const MAX_SNAPSHOT_BYTES: u64 = 8 << 30;

/// Why a peer message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Refused(pub String);

fn refuse<T>(msg: String) -> Result<T, Refused> {
    Err(Refused(msg))
}

/// The bound a peer's term must respect, given this member's current term.
fn term_limit(local_term: u64) -> u64 {
    local_term.saturating_add(MAX_TERM_LEAD)
}

fn check_vote(what: &str, vote: &Vote<NodeId>, local_term: u64) -> Result<(), Refused> {
    let term = vote.leader_id().term;
    if term > term_limit(local_term) {
        return refuse(format!(
            "{what} carries vote {vote}: term {term} is more than {MAX_TERM_LEAD} ahead of this member's term \
             {local_term}"
        ));
    }
    Ok(())
}

/// A log id a message names: within the index range, and not from a term later than
/// the vote the message is sent under (a leader only holds entries of its own and
/// earlier terms).
fn check_log_id(what: &str, log_id: Option<&LogId<NodeId>>, vote: &Vote<NodeId>) -> Result<(), Refused> {
    let Some(l) = log_id else { return Ok(()) };
    if l.index > MAX_LOG_INDEX {
        return refuse(format!("{what} {l}: index {} is beyond {MAX_LOG_INDEX}", l.index));
    }
    if l.leader_id.term > vote.leader_id().term {
        return refuse(format!("{what} {l} is from a term later than the sender's vote {vote}"));
    }
    Ok(())
}

pub fn append_entries(req: &AppendEntriesRequest<TypeConfig>, local_term: u64) -> Result<(), Refused> {
    check_vote("append-entries", &req.vote, local_term)?;
    check_log_id("append-entries prev_log_id", req.prev_log_id.as_ref(), &req.vote)?;
    check_log_id("append-entries leader_commit", req.leader_commit.as_ref(), &req.vote)?;
    for e in &req.entries {
        check_log_id("append-entries entry", Some(&e.log_id), &req.vote)?;
    }
    Ok(())
}

pub fn vote(req: &VoteRequest<NodeId>, local_term: u64) -> Result<(), Refused> {
    check_vote("vote request", &req.vote, local_term)?;
    check_log_id("vote request last_log_id", req.last_log_id.as_ref(), &req.vote)
}

pub fn install_snapshot(req: &InstallSnapshotRequest<TypeConfig>, local_term: u64) -> Result<(), Refused> {
    check_vote("install-snapshot", &req.vote, local_term)?;
    check_log_id("snapshot last_log_id", req.meta.last_log_id.as_ref(), &req.vote)?;
    check_log_id(
        "snapshot membership log id",
        req.meta.last_membership.log_id().as_ref(),
        &req.vote,
    )
}

/// A reply's vote may legitimately be ahead of ours (the peer saw a later term), but
/// not absurdly so: openraft adopts it and campaigns from `term + 1`.
pub fn append_entries_reply(resp: &AppendEntriesResponse<NodeId>, local_term: u64) -> Result<(), Refused> {
    match resp {
        AppendEntriesResponse::HigherVote(v) => check_vote("append-entries reply", v, local_term),
        AppendEntriesResponse::PartialSuccess(Some(l)) if l.index > MAX_LOG_INDEX => refuse(format!(
            "append-entries reply names log id {l}, beyond index {MAX_LOG_INDEX}"
        )),
        _ => Ok(()),
    }
}

pub fn vote_reply(resp: &VoteResponse<NodeId>, local_term: u64) -> Result<(), Refused> {
    check_vote("vote reply", &resp.vote, local_term)?;
    match &resp.last_log_id {
        Some(l) if l.index > MAX_LOG_INDEX => {
            refuse(format!("vote reply names log id {l}, beyond index {MAX_LOG_INDEX}"))
        }
        _ => Ok(()),
    }
}

pub fn install_snapshot_reply(resp: &InstallSnapshotResponse<NodeId>, local_term: u64) -> Result<(), Refused> {
    check_vote("install-snapshot reply", &resp.vote, local_term)
}

/// The snapshot stream being received: a chunk may repeat or overlap what arrived
/// (a retried chunk) but not leave a gap, and the stream stays under
/// [`MAX_SNAPSHOT_BYTES`].
pub struct SnapshotStream {
    limit: u64,
    /// The snapshot id being received and how many bytes of it arrived.
    current: Mutex<Option<(String, u64)>>,
}

impl Default for SnapshotStream {
    fn default() -> Self {
        Self::with_limit(MAX_SNAPSHOT_BYTES)
    }
}

impl SnapshotStream {
    pub fn with_limit(limit: u64) -> Self {
        Self {
            limit,
            current: Mutex::new(None),
        }
    }

    pub fn admit(&self, req: &InstallSnapshotRequest<TypeConfig>) -> Result<(), Refused> {
        let mut current = self.current.lock().recover();
        let received = match &*current {
            Some((id, end)) if *id == req.meta.snapshot_id => *end,
            _ => 0,
        };
        if req.offset > received {
            return refuse(format!(
                "snapshot {} chunk at offset {} leaves a gap: {received} bytes of it arrived",
                req.meta.snapshot_id, req.offset
            ));
        }
        let end = req.offset.saturating_add(req.data.len() as u64);
        if end > self.limit {
            return refuse(format!(
                "snapshot {} would grow to {end} bytes, beyond the {}-byte limit",
                req.meta.snapshot_id, self.limit
            ));
        }
        *current = if req.done {
            None
        } else {
            Some((req.meta.snapshot_id.clone(), end.max(received)))
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, SnapshotMeta, StoredMembership};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn append(
        vote: Vote<NodeId>,
        prev: Option<LogId<NodeId>>,
        entries: &[LogId<NodeId>],
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote,
            prev_log_id: prev,
            entries: entries
                .iter()
                .map(|l| Entry {
                    log_id: *l,
                    payload: EntryPayload::Blank,
                })
                .collect(),
            leader_commit: None,
        }
    }

    fn snapshot(id: &str, offset: u64, len: usize, done: bool) -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote: Vote::new_committed(3, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3, 10)),
                last_membership: StoredMembership::default(),
                snapshot_id: id.into(),
            },
            offset,
            data: vec![0; len],
            done,
        }
    }

    #[test]
    fn the_u64_max_vote_is_refused() {
        let req = append(Vote::new_committed(u64::MAX, 2), None, &[]);
        assert!(append_entries(&req, 1).is_err());
        assert!(vote(&VoteRequest::new(Vote::new(u64::MAX, 2), None), 1).is_err());
        // Even with a local term at the top of the range: no overflow in the bound.
        assert!(append_entries(&req, u64::MAX).is_ok());
    }

    #[test]
    fn terms_within_the_lead_pass() {
        let req = append(
            Vote::new_committed(5 + MAX_TERM_LEAD, 2),
            Some(log_id(4, 7)),
            &[log_id(5, 8)],
        );
        assert_eq!(append_entries(&req, 5), Ok(()));
        let req = append(Vote::new_committed(6 + MAX_TERM_LEAD, 2), None, &[]);
        assert!(append_entries(&req, 5).is_err());
    }

    #[test]
    fn log_ids_may_not_outrun_the_vote_or_the_index_range() {
        let v = Vote::new_committed(4, 2);
        assert!(append_entries(&append(v, Some(log_id(5, 7)), &[]), 4).is_err());
        assert!(append_entries(&append(v, Some(log_id(4, 7)), &[log_id(5, 8)]), 4).is_err());
        assert!(append_entries(&append(v, Some(log_id(4, u64::MAX - 1)), &[]), 4).is_err());
        let stale = VoteRequest::new(Vote::new(4, 2), Some(log_id(9, 3)));
        assert!(vote(&stale, 4).is_err());
    }

    #[test]
    fn absurd_replies_are_refused() {
        let higher = AppendEntriesResponse::HigherVote(Vote::new(u64::MAX, 3));
        assert!(append_entries_reply(&higher, 2).is_err());
        assert!(append_entries_reply(&AppendEntriesResponse::HigherVote(Vote::new(3, 3)), 2).is_ok());
        let granted = VoteResponse::new(Vote::new(u64::MAX, 3), None, true);
        assert!(vote_reply(&granted, 2).is_err());
        let resp = InstallSnapshotResponse {
            vote: Vote::new(u64::MAX, 3),
        };
        assert!(install_snapshot_reply(&resp, 2).is_err());
    }

    #[test]
    fn snapshot_chunks_cannot_leave_gaps_or_exceed_the_limit() {
        let s = SnapshotStream::with_limit(1000);
        assert!(
            s.admit(&snapshot("a", 10, 5, false)).is_err(),
            "a new stream starts at 0"
        );
        assert_eq!(s.admit(&snapshot("a", 0, 100, false)), Ok(()));
        assert_eq!(
            s.admit(&snapshot("a", 50, 100, false)),
            Ok(()),
            "a retried, overlapping chunk"
        );
        assert!(
            s.admit(&snapshot("a", 151, 1, false)).is_err(),
            "byte 150 never arrived"
        );
        assert!(s.admit(&snapshot("a", u64::MAX, 1, false)).is_err());
        assert!(
            s.admit(&snapshot("b", 0, 1, false)).is_ok(),
            "another snapshot restarts the stream"
        );
        assert!(s.admit(&snapshot("b", 1, 0, true)).is_ok());
        assert!(
            s.admit(&snapshot("b", 1, 0, true)).is_err(),
            "the finished stream is forgotten"
        );
        assert!(s.admit(&snapshot("c", 0, 1001, false)).is_err(), "beyond the limit");
        assert_eq!(s.admit(&snapshot("c", 0, 1000, true)), Ok(()));
    }
}
