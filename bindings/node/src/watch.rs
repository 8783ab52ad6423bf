//! `NativeWatch`: an open watch for the package's `KahunaWatch`, read and closed as a
//! [`Subscription`] (a closed watch's `next` resolves with `null`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kahuna_client::{Watch, WatchBatch, WatchOptions};
use napi::Result;
use napi_derive::napi;

use super::subscription::{Source, Subscription};
use super::{history_event_out, num, positive_ms, u64_in, CallOptions, NativeHistoryEvent};

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

pub(crate) fn watch_options_in(options: Option<NativeWatchOptions>) -> Result<WatchOptions> {
    let d = WatchOptions::default();
    Ok(match options {
        None => d,
        Some(o) => WatchOptions {
            prefix: o.prefix.unwrap_or(false),
            start_revision: o
                .start_revision
                .map(|r| u64_in("startRevision", r))
                .transpose()?
                .unwrap_or(0),
            progress_interval: positive_ms("progressIntervalMs", o.progress_interval_ms, d.progress_interval)?,
        },
    })
}

/// The core watch and the revision its `NativeWatch` shows, moved on with each message.
struct Tracked {
    watch: Watch,
    revision: Arc<AtomicU64>,
}

impl Source for Tracked {
    type Message = WatchBatch;

    async fn next_message(&mut self) -> kahuna_client::Result<WatchBatch> {
        let batch = self.watch.next().await?;
        self.revision.fetch_max(self.watch.revision(), Ordering::SeqCst);
        Ok(batch)
    }
}

/// An open watch; closed by `close()` or when garbage-collected.
#[napi]
pub struct NativeWatch {
    watch: Subscription<Tracked>,
    /// Every change up to this revision was delivered; readable while a `next` waits.
    revision: Arc<AtomicU64>,
}

impl NativeWatch {
    pub(crate) fn new(watch: Watch) -> NativeWatch {
        let revision = Arc::new(AtomicU64::new(watch.revision()));
        NativeWatch {
            watch: Subscription::new(Tracked {
                watch,
                revision: revision.clone(),
            }),
            revision,
        }
    }
}

#[napi]
impl NativeWatch {
    /// The next message, or `null` once the watch is closed.
    #[napi]
    pub async fn next(&self, call: Option<CallOptions>) -> Result<Option<NativeWatchBatch>> {
        let batch = self.watch.next(call.and_then(|c| c.cancel)).await?;
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
        self.watch.is_closed()
    }

    /// Closes the watch: a pending `next` resolves with `null` at once.
    #[napi]
    pub fn close(&self) {
        self.watch.close();
    }
}
