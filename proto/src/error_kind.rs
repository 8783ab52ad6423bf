//! The properties of each [`ErrorKind`]: its wire name, gRPC code, whether the core
//! client retries it by itself and whether the request was certainly not applied.
//! One exhaustive table, so a new kind cannot be added without deciding all three.

use tonic::Code;

use crate::v1::ErrorKind;

/// What the catalogue says about one kind.
struct Properties {
    code: Code,
    /// Transient: the core client retries it within the call's deadline.
    retried: bool,
    /// The request certainly had no effect, so even a non-idempotent call may be retried.
    not_applied: bool,
}

impl ErrorKind {
    /// Every kind, in number order.
    pub const ALL: [ErrorKind; 23] = [
        ErrorKind::Ok,
        ErrorKind::InvalidArgument,
        ErrorKind::Fenced,
        ErrorKind::Compacted,
        ErrorKind::FutureRevision,
        ErrorKind::Membership,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::LockNotHeld,
        ErrorKind::Config,
        ErrorKind::Unimplemented,
        ErrorKind::Internal,
        ErrorKind::Other,
        ErrorKind::Cancelled,
        ErrorKind::Closed,
        ErrorKind::Panic,
        ErrorKind::NotLeader,
        ErrorKind::NoLeader,
        ErrorKind::SequenceExhausted,
        ErrorKind::ResourceExhausted,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::AlreadyApplied,
    ];

    fn properties(self) -> Properties {
        use ErrorKind as K;
        let (code, retried, not_applied) = match self {
            K::Ok => (Code::Ok, false, true),
            K::InvalidArgument => (Code::InvalidArgument, false, true),
            K::Fenced => (Code::FailedPrecondition, false, true),
            K::Compacted => (Code::OutOfRange, false, true),
            K::FutureRevision => (Code::OutOfRange, false, true),
            K::Membership => (Code::FailedPrecondition, false, true),
            K::Unavailable => (Code::Unavailable, true, false),
            K::Timeout => (Code::DeadlineExceeded, true, false),
            K::LockNotHeld => (Code::FailedPrecondition, false, true),
            K::Config => (Code::InvalidArgument, false, true),
            K::Unimplemented => (Code::Unimplemented, false, true),
            K::Internal => (Code::Internal, false, false),
            K::Other => (Code::Unknown, false, false),
            K::Cancelled => (Code::Cancelled, false, false),
            K::Closed => (Code::Cancelled, false, false),
            K::Panic => (Code::Internal, false, false),
            K::NotLeader => (Code::Unavailable, true, false),
            K::NoLeader => (Code::Unavailable, true, true),
            K::SequenceExhausted => (Code::OutOfRange, false, true),
            K::ResourceExhausted => (Code::ResourceExhausted, false, true),
            K::Unauthenticated => (Code::Unauthenticated, false, true),
            K::PermissionDenied => (Code::PermissionDenied, false, true),
            K::AlreadyApplied => (Code::AlreadyExists, false, false),
        };
        Properties {
            code,
            retried,
            not_applied,
        }
    }

    /// The name on the wire (`kahuna-error`) and in every SDK: `FENCED`, `NOT_LEADER`, ...
    pub fn name(self) -> &'static str {
        let full = self.as_str_name();
        full.strip_prefix("ERROR_KIND_").unwrap_or(full)
    }

    /// The kind a `kahuna-error` value names; `None` for a name this build does not know.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The gRPC status code errors of this kind carry.
    pub fn grpc_code(self) -> Code {
        self.properties().code
    }

    /// Transient: the core client retries it by itself within the call's deadline
    /// (which requests it retries also depends on [`not_applied`](Self::not_applied)).
    pub fn retried(self) -> bool {
        self.properties().retried
    }

    /// Trying again later may succeed: the transient kinds, and a full resource.
    pub fn retryable(self) -> bool {
        self.retried() || self == ErrorKind::ResourceExhausted
    }

    /// The request certainly had no effect.
    pub fn not_applied(self) -> bool {
        self.properties().not_applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_in_number_order() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        // No number past the table decodes to a kind: ALL cannot go stale.
        for n in ErrorKind::ALL.len() as i32..256 {
            assert!(
                ErrorKind::try_from(n).is_err(),
                "kind {n} is missing from ErrorKind::ALL"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for k in ErrorKind::ALL {
            assert!(!k.name().starts_with("ERROR_KIND_"));
            assert_eq!(ErrorKind::from_name(k.name()), Some(k));
        }
        assert_eq!(ErrorKind::Fenced.name(), "FENCED");
        assert_eq!(ErrorKind::from_name("NO_SUCH_KIND"), None);
    }

    #[test]
    fn retried_kinds_are_the_unavailable_ones() {
        let retried: Vec<&str> = ErrorKind::ALL
            .iter()
            .filter(|k| k.retried())
            .map(|k| k.name())
            .collect();
        assert_eq!(retried, ["UNAVAILABLE", "TIMEOUT", "NOT_LEADER", "NO_LEADER"]);
        assert!(ErrorKind::NoLeader.not_applied() && !ErrorKind::NotLeader.not_applied());
    }
}
