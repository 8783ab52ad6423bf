//! The client-facing gRPC services. Thin: validate and decode, route to the leader,
//! propose or read, encode. Shared plumbing for all services lives here.

pub mod cluster;
pub mod kv;
pub mod limits;
pub mod locks;
pub mod maintenance;
pub mod observe;
pub mod oversize;
pub mod ratelimit;
pub mod sequences;
pub mod watch;

use kahuna_proto::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use kahuna_proto::v1::{Durability, Fence, ReadConsistency, ResponseHeader};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::auth::{Access, Auth, AUTHORIZATION_KEY};
use crate::capacity;
use crate::ephemeral::{Fence as TierFence, Now, Refused};
use crate::errors;
use crate::errors::{fenced, internal, no_leader, not_leader, shutting_down, RaftFailure};
use crate::raft::node::{Node, Route};
use crate::sm::{Command, Op, Reply};
use crate::store::Applied;

/// Set on a request a member forwards to the leader, so it is never forwarded twice.
pub const FORWARDED_KEY: &str = "kahuna-forwarded";
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What every service holds: the member it runs on, and who may use it.
#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
    /// `None`: no authentication configured, everything is allowed.
    auth: Option<Arc<Auth>>,
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
    // The caller's credential goes along: the leader checks the caller, not this member.
    let token = req.metadata().get(AUTHORIZATION_KEY).cloned();
    // So is its id (the client's or this member's; see `logging`): the leader logs
    // the request under the same id.
    let request_id = req.metadata().get(crate::logging::REQUEST_ID_KEY).cloned();
    let mut out = Request::new(req.into_inner());
    if let Some(t) = token {
        out.metadata_mut().insert(AUTHORIZATION_KEY, t);
    }
    if let Some(id) = request_id {
        out.metadata_mut().insert(crate::logging::REQUEST_ID_KEY, id);
    }
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
            ErrorKind::Unavailable,
            format!("the leader could not be reached: {}", s.message()),
        ),
        _ => s,
    }
}

impl Api {
    pub fn new(node: Arc<Node>, auth: Option<Arc<Auth>>) -> Self {
        Self { node, auth }
    }

