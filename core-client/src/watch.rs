//! Watches: every change to a key or a prefix, in revision order, across failures.
//!
//! A [`Watch`] holds one server stream at a time. When that stream fails (the member
//! died, was cut off from its leader, shut down, or fell silent past the progress
//! interval), the watch opens a new one at any member from the revision after the
//! last message it received, so the caller sees every change exactly once and in
//! order. Only a final answer ends it: COMPACTED (the changes it needs are no longer
//! retained; read the keys again and start a new watch from that read's revision),
//! a refused credential, bad input.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use kahuna_proto::v1 as pb;
use kahuna_proto::v1::kv_client::KvClient;
use tonic::Streaming;
use tracing::debug;

use crate::client::Client;
use crate::error::{classify, Error, Failure, Result};
use crate::kv::HistoryEvent;

/// Largest watch message accepted: a revision is never split across messages, and a
/// sweep's may hold 1,000 removed keys of 4 KiB each on top of a 1 MiB batch.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// What to watch and from where.
///
/// ```
/// use kahuna_client::WatchOptions;
///
/// let options = WatchOptions { prefix: true, start_revision: 42, ..WatchOptions::default() };
/// assert_eq!(options.progress_interval.as_secs(), 5);
/// ```
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Watch every key starting with the given key (an empty key with `prefix` watches
    /// everything).
    pub prefix: bool,
    /// The first revision to deliver changes of; 0 = only changes made after the watch
    /// is open.
    pub start_revision: u64,
    /// How often the server says "nothing new up to revision N" while nothing changes.
    /// A stream silent for twice this (plus an attempt timeout) is treated as dead and
    /// reopened elsewhere. From 100 ms to 10 minutes.
    pub progress_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            prefix: false,
            start_revision: 0,
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// One message of a watch: the changes of one or more whole revisions, or none (a
/// progress notification).
///
/// ```
/// # use kahuna_client::WatchBatch;
/// let b = WatchBatch { events: vec![], revision: 7 };
/// assert!(b.is_progress());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// Oldest first. Deletes and expiries carry the key's revisions but not its value.
    pub events: Vec<HistoryEvent>,
    /// Every change to the watched keys up to and including this revision has been
    /// delivered.
    pub revision: u64,
}

impl WatchBatch {
    /// A progress notification: nothing changed up to [`WatchBatch::revision`].
    pub fn is_progress(&self) -> bool {
        self.events.is_empty()
    }
}

/// A watch on a key or prefix; see the module documentation. Get changes with
/// [`Watch::next`], or as a [`Stream`] with [`Watch::into_stream`].
pub struct Watch {
    client: Client,
    request: pb::WatchRequest,
    stream: Option<Streaming<pb::WatchResponse>>,
    /// Everything up to this revision has been delivered to the caller.
    revision: u64,
    /// A stream that says nothing for this long is dead.
    silence: Duration,
    /// Events taken off a batch by [`Watch::next_event`] and not yet returned.
    pending: VecDeque<HistoryEvent>,
    /// A stream was open once: reopens start after `revision`.
    opened: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("key", &String::from_utf8_lossy(&self.request.key))
            .field("prefix", &self.request.prefix)
            .field("revision", &self.revision)
            .finish()
    }
}

impl Client {
    /// Opens a watch on `key` (or on every key under it, with
    /// [`WatchOptions::prefix`]); returns once the server has it in place, so every
    /// change committed after this returns is delivered.
    ///
    /// ```no_run
    /// # use kahuna_client::WatchOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let mut watch = client.watch("config/", WatchOptions { prefix: true, ..WatchOptions::default() }).await?;
    /// loop {
    ///     let batch = watch.next().await?;
    ///     for e in &batch.events {
    ///         println!("{} {} at {}", e.kind.as_str(), e.kv.key, e.revision);
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        let interval = options.progress_interval;
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&interval) {
            return Err(Error::InvalidArgument(format!(
                "progress_interval is {interval:?}; it must be from 100 ms to 10 minutes"
            )));
        }
        let request = pb::WatchRequest {
            key: key.as_bytes().to_vec(),
            prefix: options.prefix,
            start_revision: options.start_revision,
            progress_interval_ms: interval.as_millis() as u64,
        };
        let mut watch = Watch {
            client: self.clone(),
            request,
            stream: None,
            revision: 0,
            silence: interval * 2 + self.call.attempt_timeout,
            pending: VecDeque::new(),
            opened: false,
        };
        watch.open().await?;
        Ok(watch)
    }
}

impl Watch {
    /// Every change up to and including this revision has been delivered.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Opens a stream at the leader (or the next member that answers) from the revision
    /// after the last one delivered, retrying within the client's call timeout.
    async fn open(&mut self) -> Result<()> {
        let mut request = self.request.clone();
        if self.opened {
            request.start_revision = self.revision + 1;
        }
        self.stream = None;
        let opened = self
            .client
            .open_stream(
                "kv.watch",
                &request,
                |ch, request| async move {
                    KvClient::new(ch)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .watch(request)
                        .await
                },
                |first| first.created,
                "the watch stream ended before it was created",
            )
            .await?;
        // The first open learns where it starts; a reopen starts where it left off.
        self.revision = self.revision.max(opened.first.revision);
        self.stream = Some(opened.stream);
        self.opened = true;
        Ok(())
    }

    /// The next message: changes, or a progress notification while nothing changes.
    /// Reopens the stream across failures by itself; an error is final for this
    /// attempt (COMPACTED, a refused credential) or means no member could be reached
    /// within the client's timeout, and calling again tries again.
    pub async fn next(&mut self) -> Result<WatchBatch> {
        loop {
            if self.stream.is_none() {
                self.open().await?;
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let failed = match tokio::time::timeout(self.silence, stream.message()).await {
                Ok(Ok(Some(msg))) => {
                    if msg.created {
                        continue;
                    }
                    // Never deliver a revision twice, whatever a member sends.
                    let sent = msg.events.len();
                    let events: Vec<HistoryEvent> = msg
                        .events
                        .into_iter()
                        .map(HistoryEvent::from_pb)
                        .filter(|e| e.revision > self.revision)
                        .collect();
                    if sent > 0 && events.is_empty() {
                        continue;
                    }
                    self.revision = self.revision.max(msg.revision);
                    return Ok(WatchBatch {
                        events,
                        revision: self.revision,
                    });
                }
                Ok(Ok(None)) => "the member ended the stream".to_owned(),
                Ok(Err(status)) => {
                    let e = classify(&status);
                    if e.failure == Failure::Final {
                        self.stream = None;
                        return Err(e.error);
                    }
                    e.error.to_string()
                }
                Err(_) => format!("no message within {:?}", self.silence),
            };
            debug!(revision = self.revision, reason = %failed, "watch stream lost; reopening");
            // Reopen from where it left off (at the leader, or the next member).
            self.stream = None;
        }
    }

    /// The next change, one at a time; progress notifications are skipped.
    pub async fn next_event(&mut self) -> Result<HistoryEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            let batch = self.next().await?;
            self.pending.extend(batch.events);
        }
    }

    /// The watch as a stream of messages (see [`Watch::next`]); it ends after the
    /// first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<WatchBatch>> + Send {
        futures::stream::unfold(Some(self), |watch| async move {
            let mut watch = watch?;
            match watch.next().await {
                Ok(batch) => Some((Ok(batch), Some(watch))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
