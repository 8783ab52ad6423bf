//! Rate limiters kept by the cluster, for the Python package's `check_rate`: a policy
//! crosses as `(kind, number, seconds)` and the decision comes back as
//! `(allowed, remaining, retry_after_seconds, revision)`.

use std::time::Duration;

use kahuna_client::{Error, RateDecision, RatePolicy};

use super::{duration, invalid};

/// `(kind, number, seconds)`: `("fixed_window" | "sliding_window", limit, window)` or
/// `("token_bucket", capacity, refill_per_second)`.
pub(crate) type PolicyArg = (String, u64, f64);

/// `(allowed, remaining, retry_after_seconds, revision)`.
pub(crate) type DecisionTuple = (bool, u64, f64, u64);

/// A window in seconds as whole milliseconds when it is one up to float noise (0.3 s is
/// 0.29999... as a float); anything else goes to the core as it is, and the core refuses
/// it with its own message.
fn window(seconds: f64) -> Result<Duration, Error> {
    let exact = duration(seconds, "window")?;
    let ms = (seconds * 1000.0).round();
    if (seconds * 1000.0 - ms).abs() < 1e-6 {
        Ok(Duration::from_millis(ms as u64))
    } else {
        Ok(exact)
    }
}

pub(crate) fn policy(p: &PolicyArg) -> Result<RatePolicy, Error> {
    let (kind, number, seconds) = p;
    Ok(match kind.as_str() {
        "fixed_window" => RatePolicy::FixedWindow {
            limit: *number,
            window: window(*seconds)?,
        },
        "sliding_window" => RatePolicy::SlidingWindow {
            limit: *number,
            window: window(*seconds)?,
        },
        "token_bucket" => {
            if !(seconds.is_finite() && *seconds >= 0.0 && seconds.fract() == 0.0) {
                return Err(invalid(format!(
                    "refill_per_second is a whole number of tokens per second, got {seconds}"
                )));
            }
            RatePolicy::TokenBucket {
                capacity: *number,
                refill_per_second: *seconds as u64,
            }
        }
        other => return Err(invalid(format!("unknown rate policy {other:?}"))),
    })
}

pub(crate) fn decision(d: RateDecision) -> DecisionTuple {
    (d.allowed, d.remaining, d.retry_after.as_secs_f64(), d.revision)
}
