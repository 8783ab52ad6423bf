//! SQLite backend: one table keyed by (space, key), WAL journal with
//! `synchronous = FULL` so a committed transaction is on disk before it returns.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::backend::{Backend, BackendError, Result, Space, WriteOp};

pub struct SqliteBackend {
    conn: Mutex<Connection>,
}

fn err(e: rusqlite::Error) -> BackendError {
    BackendError(format!("sqlite: {e}"))
}

fn space_id(space: Space) -> i64 {
    match space {
        Space::Log => 0,
        Space::Meta => 1,
    }
}

impl SqliteBackend {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| BackendError(format!("sqlite: create {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("kahuna.sqlite")).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (space INTEGER NOT NULL, k BLOB NOT NULL, v BLOB NOT NULL, PRIMARY KEY (space, k)) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| BackendError("sqlite connection lock poisoned".into()))
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.conn()?
            .prepare_cached("SELECT v FROM kv WHERE space = ?1 AND k = ?2")
            .map_err(err)?
            .query_row(params![space_id(space), key], |r| r.get(0))
            .optional()
            .map_err(err)
    }

    fn range(&self, space: Space, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let conn = self.conn()?;
        let rows = match to {
            Some(to) => conn
                .prepare_cached("SELECT k, v FROM kv WHERE space = ?1 AND k >= ?2 AND k < ?3 ORDER BY k")
                .map_err(err)?
                .query_map(params![space_id(space), from, to], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?
                .collect::<std::result::Result<Vec<_>, _>>(),
            None => conn
                .prepare_cached("SELECT k, v FROM kv WHERE space = ?1 AND k >= ?2 ORDER BY k")
                .map_err(err)?
                .query_map(params![space_id(space), from], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?
                .collect::<std::result::Result<Vec<_>, _>>(),
        };
        rows.map_err(err)
    }

    fn last(&self, space: Space) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.conn()?
            .prepare_cached("SELECT k, v FROM kv WHERE space = ?1 ORDER BY k DESC LIMIT 1")
            .map_err(err)?
            .query_row(params![space_id(space)], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(err)
    }

    fn write(&self, ops: Vec<WriteOp>, _durable: bool) -> Result<()> {
        // synchronous = FULL makes every commit durable; the flag cannot be lowered
        // per transaction, so non-durable writes pay for the fsync too.
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(err)?;
        for op in ops {
            match op {
                WriteOp::Put(s, k, v) => tx
                    .prepare_cached("INSERT OR REPLACE INTO kv (space, k, v) VALUES (?1, ?2, ?3)")
                    .map_err(err)?
                    .execute(params![space_id(s), k, v]),
                WriteOp::Delete(s, k) => tx
                    .prepare_cached("DELETE FROM kv WHERE space = ?1 AND k = ?2")
                    .map_err(err)?
                    .execute(params![space_id(s), k]),
                WriteOp::DeleteRange(s, from, to) => tx
                    .prepare_cached("DELETE FROM kv WHERE space = ?1 AND k >= ?2 AND k < ?3")
                    .map_err(err)?
                    .execute(params![space_id(s), from, to]),
            }
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}
