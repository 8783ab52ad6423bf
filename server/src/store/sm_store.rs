//! Openraft's view of the state machine: applies entries to the in-memory
//! [`StateMachine`], builds and installs snapshots, and keeps the latest snapshot
//! durable in the backend. After a restart the state is the last snapshot plus the
//! committed log that openraft re-applies on start.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::backend::{Backend, Space, WriteOp};
use crate::clock::Clock;
use crate::raft::types::{Entry, LogId, Membership, NodeId, StorageError, TypeConfig};
use crate::sm::{Outcome, StateMachine};

const SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Where snapshots were kept whole, before they were chunked: read when no chunks are.
const SNAPSHOT_DATA_WHOLE: &[u8] = b"snapshot_data";
/// The snapshot's chunks: this prefix and the chunk's index (8 bytes, big-endian).
const SNAPSHOT_CHUNK_PREFIX: &[u8] = b"snapshot_data/";
/// The number of chunks, written in the same batch as them and the metadata.
const SNAPSHOT_CHUNKS: &[u8] = b"snapshot_chunks";
/// A snapshot is stored in chunks of at most this many bytes: RocksDB drops a single
/// value of 4 GiB or more from a write batch without an error, and SQLite refuses a
/// blob over 1 GB, so a large state stored whole would not survive a restart.
const SNAPSHOT_CHUNK_BYTES: usize = 64 << 20;

/// The writes that replace the stored snapshot: old chunks out, new chunks, their
/// count and the metadata in.
fn snapshot_writes(meta: Vec<u8>, data: &[u8], chunk_bytes: usize) -> Vec<WriteOp> {
    let mut ops = vec![
        WriteOp::DeleteRange(Space::Meta, SNAPSHOT_CHUNK_PREFIX.to_vec(), chunks_end()),
        WriteOp::Delete(Space::Meta, SNAPSHOT_DATA_WHOLE.to_vec()),
    ];
    let mut count = 0u64;
    for chunk in data.chunks(chunk_bytes) {
        ops.push(WriteOp::Put(Space::Meta, chunk_key(count), chunk.to_vec()));
        count += 1;
    }
    ops.push(WriteOp::Put(
        Space::Meta,
        SNAPSHOT_CHUNKS.to_vec(),
        count.to_be_bytes().to_vec(),
    ));
    ops.push(WriteOp::Put(Space::Meta, SNAPSHOT_META.to_vec(), meta));
    ops
}

/// A stored snapshot: its encoded metadata and its data.
type StoredSnapshot = (Vec<u8>, Vec<u8>);

/// The stored snapshot: chunked, or whole as older versions kept it.
fn read_snapshot(backend: &dyn Backend) -> Result<Option<StoredSnapshot>, StorageError> {
    let read = |key| backend.get(Space::Meta, key).map_err(snap_err);
    let Some(meta) = read(SNAPSHOT_META)? else {
        return Ok(None);
    };
    let Some(count) = read(SNAPSHOT_CHUNKS)? else {
        return Ok(read(SNAPSHOT_DATA_WHOLE)?.map(|data| (meta, data)));
    };
    let count = u64::from_be_bytes(
        count
            .try_into()
            .map_err(|_| snap_err("the snapshot's chunk count is not 8 bytes"))?,
    );
    let chunks = backend
        .range(Space::Meta, SNAPSHOT_CHUNK_PREFIX, Some(&chunks_end()))
        .map_err(snap_err)?;
    if chunks.len() as u64 != count || chunks.iter().enumerate().any(|(i, (k, _))| *k != chunk_key(i as u64)) {
        return Err(snap_err(format!(
            "the stored snapshot is incomplete: {} of its {count} chunks are present",
            chunks.len()
        )));
    }
    let mut data = Vec::with_capacity(chunks.iter().map(|(_, v)| v.len()).sum());
    for (_, chunk) in chunks {
        data.extend_from_slice(&chunk);
    }
    Ok(Some((meta, data)))
}

fn chunk_key(index: u64) -> Vec<u8> {
    [SNAPSHOT_CHUNK_PREFIX, &index.to_be_bytes()].concat()
}

/// The first key after every chunk key.
fn chunks_end() -> Vec<u8> {
    let mut end = SNAPSHOT_CHUNK_PREFIX.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Everything applied so far: the application state plus what openraft needs back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: Membership,
    pub sm: StateMachine,
}

impl Applied {
    pub fn revision(&self) -> u64 {
        self.sm.revision
    }
}

type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

#[derive(Clone)]
pub struct StateMachineStore {
    backend: Arc<dyn Backend>,
    state: Arc<RwLock<Applied>>,
    /// The applied revision, readable without the state lock (for response headers).
    revision: Arc<AtomicU64>,
    snapshots_built: Arc<AtomicU64>,
    /// Cluster time, told of every applied stamp so a new leader continues from it.
    clock: Arc<Clock>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::<NodeId>::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::<NodeId>::write_snapshot(None, AnyError::error(e.to_string())).into()
}

impl StateMachineStore {
    /// Opens the state machine at the backend's latest snapshot (empty if none).
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self, StorageError> {
        let store = Self {
            backend,
            state: Arc::default(),
            revision: Arc::default(),
            snapshots_built: Arc::default(),
            clock: Arc::default(),
        };
        if let Some((_, data)) = store.load_snapshot()? {
            let applied: Applied = bincode::deserialize(&data).map_err(snap_err)?;
            store.replace(applied)?;
        }
        Ok(store)
    }

    /// Cluster time as this member knows it from what it applied (see `clock`).
    pub fn clock(&self) -> Arc<Clock> {
        self.clock.clone()
    }

