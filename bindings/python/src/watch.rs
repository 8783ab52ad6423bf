//! `Watch`: an open watch for the Python package's `Watch` / `AsyncWatch`.
//!
//! The core [`Watch`] needs `&mut` for each message, so it sits behind an async mutex
//! shared with the `next` in flight. `close()` (or dropping the handle) fires a token
//! that ends a pending `next` with `None`, and then drops the core watch, which cancels
//! its server stream. A cancelled `next` (asyncio cancellation, Ctrl-C) drops between
//! messages of the stream, so the following `next` loses nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kahuna_client::{Watch, WatchBatch};
use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{any, events, run, runtime, HANDLES};

#[pyclass(frozen, module = "kahuna._native", name = "Watch")]
pub(crate) struct NativeWatch {
    /// `None` once closed.
    watch: Arc<tokio::sync::Mutex<Option<Watch>>>,
    /// Every change up to this revision was delivered; readable while a `next` waits.
    revision: Arc<AtomicU64>,
    closed: CancellationToken,
}

impl NativeWatch {
    pub(crate) fn new(watch: Watch) -> NativeWatch {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        NativeWatch {
            revision: Arc::new(AtomicU64::new(watch.revision())),
            watch: Arc::new(tokio::sync::Mutex::new(Some(watch))),
            closed: CancellationToken::new(),
        }
    }

    /// Ends a pending `next`, then drops the core watch on the runtime once that `next`
    /// has let go of it.
    fn shut(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        if let Ok(rt) = runtime() {
            let watch = self.watch.clone();
            rt.spawn(async move {
                watch.lock().await.take();
            });
        }
    }
}

impl Drop for NativeWatch {
    fn drop(&mut self) {
        self.shut();
        HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}

#[pymethods]
impl NativeWatch {
    /// The next message as `(events, revision)` (no events: a progress notification),
    /// or None once the watch is closed.
    #[pyo3(signature = (cb=None))]
    fn next(&self, py: Python<'_>, cb: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let watch = self.watch.clone();
        let revision = self.revision.clone();
        let closed = self.closed.clone();
        run(
            py,
            cb,
            async move {
                let next = async {
                    let mut guard = watch.lock().await;
                    let Some(w) = guard.as_mut() else {
                        return Ok(None);
                    };
                    let batch = w.next().await?;
                    revision.fetch_max(w.revision(), Ordering::SeqCst);
                    Ok(Some(batch))
                };
                tokio::select! {
                    biased;
                    _ = closed.cancelled() => Ok(None),
                    r = next => r,
                }
            },
            |py, b: Option<WatchBatch>| any(py, b.map(|b| (events(py, b.events), b.revision))),
        )
    }

    /// Every change up to this revision has been delivered.
    fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }

    fn closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Closes the watch: a pending `next` returns None at once.
    fn close(&self) {
        self.shut();
    }
}
