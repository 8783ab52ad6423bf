//! Leader election for the Python package's `Leadership` and `Observer` / `AsyncObserver`.
//!
//! A leadership is the election's lock guard, so `campaign` hands back a `Lock` handle
//! holding it ([`Held::Leader`]): the lock's token, lost callback and release serve as
//! epoch, lost and resign, and only `proclaim` is new.
//!
//! Observers are read like watches, through the machinery in `stream.rs`: `close()` (or
//! dropping the handle) ends a pending `next` with the closed marker.

use kahuna_client::{Error, Leader, Observer};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::stream::{Open, Stream};
use super::{any, run};

/// A lock handle holds either kind of lock (see [`kahuna_client::HeldLock`]).
pub(crate) use kahuna_client::HeldLock as Held;

/// `(owner, epoch, value)`, the package's `Leader`.
pub(crate) type LeaderTuple = (String, u64, Py<PyBytes>);

pub(crate) fn leader(py: Python<'_>, l: Leader) -> LeaderTuple {
    (l.owner, l.epoch, PyBytes::new(py, &l.value).unbind())
}

impl Stream for Observer {
    /// The leader, or none.
    type Item = Option<Leader>;

    async fn next_message(&mut self) -> Result<Option<Leader>, Error> {
        Observer::next(self).await
    }
}

#[pyclass(frozen, module = "kahuna._native", name = "Observer")]
pub(crate) struct NativeObserver {
    open: Open<Observer>,
}

impl NativeObserver {
    pub(crate) fn new(observer: Observer) -> NativeObserver {
        NativeObserver {
            open: Open::new(observer),
        }
    }
}

#[pymethods]
impl NativeObserver {
    /// The next state as `(True, leader_or_None)`, or `(False, None)` once closed.
    #[pyo3(signature = (cb=None))]
    fn next(&self, py: Python<'_>, cb: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        run(py, cb, self.open.next(), |py, n: Option<Option<Leader>>| match n {
            None => any(py, (false, py.None())),
            Some(l) => any(py, (true, l.map(|l| leader(py, l)))),
        })
    }

    fn closed(&self) -> bool {
        self.open.is_closed()
    }

    /// Closes the observer: a pending `next` returns the closed marker at once.
    fn close(&self) {
        self.open.close();
    }
}
