//! `Watch`: an open watch for the Python package's `Watch` / `AsyncWatch`, read through
//! the machinery it shares with election observers (`stream.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kahuna_client::{Error, Watch, WatchBatch};
use pyo3::prelude::*;

use super::stream::{Open, Stream};
use super::{any, events, run};

/// The core watch and the revision it has delivered up to, kept outside the lock.
struct Revisioned {
    watch: Watch,
    revision: Arc<AtomicU64>,
}

impl Stream for Revisioned {
    type Item = WatchBatch;

    async fn next_message(&mut self) -> Result<WatchBatch, Error> {
        let batch = self.watch.next().await?;
        self.revision.fetch_max(self.watch.revision(), Ordering::SeqCst);
        Ok(batch)
    }
}

#[pyclass(frozen, module = "kahuna._native", name = "Watch")]
pub(crate) struct NativeWatch {
    open: Open<Revisioned>,
    /// Every change up to this revision was delivered; readable while a `next` waits.
    revision: Arc<AtomicU64>,
}

impl NativeWatch {
    pub(crate) fn new(watch: Watch) -> NativeWatch {
        let revision = Arc::new(AtomicU64::new(watch.revision()));
        NativeWatch {
            open: Open::new(Revisioned {
                watch,
                revision: revision.clone(),
            }),
            revision,
        }
    }
}

#[pymethods]
impl NativeWatch {
    /// The next message as `(events, revision)` (no events: a progress notification),
    /// or None once the watch is closed.
    #[pyo3(signature = (cb=None))]
    fn next(&self, py: Python<'_>, cb: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        run(py, cb, self.open.next(), |py, b: Option<WatchBatch>| {
            any(py, b.map(|b| (events(py, b.events), b.revision)))
        })
    }

    /// Every change up to this revision has been delivered.
    fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }

    fn closed(&self) -> bool {
        self.open.is_closed()
    }

    /// Closes the watch: a pending `next` returns None at once.
    fn close(&self) {
        self.open.close();
    }
}
