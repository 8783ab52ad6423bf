//! Where the latest snapshot is kept in the backend, and how it is replaced without
//! ever storing metadata whose data did not land.
//!
//! The data is split into chunks (RocksDB drops a single value of 4 GiB or more from a
//! write batch without an error; SQLite refuses a blob over 1 GB) keyed by a
//! generation, so a new snapshot's chunks never overwrite the ones the stored
//! metadata points at:
//! 1. the new generation's chunks are written with [`Backend::write_bulk`], outside the
//!    write-ahead log the Raft log's appends are synced through (a snapshot of
//!    hundreds of MiB there would make the next append's fsync wait for all of it);
//! 2. one durable write then points the metadata at them (generation and chunk count
//!    with it) and drops every other generation.
//!
//! A crash between the two leaves the previous snapshot whole; the next save clears
//! what the crashed one left.

use super::backend::{Backend, BackendError, Space, WriteOp};

const META: &[u8] = b"snapshot_meta";
/// Where snapshots were kept whole, before they were chunked: read when no chunks are.
const WHOLE: &[u8] = b"snapshot_data";
/// Chunk keys: this prefix, the generation and the chunk's index (8 bytes each,
/// big-endian).
const CHUNK_PREFIX: &[u8] = b"snapshot_data/";
/// The stored snapshot's generation and chunk count (8 bytes each, big-endian).
const LAYOUT: &[u8] = b"snapshot_chunks";
/// Chunk size used by the server.
pub const CHUNK_BYTES: usize = 64 << 20;

fn chunk_key(generation: u64, index: u64) -> Vec<u8> {
    [CHUNK_PREFIX, &generation.to_be_bytes(), &index.to_be_bytes()].concat()
}

/// The first key of a generation's chunks (`generation` may be one past the last).
fn generation_start(generation: u64) -> Vec<u8> {
    [CHUNK_PREFIX, &generation.to_be_bytes()].concat()
}

