//! In-memory backend: for tests and throwaway clusters. Nothing survives a restart.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::backend::{Backend, BackendError, Result, Space, WriteOp};

#[derive(Default)]
pub struct MemoryBackend {
    spaces: Mutex<[BTreeMap<Vec<u8>, Vec<u8>>; 2]>,
}

fn slot(space: Space) -> usize {
    match space {
        Space::Log => 0,
        Space::Meta => 1,
    }
}

impl MemoryBackend {
    fn with<T>(&self, f: impl FnOnce(&mut [BTreeMap<Vec<u8>, Vec<u8>>; 2]) -> T) -> Result<T> {
        let mut guard = self
            .spaces
            .lock()
            .map_err(|_| BackendError("memory store lock poisoned".into()))?;
        Ok(f(&mut guard))
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(|s| s[slot(space)].get(key).cloned())
    }

    fn range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let upper = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        self.with(|s| {
            s[slot(space)]
                .range((Bound::Included(from.to_vec()), upper))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    fn last(&self, space: Space) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.with(|s| s[slot(space)].last_key_value().map(|(k, v)| (k.clone(), v.clone())))
    }

    fn write(&self, ops: Vec<WriteOp>, _durable: bool) -> Result<()> {
        self.with(|s| {
            for op in ops {
                match op {
                    WriteOp::Put(space, k, v) => {
                        s[slot(space)].insert(k, v);
                    }
                    WriteOp::Delete(space, k) => {
                        s[slot(space)].remove(&k);
                    }
                    WriteOp::DeleteRange(space, from, to) => {
                        let doomed: Vec<Vec<u8>> = s[slot(space)].range(from..to).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            s[slot(space)].remove(&k);
                        }
                    }
                }
            }
        })
    }
}