    /// Refuses the request unless the caller may do what it asks (see `auth`).
    pub fn authorize<T: Access>(&self, req: &Request<T>) -> Result<(), Status> {
        match &self.auth {
            None => Ok(()),
            Some(auth) => {
                let (action, names) = req.get_ref().access();
                auth.check(req, action, &names)
            }
        }
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
            Some(addr) => match self.node.channel_to(&addr) {
                Some(channel) => {
                    tracing::debug!(leader = %addr, "forwarding to the leader");
                    Ok(Route::Forward(channel))
                }
                None => Err(not_leader(Some(addr))),
            },
            None => Err(no_leader()),
        }
    }

    pub async fn fail(&self, f: RaftFailure) -> Status {
        match f {
            // This member believes it leads, yet Raft refused: it was just elected and
            // not yet accepted by a quorum, or it lost leadership while the request
            // was in flight, which may still commit. Not NO_LEADER, which promises
            // the request was not applied.
            RaftFailure::NotLeader if self.node.leader() == Some(self.node.id) => errors::status(
                ErrorKind::Unavailable,
                "leadership is changing (this member's leadership is not confirmed); retry shortly",
            ),
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
        let request_id = request.as_ref().map_or(0, |(_, id)| *id);
        let cmd = Command {
            time_ms,
            request,
            fence: fence.clone(),
            op,
        };
        tracing::debug!("proposing");
        let proposed = match tokio::time::timeout(self.node.request_timeout, self.node.proposer.propose(cmd)).await {
            Ok(p) => p,
            // Dropping the proposal withdraws it if it is still queued; if it is in
            // the entry in flight, that entry may yet commit.
            Err(_) => {
                return Err(errors::status(
                    ErrorKind::Unavailable,
                    format!(
                        "the write was not committed within this member's request timeout of {} ms (is a quorum \
                         of members reachable?); it may still be applied",
                        self.node.request_timeout.as_millis()
                    ),
                ))
            }
        };
        match proposed {
            Ok(outcome) => {
                if let (Reply::Fenced { current }, Some((resource, token))) = (&outcome.reply, &fence) {
                    return Err(fenced(resource, *token, *current));
                }
                if outcome.reply == Reply::RequestReused {
                    return Err(errors::invalid(
                        "request_id was already used by this client_id for a different request; \
                         nothing was applied (a retry must repeat the same request, a new request needs a new id)",
                    ));
                }
                if outcome.reply == Reply::AnswerNotKept {
                    return Err(errors::status(
                        ErrorKind::AlreadyApplied,
                        format!(
                            "this request (request_id {}) was applied by an earlier attempt; its answer was larger than \
                             the server keeps for retries ({} bytes per answer and per client), so read the state to \
                             see its effect; it was not applied again",
                            request_id,
                            crate::sm::dedupe::MAX_CLIENT_ANSWER_BYTES
                        ),
                    ));
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
    pub async fn read_barrier(&self) -> Result<u64, Status> {
        if let Err(f) = self.node.read_index.read_barrier().await {
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
    pub async fn leader_lease(&self) -> Result<u64, Status> {
        let term = self.node.term();
        if let Err(f) = self.node.read_index.leader_lease(term).await {
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
            self.read_barrier().await?;
        }
        let mut header = self.node.header();
        let st = self.node.state()?;
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
    /// time.
    pub async fn ephemeral<R>(
        &self,
        f: impl FnOnce(&mut crate::ephemeral::Tier, u64) -> R,
    ) -> Result<(R, ResponseHeader, u64), Status> {
        let term = self.leader_lease().await?;
        let now = Now::new(self.node.clock.now_ms());
        let out = {
            let _open = self.node.enter_ephemeral().ok_or_else(shutting_down)?;
            self.node.ephemeral.with(term, now, |tier| f(tier, now.ms))
        };
        match out {
            Some(out) => Ok((out, self.node.header(), now.ms)),
            // The tier moved on to a later term meanwhile.
            None => Err(self.fail(RaftFailure::NotLeader).await),
        }
    }

    /// The fence of a write that goes through the log. It travels in the command and
    /// the state machine checks it atomically with the write. Only a persistent lock
    /// can fence such a write: an ephemeral lock lives outside the log, so checking it
    /// before proposing would let an unlock and re-grant slip in before the commit.
    pub fn log_fence(&self, fence: Option<&Fence>) -> Result<Option<(Vec<u8>, u64)>, Status> {
        let Some(f) = fence else {
            return Ok(None);
        };
        limits::resource("fence.resource", &f.resource)?;
        match limits::enumeration::<Durability>("fence.durability", f.durability)? {
            Durability::Persistent => Ok(Some((f.resource.clone(), f.token))),
            Durability::Ephemeral => Err(errors::invalid(
                "a persistent write cannot be fenced by an ephemeral lock (ephemeral locks are not in the log, \
                 so the fence could not be checked atomically with the write); fence it with a persistent lock",
            )),
        }
    }

    /// An ephemeral-tier key write with its fence checked in the same critical section
    /// as the write (see [`crate::ephemeral::EphemeralTier::write`]). An ephemeral
    /// fence is checked in the tier itself; a persistent one on the applied state after
    /// a read-index, which is held (no entry applies meanwhile) until the write is done.
    /// `write` gets the store, the revision to write at and the leader's time.
    pub async fn ephemeral_write(
        &self,
        fence: Option<&Fence>,
        write: impl FnOnce(&mut crate::sm::KvStore, u64, u64) -> Reply,
    ) -> Result<(Reply, ResponseHeader), Status> {
        let fence = match fence {
            None => None,
            Some(f) => {
                limits::resource("fence.resource", &f.resource)?;
                let durability = limits::enumeration::<Durability>("fence.durability", f.durability)?;
                Some((f.resource.as_slice(), f.token, durability))
            }
        };
        let persistent = matches!(fence, Some((_, _, Durability::Persistent)));
        let term = match persistent {
            true => self.read_barrier().await?,
            false => self.leader_lease().await?,
        };
        let applied = persistent.then(|| self.node.state()).transpose()?;
        let _open = self.node.enter_ephemeral().ok_or_else(shutting_down)?;
        let now = Now::new(self.node.clock.now_ms());
        let tier_fence = fence.map(|(resource, token, _)| match &applied {
            Some(st) => TierFence::Persistent {
                locks: &st.sm.locks,
                applied_ms: st.sm.now_ms,
                resource,
                token,
            },
            None => TierFence::Ephemeral { resource, token },
        });
        match self.node.ephemeral.write(term, now, tier_fence, write) {
            Some(Ok(reply)) => Ok((reply, self.node.header())),
            Some(Err(Refused::Fenced { current })) => match fence {
                Some((resource, token, _)) => Err(fenced(resource, token, current)),
                None => Err(internal("a write without a fence was refused as fenced")),
            },
            Some(Err(Refused::TokensExhausted)) => Err(errors::ephemeral_tokens_exhausted()),
            None => Err(errors::status(
                ErrorKind::Unavailable,
                "leadership moved to a later term during the write; retry",
            )),
        }
    }

    /// Refuses a request that would add items past their cap (see `capacity`), judged
    /// on the applied state: `count` gives the items held and those the request adds.
    pub fn admit(
        &self,
        item: capacity::Item,
        count: impl FnOnce(&crate::sm::StateMachine) -> (usize, usize),
    ) -> Result<(), Status> {
        let (held, adding) = {
            let st = self.node.state()?;
            count(&st.sm)
        };
        self.node.caps.admit(item, held, adding)
    }

    /// Like [`Api::admit`] for the ephemeral tier, whose keys and locks share one cap:
    /// `new` says whether the request adds an entry to the tier.
    pub fn admit_ephemeral(&self, new: impl FnOnce(&crate::ephemeral::Tier) -> bool) -> Result<(), Status> {
        let counted = self.node.ephemeral.peek(|t| (t.entries(), usize::from(new(t))));
        match counted {
            Some((held, adding)) => self.node.caps.admit(capacity::Item::Ephemeral, held, adding),
            None => Ok(()),
        }
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