    /// The revision of the last applied command.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    fn replace(&self, applied: Applied) -> Result<(), StorageError> {
        let mut st = self.write_state()?;
        let old = std::mem::replace(&mut *st, applied);
        self.revision.store(st.revision(), Ordering::Release);
        self.clock.observe(st.sm.now_ms);
        drop(st);
        // Freeing a large state takes a while: not while holding the lock.
        drop(old);
        Ok(())
    }

    /// The applied state, for reads. Hold it briefly: applying waits for readers.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Applied>, StorageError> {
        self.state.read().map_err(|_| sm_err("state machine lock poisoned"))
    }

    fn write_state(&self) -> Result<RwLockWriteGuard<'_, Applied>, StorageError> {
        self.state.write().map_err(|_| sm_err("state machine lock poisoned"))
    }

    fn load_snapshot(&self) -> Result<Option<(Meta, Vec<u8>)>, StorageError> {
        match read_snapshot(&*self.backend)? {
            None => Ok(None),
            Some((meta, data)) => Ok(Some((bincode::deserialize(&meta).map_err(snap_err)?, data))),
        }
    }

    /// Replaces the stored snapshot with `data`, its chunks and metadata in one atomic,
    /// durable write: metadata is never stored without all of its data.
    async fn save_snapshot(&self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        let meta = bincode::serialize(meta).map_err(snap_err)?;
        let ops = snapshot_writes(meta, data, SNAPSHOT_CHUNK_BYTES);
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || backend.write(ops, true))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // A clone of the persistent collections costs O(1) under the read lock; the
        // serialization, O(state), runs after it is released, so applies go on.
        let view: Applied = self.read()?.clone();
        let (last_log_id, last_membership) = (view.last_applied, view.membership.clone());
        let data = tokio::task::spawn_blocking(move || bincode::serialize(&view))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        let seq = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("none-{seq}"),
        };
        let meta = Meta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        self.save_snapshot(&meta, &data).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let st = self.read()?;
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.write_state()?;
        let mut replies = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            let outcomes = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(batch) => {
                    let term = entry.log_id.leader_id.term;
                    batch.iter().map(|cmd| st.sm.apply(term, cmd)).collect()
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            };
            replies.push(outcomes);
        }
        self.revision.store(st.revision(), Ordering::Release);
        self.clock.observe(st.sm.now_ms);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let applied: Applied = bincode::deserialize(&data).map_err(snap_err)?;
        if applied.last_applied != meta.last_log_id {
            return Err(snap_err(format!(
                "snapshot {} claims {:?} but holds state at {:?}",
                meta.snapshot_id, meta.last_log_id, applied.last_applied
            )));
        }
        // Durable first: once installed, openraft may purge the log it replaces.
        self.save_snapshot(meta, &data).await?;
        self.replace(applied)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_backend, StorageKind};

    fn backends() -> Vec<(tempfile::TempDir, Arc<dyn Backend>)> {
        [StorageKind::Rocksdb, StorageKind::Sqlite, StorageKind::Memory]
            .into_iter()
            .map(|kind| {
                let dir = tempfile::tempdir().expect("temp dir");
                let backend = open_backend(kind, dir.path()).expect("backend");
                (dir, backend)
            })
            .collect()
    }

    #[test]
    fn a_snapshot_is_stored_in_chunks_and_read_back_whole() {
        for (_dir, backend) in backends() {
            let data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
            backend
                .write(snapshot_writes(b"meta-1".to_vec(), &data, 4096), true)
                .expect("write");
            let chunks = backend
                .range(Space::Meta, SNAPSHOT_CHUNK_PREFIX, Some(&chunks_end()))
                .expect("range");
            assert_eq!(chunks.len(), 10, "{}", backend.name());
            assert_eq!(
                read_snapshot(&*backend).expect("read"),
                Some((b"meta-1".to_vec(), data))
            );
            // A smaller snapshot replaces every chunk of the larger one.
            backend
                .write(snapshot_writes(b"meta-2".to_vec(), b"small", 4096), true)
                .expect("write");
            assert_eq!(
                read_snapshot(&*backend).expect("read"),
                Some((b"meta-2".to_vec(), b"small".to_vec()))
            );
        }
    }

    #[test]
    fn a_snapshot_stored_whole_by_an_older_version_still_loads() {
        for (_dir, backend) in backends() {
            let whole = vec![
                WriteOp::Put(Space::Meta, SNAPSHOT_META.to_vec(), b"old".to_vec()),
                WriteOp::Put(Space::Meta, SNAPSHOT_DATA_WHOLE.to_vec(), b"state".to_vec()),
            ];
            backend.write(whole, true).expect("write");
            assert_eq!(
                read_snapshot(&*backend).expect("read"),
                Some((b"old".to_vec(), b"state".to_vec()))
            );
            backend
                .write(snapshot_writes(b"new".to_vec(), b"chunked", 2), true)
                .expect("write");
            assert_eq!(backend.get(Space::Meta, SNAPSHOT_DATA_WHOLE).expect("get"), None);
            assert_eq!(
                read_snapshot(&*backend).expect("read"),
                Some((b"new".to_vec(), b"chunked".to_vec()))
            );
        }
    }

    #[test]
    fn a_snapshot_missing_a_chunk_is_an_error_not_a_smaller_state() {
        for (_dir, backend) in backends() {
            backend
                .write(snapshot_writes(b"m".to_vec(), &[7u8; 100], 10), true)
                .expect("write");
            backend
                .write(vec![WriteOp::Delete(Space::Meta, chunk_key(3))], true)
                .expect("delete");
            let e = read_snapshot(&*backend).expect_err("incomplete");
            assert!(e.to_string().contains("9 of its 10 chunks"), "{e}");
        }
    }
}
