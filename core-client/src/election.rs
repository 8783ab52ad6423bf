//! Leader election on a persistent lock (anchors: etcd's `concurrency.Election`,
//! Curator's LeaderLatch).
//!
//! An election named N is the persistent lock N: candidates wait in its queue and
//! are elected in the order they campaigned; the leader's epoch is its fencing token,
//! which strictly increases from one leader to the next, so a deposed leader's fenced
//! writes are refused; its value travels with the lock, and observers follow the
//! holder with the server's `Observe` stream. Leadership ends when the leader resigns,
//! or when its lease can no longer be renewed (then [`Leadership::lost`] fires, by the
//! client's own clock, before anyone else can be elected).

use std::time::Duration;

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::locks_client::LocksClient;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tracing::debug;

use crate::client::{Client, HasHeader};
use crate::error::{classify, Error, Failure, Result};
use crate::kv::{Durability, Fence};
use crate::lock::{ttl_ms, LockGuard, LockInfo, LockOptions};
use crate::retry::Safety;

/// How to campaign.
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::CampaignOptions;
///
/// let o = CampaignOptions { ttl: Duration::from_secs(5), wait: Some(Duration::from_secs(60)) };
/// assert!(CampaignOptions::default().wait.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    /// The leader's lease, renewed at about a third of it: how long a dead leader
    /// holds the election up.
    pub ttl: Duration,
    /// How long to wait to be elected; `None` waits until elected (or the future is
    /// dropped, which withdraws the candidacy).
    pub wait: Option<Duration>,
}

impl Default for CampaignOptions {
    fn default() -> Self {
        CampaignOptions {
            ttl: Duration::from_secs(10),
            wait: None,
        }
    }
}

/// A leader as observers see it.
///
/// ```
/// # use kahuna_client::Leader;
/// let l = Leader { owner: "worker-1".into(), epoch: 42, value: b"10.0.0.7:8080".to_vec() };
/// assert_eq!(l.value_str(), "10.0.0.7:8080");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's owner name (unique per campaign).
    pub owner: String,
    /// The leader's epoch: its fencing token, larger for every later leader.
    pub epoch: u64,
    /// What the leader announces.
    pub value: Vec<u8>,
}

impl Leader {
    fn from_info(i: LockInfo) -> Leader {
        Leader {
            owner: i.owner,
            epoch: i.fencing_token,
            value: i.value,
        }
    }

    /// The value as text (lossy).
    pub fn value_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// Being the leader of an election. Renews itself; resign with
/// [`Leadership::resign`] (dropping it resigns too).
#[derive(Debug)]
pub struct Leadership {
    name: String,
    guard: LockGuard,
}

/// A held lock of either kind: a plain lock's guard or a leadership (whose guard is the
/// election's lock). Derefs to the guard, so a binding's lock handle serves both with
/// one set of lock functions.
#[derive(Debug)]
pub enum HeldLock {
    /// A lock taken with [`Client::lock`].
    Lock(LockGuard),
    /// A won election.
    Leader(Leadership),
}

impl std::ops::Deref for HeldLock {
    type Target = LockGuard;

    fn deref(&self) -> &LockGuard {
        match self {
            HeldLock::Lock(g) => g,
            HeldLock::Leader(l) => l.guard(),
        }
    }
}

impl Client {
    /// Campaigns in election `name` with `value`; returns once elected, or `None` when
    /// [`CampaignOptions::wait`] passed first. Candidates are elected in the order they
    /// campaigned.
    ///
    /// ```no_run
    /// # use kahuna_client::CampaignOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// if let Some(leadership) = client.campaign("scheduler", "10.0.0.7:8080", CampaignOptions::default()).await? {
    ///     println!("leading in epoch {}", leadership.epoch());
    ///     leadership.lost().await; // stop leading work here
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn campaign(
        &self,
        name: &str,
        value: impl AsRef<[u8]>,
        options: CampaignOptions,
    ) -> Result<Option<Leadership>> {
        let ttl = ttl_ms(options.ttl)?;
        let lock = LockOptions {
            ttl: options.ttl,
            wait: options.wait.unwrap_or(Duration::MAX),
            durability: Durability::Persistent,
            ..LockOptions::default()
        };
        let guard = self
            .lock_in_queue(
                name,
                ttl,
                &lock,
                crate::lock::Claim {
                    permits: 0,
                    value: value.as_ref(),
                },
            )
            .await?;
        if !guard.is_acquired() {
            return Ok(None);
        }
        Ok(Some(Leadership {
            name: name.to_owned(),
            guard,
        }))
    }

    /// The current leader of election `name`, if any (a linearizable read).
    pub async fn election_leader(&self, name: &str) -> Result<Option<Leader>> {
        Ok(self
            .lock_info(name, Durability::Persistent)
            .await?
            .map(Leader::from_info))
    }

