//! RocksDB backend (the default): one column family per key space, synced writes
//! (`WriteOptions::set_sync`) for everything Raft must not lose.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::backend::{Backend, BackendError, Result, Space, WriteOp};

/// The largest key or value one write may carry: RocksDB keeps slice lengths in 32 bits.
const MAX_SLICE_BYTES: usize = u32::MAX as usize - 1;

pub struct RocksBackend {
    db: DB,
}

fn cf_name(space: Space) -> &'static str {
    match space {
        Space::Log => "log",
        Space::Meta => "meta",
    }
}

fn err(e: rocksdb::Error) -> BackendError {
    BackendError(format!("rocksdb: {e}"))
}

impl RocksBackend {
    pub fn open(dir: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [Space::Log, Space::Meta].map(|s| ColumnFamilyDescriptor::new(cf_name(s), Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(err)?;
        Ok(Self { db })
    }

    fn cf(&self, space: Space) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(cf_name(space))
            .ok_or_else(|| BackendError(format!("rocksdb: column family {} missing", cf_name(space))))
    }
}

impl Backend for RocksBackend {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(space)?, key).map_err(err)
    }

    fn range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(space)?, IteratorMode::From(from, Direction::Forward))
        {
            let (k, v) = item.map_err(err)?;
            if to.is_some_and(|t| k.as_ref() >= t) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn last(&self, space: Space) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        match self.db.iterator_cf(self.cf(space)?, IteratorMode::End).next() {
            Some(item) => {
                let (k, v) = item.map_err(err)?;
                Ok(Some((k.to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn write(&self, ops: Vec<WriteOp>, durable: bool) -> Result<()> {
        let batch = self.batch(ops)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(durable);
        self.db.write_opt(batch, &wo).map_err(err)
    }

    /// Without the WAL, then flushed: the flush writes and syncs SST files, so the data
    /// is durable when this returns, and the WAL the log's appends sync stays small.
    fn write_bulk(&self, ops: Vec<WriteOp>) -> Result<()> {
        let spaces: std::collections::BTreeSet<&'static str> = ops
            .iter()
            .map(|op| match op {
                WriteOp::Put(s, ..) | WriteOp::Delete(s, ..) | WriteOp::DeleteRange(s, ..) => cf_name(*s),
            })
            .collect();
        let batch = self.batch(ops)?;
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.db.write_opt(batch, &wo).map_err(err)?;
        for name in spaces {
            let cf = self
                .db
                .cf_handle(name)
                .ok_or_else(|| BackendError(format!("rocksdb: column family {name} missing")))?;
            self.db.flush_cf(cf).map_err(err)?;
        }
        Ok(())
    }
}

impl RocksBackend {
    /// One write batch of `ops`, refusing any it could not hold whole.
    fn batch(&self, ops: Vec<WriteOp>) -> Result<WriteBatch> {
        let mut batch = WriteBatch::default();
        for op in ops {
            // The C API's batch put ignores the status of a put it refuses (a key or
            // value of 4 GiB or more), leaving the batch without it: refuse the whole
            // write instead of committing the rest.
            if let WriteOp::Put(_, k, v) = &op {
                if k.len() > MAX_SLICE_BYTES || v.len() > MAX_SLICE_BYTES {
                    return Err(BackendError(format!(
                        "RocksDB cannot store a value of {} bytes (the limit is {MAX_SLICE_BYTES}); nothing was written",
                        k.len().max(v.len())
                    )));
                }
            }
            match op {
                WriteOp::Put(s, k, v) => batch.put_cf(self.cf(s)?, k, v),
                WriteOp::Delete(s, k) => batch.delete_cf(self.cf(s)?, k),
                WriteOp::DeleteRange(s, from, to) => batch.delete_range_cf(self.cf(s)?, from, to),
            }
        }
        Ok(batch)
    }
}