/// The first key after every chunk key.
fn chunks_end() -> Vec<u8> {
    let mut end = CHUNK_PREFIX.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn layout(backend: &dyn Backend) -> Result<Option<(u64, u64)>, BackendError> {
    let Some(raw) = backend.get(Space::Meta, LAYOUT)? else {
        return Ok(None);
    };
    let number = |at: usize| {
        raw.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
    };
    match (raw.len(), number(0), number(8)) {
        (16, Some(generation), Some(count)) => Ok(Some((generation, count))),
        _ => Err(BackendError(format!(
            "the snapshot's layout entry is {} bytes, not 16",
            raw.len()
        ))),
    }
}

/// Replaces the stored snapshot with `meta` (encoded) and `data`, in chunks of
/// `chunk_bytes`. Blocking; call it off the async runtime.
pub fn store(backend: &dyn Backend, meta: Vec<u8>, data: &[u8], chunk_bytes: usize) -> Result<(), BackendError> {
    let generation = layout(backend)?.map_or(1, |(g, _)| g + 1);
    // Anything an earlier, crashed save left under this generation goes first.
    let mut chunks = vec![WriteOp::DeleteRange(
        Space::Meta,
        generation_start(generation),
        generation_start(generation + 1),
    )];
    let mut count = 0u64;
    for chunk in data.chunks(chunk_bytes.max(1)) {
        chunks.push(WriteOp::Put(Space::Meta, chunk_key(generation, count), chunk.to_vec()));
        count += 1;
    }
    backend.write_bulk(chunks)?;
    let layout = [generation.to_be_bytes(), count.to_be_bytes()].concat();
    backend.write(
        vec![
            WriteOp::Put(Space::Meta, LAYOUT.to_vec(), layout),
            WriteOp::Put(Space::Meta, META.to_vec(), meta),
            WriteOp::Delete(Space::Meta, WHOLE.to_vec()),
            WriteOp::DeleteRange(Space::Meta, CHUNK_PREFIX.to_vec(), generation_start(generation)),
            WriteOp::DeleteRange(Space::Meta, generation_start(generation + 1), chunks_end()),
        ],
        true,
    )
}

/// A stored snapshot: its encoded metadata and its data.
pub type Stored = (Vec<u8>, Vec<u8>);

/// The stored snapshot's encoded metadata alone.
pub fn load_meta(backend: &dyn Backend) -> Result<Option<Vec<u8>>, BackendError> {
    backend.get(Space::Meta, META)
}

/// The stored snapshot's encoded metadata and data: chunked, or whole as older
/// versions kept it.
pub fn load(backend: &dyn Backend) -> Result<Option<Stored>, BackendError> {
    let Some(meta) = load_meta(backend)? else {
        return Ok(None);
    };
    let Some((generation, count)) = layout(backend)? else {
        return Ok(backend.get(Space::Meta, WHOLE)?.map(|data| (meta, data)));
    };
    let chunks = backend.range(
        Space::Meta,
        &generation_start(generation),
        Some(&generation_start(generation + 1)),
    )?;
    let in_order = chunks
        .iter()
        .enumerate()
        .all(|(i, (k, _))| *k == chunk_key(generation, i as u64));
    if chunks.len() as u64 != count || !in_order {
        return Err(BackendError(format!(
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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

    fn all_chunks(backend: &dyn Backend) -> usize {
        backend
            .range(Space::Meta, CHUNK_PREFIX, Some(&chunks_end()))
            .expect("range")
            .len()
    }

    #[test]
    fn a_snapshot_is_stored_in_chunks_and_read_back_whole() {
        for (_dir, backend) in backends() {
            let data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
            store(&*backend, b"meta-1".to_vec(), &data, 4096).expect("store");
            assert_eq!(all_chunks(&*backend), 10, "{}", backend.name());
            assert_eq!(load(&*backend).expect("load"), Some((b"meta-1".to_vec(), data)));
            // A smaller snapshot replaces every chunk of the larger one.
            store(&*backend, b"meta-2".to_vec(), b"small", 4096).expect("store");
            assert_eq!(all_chunks(&*backend), 1);
            assert_eq!(
                load(&*backend).expect("load"),
                Some((b"meta-2".to_vec(), b"small".to_vec()))
            );
        }
    }

    #[test]
    fn a_snapshot_stored_whole_by_an_older_version_still_loads() {
        for (_dir, backend) in backends() {
            let whole = vec![
                WriteOp::Put(Space::Meta, META.to_vec(), b"old".to_vec()),
                WriteOp::Put(Space::Meta, WHOLE.to_vec(), b"state".to_vec()),
            ];
            backend.write(whole, true).expect("write");
            assert_eq!(
                load(&*backend).expect("load"),
                Some((b"old".to_vec(), b"state".to_vec()))
            );
            store(&*backend, b"new".to_vec(), b"chunked", 2).expect("store");
            assert_eq!(backend.get(Space::Meta, WHOLE).expect("get"), None);
            assert_eq!(
                load(&*backend).expect("load"),
                Some((b"new".to_vec(), b"chunked".to_vec()))
            );
        }
    }

    #[test]
    fn a_snapshot_missing_a_chunk_is_an_error_not_a_smaller_state() {
        for (_dir, backend) in backends() {
            store(&*backend, b"m".to_vec(), &[7u8; 100], 10).expect("store");
            backend
                .write(vec![WriteOp::Delete(Space::Meta, chunk_key(1, 3))], true)
                .expect("delete");
            let e = load(&*backend).expect_err("incomplete");
            assert!(e.to_string().contains("9 of its 10 chunks"), "{e}");
        }
    }

    /// A save that crashed after writing its chunks left the stored snapshot as it
    /// was, and the next save clears the leftovers.
    #[test]
    fn chunks_of_a_crashed_save_change_nothing_and_are_cleared_by_the_next() {
        for (_dir, backend) in backends() {
            store(&*backend, b"first".to_vec(), b"0123456789", 4).expect("store");
            // The crashed save: generation 2's chunks, more of them than the next
            // save writes, and no layout or metadata pointing at them.
            let orphans = (0..7)
                .map(|i| WriteOp::Put(Space::Meta, chunk_key(2, i), b"xx".to_vec()))
                .collect();
            backend.write_bulk(orphans).expect("bulk");
            assert_eq!(
                load(&*backend).expect("load"),
                Some((b"first".to_vec(), b"0123456789".to_vec()))
            );
            store(&*backend, b"second".to_vec(), b"abcdef", 4).expect("store");
            assert_eq!(
                load(&*backend).expect("load"),
                Some((b"second".to_vec(), b"abcdef".to_vec()))
            );
            assert_eq!(all_chunks(&*backend), 2);
        }
    }
}
