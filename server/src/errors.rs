//! The one way the server builds an error status.
//!
//! Every error names its [`ErrorKind`] (the catalogue in `common.proto`) in a
//! `kahuna-error` metadata entry and carries the kind's gRPC code, so clients branch
//! on the kind without parsing messages. NOT_LEADER also carries `kahuna-leader`: the
//! leader's client address, when known.

use kahuna_proto::ErrorKind;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::BasicNode;
use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::types::NodeId;

pub const ERROR_KEY: &str = "kahuna-error";
pub const LEADER_KEY: &str = "kahuna-leader";

pub fn status(kind: ErrorKind, message: impl Into<String>) -> Status {
    let mut s = Status::new(kind.grpc_code(), message.into());
    s.metadata_mut()
        .insert(ERROR_KEY, MetadataValue::from_static(kind.name()));
    s
}

pub fn invalid(message: impl Into<String>) -> Status {
    status(ErrorKind::InvalidArgument, message)
}

pub fn not_leader(leader_client_addr: Option<String>) -> Status {
    let msg = match &leader_client_addr {
        Some(addr) => format!("this member is not the leader; the leader is at {addr}"),
        None => "this member is not the leader and knows no leader's address".to_owned(),
    };
    let mut s = status(ErrorKind::NotLeader, msg);
    if let Some(v) = leader_client_addr.and_then(|a| MetadataValue::try_from(a.as_str()).ok()) {
        s.metadata_mut().insert(LEADER_KEY, v);
    }
    s
}

pub fn no_leader() -> Status {
    status(ErrorKind::NoLeader, "no leader is elected at the moment; retry shortly")
}

/// This member is stopping; another member serves the request.
pub fn shutting_down() -> Status {
    status(
        ErrorKind::Unavailable,
        "this member is shutting down; retry on another member",
    )
}

pub fn internal(message: impl Into<String>) -> Status {
    status(ErrorKind::Internal, message)
}

/// What went wrong with a proposal or read barrier, before it becomes a Status
/// (NOT_LEADER needs the leader's address, which takes an async lookup).
#[derive(Clone, Debug)]
pub enum RaftFailure {
    NotLeader,
    Status(Status),
}

impl RaftFailure {
    pub fn internal(message: &str) -> Self {
        Self::Status(internal(message))
    }
}

/// Metadata entry with how long to wait before trying again (RESOURCE_EXHAUSTED).
pub const RETRY_AFTER_KEY: &str = "kahuna-retry-after-ms";

/// A bounded resource is full: `what` names it and its limit; a retry can succeed
/// after about `retry_after_ms`.
pub fn overloaded(what: impl Into<String>, retry_after_ms: u64) -> Status {
    let mut s = status(ErrorKind::ResourceExhausted, what);
    s.metadata_mut()
        .insert(RETRY_AFTER_KEY, MetadataValue::from(retry_after_ms.max(1)));
    s
}

/// A limit on what the state may hold was reached (`what` names it and its limit);
/// nothing was applied, and waiting does not help until something is removed.
pub fn full(what: impl Into<String>) -> Status {
    status(ErrorKind::ResourceExhausted, what)
}

/// The ephemeral tier ran out of tokens in this leader term.
pub fn ephemeral_tokens_exhausted() -> Status {
    status(
        ErrorKind::ResourceExhausted,
        "the ephemeral tier handed out all tokens of this leader term; it resumes after the next election",
    )
}

/// A write refused because its fence did not hold.
pub fn fenced(resource: &[u8], expected: u64, current: u64) -> Status {
    let resource = String::from_utf8_lossy(resource);
    let msg = if current == 0 {
        format!("write fenced: lock {resource:?} is not held (fencing token {expected} is stale)")
    } else {
        format!("write fenced: lock {resource:?} is held with fencing token {current}, not {expected}")
    };
    let mut s = status(ErrorKind::Fenced, msg);
    s.metadata_mut()
        .insert("kahuna-fencing-token", MetadataValue::from(current));
    s
}

impl From<RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>> for RaftFailure {
    fn from(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Self::NotLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                Self::Status(status(ErrorKind::Membership, e.to_string()))
            }
            RaftError::Fatal(f) => Self::Status(status(ErrorKind::Unavailable, format!("raft stopped: {f}"))),
        }
    }
}

impl From<RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>> for RaftFailure {
    fn from(e: RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>) -> Self {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)) => Self::NotLeader,
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => Self::Status(status(
                ErrorKind::Unavailable,
                format!("leadership could not be confirmed by a quorum: {q}"),
            )),
            RaftError::Fatal(f) => Self::Status(status(ErrorKind::Unavailable, format!("raft stopped: {f}"))),
        }
    }
}
