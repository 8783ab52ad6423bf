//! Storage for the Raft log, vote and state machine, on RocksDB (default), SQLite
//! or memory. Every engine implements the small [`Backend`] interface; the Raft
//! log store and the snapshot store are written once on top of it.

// openraft's traits return its own StorageError (over 200 bytes); the helpers here
// return the same type rather than boxing and unboxing at every trait method.
#![allow(clippy::result_large_err)]

mod backend;
mod log_store;
mod memory;
mod rocks;
mod sm_store;
mod snapshot_store;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

pub use backend::{Backend, BackendError};
pub use log_store::LogStore;
pub use sm_store::{in_background, Applied, StateMachineStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    Rocksdb,
    Sqlite,
    Memory,
}

/// Opens the chosen engine in `dir` (created if missing).
pub fn open_backend(kind: StorageKind, dir: &Path) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match kind {
        StorageKind::Rocksdb => Arc::new(rocks::RocksBackend::open(dir)?),
        StorageKind::Sqlite => Arc::new(sqlite::SqliteBackend::open(dir)?),
        StorageKind::Memory => Arc::new(memory::MemoryBackend::default()),
    })
}

/// Opens the log store and state machine over one engine.
pub fn open(kind: StorageKind, dir: &Path) -> anyhow::Result<(LogStore, StateMachineStore)> {
    let backend = open_backend(kind, dir)?;
    let sm = StateMachineStore::open(backend.clone())?;
    Ok((LogStore::new(backend), sm))
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::*;
    use crate::types::{StorageError, TypeConfig};

    struct Builder(StorageKind);

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let (log, sm) = open(self.0, dir.path()).expect("open store");
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn memory_passes_openraft_suite() -> Result<(), StorageError> {
        Suite::test_all(Builder(StorageKind::Memory))
    }

    #[test]
    fn rocksdb_passes_openraft_suite() -> Result<(), StorageError> {
        Suite::test_all(Builder(StorageKind::Rocksdb))
    }

    #[test]
    fn sqlite_passes_openraft_suite() -> Result<(), StorageError> {
        Suite::test_all(Builder(StorageKind::Sqlite))
    }
}
