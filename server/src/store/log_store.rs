//! The Raft log and vote, on any [`Backend`]. Every write openraft must be able to
//! rely on after a crash (entries, vote, truncation, purge) is durable before the
//! call returns or the flush callback fires.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};

use super::backend::{Backend, BackendError, Space, WriteOp};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    backend: Arc<dyn Backend>,
}

fn index_key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

fn io(make: fn(AnyError) -> StorageIOError<NodeId>, e: impl std::error::Error + 'static) -> StorageError {
    make(AnyError::new(&e)).into()
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serialize(value).map_err(|e| io(StorageIOError::write, e))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    bincode::deserialize(bytes).map_err(|e| io(StorageIOError::read, e))
}

/// Runs a blocking backend call off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError(format!("storage task failed: {e}")))?
}

impl LogStore {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self
            .backend
            .get(Space::Meta, key)
            .map_err(|e| io(StorageIOError::read, e))?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn write(&self, ops: Vec<WriteOp>, make: fn(AnyError) -> StorageIOError<NodeId>) -> Result<(), StorageError> {
        let backend = self.backend.clone();
        blocking(move || backend.write(ops, true))
            .await
            .map_err(|e| io(make, e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(index_key(i.saturating_add(1))),
            Bound::Excluded(i) => Some(index_key(*i)),
            Bound::Unbounded => None,
        };
        let rows = self
            .backend
            .range(Space::Log, &index_key(start), end.as_deref())
            .map_err(|e| io(StorageIOError::read_logs, e))?;
        rows.iter().map(|(_, v)| decode(v)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(LAST_PURGED)?;
        let last = match self
            .backend
            .last(Space::Log)
            .map_err(|e| io(StorageIOError::read_logs, e))?
        {
            Some((_, v)) => Some(decode::<Entry>(&v)?.log_id),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let ops = vec![WriteOp::Put(Space::Meta, VOTE.to_vec(), encode(vote)?)];
        self.write(ops, StorageIOError::write_vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-learning the commit index from the leader.
        let ops = vec![WriteOp::Put(Space::Meta, COMMITTED.to_vec(), encode(&committed)?)];
        let backend = self.backend.clone();
        blocking(move || backend.write(ops, false))
            .await
            .map_err(|e| io(StorageIOError::write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        for entry in entries {
            ops.push(WriteOp::Put(Space::Log, index_key(entry.log_id.index), encode(&entry)?));
        }
        let metrics = crate::metrics::registry();
        metrics.log_append_entries.observe(ops.len() as f64);
        let started = std::time::Instant::now();
        let backend = self.backend.clone();
        let result = blocking(move || backend.write(ops, true)).await;
        metrics.log_append.observe_duration(started.elapsed());
        let io_result = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.0.clone())),
        };
        callback.log_io_completed(io_result);
        result.map_err(|e| io(StorageIOError::write_logs, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let ops = vec![WriteOp::DeleteRange(
            Space::Log,
            index_key(log_id.index),
            index_key(u64::MAX),
        )];
        self.write(ops, StorageIOError::write_logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let ops = vec![
            WriteOp::Put(Space::Meta, LAST_PURGED.to_vec(), encode(&log_id)?),
            WriteOp::DeleteRange(Space::Log, index_key(0), index_key(log_id.index.saturating_add(1))),
        ];
        self.write(ops, StorageIOError::write_logs).await
    }
}
