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

use super::backend::Backend;
use super::snapshot_store;
use crate::clock::Clock;
use crate::sm::{Outcome, StateMachine};
use crate::types::{Entry, LogId, Membership, NodeId, StorageError, TypeConfig};

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
    /// Held while a snapshot is stored: building and installing may overlap.
    saving: Arc<tokio::sync::Mutex<()>>,
    /// Cluster time, told of every applied stamp so a new leader continues from it.
    clock: Arc<Clock>,
    /// The applied revision again, for watches to wait on (see `subscribe`).
    applied: Arc<tokio::sync::watch::Sender<u64>>,
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
            saving: Arc::default(),
            clock: Arc::default(),
            applied: Arc::new(tokio::sync::watch::channel(0).0),
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

    /// Tells the receiver of every change of the applied revision (after the state
    /// that revision made is readable), so a watch waits instead of polling.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Publishes the applied revision to the header counter and to watches.
    fn publish(&self, revision: u64) {
        self.revision.store(revision, Ordering::Release);
        self.applied.send_replace(revision);
    }

    fn replace(&self, applied: Applied) -> Result<(), StorageError> {
        let mut st = self.write_state()?;
        let old = std::mem::replace(&mut *st, applied);
        let revision = st.revision();
        self.clock.observe(st.sm.now_ms);
        drop(st);
        self.publish(revision);
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
        match snapshot_store::load(&*self.backend).map_err(snap_err)? {
            None => Ok(None),
            Some((meta, data)) => Ok(Some((bincode::deserialize(&meta).map_err(snap_err)?, data))),
        }
    }

    /// Makes `data` the stored snapshot (see `snapshot_store`), unless the stored one
    /// is newer: a snapshot built from an older state can finish after a newer one was
    /// installed, and must not replace it.
    /// Hands `data` back for the caller to use.
    async fn save_snapshot(&self, meta: &Meta, data: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        let _one_at_a_time = self.saving.lock().await;
        if let Some(stored) = snapshot_store::load_meta(&*self.backend).map_err(snap_err)? {
            let stored: Meta = bincode::deserialize(&stored).map_err(snap_err)?;
            if stored.last_log_id > meta.last_log_id {
                return Ok(data);
            }
        }
        let encoded = bincode::serialize(meta).map_err(snap_err)?;
        let backend = self.backend.clone();
        in_background(move || {
            snapshot_store::store(&*backend, encoded, &data, snapshot_store::CHUNK_BYTES).map(|()| data)
        })
        .await?
        .map_err(snap_err)
    }
}

/// Runs `f` on a thread of its own at a lower CPU priority (nice 10) and waits for
/// it: snapshot work takes seconds of CPU at a million keys, and on a small machine it
/// would otherwise take its share from the threads that apply and answer requests.
pub async fn in_background<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, StorageError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kahuna-snapshot".into())
        .spawn(move || {
            // SAFETY: setpriority with PRIO_PROCESS and 0 changes only the calling
            // thread on Linux; a failure leaves the priority as it was.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
            let _ = done.send(f());
        })
        .map_err(snap_err)?;
    result
        .await
        .map_err(|_| snap_err("the snapshot thread ended without an answer"))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // A clone of the persistent collections costs O(1) under the read lock; the
        // serialization, O(state), runs after it is released, so applies go on.
        let started = std::time::Instant::now();
        let view: Applied = self.read()?.clone();
        let (last_log_id, last_membership) = (view.last_applied, view.membership.clone());
        let data = in_background(move || bincode::serialize(&view))
            .await?
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
        let data = self.save_snapshot(&meta, data).await?;
        let metrics = crate::metrics::registry();
        metrics.snapshot_build.observe_duration(started.elapsed());
        metrics
            .snapshot_bytes
            .store(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
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
        let revision = st.revision();
        self.clock.observe(st.sm.now_ms);
        drop(st);
        self.publish(revision);
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
        self.save_snapshot(meta, data).await?;
        self.replace(applied)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
