//! Leader election over the C ABI.
//!
//! A leadership *is* a lock guard (the election's persistent lock), so
//! `kahuna_election_campaign` hands back a [`KahunaLock`] handle and every lock function
//! applies to it: `kahuna_lock_fencing_token` is the epoch, `kahuna_lock_is_acquired`
//! whether it still leads, `kahuna_lock_on_lost` its lost signal, `kahuna_lock_release`
//! resigns and `kahuna_lock_free` resigns if still leading. Only `kahuna_election_proclaim`
//! is new, and it refuses a handle that came from `kahuna_lock_acquire`.
//!
//! Observers follow the shape of watches (see `watch.rs`): the core [`Observer`] needs
//! `&mut` for each `next`, so the handle shares it behind an async mutex with the call
//! in flight; freeing the handle completes a pending `next` with `KAHUNA_STATUS_CLOSED`.

use kahuna_client::{CampaignOptions, Observer};

use super::*;

/// A lock handle holds either kind of lock (see [`kahuna_client::HeldLock`]).
pub(crate) use kahuna_client::HeldLock as Held;

/// An open election observer (`kahuna_election_observe` / `kahuna_observer_free`).
#[derive(Clone)]
pub struct KahunaObserver {
    observer: Arc<tokio::sync::Mutex<Observer>>,
    /// Cancelled by `kahuna_observer_free`: completes the `next` still pending.
    freed: CancellationToken,
    /// The client's close: an observer's calls end with the client's.
    pub(crate) closed: CancellationToken,
}

/// Campaigns in election `name` with `value`, waiting in the election's queue
/// (candidates are elected in the order they campaigned). Result: `succeeded` (elected)
/// and `lock` (the leadership as a lock handle, owned by the callee; null when
/// `wait_ms` passed first). Cancelling the call withdraws the candidacy.
#[no_mangle]
pub unsafe extern "C" fn kahuna_election_campaign(
    client_handle: *const KahunaClient,
    req: *const KahunaCampaignRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let name = string(r.name, "election name")?;
        let value = owned_bytes(r.value)?;
        if r.ttl_ms == 0 {
            return Err(FfiError::invalid("ttl_ms must be positive"));
        }
        let options = CampaignOptions {
            ttl: Duration::from_millis(r.ttl_ms),
            wait: (r.wait != 0).then(|| Duration::from_millis(r.wait_ms)),
        };
        Ok(async move {
            let Some(leadership) = c.client.campaign(&name, value, options).await? else {
                return Ok(Answer::default());
            };
            Ok(Answer {
                succeeded: true,
                lock: Some(KahunaLock::boxed(Held::Leader(leadership), c.closed)),
                ..Answer::default()
            })
        })
    })
}

/// Announces a new value as the leader. Fails with `KAHUNA_STATUS_LOCK_NOT_HELD` once
/// deposed (or resigned), and with `KAHUNA_STATUS_INVALID_ARGUMENT` for a lock handle
/// that is not a leadership.
#[no_mangle]
pub unsafe extern "C" fn kahuna_election_proclaim(
    lock_handle: *const KahunaLock,
    req: *const KahunaProclaimRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(lock_handle, req, cancel, user_data, callback, |l, r| {
        let value = owned_bytes(r.value)?;
        if !matches!(*l.guard, Held::Leader(_)) {
            return Err(FfiError::invalid(
                "the lock handle is not a leadership (from kahuna_election_campaign)",
            ));
        }
        Ok(async move {
            let Held::Leader(leadership) = &*l.guard else {
                return Err(FfiError::invalid("the lock handle is not a leadership"));
            };
            leadership.proclaim(value).await?;
            Ok(Answer::succeeded(true))
        })
    })
}

/// The current leader of election `name` (a linearizable read). Result: `lock_info`
/// (`present == 0` when there is none; else `owner`, `fencing_token` = epoch, `value`).
#[no_mangle]
pub unsafe extern "C" fn kahuna_election_leader(
    client_handle: *const KahunaClient,
    req: *const KahunaElectionRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let name = string(r.name, "election name")?;
        Ok(async move { Ok(leader_answer(c.client.election_leader(&name).await?)) })
    })
}

fn leader_answer(leader: Option<Leader>) -> Answer {
    Answer {
        succeeded: leader.is_some(),
        leader,
        ..Answer::default()
    }
}

/// Opens an observer of election `name`. Result: `observer` (a new handle the callee
/// owns and frees with `kahuna_observer_free`).
#[no_mangle]
pub unsafe extern "C" fn kahuna_election_observe(
    client_handle: *const KahunaClient,
    req: *const KahunaElectionRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let name = string(r.name, "election name")?;
        Ok(async move {
            let observer = c.client.observe(&name).await?;
            Ok(Answer {
                succeeded: true,
                observer: Some(Box::new(KahunaObserver {
                    observer: Arc::new(tokio::sync::Mutex::new(observer)),
                    freed: CancellationToken::new(),
                    closed: c.closed,
                })),
                ..Answer::default()
            })
        })
    })
}

/// The leader now (first call), then after each change. Result: `lock_info`
/// (`present == 0`: no leader; else `owner`, `fencing_token` = epoch, `value`).
/// Completes with `KAHUNA_STATUS_CLOSED` when the observer or its client is freed
/// meanwhile; a cancelled call loses nothing (the next call gives the same change).
#[no_mangle]
pub unsafe extern "C" fn kahuna_observer_next(
    observer_handle: *const KahunaObserver,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call_without_request(observer_handle, cancel, user_data, callback, |o| {
        Ok(until_freed(o.freed.clone(), "the observer was closed", async move {
            let mut observer = o.observer.lock().await;
            Ok(leader_answer(observer.next().await?))
        }))
    })
}

/// Closes and frees an observer (null is ignored). A `next` still pending completes with
/// `KAHUNA_STATUS_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_observer_free(observer_handle: *mut KahunaObserver) {
    free(observer_handle, |o| o.freed.cancel())
}
