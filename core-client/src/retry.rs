//! When the client retries, and how long it waits in between.
//!
//! Every call runs under one deadline ([`ClientOptions::timeout`](crate::ClientOptions::timeout),
//! or [`Client::with_timeout`](crate::Client::with_timeout)); each attempt under a shorter one
//! ([`ClientOptions::attempt_timeout`](crate::ClientOptions::attempt_timeout)) so a member that
//! hangs (paused, partitioned) costs one attempt, not the whole call. A failed attempt is
//! classified by the `kahuna-error` metadata the server sends (or the gRPC code when a
//! member could not be reached), and retried according to this table, which follows the
//! properties of each kind in the catalogue ([`ErrorKind`](kahuna_proto::ErrorKind):
//! `retried` and `not_applied`):
//!
//! | failure of an attempt | what it means | reads, try-lock, extend-lock (idempotent) | other mutations (deduplicated) | membership changes |
//! |---|---|---|---|---|
//! | could not connect (`tcp connect error`) | nothing was sent | retry, next endpoint | retry, next endpoint | retry, next endpoint |
//! | `NO_LEADER` | refused before proposing | retry after backoff | retry after backoff | retry after backoff |
//! | `NOT_LEADER` with `kahuna-leader` | refused, or leadership lost mid-proposal | retry at the hinted leader at once | retry at the hint (dedupe makes it exactly-once) | never |
//! | `UNAVAILABLE` (no quorum, raft stopped), connection reset, attempt timed out, forward to a dead leader | may or may not have been applied | retry, next endpoint | retry, next endpoint (dedupe) | never |
//! | `RESOURCE_EXHAUSTED` without `kahuna-error` | load shed before handling | retry after backoff | retry after backoff | retry after backoff |
//! | `INVALID_ARGUMENT`, `FENCED`, `COMPACTED`, `FUTURE_REVISION`, `MEMBERSHIP`, `SEQUENCE_EXHAUSTED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNIMPLEMENTED`, anything unknown | a definite answer (`RESOURCE_EXHAUSTED`: the caller decides when to try again, see `kahuna-retry-after-ms`) | never | never | never |
//! | the call's deadline passed | | return [`Error::Timeout`](crate::Error::Timeout) | return `Timeout` | return `Timeout` |
//!
//! "Deduplicated" means every mutation (set, delete, extend, txn, unlock, sequence next)
//! carries `(client_id, request_id)`; a retry reuses the request id, and the server answers
//! a repeat with its first answer, so a retried mutation is applied exactly once (the server
//! remembers the newest 256 answers per client id). Try-lock and extend-lock are idempotent
//! for their owner (locking or extending again refreshes the lease and keeps the token), so
//! each of their attempts is a fresh request, and the lease is measured from the moment the
//! attempt that answered was sent; a deduplicated replay would carry a lease that started
//! at an earlier, unknown time. Compare failures, a lock held by someone else and missing keys are answers,
//! not errors, and are never retried by this layer (the lock `wait`/`retry` loop is separate
//! and sends a fresh request id each time). Membership changes carry no request id, so they
//! are retried only when they certainly were not applied.
//!
//! Between attempts the client sleeps an exponential backoff with equal jitter
//! (`[b/2, b]`, `b = min(initial * multiplier^n, max)`), except right after a
//! `NOT_LEADER` hint names a member it has not just tried.

use std::time::Duration;

use rand::Rng;

use crate::error::Failure;

/// Backoff between attempts of one call.
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::RetryPolicy;
///
/// let p = RetryPolicy { max_backoff: Duration::from_millis(200), ..RetryPolicy::default() };
/// assert!(p.backoff(10) <= Duration::from_millis(200));
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of the backoff.
    pub max_backoff: Duration,
    /// Growth factor per retry.
    pub multiplier: f64,
    /// Give up after this many attempts even when the deadline has not passed
    /// (`None`: keep trying until the deadline).
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(250),
            multiplier: 2.0,
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries (every call makes exactly one attempt).
    ///
    /// ```
    /// # use kahuna_client::RetryPolicy;
    /// assert_eq!(RetryPolicy::never().max_attempts, Some(1));
    /// ```
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        }
    }

    /// The jittered sleep before retry number `retry` (0-based).
    ///
    /// ```
    /// # use kahuna_client::RetryPolicy;
    /// let p = RetryPolicy::default();
    /// assert!(p.backoff(0) <= p.initial_backoff);
    /// ```
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(retry.min(32) as i32);
        let base = base.min(self.max_backoff.as_secs_f64()).max(0.0);
        let jittered = base / 2.0 + rand::thread_rng().gen_range(0.0..=1.0) * base / 2.0;
        Duration::from_secs_f64(jittered)
    }
}

/// How safe an operation is to send twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Reads: any number of repeats changes nothing.
    Idempotent,
    /// Mutations with a request id: the server answers a repeat with its first answer.
    Deduplicated,
    /// Neither: retried only when it certainly was not applied.
    Unsafe,
}

/// The table above as code: whether an attempt that failed this way is retried.
pub(crate) fn should_retry(failure: Failure, safety: Safety) -> bool {
    match (failure, safety) {
        (Failure::Final, _) => false,
        (Failure::NotApplied, _) => true,
        (Failure::Unknown, Safety::Idempotent | Safety::Deduplicated) => true,
        (Failure::Unknown, Safety::Unsafe) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p = RetryPolicy::default();
        for n in 0..40 {
            let b = p.backoff(n);
            assert!(b <= p.max_backoff, "{b:?}");
            assert!(b >= p.initial_backoff / 2, "{b:?}");
        }
        assert!(p.backoff(6) >= p.max_backoff / 2);
    }
}
