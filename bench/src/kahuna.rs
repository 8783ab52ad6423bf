//! The workloads on Kahuna, through the core client.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kahuna_client::{
    Client, ClientOptions, ClientTls, Durability, LockGuard, LockOptions, RatePolicy, Watch, WatchOptions,
};

use crate::workload::Workload;

pub struct Worker {
    client: Client,
    id: usize,
    cas_revision: u64,
    lock_ttl: Duration,
}

pub async fn connect(endpoints: &[String], cacert: Option<&Path>) -> Result<Client> {
    let tls = match cacert {
        None => None,
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            ClientTls::from_parts(Some(pem), &[], false, None, None)?
        }
    };
    let options = ClientOptions {
        tls,
        ..ClientOptions::default()
    };
    Ok(Client::connect(endpoints.to_vec(), options).await?)
}

impl Worker {
    pub fn new(client: Client, id: usize, lock_ttl: Duration) -> Self {
        Worker {
            client,
            id,
            cas_revision: 0,
            lock_ttl,
        }
    }

    /// Learns the current revision of this worker's compare-and-set key.
    pub async fn init(&mut self) -> Result<()> {
        let own = format!("bench/cas/{}", self.id);
        self.cas_revision = self.client.get(&own).await?.map_or(0, |kv| kv.mod_revision);
        Ok(())
    }

    pub async fn put(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.client.set(key, value).await?;
        Ok(())
    }

    async fn lock(&self, durability: Durability) -> Result<()> {
        let options = LockOptions {
            ttl: self.lock_ttl,
            durability,
            ..LockOptions::default()
        };
        let guard = self.client.lock(&format!("bench/lock/{}", self.id), options).await?;
        if !guard.is_acquired() {
            bail!("lock not acquired");
        }
        guard.release().await?;
        Ok(())
    }

    /// Takes `resource`, waiting as long as it takes: in the server's queue, or with
    /// `poll`, by trying again every `poll` as clients did before the queue.
    pub async fn acquire(&self, resource: &str, poll: Option<Duration>) -> Result<LockGuard> {
        let options = LockOptions {
            ttl: self.lock_ttl,
            wait: if poll.is_some() {
                Duration::ZERO
            } else {
                Duration::from_secs(600)
            },
            ..LockOptions::default()
        };
        loop {
            let guard = self.client.lock(resource, options.clone()).await?;
            if guard.is_acquired() {
                return Ok(guard);
            }
            match poll {
                Some(pause) => tokio::time::sleep(pause).await,
                None => bail!("{resource} not acquired within 10 minutes"),
            }
        }
    }

    async fn rate(&self, durability: Durability) -> Result<()> {
        let policy = RatePolicy::FixedWindow {
            limit: 1_000_000_000,
            window: Duration::from_secs(3600),
        };
        let d = self.client.check_rate_with("bench/rate", policy, 1, durability).await?;
        if !d.allowed {
            bail!("rate check refused");
        }
        Ok(())
    }

    /// A watch on every key under `prefix`, from now on.
    pub async fn watch(&self, prefix: &str) -> Result<Watch> {
        let options = WatchOptions {
            prefix: true,
            ..WatchOptions::default()
        };
        Ok(self.client.watch(prefix, options).await?)
    }

    /// Triggers a snapshot on the leader and returns how long it took to build it.
    pub async fn snapshot(&self) -> Result<Duration> {
        let target = self.client.status().await?.applied_index;
        let started = tokio::time::Instant::now();
        self.client.trigger_snapshot().await?;
        loop {
            if self.client.status().await?.snapshot_index >= target {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("no snapshot at revision {target} after 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until ephemeral locks are granted (none are for one maximum ephemeral
    /// TTL after a leader change).
    pub async fn wait_for_ephemeral_grants(&self, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let last = match self.lock(Durability::Ephemeral).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if tokio::time::Instant::now() > deadline {
                bail!("ephemeral locks not granted within {within:?}: {last:#}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn op(&mut self, w: Workload, key: &str, value: &[u8]) -> Result<()> {
        match w {
            Workload::Put => self.put(key, value).await,
            Workload::Get => {
                self.client.get(key).await?;
                Ok(())
            }
            Workload::Cas => {
                let own = format!("bench/cas/{}", self.id);
                let r = self
                    .client
                    .compare_revision_and_set(&own, self.cas_revision, value)
                    .await?;
                self.cas_revision = r.kv.map_or(0, |kv| kv.mod_revision);
                if !r.succeeded {
                    bail!("compare-and-set lost to a concurrent writer");
                }
                Ok(())
            }
            Workload::Lock => self.lock(Durability::Persistent).await,
            Workload::EphemeralLock => self.lock(Durability::Ephemeral).await,
            Workload::Seq => {
                self.client.next("bench/seq", 1, None).await?;
                Ok(())
            }
            Workload::Rate => self.rate(Durability::Persistent).await,
            Workload::EphemeralRate => self.rate(Durability::Ephemeral).await,
            Workload::Mixed | Workload::Load | Workload::Handoff | Workload::Watch => {
                bail!("{w:?} is not a single operation")
            }
        }
    }
}
