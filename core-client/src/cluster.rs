//! Cluster administration: status and membership.

use kahuna_proto::v1 as pb;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::Safety;

/// A member of the cluster.
///
/// ```
/// # use kahuna_client::Member;
/// let m = Member {
///     id: 1,
///     peer_addr: "10.0.0.1:2071".into(),
///     client_addr: "10.0.0.1:2070".into(),
///     voter: true,
///     ..Member::default()
/// };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// The member's id.
    pub id: u64,
    /// Raft traffic address.
    pub peer_addr: String,
    /// Client address (empty when it could not be learned).
    pub client_addr: String,
    /// A voter (true) or a learner.
    pub voter: bool,
    /// The replication fields below are the leader's view: true when the member that
    /// answered is the leader. Elsewhere they are 0 and false (only the leader knows).
    pub leader_view: bool,
    /// The highest log index known to be stored on this member.
    pub matched_index: u64,
    /// How many entries this member is behind the leader's last log index.
    pub lag: u64,
    /// Whether it answered the leader within the last election timeout.
    pub answering: bool,
    /// Milliseconds since it last answered the leader (0: never, since this leader
    /// was elected).
    pub last_answer_ms: u64,
}

impl Member {
    fn from_pb(m: pb::Member) -> Member {
        Member {
            id: m.id,
            peer_addr: m.peer_addr,
            client_addr: m.client_addr,
            voter: m.role != pb::MemberRole::Learner as i32,
            leader_view: m.leader_view,
            matched_index: m.matched_index,
            lag: m.lag,
            answering: m.answering,
            last_answer_ms: m.last_answer_ms,
        }
    }
}

/// Where the leadership went after [`Client::transfer_leader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    /// The member that leads now.
    pub leader_id: u64,
    /// The term it leads in.
    pub term: u64,
}

/// A member's view of the cluster.
///
/// ```
/// # use kahuna_client::ClusterStatus;
/// # fn f(s: ClusterStatus) {
/// println!("leader {} in term {}", s.leader_id, s.term);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The member that answered.
    pub member_id: u64,
    /// The leader it knows (0 when none).
    pub leader_id: u64,
    /// Its Raft term.
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    /// Every member; with its replication lag and health when the member that answered
    /// is the leader (see [`Member::leader_view`]).
    pub members: Vec<Member>,
    /// Committed log index.
    pub committed_index: u64,
    /// Applied log index.
    pub applied_index: u64,
    /// Last log index.
    pub last_log_index: u64,
    /// Index of the latest snapshot.
    pub snapshot_index: u64,
    /// Storage engine.
    pub storage: String,
    /// What the member holds against its caps.
    pub usage: Usage,
}

/// What a member holds (as applied there) against the caps of its flags: a write that
/// would add an item past its cap is refused with RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys (expired ones not yet swept included).
    pub keys: u64,
    /// The cap on keys (`--max-keys`).
    pub max_keys: u64,
    /// Persistent locks.
    pub locks: u64,
    /// The cap on persistent locks (`--max-locks`).
    pub max_locks: u64,
    /// Sequences.
    pub sequences: u64,
    /// The cap on sequences (`--max-sequences`).
    pub max_sequences: u64,
    /// Ephemeral keys and locks (the leader's; 0 on other members).
    pub ephemeral_entries: u64,
    /// The cap on ephemeral entries (`--max-ephemeral-entries`).
    pub max_ephemeral_entries: u64,
    /// Bytes of keys and values in the retained history.
    pub history_bytes: u64,
    /// The bound on the history's bytes.
    pub max_history_bytes: u64,
    /// Clients the dedupe table remembers.
    pub dedupe_clients: u64,
    /// Bytes of answers the dedupe table keeps.
    pub dedupe_answer_bytes: u64,
    /// Commands waiting for the next log entry (the leader's).
    pub queued_proposals: u64,
}

impl Usage {
    fn from_pb(u: pb::Usage) -> Usage {
        Usage {
            keys: u.keys,
            max_keys: u.max_keys,
            locks: u.locks,
            max_locks: u.max_locks,
            sequences: u.sequences,
            max_sequences: u.max_sequences,
            ephemeral_entries: u.ephemeral_entries,
            max_ephemeral_entries: u.max_ephemeral_entries,
            history_bytes: u.history_bytes,
            max_history_bytes: u.max_history_bytes,
            dedupe_clients: u.dedupe_clients,
            dedupe_answer_bytes: u.dedupe_answer_bytes,
            queued_proposals: u.queued_proposals,
        }
    }
}

