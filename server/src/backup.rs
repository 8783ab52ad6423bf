//! Backups: a snapshot file a leader streams out (`Maintenance.Snapshot`, `kahuna
//! snapshot save`) and `kahuna-server --restore FILE`, which seeds a new one-member
//! cluster from it.
//!
//! The file is
//!
//! ```text
//! "KAHUNA-SNAPSHOT\n"  16 bytes
//! version              u32, little endian (1)
//! header length        u32, little endian
//! header               bincode(Header): revision, log position, source cluster, time
//! state length         u64, little endian
//! state                bincode(Applied): the applied state, as a Raft snapshot holds it
//! sha-256              32 bytes, of everything before it
//! ```
//!
//! Lengths come before what they measure, so a truncated file is told apart from a
//! corrupt one, and the checksum is checked before anything is decoded.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{BasicNode, Membership, SnapshotMeta, StoredMembership, Vote};
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};

use crate::raft::cluster_id::{ClusterIdentity, Stored};
use crate::store::{Applied, LogStore, StateMachineStore};
use crate::types::NodeId;

pub const MAGIC: &[u8; 16] = b"KAHUNA-SNAPSHOT\n";
pub const VERSION: u32 = 1;
const CHECKSUM_BYTES: usize = 32;
/// Far above any real header: a larger length means the file is not one of ours.
const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Written into the data directory by a restore: the checksum of the file it came
/// from, so a member restarted with the same `--restore` flag (a container's fixed
/// command line) carries on instead of refusing its own data directory.
const RESTORED_FROM: &str = "restored-from";

/// What a backup file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The revision of the last command in the state: every key keeps its revision.
    pub revision: u64,
    /// The log position the state was taken at, in the source cluster.
    pub log_index: u64,
    pub log_term: u64,
    /// The cluster it was taken from.
    pub cluster_id: String,
    /// Wall-clock time it was taken, milliseconds since the Unix epoch.
    pub taken_unix_ms: u64,
    /// Keys in the state (expired ones not yet swept included).
    pub keys: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("not a Kahuna snapshot file (it does not start with {:?})", String::from_utf8_lossy(MAGIC).trim_end())]
    NotASnapshot,
    #[error("snapshot file version {0}; this server reads version {VERSION}")]
    Version(u32),
    #[error("the file is truncated: {what} needs {needed} bytes, the file has {available} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("the file is corrupt: its sha-256 is {actual}, its trailer says {stored}")]
    Checksum { stored: String, actual: String },
    #[error("the file is corrupt: {0}")]
    Undecodable(String),
    #[error("{0} bytes follow the checksum: the file is not one snapshot")]
    TrailingBytes(u64),
}

