//! Backups: the leader's snapshot, streamed as the bytes of a backup file that
//! `kahuna-server --restore FILE` seeds a new cluster from.

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::maintenance_client::MaintenanceClient;
use ring::digest::{Context, SHA256};
use tonic::Streaming;

use crate::client::Client;
use crate::error::{classify, Error, Result};

/// The file ends with the sha-256 of everything before it.
const CHECKSUM_BYTES: usize = 32;

/// A snapshot being received. Call [`SnapshotDownload::next`] until it returns `None`:
/// only then has the whole file arrived and matched its checksum, so keep what it
/// returned somewhere temporary until then.
///
/// ```no_run
/// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
/// let mut snapshot = client.snapshot().await?;
/// let mut file = Vec::new();
/// while let Some(bytes) = snapshot.next().await? {
///     file.extend_from_slice(&bytes);
/// }
/// println!("revision {}, sha-256 {}", snapshot.revision, snapshot.sha256().unwrap_or_default());
/// # Ok(()) }
/// ```
pub struct SnapshotDownload {
    /// The member that took it (the leader).
    pub member_id: u64,
    /// The revision it was taken at: it holds every write acknowledged before the call.
    pub revision: u64,
    /// Keys it holds.
    pub keys: u64,
    stream: Streaming<pb::SnapshotChunk>,
    hash: Context,
    /// The last bytes received, not hashed yet: they may be the checksum.
    tail: Vec<u8>,
    received: u64,
    sha256: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SnapshotDownload {
    /// The next bytes of the file; `None` once it has all arrived and its size and
    /// sha-256 matched what the server sent.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        if self.sha256.is_some() {
            return Ok(None);
        }
        let chunk = match self.stream.message().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                return Err(Error::Unavailable(format!(
                    "the snapshot stream ended after {} bytes, before the end of the file",
                    self.received
                )))
            }
            Err(s) => return Err(classify(&s).error),
        };
        if !chunk.sha256.is_empty() {
            self.finish(&chunk)?;
            return Ok(None);
        }
        self.received += chunk.data.len() as u64;
        self.tail.extend_from_slice(&chunk.data);
        let hashed = self.tail.len().saturating_sub(CHECKSUM_BYTES);
        self.hash.update(&self.tail[..hashed]);
        self.tail.drain(..hashed);
        Ok(Some(chunk.data))
    }

    fn finish(&mut self, last: &pb::SnapshotChunk) -> Result<()> {
        let actual = hex(self.hash.clone().finish().as_ref());
        let trailer = hex(&self.tail);
        if last.total_bytes != self.received {
            return Err(Error::Internal(format!(
                "the snapshot is {} bytes, {} arrived",
                last.total_bytes, self.received
            )));
        }
        if actual != trailer || actual != last.sha256 {
            return Err(Error::Internal(format!(
                "the snapshot arrived damaged: its bytes hash to {actual}, the file says {trailer}, the server {}",
                last.sha256
            )));
        }
        self.sha256 = Some(actual);
        Ok(())
    }

    /// The file's sha-256 (hex), once [`SnapshotDownload::next`] returned `None`.
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Client {
    /// Starts a backup: the leader's state at a revision that includes every write
    /// acknowledged before this call, as the bytes of a backup file. Needs an admin
    /// token when the cluster checks tokens. See [`SnapshotDownload`].
    pub async fn snapshot(&self) -> Result<SnapshotDownload> {
        // The stream lasts as long as the file takes to send.
        let opened = self
            .open_stream(
                "maintenance.snapshot",
                &pb::SnapshotRequest {},
                |ch, msg| async move {
                    MaintenanceClient::new(ch)
                        .max_decoding_message_size(8 << 20)
                        .snapshot(msg)
                        .await
                },
                |_| true,
                "the snapshot stream ended before it began",
            )
            .await?;
        Ok(SnapshotDownload {
            member_id: opened.first.header.as_ref().map_or(0, |h| h.member_id),
            revision: opened.first.revision,
            keys: opened.first.keys,
            stream: opened.stream,
            hash: Context::new(&SHA256),
            tail: Vec::new(),
            received: 0,
            sha256: None,
        })
    }
}
