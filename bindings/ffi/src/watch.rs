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
pub struct KahunaWatch {
    watch: Arc<tokio::sync::Mutex<Watch>>,
    /// Every change up to this revision was delivered; kept apart from `watch` so it can
    /// be read while a `next` holds the mutex.
    revision: Arc<AtomicU64>,
    /// Cancelled by `kahuna_watch_free`: completes the `next` still pending.
    freed: CancellationToken,
    /// The client's close: a watch's calls end with the client's, like a lock's.
    closed: CancellationToken,
}

unsafe fn watch_ref<'a>(p: *const KahunaWatch) -> Result<&'a KahunaWatch, FfiError> {
    p.as_ref().ok_or_else(|| FfiError::invalid("watch handle is null"))
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
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let key = string(r.key, "key")?;
        let mut options = WatchOptions {
            prefix: r.prefix != 0,
            start_revision: r.start_revision,
            ..WatchOptions::default()
        };
        if r.progress_interval_ms > 0 {
            options.progress_interval = Duration::from_millis(r.progress_interval_ms);
        }
        let cl = c.client.clone();
        let closed = c.closed.clone();
        op(&c.closed, async move {
            let watch = cl.watch(&key, options).await?;
            let revision = watch.revision();
            Ok(Answer {
                succeeded: true,
                revision,
                watch: Some(Box::new(KahunaWatch {
                    watch: Arc::new(tokio::sync::Mutex::new(watch)),
                    revision: Arc::new(AtomicU64::new(revision)),
                    freed: CancellationToken::new(),
                    closed,
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
    start(callback, user_data, cancel, || {
        let w = watch_ref(watch_handle)?;
        let watch = w.watch.clone();
        let revision = w.revision.clone();
        let freed = w.freed.clone();
        op(&w.closed, async move {
            let next = async {
                let mut watch = watch.lock().await;
                let batch = watch.next().await?;
                revision.fetch_max(watch.revision(), Ordering::SeqCst);
                Ok::<_, FfiError>(Answer {
                    succeeded: true,
                    revision: batch.revision,
                    events: batch.events,
                    ..Answer::default()
                })
            };
            tokio::select! {
                biased;
                _ = freed.cancelled() => Err(FfiError::new(KAHUNA_STATUS_CLOSED, "the watch was closed")),
                r = next => r,
            }
        })
    })
}

/// Every change up to this revision has been delivered (0 for a null handle).
#[no_mangle]
pub unsafe extern "C" fn kahuna_watch_revision(watch_handle: *const KahunaWatch) -> u64 {
    guarded(0, || {
        watch_handle.as_ref().map_or(0, |w| w.revision.load(Ordering::SeqCst))
    })
}

/// Closes and frees a watch (null is ignored). A `next` still pending completes with
/// `KAHUNA_STATUS_CLOSED`; the server stream is cancelled once it has.
#[no_mangle]
pub unsafe extern "C" fn kahuna_watch_free(watch_handle: *mut KahunaWatch) {
    guarded((), || {
        if !watch_handle.is_null() {
            let w = Box::from_raw(watch_handle);
            w.freed.cancel();
            let rt = runtime().ok();
            let _enter = rt.as_ref().map(Handle::enter);
            drop(w);
        }
    })
}