/// The snapshot file for `applied`, taken from cluster `cluster_id`.
pub fn encode(applied: &Applied, cluster_id: &str, taken_unix_ms: u64) -> Result<Vec<u8>, bincode::Error> {
    let header = Header {
        revision: applied.sm.revision,
        log_index: applied.last_applied.map_or(0, |l| l.index),
        log_term: applied.last_applied.map_or(0, |l| l.leader_id.term),
        cluster_id: cluster_id.to_owned(),
        taken_unix_ms,
        keys: applied.sm.kv.len() as u64,
    };
    let header = bincode::serialize(&header)?;
    let state = bincode::serialize(applied)?;
    let mut out = Vec::with_capacity(MAGIC.len() + 16 + header.len() + state.len() + CHECKSUM_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(&state);
    let sum = digest(&SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    Ok(out)
}

/// The checksum a file ends with, in hex (what `kahuna snapshot save` prints).
pub fn checksum_hex(file: &[u8]) -> String {
    hex(&file[file.len().saturating_sub(CHECKSUM_BYTES)..])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `n` bytes at `*at`, or says what was cut off.
fn take<'a>(file: &'a [u8], at: &mut usize, n: u64, what: &'static str) -> Result<&'a [u8], FileError> {
    let available = (file.len() - *at) as u64;
    if n > available {
        return Err(FileError::Truncated {
            what,
            needed: n,
            available,
        });
    }
    let out = &file[*at..*at + n as usize];
    *at += n as usize;
    Ok(out)
}

/// Checks and decodes a snapshot file.
pub fn decode(file: &[u8]) -> Result<(Header, Applied), FileError> {
    let mut at = 0;
    if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
        return Err(FileError::NotASnapshot);
    }
    at += MAGIC.len();
    let u32_at = |at: &mut usize, what| -> Result<u32, FileError> {
        let b = take(file, at, 4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let version = u32_at(&mut at, "the version")?;
    if version != VERSION {
        return Err(FileError::Version(version));
    }
    let header_len = u32_at(&mut at, "the header length")?;
    if header_len > MAX_HEADER_BYTES {
        return Err(FileError::Undecodable(format!(
            "a header of {header_len} bytes (at most {MAX_HEADER_BYTES})"
        )));
    }
    let header = take(file, &mut at, u64::from(header_len), "the header")?;
    let state_len = take(file, &mut at, 8, "the state length")?;
    let state_len = u64::from_le_bytes(state_len.try_into().map_err(|_| FileError::NotASnapshot)?);
    let state = take(file, &mut at, state_len, "the state")?;
    let body_end = at;
    let stored = take(file, &mut at, CHECKSUM_BYTES as u64, "the checksum")?;
    if at != file.len() {
        return Err(FileError::TrailingBytes((file.len() - at) as u64));
    }
    let actual = digest(&SHA256, &file[..body_end]);
    if actual.as_ref() != stored {
        return Err(FileError::Checksum {
            stored: hex(stored),
            actual: hex(actual.as_ref()),
        });
    }
    let header: Header = bincode::deserialize(header).map_err(|e| FileError::Undecodable(format!("header: {e}")))?;
    let applied: Applied = bincode::deserialize(state).map_err(|e| FileError::Undecodable(format!("state: {e}")))?;
    if applied.sm.revision != header.revision {
        return Err(FileError::Undecodable(format!(
            "the header says revision {}, the state is at {}",
            header.revision, applied.sm.revision
        )));
    }
    Ok((header, applied))
}

/// Seeds this member's empty data directory with the state in backup `file`, as the
/// only voter of a new cluster (new cluster id): every key keeps its value and
/// revision, locks their fencing tokens and leases (extended by the first leader
/// term, as after any election), sequences their next id. Refuses a data directory
/// that holds anything, and a corrupt or truncated file, before writing anything.
pub async fn restore(
    file: &Path,
    node_id: NodeId,
    peer_addr: &str,
    data_dir: &Path,
    identity: &ClusterIdentity,
    log_store: &mut LogStore,
    sm_store: &mut StateMachineStore,
) -> anyhow::Result<()> {
    let storage = |e: crate::types::StorageError| anyhow::anyhow!("cannot read the data directory: {e}");
    let empty = log_store.read_vote().await.map_err(storage)?.is_none()
        && log_store.get_log_state().await.map_err(storage)?.last_log_id.is_none()
        && sm_store.applied_state().await.map_err(storage)?.0.is_none();
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read --restore {}: {e}", file.display()))?;
    let sum = checksum_hex(&bytes);
    let marker = data_dir.join(RESTORED_FROM);
    if !empty || identity.stored() != Stored::Nothing {
        if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == sum) {
            tracing::info!(
                file = %file.display(),
                "the data directory was restored from this file before; starting from its own state"
            );
            return Ok(());
        }
        anyhow::bail!(
            "refusing --restore {}: the data directory {} already holds a member's state; a restore seeds a new \
             cluster in an empty data directory (move this one away, or start without --restore)",
            file.display(),
            data_dir.display()
        );
    }
    let (header, mut applied) =
        decode(&bytes).map_err(|e| anyhow::anyhow!("refusing --restore {}: {e}", file.display()))?;
    drop(bytes);
    let Some(last) = applied.last_applied else {
        anyhow::bail!(
            "refusing --restore {}: the snapshot holds no applied entry",
            file.display()
        );
    };
    // The new cluster's membership is this member alone, at the snapshot's position.
    let nodes = [(
        node_id,
        BasicNode {
            addr: peer_addr.to_owned(),
        },
    )]
    .into_iter()
    .collect::<std::collections::BTreeMap<_, _>>();
    let membership = Membership::new(vec![nodes.keys().copied().collect()], nodes);
    applied.membership = StoredMembership::new(Some(last), membership.clone());
    let data = bincode::serialize(&applied)?;
    // A vote in the snapshot's term, for itself and not committed: the member stands
    // for election in the next term, so its first entry follows the restored ones
    // (openraft needs log ids to grow) and a new term extends every lease.
    log_store
        .save_vote(&Vote::new(last.leader_id.term, node_id))
        .await
        .map_err(|e| anyhow::anyhow!("cannot save the vote: {e}"))?;
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!("restored-{}-{}", last.leader_id, last.index),
    };
    sm_store
        .install_snapshot(&meta, Box::new(std::io::Cursor::new(data)))
        .await
        .map_err(|e| anyhow::anyhow!("cannot install the restored state: {e}"))?;
    // Last: a data directory with a cluster id and this marker holds the whole state.
    let cluster = identity.found()?;
    std::fs::write(&marker, format!("{sum}\n"))?;
    tracing::info!(
        file = %file.display(),
        revision = header.revision,
        keys = header.keys,
        source_cluster = %header.cluster_id,
        cluster_id = %cluster,
        "restored the snapshot taken at revision {} from cluster {}: this member founds cluster {cluster}",
        header.revision,
        header.cluster_id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::{Command, Op, SetOp};

    fn state(keys: usize) -> Applied {
        let mut applied = Applied::default();
        for i in 0..keys {
            applied.sm.apply(
                1,
                &Command {
                    time_ms: 1,
                    request: None,
                    fence: None,
                    op: Op::Set(SetOp {
                        key: format!("k{i}").into_bytes(),
                        value: vec![7; 10],
                        ttl_ms: 0,
                        conditions: Default::default(),
                    }),
                },
            );
        }
        applied.last_applied = Some(openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 40));
        applied
    }

    #[test]
    fn a_file_decodes_to_the_state_it_was_made_from() {
        let applied = state(20);
        let file = encode(&applied, "abc", 5).expect("encode");
        let (header, back) = decode(&file).expect("decode");
        assert_eq!(
            (header.revision, header.keys, header.log_index, header.log_term),
            (20, 20, 40, 3)
        );
        assert_eq!(back.sm, applied.sm);
        assert_eq!(back.last_applied, applied.last_applied);
    }

    #[test]
    fn damaged_files_are_refused_with_what_is_wrong() {
        let file = encode(&state(5), "abc", 5).expect("encode");
        assert_eq!(decode(b"PK\x03\x04").unwrap_err(), FileError::NotASnapshot);
        for cut in [17, 30, file.len() / 2, file.len() - 1] {
            assert!(
                matches!(decode(&file[..cut]), Err(FileError::Truncated { .. })),
                "cut at {cut}: {:?}",
                decode(&file[..cut]).err()
            );
        }
        let mut flipped = file.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert!(matches!(decode(&flipped), Err(FileError::Checksum { .. })));
        let mut longer = file.clone();
        longer.push(0);
        assert_eq!(decode(&longer).unwrap_err(), FileError::TrailingBytes(1));
        let mut version = file;
        version[16] = 9;
        assert_eq!(decode(&version).unwrap_err(), FileError::Version(9));
    }
}
