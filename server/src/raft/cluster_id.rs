//! Which cluster a data directory belongs to, so a member started by mistake cannot
//! found a second cluster or mix two clusters' Raft traffic.
//!
//! The file `cluster-id` in the data directory holds one line: the cluster id (32 hex
//! digits), or `joining` for a member started with `--join` that no member has
//! contacted yet. The founding member with the lowest node id generates the id when it
//! bootstraps; every other member learns it from the first peer message (or reply)
//! that carries one, and stores it before acting on that message. Every peer message
//! and reply carries the sender's id in the `kahuna-cluster-id` metadata entry; a
//! message from another cluster is refused (see `peer_service`).

use crate::poison::Recover;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Metadata entry carrying the sender's cluster id on peer messages and replies.
pub const CLUSTER_ID_KEY: &str = "kahuna-cluster-id";
/// Metadata entry carrying the sender's node id on peer messages.
pub const NODE_ID_KEY: &str = "kahuna-node-id";

const FILE: &str = "cluster-id";
const JOINING: &str = "joining";

/// What the data directory says about its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Nothing: a new data directory, or one from before cluster ids.
    Nothing,
    /// Started with `--join`; no member has contacted it yet.
    Joining,
    /// Belongs to this cluster.
    Id(String),
}

#[derive(Debug, thiserror::Error)]
#[error("this member belongs to cluster {ours}, the sender to cluster {theirs}")]
pub struct Mismatch {
    pub ours: String,
    pub theirs: String,
}

pub struct ClusterIdentity {
    path: PathBuf,
    stored: Mutex<Stored>,
    /// When a mismatch was last logged, so a peer retrying every heartbeat does not
    /// flood the log.
    last_logged: Mutex<Option<Instant>>,
}

impl ClusterIdentity {
    /// Reads `cluster-id` from `data_dir` (which must exist).
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(FILE);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => parse(text.trim())
                .ok_or_else(|| anyhow::anyhow!("{} holds {:?}, not a cluster id", path.display(), text.trim()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::Nothing,
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            path,
            stored: Mutex::new(stored),
            last_logged: Mutex::new(None),
        })
    }

    pub fn stored(&self) -> Stored {
        self.stored.lock().recover().clone()
    }

    /// The cluster id, once known.
    pub fn id(&self) -> Option<String> {
        match self.stored() {
            Stored::Id(id) => Some(id),
            _ => None,
        }
    }

    /// Records that this member was started with `--join` (unless it already knows more).
    pub fn mark_joining(&self) -> anyhow::Result<()> {
        let mut st = self.lock();
        if *st == Stored::Nothing {
            write_atomically(&self.path, JOINING)?;
            *st = Stored::Joining;
        }
        Ok(())
    }

    /// Generates and stores a new cluster id (the founding member, at bootstrap).
    pub fn found(&self) -> anyhow::Result<String> {
        let id = format!("{:032x}", rand::random::<u128>());
        let mut st = self.lock();
        write_atomically(&self.path, &id)?;
        *st = Stored::Id(id.clone());
        Ok(id)
    }

    /// Checks the cluster id a peer sent (`None`: it knows none yet). A member that
    /// knows none adopts the peer's, durably, before the message is acted on.
    pub fn check(&self, theirs: Option<&str>) -> Result<(), CheckError> {
        let Some(theirs) = theirs.filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        if parse(theirs).is_none_or(|s| s == Stored::Joining) {
            return Err(CheckError::Mismatch(Mismatch {
                ours: self.id().unwrap_or_else(|| "(none yet)".into()),
                theirs: format!("{theirs:?} (not a cluster id)"),
            }));
        }
        let mut st = self.lock();
        match &*st {
            Stored::Id(ours) if ours == theirs => Ok(()),
            Stored::Id(ours) => Err(CheckError::Mismatch(Mismatch {
                ours: ours.clone(),
                theirs: theirs.to_owned(),
            })),
            Stored::Nothing | Stored::Joining => {
                write_atomically(&self.path, theirs).map_err(|e| CheckError::Storage(e.to_string()))?;
                tracing::info!(cluster_id = theirs, "learned the cluster id from a peer");
                *st = Stored::Id(theirs.to_owned());
                Ok(())
            }
        }
    }

    /// Whether a mismatch should be logged now (at most once every 5 s).
    pub fn should_log(&self) -> bool {
        let mut last = self.last_logged.lock().recover();
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().recover()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Mismatch(Mismatch),
    #[error("cannot store the cluster id: {0}")]
    Storage(String),
}

fn parse(text: &str) -> Option<Stored> {
    if text == JOINING {
        return Some(Stored::Joining);
    }
    (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Stored::Id(text.to_ascii_lowercase()))
}

/// Writes `text` to `path` so that a crash leaves either the old or the new content:
/// a synced temporary file renamed over it, then the directory synced.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{text}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_once_and_refuses_another_cluster() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids = ClusterIdentity::load(dir.path()).expect("load");
        assert_eq!(ids.stored(), Stored::Nothing);
        ids.mark_joining().expect("joining");
        assert_eq!(
            ClusterIdentity::load(dir.path()).expect("load").stored(),
            Stored::Joining
        );
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        ids.check(None).expect("no id is accepted");
        ids.check(Some(a)).expect("learned");
        ids.check(Some(a)).expect("same cluster");
        assert!(matches!(ids.check(Some(b)), Err(CheckError::Mismatch(_))));
        assert!(matches!(ids.check(Some("joining")), Err(CheckError::Mismatch(_))));
        assert!(matches!(ids.check(Some("x")), Err(CheckError::Mismatch(_))));
        // Stored durably, and marking "joining" later changes nothing.
        let again = ClusterIdentity::load(dir.path()).expect("load");
        again.mark_joining().expect("no-op");
        assert_eq!(again.id().as_deref(), Some(a));
    }

    #[test]
    fn founding_generates_a_fresh_id() {
        let one = tempfile::tempdir().expect("temp dir");
        let two = tempfile::tempdir().expect("temp dir");
        let a = ClusterIdentity::load(one.path()).expect("load").found().expect("found");
        let b = ClusterIdentity::load(two.path()).expect("load").found().expect("found");
        assert_ne!(a, b);
        assert_eq!(ClusterIdentity::load(one.path()).expect("load").id(), Some(a));
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), "not an id\n").expect("write");
        assert!(ClusterIdentity::load(dir.path()).is_err());
    }
}
