//! The client-facing gRPC services. Thin: validate and decode, route to the leader,
//! propose or read, encode. Shared plumbing for all services lives here.

pub mod cluster;
pub mod errors;
pub mod kv;
pub mod limits;
pub mod oversize;

use std::sync::Arc;
use std::time::Duration;

use kahuna_proto::v1::{ReadConsistency, ResponseHeader};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use crate::raft::node::{Node, Route};
use crate::sm::{Command, Op, Reply};
use crate::store::Applied;
use errors::{internal, no_leader, not_leader, RaftFailure};

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
                .await;
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
            RaftFailure::NotLeader => not_leader(self.node.leader_client_addr().await),
            RaftFailure::Status(s) => s,
        }
    }

    /// Proposes `op` through Raft and waits for it to be applied.
    pub async fn propose(&self, op: Op, request: Option<(String, u64)>) -> Result<(Reply, ResponseHeader), Status> {
        let cmd = Command {
            time_ms: self.node.clock.now_ms(),
            request,
            op,
        };
        match self.node.raft.client_write(cmd).await {
            Ok(resp) => {
                let mut header = self.node.header();
                header.revision = resp.log_id.index;
                Ok((resp.data, header))
            }
            Err(e) => Err(self.fail(e.into()).await),
        }
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
        if linearizable {
            if let Err(e) = self.node.raft.ensure_linearizable().await {
                return Err(self.fail(e.into()).await);
            }
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

    /// Whether a read of this consistency has to be served by the leader.
    pub fn needs_leader(consistency: i32) -> bool {
        consistency != ReadConsistency::Stale as i32
    }
}
