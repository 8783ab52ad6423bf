//! The client-facing gRPC services. Thin: validate and decode, route to the leader,
//! propose or read, encode. Shared plumbing for all services lives here.

pub mod cluster;
pub mod errors;
pub mod kv;
pub mod limits;
pub mod locks;
pub mod oversize;
pub mod sequences;

use std::sync::Arc;
use std::time::Duration;

use kahuna_proto::v1::{Durability, Fence, ReadConsistency, ResponseHeader};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::raft::node::{Node, Route};
use crate::sm::{Command, Op, Reply};
use crate::store::Applied;
use errors::{fenced, internal, no_leader, not_leader, shutting_down, RaftFailure};

/// Set on a request a member forwards to the leader, so it is never forwarded twice.
pub const FORWARDED_KEY: &str = "kahuna-forwarded";
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What every service holds: the member it runs on.
#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
}

/// Forwards `$req` to the leader with the generated client `$client` and returns its
/// answer, unless this member is the leader.
macro_rules! forward_unless_leader {
    ($api:expr, $req:ident, $client:ident, $method:ident) => {
        if let crate::raft::node::Route::Forward(channel) = $api.route(&$req).await? {
            return $client::new(channel)
                .max_decoding_message_size(usize::MAX)
                .$method(crate::api::forwarded($req))
                .await
                .map_err(crate::api::forward_failed);
        }
    };
}
pub(crate) use forward_unless_leader;

/// The same request, marked as forwarded, with a bounded deadline.
pub fn forwarded<T>(req: Request<T>) -> Request<T> {
    let mut out = Request::new(req.into_inner());
    out.metadata_mut()
        .insert(FORWARDED_KEY, MetadataValue::from_static("1"));
    out.set_timeout(FORWARD_TIMEOUT);
    out
}

/// An error from the leader passes through as it is; a failure to reach the leader
/// at all (no `kahuna-error` entry) becomes a retryable UNAVAILABLE.
pub fn forward_failed(s: Status) -> Status {
    if s.metadata().contains_key(errors::ERROR_KEY) {
        return s;
    }
    match s.code() {
        tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled => errors::status(
            tonic::Code::Unavailable,
            "UNAVAILABLE",
            format!("the leader could not be reached: {}", s.message()),
        ),
        _ => s,
    }
}

impl Api {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Serve here (leader) or forward; a request already forwarded once is answered
    /// with NOT_LEADER instead, so requests never loop between members.
    pub async fn route<T>(&self, req: &Request<T>) -> Result<Route, Status> {
        if self.node.is_leader() {
            return Ok(Route::Local);
        }
        let leader = self.node.leader_client_addr().await;
        if req.metadata().contains_key(FORWARDED_KEY) {
            return Err(not_leader(leader));
        }
        match leader {
            Some(addr) => self
                .node
                .channel_to(&addr)
                .map(Route::Forward)
                .ok_or_else(|| not_leader(Some(addr))),
            None => Err(no_leader()),
        }
    }

    pub async fn fail(&self, f: RaftFailure) -> Status {
        match f {
            // Just elected and not yet accepted by a quorum: no one leads yet.
            RaftFailure::NotLeader if self.node.leader() == Some(self.node.id) => no_leader(),
            RaftFailure::NotLeader => not_leader(self.node.leader_client_addr().await),
            RaftFailure::Status(s) => s,
        }
    }

    /// Proposes `op` through Raft and waits for it to be applied. A fence that did not
    /// hold comes back as the FENCED error.
    pub async fn propose(
        &self,
        op: Op,
        fence: Option<(Vec<u8>, u64)>,
        request: Option<(String, u64)>,
    ) -> Result<Proposed, Status> {
        let time_ms = self.node.clock.now_ms();
        let cmd = Command {
            time_ms,
            request,
            fence: fence.clone(),
            op,
        };
        match self.node.proposer.propose(cmd).await {
            Ok(outcome) => {
                if let (Reply::Fenced { current }, Some((resource, token))) = (&outcome.reply, &fence) {
                    return Err(fenced(resource, *token, *current));
                }
                let mut header = self.node.header();
                header.revision = outcome.revision;
                Ok(Proposed {
                    reply: outcome.reply,
                    header,
                    time_ms,
                })
            }
            Err(f) => Err(self.fail(f).await),
        }
    }

    /// Confirms (batched read-index) that this member leads, after the call began and
    /// with everything committed before applied; returns the term it leads in.
    pub async fn confirm_leader(&self) -> Result<u64, Status> {
        if let Err(f) = self.node.read_index.confirm().await {
            return Err(self.fail(f).await);
        }
        if !self.node.is_leader() {
            return Err(self.fail(RaftFailure::NotLeader).await);
        }
        Ok(self.node.term())
    }

