//! Leader election for the Python package's `Leadership` and `Observer` / `AsyncObserver`.
//!
//! A leadership is the election's lock guard, so `campaign` hands back a `Lock` handle
//! holding it ([`Held::Leader`]): the lock's token, lost callback and release serve as
//! epoch, lost and resign, and only `proclaim` is new.
//!
//! Observers follow watches (see `watch.rs`): the core [`Observer`] needs `&mut` for
//! each `next`, so it sits behind an async mutex shared with the `next` in flight;
//! `close()` (or dropping the handle) ends a pending `next` with the closed marker.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kahuna_client::{Leader, Observer};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio_util::sync::CancellationToken;

use super::{any, run, runtime, HANDLES};

/// A lock handle holds either kind of lock (see [`kahuna_client::HeldLock`]).
pub(crate) use kahuna_client::HeldLock as Held;

/// `(owner, epoch, value)`, the package's `Leader`.
pub(crate) type LeaderTuple = (String, u64, Py<PyBytes>);

pub(crate) fn leader(py: Python<'_>, l: Leader) -> LeaderTuple {
    (l.owner, l.epoch, PyBytes::new(py, &l.value).unbind())
}

/// A `next` of an open observer: the leader, none, or the observer closed.
enum Next {
    Leader(Option<Leader>),
    Closed,
}

#[pyclass(frozen, module = "kahuna._native", name = "Observer")]
pub(crate) struct NativeObserver {
    /// `None` once closed.
    observer: Arc<tokio::sync::Mutex<Option<Observer>>>,
    closed: CancellationToken,
}

impl NativeObserver {
    pub(crate) fn new(observer: Observer) -> NativeObserver {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        NativeObserver {
            observer: Arc::new(tokio::sync::Mutex::new(Some(observer))),
            closed: CancellationToken::new(),
        }
    }

    /// Ends a pending `next`, then drops the core observer on the runtime once that
    /// `next` has let go of it.
    fn shut(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        if let Ok(rt) = runtime() {
            let observer = self.observer.clone();
            rt.spawn(async move {
                observer.lock().await.take();
            });
        }
    }
}

impl Drop for NativeObserver {
    fn drop(&mut self) {
        self.shut();
        HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}

#[pymethods]
impl NativeObserver {
    /// The next state as `(True, leader_or_None)`, or `(False, None)` once closed.
    #[pyo3(signature = (cb=None))]
    fn next(&self, py: Python<'_>, cb: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let observer = self.observer.clone();
        let closed = self.closed.clone();
        run(
            py,
            cb,
            async move {
                let next = async {
                    let mut guard = observer.lock().await;
                    let Some(o) = guard.as_mut() else {
                        return Ok(Next::Closed);
                    };
                    Ok(Next::Leader(o.next().await?))
                };
                tokio::select! {
                    biased;
                    _ = closed.cancelled() => Ok(Next::Closed),
                    r = next => r,
                }
            },
            |py, n: Next| match n {
                Next::Closed => any(py, (false, py.None())),
                Next::Leader(l) => any(py, (true, l.map(|l| leader(py, l)))),
            },
        )
    }

    fn closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Closes the observer: a pending `next` returns the closed marker at once.
    fn close(&self) {
        self.shut();
    }
}
