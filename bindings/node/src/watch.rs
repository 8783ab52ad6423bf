//! `NativeWatch`: an open watch for the package's `KahunaWatch`.
//!
//! The core [`Watch`] needs `&mut` for each message, so it sits behind an async mutex
//! shared with the `next` in flight. `close()` fires a token that ends a pending
//! `next` with `null`, and the core watch is dropped (cancelling its server stream) by
//! whichever of the two runs last. A `next` aborted through its signal drops between
//! messages of the stream, so the following `next` loses nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kahuna_client::Watch;
use napi::Result;
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use super::{history_event_out, num, run, CallOptions, NativeHistoryEvent};

/// One message of a watch: changes of whole revisions, or none (progress).
#[napi(object)]
pub struct NativeWatchBatch {
    pub events: Vec<NativeHistoryEvent>,
    /// Every change up to this revision has been delivered.
    pub revision: f64,
}

#[napi(object)]
pub struct NativeWatchOptions {
    pub prefix: Option<bool>,
    /// 0 (default): only changes made after the watch is open.
    pub start_revision: Option<f64>,
    /// 100 to 600,000 (default 5,000).
    pub progress_interval_ms: Option<f64>,
}

/// An open watch; closed by `close()` or when garbage-collected.
#[napi]
pub struct NativeWatch {
    /// `None` once closed.
    watch: Arc<tokio::sync::Mutex<Option<Watch>>>,
    /// Every change up to this revision was delivered; readable while a `next` waits.
    revision: Arc<AtomicU64>,
    closed: CancellationToken,
}

impl NativeWatch {
    pub(crate) fn new(watch: Watch) -> NativeWatch {
        NativeWatch {
            revision: Arc::new(AtomicU64::new(watch.revision())),
            watch: Arc::new(tokio::sync::Mutex::new(Some(watch))),
            closed: CancellationToken::new(),
        }
    }
}

/// Drops the core watch (and its stream) unless a `next` still holds it; that `next`
/// drops it on its way out. Dropping needs no runtime context, which matters at exit:
/// the finalizer of a watch still open may run after napi's runtime is gone.
fn drop_watch(watch: &tokio::sync::Mutex<Option<Watch>>) {
    if let Ok(mut w) = watch.try_lock() {
        w.take();
    }
}

impl Drop for NativeWatch {
    fn drop(&mut self) {
        self.closed.cancel();
        drop_watch(&self.watch);
    }
}

#[napi]
impl NativeWatch {
    /// The next message, or `null` once the watch is closed.
    #[napi]
    pub async fn next(&self, call: Option<CallOptions>) -> Result<Option<NativeWatchBatch>> {
        let watch = self.watch.clone();
        let revision = self.revision.clone();
        let closed = self.closed.clone();
        let next = async {
            let batch = {
                let mut guard = watch.lock().await;
                let Some(w) = guard.as_mut() else {
                    return Ok(None);
                };
                let batch = w.next().await?;
                revision.fetch_max(w.revision(), Ordering::SeqCst);
                batch
            };
            Ok::<_, kahuna_client::Error>(Some(batch))
        };
        let batch = run(call.and_then(|c| c.cancel), async {
            tokio::select! {
                biased;
                _ = closed.cancelled() => Ok(None),
                r = next => r,
            }
        })
        .await?;
        if closed.is_cancelled() {
            watch.lock().await.take();
            return Ok(None);
        }
        Ok(batch.map(|b| NativeWatchBatch {
            events: b.events.into_iter().map(history_event_out).collect(),
            revision: num(b.revision),
        }))
    }

    /// Every change up to this revision has been delivered.
    #[napi(getter)]
    pub fn revision(&self) -> f64 {
        num(self.revision.load(Ordering::SeqCst))
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Closes the watch: a pending `next` resolves with `null` at once.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        drop_watch(&self.watch);
    }
}