impl ClusterStatus {
    fn from_pb(s: pb::StatusResponse) -> ClusterStatus {
        ClusterStatus {
            member_id: s.header.as_ref().map_or(0, |h| h.member_id),
            leader_id: s.leader_id,
            term: s.term,
            state: s.state,
            members: s.members.into_iter().map(Member::from_pb).collect(),
            committed_index: s.committed_index,
            applied_index: s.applied_index,
            last_log_index: s.last_log_index,
            snapshot_index: s.snapshot_index,
            storage: s.storage,
            usage: s.usage.map(Usage::from_pb).unwrap_or_default(),
        }
    }
}

impl Client {
    /// The status of the cluster as the leader (or, without one, any member) sees it.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let s = client.status().await?;
    /// println!("{} members, leader {}", s.members.len(), s.leader_id);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<ClusterStatus> {
        let r = self.unary(Safety::Idempotent, pb::StatusRequest {}).await?;
        Ok(ClusterStatus::from_pb(r))
    }

    /// The members of the cluster.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// for m in client.members().await? { println!("{} {}", m.id, m.client_addr); }
    /// # Ok(()) }
    /// ```
    pub async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.status().await?.members)
    }

    /// Adds member `node_id` (peer address `peer_addr`, started with `--join`) as a
    /// learner, waiting until it has caught up. Not retried once it may have been applied.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.add_learner(4, "10.0.0.4:2071").await?;
    /// client.promote(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_learner(&self, node_id: u64, peer_addr: &str) -> Result<Vec<Member>> {
        let msg = pb::AddLearnerRequest {
            node_id,
            peer_addr: peer_addr.to_owned(),
            blocking: true,
        };
        let r = self.unary(Safety::Unsafe, msg).await?;
        Ok(r.members.into_iter().map(Member::from_pb).collect())
    }

    /// Sets the complete set of voters. Removed voters are kept as learners when `retain`.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.change_membership(&[1, 2, 3], false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn change_membership(&self, voters: &[u64], retain: bool) -> Result<Vec<Member>> {
        let msg = pb::ChangeMembershipRequest {
            voters: voters.to_vec(),
            retain,
        };
        let r = self.unary(Safety::Unsafe, msg).await?;
        Ok(r.members.into_iter().map(Member::from_pb).collect())
    }

    /// Makes learner `node_id` a voter (the current voters plus it).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.promote(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn promote(&self, node_id: u64) -> Result<Vec<Member>> {
        let members = self.members().await?;
        if !members.iter().any(|m| m.id == node_id) {
            return Err(Error::InvalidArgument(format!(
                "member {node_id} is not in the cluster; add it as a learner first"
            )));
        }
        let mut voters: Vec<u64> = members.iter().filter(|m| m.voter).map(|m| m.id).collect();
        if !voters.contains(&node_id) {
            voters.push(node_id);
        }
        self.change_membership(&voters, true).await
    }

    /// Removes member `node_id` from the cluster (voter or learner; the leader hands its
    /// leadership over first when it removes itself). The removed member stops once it
    /// learns it was removed. Refused when `node_id` is not in the cluster.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.remove_member(3).await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_member(&self, node_id: u64) -> Result<Vec<Member>> {
        let members = self.members().await?;
        if !members.iter().any(|m| m.id == node_id) {
            return Err(Error::InvalidArgument(format!(
                "member {node_id} is not in the cluster"
            )));
        }
        // The server treats removing a member that is gone as done, so a retry after a
        // lost answer is safe.
        let r = self
            .unary(Safety::Idempotent, pb::RemoveMemberRequest { node_id })
            .await?;
        Ok(r.members.into_iter().map(Member::from_pb).collect())
    }

    /// Makes voter `node_id` the leader (0: any voter that has caught up), through the
    /// leader, which then keeps running as a follower. Refused (typed errors) when
    /// `node_id` is not a member (`InvalidArgument`), is a learner, or has not caught up
    /// with the leader's log within an election timeout (`Membership`, saying how far
    /// behind it is). Transferring to the leader itself changes nothing.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let t = client.transfer_leader(2).await?;
    /// println!("member {} leads in term {}", t.leader_id, t.term);
    /// # Ok(()) }
    /// ```
    pub async fn transfer_leader(&self, node_id: u64) -> Result<Transferred> {
        // A retry of a transfer to a chosen member finds it leading and changes nothing;
        // "any member" could move the leadership twice.
        let safety = if node_id == 0 {
            Safety::Unsafe
        } else {
            Safety::Idempotent
        };
        let r = self.unary(safety, pb::TransferLeaderRequest { node_id }).await?;
        Ok(Transferred {
            leader_id: r.leader_id,
            term: r.term,
        })
    }

    /// Asks the member the client is talking to for a snapshot of its state.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.trigger_snapshot().await?;
    /// # Ok(()) }
    /// ```
    pub async fn trigger_snapshot(&self) -> Result<()> {
        self.unary(Safety::Idempotent, pb::TriggerSnapshotRequest {}).await?;
        Ok(())
    }
}
