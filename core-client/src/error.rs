//! The client's error type and the one mapping from gRPC statuses to it.

use std::time::Duration;

use tonic::{Code, Status};

/// Metadata entry naming the Kahuna error on every error the server sends.
pub(crate) const ERROR_KEY: &str = "kahuna-error";
/// Metadata entry with the leader's client address on a NOT_LEADER error.
pub(crate) const LEADER_KEY: &str = "kahuna-leader";

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
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Fenced(_) => "FENCED",
            Error::Compacted(_) => "COMPACTED",
            Error::FutureRevision(_) => "FUTURE_REVISION",
            Error::Membership(_) => "MEMBERSHIP",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::Timeout { .. } => "TIMEOUT",
            Error::LockNotHeld(_) => "LOCK_NOT_HELD",
            Error::Config(_) => "CONFIG",
            Error::Unimplemented(_) => "UNIMPLEMENTED",
            Error::Internal(_) => "INTERNAL",
            Error::Other { code, .. } => code,
        }
    }

    /// Whether trying the same call again later could succeed (the cluster was
    /// unavailable or too slow), as opposed to an answer that will not change.
    ///
    /// ```
    /// # use kahuna_client::Error;
    /// assert!(Error::Unavailable("no leader".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Timeout { .. })
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
    let (failure, leaderless, error) = match kind.as_deref() {
        Some("INVALID_ARGUMENT") => (Failure::Final, false, Error::InvalidArgument(msg)),
        Some("FENCED") => (Failure::Final, false, Error::Fenced(msg)),
        Some("COMPACTED") => (Failure::Final, false, Error::Compacted(msg)),
        Some("FUTURE_REVISION") => (Failure::Final, false, Error::FutureRevision(msg)),
        Some("MEMBERSHIP") => (Failure::Final, false, Error::Membership(msg)),
        Some("INTERNAL") => (Failure::Final, false, Error::Internal(msg)),
        // Refused at routing time, or leadership was lost while the proposal was in
        // flight (then it may still commit): not known to be unapplied.
        Some("NOT_LEADER") => (Failure::Unknown, true, Error::Unavailable(msg)),
        // Refused before anything was proposed.
        Some("NO_LEADER") => (Failure::NotApplied, true, Error::Unavailable(msg)),
        Some("UNAVAILABLE") => (Failure::Unknown, false, Error::Unavailable(msg)),
        Some(other) => (
            Failure::Final,
            false,
            Error::Other {
                code: other.to_owned(),
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
            Code::ResourceExhausted => (Failure::NotApplied, false, Error::Unavailable(msg)),
            Code::InvalidArgument | Code::OutOfRange => (Failure::Final, false, Error::InvalidArgument(msg)),
            Code::Unimplemented => (Failure::Final, false, Error::Unimplemented(msg)),
            Code::Internal => (Failure::Final, false, Error::Internal(msg)),
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
}
