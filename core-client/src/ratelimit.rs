//! Rate limiters kept by the cluster (anchor: kahuna-ts's rate-limiting module): one
//! round trip decides, atomically across every client, whether a request under a
//! name may go ahead, and says how long to wait when it may not.

use std::time::Duration;

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::rate_check_request::Policy as PbPolicy;

use crate::client::{Client, HasHeader};
use crate::error::{Error, Result};
use crate::kv::Durability;
use crate::retry::Safety;

/// How a limiter counts.
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::RatePolicy;
///
/// let api = RatePolicy::SlidingWindow { limit: 100, window: Duration::from_secs(60) };
/// let burst = RatePolicy::TokenBucket { capacity: 20, refill_per_second: 5 };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePolicy {
    /// At most `limit` units per window, windows aligned to cluster time.
    FixedWindow {
        /// Units per window.
        limit: u64,
        /// Window length (whole milliseconds, at least 1).
        window: Duration,
    },
    /// At most `limit` units in any `window`, estimated from the current and the
    /// previous fixed window.
    SlidingWindow {
        /// Units per window.
        limit: u64,
        /// Window length (whole milliseconds, at least 1).
        window: Duration,
    },
    /// A bucket of `capacity` tokens refilled at `refill_per_second`.
    TokenBucket {
        /// Tokens when full: the largest burst.
        capacity: u64,
        /// Tokens added per second.
        refill_per_second: u64,
    },
}

impl RatePolicy {
    fn pb(self) -> PbPolicy {
        match self {
            RatePolicy::FixedWindow { limit, window } => PbPolicy::FixedWindow(pb::FixedWindow {
                limit,
                window_ms: window.as_millis() as u64,
            }),
            RatePolicy::SlidingWindow { limit, window } => PbPolicy::SlidingWindow(pb::SlidingWindow {
                limit,
                window_ms: window.as_millis() as u64,
            }),
            RatePolicy::TokenBucket {
                capacity,
                refill_per_second,
            } => PbPolicy::TokenBucket(pb::TokenBucket {
                capacity,
                refill_per_second,
            }),
        }
    }
}

/// A limiter's answer.
///
/// ```
/// # use std::time::Duration;
/// # use kahuna_client::RateDecision;
/// let d = RateDecision { allowed: false, remaining: 0, retry_after: Duration::from_millis(250), revision: 9 };
/// assert!(!d.allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// The request may go ahead; its cost was taken.
    pub allowed: bool,
    /// Units left now.
    pub remaining: u64,
    /// When not allowed: how long until the same check would be.
    pub retry_after: Duration,
    /// The store revision of the answer (persistent limiters).
    pub revision: u64,
}

impl Client {
    /// Takes `cost` units (0 counts as 1) from the persistent limiter `name`, counting
    /// by `policy`, if it has them. Exactly once across retries: every check carries
    /// the client's request id.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kahuna_client::RatePolicy;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let policy = RatePolicy::FixedWindow { limit: 100, window: Duration::from_secs(1) };
    /// let d = client.check_rate("api/customer-42", policy, 1).await?;
    /// if !d.allowed {
    ///     tokio::time::sleep(d.retry_after).await;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn check_rate(&self, name: &str, policy: RatePolicy, cost: u64) -> Result<RateDecision> {
        self.check_rate_with(name, policy, cost, Durability::Persistent).await
    }

    /// [`Client::check_rate`] on a tier: an ephemeral limiter lives in the leader's
    /// memory (no log write, much faster) and starts afresh after a leader change.
    pub async fn check_rate_with(
        &self,
        name: &str,
        policy: RatePolicy,
        cost: u64,
        durability: Durability,
    ) -> Result<RateDecision> {
        if let RatePolicy::FixedWindow { window, .. } | RatePolicy::SlidingWindow { window, .. } = policy {
            if window < Duration::from_millis(1) || window.subsec_nanos() % 1_000_000 != 0 {
                return Err(Error::InvalidArgument(format!(
                    "a rate window is whole milliseconds, at least 1 (got {window:?})"
                )));
            }
        }
        let msg = pb::RateCheckRequest {
            name: name.as_bytes().to_vec(),
            policy: Some(policy.pb()),
            cost,
            durability: durability.pb(),
            // One id for every attempt: a retried check is answered, not counted again.
            request_id: Some(self.request_id()),
        };
        let r = self.unary(Safety::Deduplicated, msg).await?;
        Ok(RateDecision {
            allowed: r.allowed,
            remaining: r.remaining,
            retry_after: Duration::from_millis(r.retry_after_ms),
            revision: r.revision(),
        })
    }
}
