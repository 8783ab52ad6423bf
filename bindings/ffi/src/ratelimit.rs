//! Rate limiters kept by the cluster over the C ABI: `kahuna_rate_check` decides in
//! one round trip, atomically across every client, whether a request under a name may
//! go ahead, and how long to wait when it may not.

use kahuna_client::RatePolicy;

use super::*;

/// The core policy a request names; the core client and the server check the numbers.
fn rate_policy(r: &KahunaRateCheckRequest) -> Result<RatePolicy, FfiError> {
    match r.policy {
        KAHUNA_RATE_FIXED_WINDOW => Ok(RatePolicy::FixedWindow {
            limit: r.limit,
            window: Duration::from_millis(r.window_ms),
        }),
        KAHUNA_RATE_SLIDING_WINDOW => Ok(RatePolicy::SlidingWindow {
            limit: r.limit,
            window: Duration::from_millis(r.window_ms),
        }),
        KAHUNA_RATE_TOKEN_BUCKET => Ok(RatePolicy::TokenBucket {
            capacity: r.limit,
            refill_per_second: r.refill_per_second,
        }),
        p => Err(FfiError::invalid(format!("unknown rate policy {p}"))),
    }
}

/// Takes `cost` units (0 counts as 1) from limiter `name` if it has them. A persistent
/// limiter is replicated and counts a retried check once; an ephemeral one lives in the
/// leader's memory and starts afresh after a leader change. Result: `succeeded`
/// (allowed), `remaining`, `retry_after_ms` (when not allowed), `revision`. Bad input
/// (an empty or too long name, a zero limit or window, a cost above the limit) fails
/// with `KAHUNA_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_rate_check(
    client_handle: *const KahunaClient,
    req: *const KahunaRateCheckRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let name = string(r.name, "limiter name")?;
        let policy = rate_policy(r)?;
        let d = durability(r.durability)?;
        let cost = r.cost;
        Ok(async move {
            let decision = c.client.check_rate_with(&name, policy, cost, d).await?;
            Ok(Answer {
                succeeded: decision.allowed,
                remaining: decision.remaining,
                retry_after_ms: decision.retry_after.as_millis().min(u128::from(u64::MAX)) as u64,
                revision: decision.revision,
                ..Answer::default()
            })
        })
    })
}
