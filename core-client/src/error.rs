//! The client's error type and the one mapping from gRPC statuses to it.

use std::time::Duration;

pub use kahuna_proto::ErrorKind;
use tonic::{Code, Status};

/// Metadata entry naming the Kahuna error on every error the server sends.
pub(crate) const ERROR_KEY: &str = "kahuna-error";
/// Metadata entry with the leader's client address on a NOT_LEADER error.
pub(crate) const LEADER_KEY: &str = "kahuna-leader";
/// Metadata entry with how long to wait before trying again (RESOURCE_EXHAUSTED).
pub(crate) const RETRY_AFTER_KEY: &str = "kahuna-retry-after-ms";

/// Everything a [`Client`](crate::Client) call can fail with.
///
/// Negative answers are not errors: a failed compare, a lock held by someone else or
/// a missing key come back as ordinary values (`succeeded == false`, `None`, ...).
/// [`Error::code`] gives a stable name for each variant, which the language bindings
/// map to their own exception types.
///
/// ```
/// use kahuna_client::Error;
///
/// let e = Error::InvalidArgument("key must not be empty".into());
/// assert_eq!(e.code(), "INVALID_ARGUMENT");
/// assert!(!e.is_retryable());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request was refused as malformed (bad key, value too large, bad TTL, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A fenced write was refused: the fencing lock is no longer held with that token.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A read asked for a revision that is no longer retained.
    #[error("revision compacted: {0}")]
    Compacted(String),
    /// A read asked for a revision newer than the latest one.
    #[error("future revision: {0}")]
    FutureRevision(String),
    /// A membership change was refused by Raft.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The sequence cannot hand out that many more identifiers.
    #[error("sequence exhausted: {0}")]
    SequenceExhausted(String),
    /// A bounded resource of the server is full; trying again later may succeed (the
    /// server says when in `kahuna-retry-after-ms`, shown in the message).
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The request carries no credential the cluster accepts (a missing or unknown
    /// token, or no client certificate it knows).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's role does not allow this request (or not on this name).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A retry of a request an earlier attempt applied, whose answer the server did not
    /// keep (too large): it was applied once; read the state to see its effect.
    #[error("already applied: {0}")]
    AlreadyApplied(String),
    /// No member could serve the request before its deadline (members down, no leader,
    /// no quorum); the last failure seen is in the message.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call's deadline passed. A mutation may or may not have been applied; retrying
    /// it through the same client with the same request is safe only via the server's
    /// dedupe, which this client does internally before giving up.
    #[error("deadline exceeded after {elapsed:?}: {last}")]
    Timeout {
        /// How long the call ran.
        elapsed: Duration,
        /// The last failure seen before the deadline.
        last: String,
    },
    /// The lock this guard held is gone (lost, expired or released).
    #[error("lock not held: {0}")]
    LockNotHeld(String),
    /// The endpoint list or another client option is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The server does not implement this call (an older server).
    #[error("not implemented by the server: {0}")]
    Unimplemented(String),
    /// The server failed unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
    /// An error the client could not classify (code and message from the server).
    #[error("{code}: {message}")]
    Other {
        /// The `kahuna-error` name, or the gRPC code when none was sent.
        code: String,
        /// The server's message.
        message: String,
    },
}

/// The client's `Result`.
///
/// ```
/// fn parse(s: &str) -> kahuna_client::Result<u64> {
///     s.parse().map_err(|_| kahuna_client::Error::InvalidArgument(format!("{s:?} is not a number")))
/// }
/// assert!(parse("x").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable, upper-case name for the error, the same in every language binding.
    ///
    /// ```
    /// # use kahuna_client::Error;
    /// assert_eq!(Error::Fenced("token 3 < 4".into()).code(), "FENCED");
    /// ```
    pub fn code(&self) -> &str {
        match self {
            Error::Other { code, .. } => code,
            other => other.kind().name(),
        }
    }

    /// The error's kind in the catalogue ([`ErrorKind`], from `common.proto`), which the
    /// C ABI and every SDK map exhaustively.
    ///
    /// ```
    /// # use kahuna_client::{Error, ErrorKind};
    /// assert_eq!(Error::Fenced("stale".into()).kind(), ErrorKind::Fenced);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Fenced(_) => ErrorKind::Fenced,
            Error::Compacted(_) => ErrorKind::Compacted,
            Error::FutureRevision(_) => ErrorKind::FutureRevision,
            Error::Membership(_) => ErrorKind::Membership,
            Error::SequenceExhausted(_) => ErrorKind::SequenceExhausted,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::AlreadyApplied(_) => ErrorKind::AlreadyApplied,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::LockNotHeld(_) => ErrorKind::LockNotHeld,
            Error::Config(_) => ErrorKind::Config,
            Error::Unimplemented(_) => ErrorKind::Unimplemented,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Other { .. } => ErrorKind::Other,
        }
    }

    /// Whether trying the same call again later could succeed (the cluster was
    /// unavailable or too slow, or a bounded resource was full), as opposed to an
    /// answer that will not change.
    ///
    /// ```
    /// # use kahuna_client::Error;
    /// assert!(Error::Unavailable("no leader".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        self.kind().retryable()
    }
}

