//! The narrow interface the Raft log and snapshot stores need from a storage engine.
//!
//! Two ordered key spaces: `Log` (entries keyed by big-endian index) and `Meta`
//! (vote, committed and purged log ids, the snapshot). Calls block; callers on the
//! async runtime move durable writes to a blocking thread.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Space {
    Log,
    Meta,
}

#[derive(Debug)]
pub enum WriteOp {
    Put(Space, Vec<u8>, Vec<u8>),
    Delete(Space, Vec<u8>),
    /// Removes keys in `[from, to)`.
    DeleteRange(Space, Vec<u8>, Vec<u8>),
}

#[derive(Debug)]
pub struct BackendError(pub String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

pub type Result<T> = std::result::Result<T, BackendError>;

pub trait Backend: Send + Sync + 'static {
    /// A short name for status output ("rocksdb", "sqlite", "memory").
    fn name(&self) -> &'static str;

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Entries with `from <= key < to` (no upper bound when `to` is `None`), in key order.
    fn range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The entry with the greatest key.
    fn last(&self, space: Space) -> Result<Option<(Vec<u8>, Vec<u8>)>>;

    /// Applies `ops` atomically. With `durable`, returns only once they are on stable
    /// storage (fsync); without, a crash may lose them but never tears the batch.
    fn write(&self, ops: Vec<WriteOp>, durable: bool) -> Result<()>;

    /// Applies `ops` durably for bulk data (snapshot chunks), outside the write-ahead
    /// log that [`write`](Self::write) syncs when the engine has one: hundreds of MiB
    /// there would make the next durable write wait for all of them to reach the disk.
    /// Atomic only where the engine makes it so; callers write what nothing points at
    /// yet and point at it with a later [`write`](Self::write).
    fn write_bulk(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.write(ops, true)
    }
}