    /// Follows the leader of election `name`: the first [`Observer::next`] gives the
    /// leader now, each later one the next change.
    pub async fn observe(&self, name: &str) -> Result<Observer> {
        let mut observer = Observer {
            client: self.clone(),
            name: name.to_owned(),
            stream: None,
            told: None,
            revision: 0,
            silence: HEARTBEAT * 2 + self.call.attempt_timeout,
            pending: None,
        };
        observer.open().await?;
        Ok(observer)
    }
}

impl Leadership {
    /// The lock this leadership is (the election's name is its resource).
    pub fn guard(&self) -> &LockGuard {
        &self.guard
    }

    /// The election's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This leadership's epoch (its fencing token): larger than every earlier leader's.
    pub fn epoch(&self) -> u64 {
        self.guard.fencing_token().unwrap_or(0)
    }

    /// This candidate's owner name, as observers see it.
    pub fn owner(&self) -> &str {
        self.guard.owner().unwrap_or_default()
    }

    /// Whether this is still the leader by the client's own clock.
    pub fn is_leader(&self) -> bool {
        self.guard.lost_reason().is_none() && self.guard.is_acquired()
    }

    /// Completes when leadership is lost (lease not renewed in time, or resigned).
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.guard.lost()
    }

    /// Cancelled when leadership is lost, for passing to other tasks.
    pub fn lost_token(&self) -> CancellationToken {
        self.guard.lost_token()
    }

    /// Why leadership was lost, once it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.guard.lost_reason()
    }

    /// The fence for writes only this leader may make.
    pub fn fence(&self) -> Option<Fence> {
        self.guard.fence()
    }

    /// Announces a new value; [`Error::LockNotHeld`] when no longer the leader.
    pub async fn proclaim(&self, value: impl AsRef<[u8]>) -> Result<()> {
        if !self.is_leader() {
            return Err(Error::LockNotHeld(format!("not the leader of {}", self.name)));
        }
        let msg = pb::ProclaimRequest {
            resource: self.name.as_bytes().to_vec(),
            owner: self.owner().as_bytes().to_vec(),
            value: value.as_ref().to_vec(),
            // One id for every attempt: a retry is answered, not applied again.
            request_id: Some(self.guard.client.request_id()),
        };
        let r = self.guard.client.unary(Safety::Deduplicated, msg).await?;
        if !r.proclaimed {
            return Err(Error::LockNotHeld(format!(
                "not the leader of {} any more (epoch {})",
                self.name,
                self.epoch()
            )));
        }
        Ok(())
    }

    /// Steps down, so the next candidate is elected at once; returns whether the
    /// server still had this leadership.
    pub async fn resign(self) -> Result<bool> {
        self.guard.release().await
    }
}

/// How often a quiet observe stream hears from the server (the server's heartbeat).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// An open [`Client::observe`].
pub struct Observer {
    client: Client,
    name: String,
    stream: Option<Streaming<pb::ObserveResponse>>,
    /// What the caller was last given: `Some(None)` = no leader.
    told: Option<Option<Leader>>,
    /// The newest state revision heard of: a member behind it is not believed.
    revision: u64,
    silence: Duration,
    /// A message received while opening, not yet given out.
    pending: Option<pb::ObserveResponse>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").field("name", &self.name).finish()
    }
}

impl Observer {
    async fn open(&mut self) -> Result<()> {
        self.stream = None;
        let msg = pb::ObserveRequest {
            resource: self.name.as_bytes().to_vec(),
        };
        let opened = self
            .client
            .open_stream(
                "election.observe",
                &msg,
                |ch, msg| async move { LocksClient::new(ch).observe(msg).await },
                |_| true,
                "the observe stream ended at once",
            )
            .await?;
        self.stream = Some(opened.stream);
        self.pending = Some(opened.first);
        Ok(())
    }

    /// The leader now (first call) or after the next change: `None` while there is
    /// none. Resumes across member failures by itself; a later answer never goes back
    /// to an earlier state than one already given.
    pub async fn next(&mut self) -> Result<Option<Leader>> {
        loop {
            let msg = match self.pending.take() {
                Some(m) => m,
                None => {
                    if self.stream.is_none() {
                        self.open().await?;
                        continue;
                    }
                    let Some(stream) = self.stream.as_mut() else {
                        continue;
                    };
                    match tokio::time::timeout(self.silence, stream.message()).await {
                        Ok(Ok(Some(m))) => m,
                        Ok(Ok(None)) => {
                            self.stream = None;
                            continue;
                        }
                        Ok(Err(status)) => {
                            let e = classify(&status);
                            self.stream = None;
                            if e.failure == Failure::Final {
                                return Err(e.error);
                            }
                            debug!(name = %self.name, error = %e.error, "observe stream lost; reopening");
                            continue;
                        }
                        Err(_) => {
                            debug!(name = %self.name, "observe stream silent; reopening");
                            self.stream = None;
                            continue;
                        }
                    }
                }
            };
            let revision = msg.revision();
            if revision < self.revision {
                continue;
            }
            self.revision = revision;
            let leader = msg.lock.map(|l| Leader::from_info(LockInfo::from_pb(l)));
            if self.told.as_ref() == Some(&leader) {
                continue;
            }
            self.told = Some(leader.clone());
            return Ok(leader);
        }
    }
}