/// How a failed attempt bears on retrying it (see the table in [`crate::retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request certainly was not applied (refused before it reached Raft, or the
    /// connection could not even be made): retry any call.
    NotApplied,
    /// The request may or may not have been applied (connection lost, attempt timed
    /// out, leadership lost during the proposal): retry only idempotent or
    /// deduplicated calls.
    Unknown,
    /// A definite answer that retrying will not change: never retry.
    Final,
}

/// One failed attempt, classified.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub failure: Failure,
    /// The leader's client address when the server named one (NOT_LEADER).
    pub leader_hint: Option<String>,
    /// The member answered that there is no leader right now (or it is not the leader).
    pub leaderless: bool,
    pub error: Error,
}

fn text(s: &Status) -> String {
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        s.message().to_owned()
    }
}

/// Whether the status came from failing to open a connection (nothing was sent).
fn is_connect_error(s: &Status) -> bool {
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if e.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A server error of a known kind: the client error, and how the attempt bears on
/// retrying from the kind's properties in the catalogue. Exhaustive: a new kind does
/// not compile until it is mapped here.
fn from_kind(kind: ErrorKind, s: &Status, msg: String) -> (Failure, bool, Error) {
    let failure = match (kind.retried(), kind.not_applied()) {
        (true, true) => Failure::NotApplied,
        (true, false) => Failure::Unknown,
        (false, _) => Failure::Final,
    };
    let leaderless = matches!(kind, ErrorKind::NotLeader | ErrorKind::NoLeader);
    let error = match kind {
        ErrorKind::InvalidArgument => Error::InvalidArgument(msg),
        ErrorKind::Fenced => Error::Fenced(msg),
        ErrorKind::Compacted => Error::Compacted(msg),
        ErrorKind::FutureRevision => Error::FutureRevision(msg),
        ErrorKind::Membership => Error::Membership(msg),
        ErrorKind::SequenceExhausted => Error::SequenceExhausted(msg),
        ErrorKind::ResourceExhausted => match s.metadata().get(RETRY_AFTER_KEY).and_then(|v| v.to_str().ok()) {
            Some(ms) => Error::ResourceExhausted(format!("{msg} (retry after {ms} ms)")),
            None => Error::ResourceExhausted(msg),
        },
        ErrorKind::Unavailable | ErrorKind::NotLeader | ErrorKind::NoLeader | ErrorKind::Timeout => {
            Error::Unavailable(msg)
        }
        ErrorKind::LockNotHeld => Error::LockNotHeld(msg),
        ErrorKind::Unauthenticated => Error::Unauthenticated(msg),
        ErrorKind::PermissionDenied => Error::PermissionDenied(msg),
        ErrorKind::AlreadyApplied => Error::AlreadyApplied(msg),
        ErrorKind::Config => Error::Config(msg),
        ErrorKind::Unimplemented => Error::Unimplemented(msg),
        ErrorKind::Internal | ErrorKind::Panic => Error::Internal(msg),
        // Not sent by servers; kept as they came.
        ErrorKind::Ok | ErrorKind::Other | ErrorKind::Cancelled | ErrorKind::Closed => Error::Other {
            code: kind.name().to_owned(),
            message: msg,
        },
    };
    (failure, leaderless, error)
}

/// The one mapping from a gRPC status to a classified client error.
pub(crate) fn classify(s: &Status) -> AttemptError {
    let kind = s
        .metadata()
        .get(ERROR_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let leader_hint = s
        .metadata()
        .get(LEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let msg = text(s);
    let (failure, leaderless, error) = match kind.as_deref().map(|k| (k, ErrorKind::from_name(k))) {
        Some((_, Some(kind))) => from_kind(kind, s, msg),
        // A kind this build does not know (a newer server): a definite answer.
        Some((name, None)) => (
            Failure::Final,
            false,
            Error::Other {
                code: name.to_owned(),
                message: msg,
            },
        ),
        None => match s.code() {
            Code::Unavailable if is_connect_error(s) => (Failure::NotApplied, false, Error::Unavailable(msg)),
            // Connection reset, a member's forward to a dead leader, a member going away.
            Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown => {
                (Failure::Unknown, false, Error::Unavailable(msg))
            }
            Code::DeadlineExceeded => (Failure::Unknown, false, Error::Unavailable(msg)),
            // Load shed by the transport before the request was handled.
            Code::ResourceExhausted => (Failure::NotApplied, false, Error::Unavailable(msg)),
            Code::InvalidArgument | Code::OutOfRange => (Failure::Final, false, Error::InvalidArgument(msg)),
            Code::Unimplemented => (Failure::Final, false, Error::Unimplemented(msg)),
            Code::Internal => (Failure::Final, false, Error::Internal(msg)),
            Code::Unauthenticated => (Failure::Final, false, Error::Unauthenticated(msg)),
            Code::PermissionDenied => (Failure::Final, false, Error::PermissionDenied(msg)),
            other => (
                Failure::Final,
                false,
                Error::Other {
                    code: format!("{other:?}"),
                    message: msg,
                },
            ),
        },
    };
    AttemptError {
        failure,
        leader_hint,
        leaderless,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status(code: Code, kind: &'static str) -> Status {
        let mut s = Status::new(code, "m");
        s.metadata_mut().insert(ERROR_KEY, MetadataValue::from_static(kind));
        s
    }

    #[test]
    fn classification_follows_the_table() {
        let mut s = status(Code::Unavailable, "NOT_LEADER");
        s.metadata_mut()
            .insert(LEADER_KEY, MetadataValue::from_static("127.0.0.1:9"));
        let a = classify(&s);
        assert_eq!(a.failure, Failure::Unknown);
        assert_eq!(a.leader_hint.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(
            classify(&status(Code::Unavailable, "NO_LEADER")).failure,
            Failure::NotApplied
        );
        assert_eq!(
            classify(&status(Code::InvalidArgument, "INVALID_ARGUMENT")).failure,
            Failure::Final
        );
        let f = classify(&status(Code::FailedPrecondition, "FENCED"));
        assert_eq!(f.failure, Failure::Final);
        assert_eq!(f.error.code(), "FENCED");
        assert_eq!(classify(&Status::unavailable("reset")).failure, Failure::Unknown);
        assert_eq!(classify(&Status::unimplemented("x")).error.code(), "UNIMPLEMENTED");
    }

    /// Every kind of the catalogue, sent the way the server sends it, comes out as the
    /// error of that kind (or, for the transient leader kinds, as UNAVAILABLE) with the
    /// retry decision its properties give.
    #[test]
    fn every_kind_walks_through_classification() {
        for kind in ErrorKind::ALL {
            let mut s = Status::new(kind.grpc_code(), "m");
            s.metadata_mut()
                .insert(ERROR_KEY, MetadataValue::from_static(kind.name()));
            let a = classify(&s);
            let expected = match kind {
                ErrorKind::NotLeader | ErrorKind::NoLeader | ErrorKind::Timeout => ErrorKind::Unavailable,
                ErrorKind::Panic => ErrorKind::Internal,
                ErrorKind::Ok | ErrorKind::Cancelled | ErrorKind::Closed => ErrorKind::Other,
                k => k,
            };
            assert_eq!(a.error.kind(), expected, "{kind:?}");
            if expected != ErrorKind::Other {
                assert_eq!(a.error.code(), expected.name());
            } else {
                assert_eq!(a.error.code(), kind.name());
            }
            let failure = match (kind.retried(), kind.not_applied()) {
                (true, true) => Failure::NotApplied,
                (true, false) => Failure::Unknown,
                (false, _) => Failure::Final,
            };
            assert_eq!(a.failure, failure, "{kind:?}");
        }
        // A kind from a newer server is a definite answer with its name as the code.
        let s = status(Code::FailedPrecondition, "SOMETHING_NEW");
        let a = classify(&s);
        assert_eq!((a.failure, a.error.code()), (Failure::Final, "SOMETHING_NEW"));
    }
}