    /// Confirms that this member leads, from a confirmation of the last
    /// `election_timeout_max / 2` when there is one (see `raft::read_index`); returns
    /// the term. Only for operations that need leadership but not the applied state:
    /// the ephemeral tier.
    pub async fn confirm_leadership(&self) -> Result<u64, Status> {
        let term = self.node.term();
        if let Err(f) = self.node.read_index.confirm_leadership(term).await {
            return Err(self.fail(f).await);
        }
        if !self.node.is_leader() || self.node.term() != term {
            return Err(self.fail(RaftFailure::NotLeader).await);
        }
        Ok(term)
    }

    /// Reads the applied state after the read barrier `consistency` asks for. `f` gets
    /// the state and the time expiry is judged by.
    pub async fn read<R>(
        &self,
        consistency: i32,
        f: impl FnOnce(&Applied, u64) -> Result<R, Status>,
    ) -> Result<(R, ResponseHeader), Status> {
        let linearizable = match limits::enumeration::<ReadConsistency>("consistency", consistency)? {
            ReadConsistency::Linearizable => true,
            ReadConsistency::Stale => false,
        };
        if linearizable && !self.node.unsafe_local_reads {
            self.confirm_leader().await?;
        }
        let mut header = self.node.header();
        let st = self.node.sm.read().map_err(|e| internal(e.to_string()))?;
        // The leader judges expiry by its own clock, the same one that stamps writes;
        // a stale read sees the state as of its last applied entry.
        let now = if linearizable {
            st.sm.now_ms.max(self.node.clock.now_ms())
        } else {
            st.sm.now_ms
        };
        header.revision = st.revision();
        let out = f(&st, now)?;
        Ok((out, header))
    }

    /// Runs `f` on the ephemeral tier of the confirmed leader term, with the leader's
    /// time. `f` answers `None` when the tier ran out of tokens for this term.
    pub async fn ephemeral<R>(
        &self,
        f: impl FnOnce(&crate::ephemeral::EphemeralTier, u64, u64) -> Option<R>,
    ) -> Result<(R, ResponseHeader, u64), Status> {
        let term = self.confirm_leadership().await?;
        let _open = self.node.enter_ephemeral().ok_or_else(shutting_down)?;
        let now = self.node.clock.now_ms();
        let out = f(&self.node.ephemeral, term, now).ok_or_else(|| {
            errors::status(
                tonic::Code::ResourceExhausted,
                "UNAVAILABLE",
                "the ephemeral tier handed out all tokens of this leader term; it resumes after the next election",
            )
        })?;
        Ok((out, self.node.header(), now))
    }

    /// Checks a fence. A persistent fence is returned to travel in the command, where
    /// the state machine checks it atomically with the write; an ephemeral fence is
    /// checked here, on the confirmed leader, since ephemeral locks are not in the log.
    /// With `check_now`, a persistent fence is also checked here (for writes that do
    /// not go through the log).
    pub async fn fence(&self, fence: Option<&Fence>, check_now: bool) -> Result<Option<(Vec<u8>, u64)>, Status> {
        let Some(f) = fence else {
            return Ok(None);
        };
        limits::resource("fence.resource", &f.resource)?;
        let durability = limits::enumeration::<Durability>("fence.durability", f.durability)?;
        if durability == Durability::Persistent && !check_now {
            return Ok(Some((f.resource.clone(), f.token)));
        }
        let term = match durability {
            Durability::Persistent => self.confirm_leader().await?,
            Durability::Ephemeral => self.confirm_leadership().await?,
        };
        let _open = match durability {
            Durability::Persistent => None,
            Durability::Ephemeral => Some(self.node.enter_ephemeral().ok_or_else(shutting_down)?),
        };
        let now = self.node.clock.now_ms();
        let current = match durability {
            Durability::Persistent => {
                let st = self.node.sm.read().map_err(|e| internal(e.to_string()))?;
                st.sm.locks.token_of(st.sm.now_ms.max(now), &f.resource)
            }
            Durability::Ephemeral => self
                .node
                .ephemeral
                .with(term, now, |t| t.locks.token_of(now, &f.resource))
                .unwrap_or(0),
        };
        if current != f.token {
            return Err(fenced(&f.resource, f.token, current));
        }
        Ok(None)
    }

    /// Whether a read of this consistency has to be served by the leader.
    pub fn needs_leader(&self, consistency: i32) -> bool {
        consistency != ReadConsistency::Stale as i32 && !self.node.unsafe_local_reads
    }
}

/// An applied proposal: the state machine's answer, the header, and the time the
/// command was stamped with (the lease clock for anything it granted).
pub struct Proposed {
    pub reply: Reply,
    pub header: ResponseHeader,
    pub time_ms: u64,
}
