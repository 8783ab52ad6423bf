//! Batches for the Python package's `get_many`: the keys that exist, in the order asked,
//! and the one revision they were read at.

use kahuna_client::ManyKeys;
use pyo3::prelude::*;

use super::{any, kv, KvTuple};

pub(crate) fn many_keys(py: Python<'_>, m: ManyKeys) -> PyResult<Py<PyAny>> {
    let kvs: Vec<KvTuple> = m.kvs.into_iter().map(|k| kv(py, k)).collect();
    any(py, (kvs, m.revision))
}
