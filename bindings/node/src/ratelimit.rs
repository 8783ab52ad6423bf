//! Rate limiters for the package's `checkRateLimit`: the policy crosses as one object
//! tagged by `kind` (the TypeScript layer builds it from its discriminated union), the
//! decision as plain numbers (`retryAfterMs` in milliseconds).

use std::time::Duration;

use kahuna_client::{RateDecision, RatePolicy};
use napi::Result;
use napi_derive::napi;

use super::{invalid, ms_out, num, u64_in};

/// How a limiter counts: `kind` and that kind's fields.
#[napi(object)]
pub struct NativeRatePolicy {
    /// `'fixedWindow'`, `'slidingWindow'` or `'tokenBucket'`.
    pub kind: String,
    /// Units per window (the window kinds).
    pub limit: Option<f64>,
    /// Window length, whole milliseconds, at least 1 (the window kinds).
    pub window_ms: Option<f64>,
    /// Tokens when full (`'tokenBucket'`).
    pub capacity: Option<f64>,
    /// Tokens added per second (`'tokenBucket'`).
    pub refill_per_second: Option<f64>,
}

/// A limiter's answer.
#[napi(object)]
pub struct NativeRateDecision {
    pub allowed: bool,
    pub remaining: f64,
    pub retry_after_ms: f64,
    pub revision: f64,
}

pub(crate) fn policy_in(p: &NativeRatePolicy) -> Result<RatePolicy> {
    let field = |what: &str, v: Option<f64>| -> Result<u64> {
        match v {
            Some(v) => u64_in(what, v),
            None => Err(invalid(format!("a {} rate policy needs {what}", p.kind))),
        }
    };
    match p.kind.as_str() {
        "fixedWindow" => Ok(RatePolicy::FixedWindow {
            limit: field("limit", p.limit)?,
            window: Duration::from_millis(field("windowMs", p.window_ms)?),
        }),
        "slidingWindow" => Ok(RatePolicy::SlidingWindow {
            limit: field("limit", p.limit)?,
            window: Duration::from_millis(field("windowMs", p.window_ms)?),
        }),
        "tokenBucket" => Ok(RatePolicy::TokenBucket {
            capacity: field("capacity", p.capacity)?,
            refill_per_second: field("refillPerSecond", p.refill_per_second)?,
        }),
        other => Err(invalid(format!(
            "a rate policy's kind is 'fixedWindow', 'slidingWindow' or 'tokenBucket', got {other:?}"
        ))),
    }
}

/// A check's cost: absent means 1.
pub(crate) fn cost_in(cost: Option<f64>) -> Result<u64> {
    Ok(cost.map(|n| u64_in("cost", n)).transpose()?.unwrap_or(1))
}

pub(crate) fn decision_out(d: RateDecision) -> NativeRateDecision {
    NativeRateDecision {
        allowed: d.allowed,
        remaining: num(d.remaining),
        retry_after_ms: ms_out(d.retry_after),
        revision: num(d.revision),
    }
}
