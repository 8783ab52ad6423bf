//! Watches over the C ABI: `kahuna_watch_open` gives a [`KahunaWatch`] handle, each
//! `kahuna_watch_next` completes once with the next batch of changes (or a progress
//! notification), `kahuna_watch_free` closes it.
//!
//! The core [`Watch`] needs `&mut` for each message, so the handle shares it behind an
//! async mutex with the `next` call in flight: a second `next` waits for the first, and
//! freeing the handle while one is pending is safe (the call owns its own reference).
//! Cancelling a pending `next` drops it between messages of the server stream, so a
//! later `next` continues where it left off and nothing is lost.

use std::sync::atomic::AtomicU64;

use kahuna_client::{Watch, WatchOptions};

use super::*;

/// An open watch (`kahuna_watch_open` / `kahuna_watch_free`).
#[derive(Clone)]
pub struct KahunaWatch {
    watch: Arc<tokio::sync::Mutex<Watch>>,
    /// Every change up to this revision was delivered; kept apart from `watch` so it can
    /// be read while a `next` holds the mutex.
    revision: Arc<AtomicU64>,
    /// Cancelled by `kahuna_watch_free`: completes the `next` still pending.
    freed: CancellationToken,
    /// The client's close: a watch's calls end with the client's, like a lock's.
    pub(crate) closed: CancellationToken,
}

/// Opens a watch; completes once the server has it in place, so every change committed
/// after the callback is delivered. Result: `watch` (a new handle the callee owns and
/// frees with `kahuna_watch_free`), `revision` (the watch starts after it).
#[no_mangle]
pub unsafe extern "C" fn kahuna_watch_open(
    client_handle: *const KahunaClient,
    req: *const KahunaWatchRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let key = string(r.key, "key")?;
        let mut options = WatchOptions {
            prefix: r.prefix != 0,
            start_revision: r.start_revision,
            ..WatchOptions::default()
        };
        if r.progress_interval_ms > 0 {
            options.progress_interval = Duration::from_millis(r.progress_interval_ms);
        }
        Ok(async move {
            let watch = c.client.watch(&key, options).await?;
            let revision = watch.revision();
            Ok(Answer {
                succeeded: true,
                revision,
                watch: Some(Box::new(KahunaWatch {
                    watch: Arc::new(tokio::sync::Mutex::new(watch)),
                    revision: Arc::new(AtomicU64::new(revision)),
                    freed: CancellationToken::new(),
                    closed: c.closed,
                })),
                ..Answer::default()
            })
        })
    })
}

/// The next message of a watch: changes of one or more whole revisions, oldest first,
/// or none (a progress notification). Result: `events`, `revision` (every change up to
/// it has been delivered). Completes with `KAHUNA_STATUS_CLOSED` when the watch or its
/// client is freed meanwhile; an error (`COMPACTED`, an unreachable cluster) is final
/// for this call, and calling again tries again.
#[no_mangle]
pub unsafe extern "C" fn kahuna_watch_next(
    watch_handle: *const KahunaWatch,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call_without_request(watch_handle, cancel, user_data, callback, |w| {
        Ok(until_freed(w.freed.clone(), "the watch was closed", async move {
            let mut watch = w.watch.lock().await;
            let batch = watch.next().await?;
            w.revision.fetch_max(watch.revision(), Ordering::SeqCst);
            Ok(Answer {
                succeeded: true,
                revision: batch.revision,
                events: batch.events,
                ..Answer::default()
            })
        }))
    })
}

/// Every change up to this revision has been delivered (0 for a null handle).
#[no_mangle]
pub unsafe extern "C" fn kahuna_watch_revision(watch_handle: *const KahunaWatch) -> u64 {
    sync_call(watch_handle, 0, |w| w.revision.load(Ordering::SeqCst))
}

/// Closes and frees a watch (null is ignored). A `next` still pending completes with
/// `KAHUNA_STATUS_CLOSED`; the server stream is cancelled once it has.
#[no_mangle]
pub unsafe extern "C" fn kahuna_watch_free(watch_handle: *mut KahunaWatch) {
    free(watch_handle, |w| w.freed.cancel())
}
