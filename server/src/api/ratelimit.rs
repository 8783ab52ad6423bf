//! The `RateLimits` service: one round trip decides whether a request under a name
//! may go ahead. Persistent limiters are decided by the state machine (a log write
//! each, so every member agrees and a failover keeps the count); ephemeral ones by the
//! leader's ephemeral tier (no fsync; a leader change starts them afresh).

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::rate_check_request::Policy as PbPolicy;
use kahuna_proto::v1::rate_limits_client::RateLimitsClient;
use kahuna_proto::v1::rate_limits_server::RateLimits;
use kahuna_proto::v1::Durability;
use tonic::{Request, Response, Status};

use super::{forward_unless_leader, limits, Api};
use crate::capacity::Item;
use crate::errors::{internal, invalid};
use crate::sm::limiters::Policy;
use crate::sm::{Op, Reply};

/// Largest limit or capacity: far past any real rate, and small enough that the
/// arithmetic (in thousandths of tokens, times window lengths) cannot overflow.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;
/// Longest window: a day.
pub const MAX_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest refill rate, tokens per second.
pub const MAX_REFILL_PER_SECOND: u64 = 1_000_000_000;
pub const MAX_NAME_BYTES: usize = 1024;

fn within(what: &str, n: u64, max: u64) -> Result<u64, Status> {
    if n == 0 || n > max {
        return Err(invalid(format!("{what} is {n}; it must be from 1 to {max}")));
    }
    Ok(n)
}

fn policy(r: &pb::RateCheckRequest) -> Result<Policy, Status> {
    match &r.policy {
        None => Err(invalid(
            "a policy is required: fixed_window, sliding_window or token_bucket",
        )),
        Some(PbPolicy::FixedWindow(f)) => Ok(Policy::FixedWindow {
            limit: within("fixed_window.limit", f.limit, MAX_LIMIT)?,
            window_ms: within("fixed_window.window_ms", f.window_ms, MAX_WINDOW_MS)?,
        }),
        Some(PbPolicy::SlidingWindow(f)) => Ok(Policy::SlidingWindow {
            limit: within("sliding_window.limit", f.limit, MAX_LIMIT)?,
            window_ms: within("sliding_window.window_ms", f.window_ms, MAX_WINDOW_MS)?,
        }),
        Some(PbPolicy::TokenBucket(t)) => Ok(Policy::TokenBucket {
            capacity: within("token_bucket.capacity", t.capacity, MAX_LIMIT)?,
            refill_per_second: within(
                "token_bucket.refill_per_second",
                t.refill_per_second,
                MAX_REFILL_PER_SECOND,
            )?,
        }),
    }
}

#[tonic::async_trait]
impl RateLimits for Api {
    async fn check(&self, req: Request<pb::RateCheckRequest>) -> Result<Response<pb::RateCheckResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, RateLimitsClient, check);
        let r = req.into_inner();
        let name = limits::text("name", &r.name, MAX_NAME_BYTES, false)?.to_owned();
        let policy = policy(&r)?;
        let cost = r.cost.max(1);
        if cost > policy.max_cost() {
            return Err(invalid(format!(
                "cost is {cost}, more than the policy ever allows at once ({}): it could never be allowed",
                policy.max_cost()
            )));
        }
        let (d, header) = match limits::enumeration::<Durability>("durability", r.durability)? {
            Durability::Persistent => {
                self.admit(Item::RateLimiters, |sm| {
                    (sm.limiters.len(), usize::from(!sm.limiters.contains(&name)))
                })?;
                let op = Op::RateCheck { name, policy, cost };
                let p = self
                    .propose(op, None, limits::request_id(r.request_id.as_ref())?)
                    .await?;
                match p.reply {
                    Reply::Rate(d) => (d, p.header),
                    other => return Err(internal(format!("state machine gave an unexpected answer: {other:?}"))),
                }
            }
            Durability::Ephemeral => {
                self.admit_ephemeral(|t| !t.limiters.contains(&name))?;
                let (d, header, _) = self
                    .ephemeral(|tier, now| tier.limiters.check(now, &name, policy, cost))
                    .await?;
                (d, header)
            }
        };
        Ok(Response::new(pb::RateCheckResponse {
            header: Some(header),
            allowed: d.allowed,
            remaining: d.remaining,
            retry_after_ms: d.retry_after_ms,
        }))
    }
}
