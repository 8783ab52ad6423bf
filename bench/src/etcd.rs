//! The same workloads on etcd, the way its users write them: txn for
//! compare-and-set, a session lease plus the lock API for locks, a txn loop on a
//! counter key for sequences.

use anyhow::{bail, Result};
use etcd_client::{Client, Compare, CompareOp, LockOptions, Txn, TxnOp, WatchOptions, WatchStream};

use crate::workload::Workload;

const SESSION_TTL_S: i64 = 600;

pub struct Worker {
    client: Client,
    id: usize,
    cas_revision: i64,
    lease: Option<i64>,
}

pub async fn connect(endpoints: &[String]) -> Result<Client> {
    Ok(Client::connect(endpoints, None).await?)
}

impl Worker {
    pub fn new(client: Client, id: usize) -> Self {
        Worker {
            client,
            id,
            cas_revision: 0,
            lease: None,
        }
    }

    /// Learns the current revision of this worker's compare-and-set key.
    pub async fn init(&mut self) -> Result<()> {
        let own = format!("bench/cas/{}", self.id);
        let got = self.client.get(own, None).await?;
        self.cas_revision = got.kvs().first().map_or(0, |kv| kv.mod_revision());
        Ok(())
    }

    pub async fn put(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.client.put(key, value, None).await?;
        Ok(())
    }

    /// A session lease per worker, granted once with a TTL longer than a run, as etcd's
    /// concurrency package keeps one lease per session.
    async fn lease(&mut self) -> Result<i64> {
        if let Some(id) = self.lease {
            return Ok(id);
        }
        let id = self.client.lease_grant(SESSION_TTL_S, None).await?.id();
        self.lease = Some(id);
        Ok(id)
    }

    /// Takes `resource` with etcd's lock API (waiters ordered by revision, woken by
    /// a watch on the one ahead); returns the key that holds it.
    pub async fn acquire(&mut self, resource: &str) -> Result<Vec<u8>> {
        let lease = self.lease().await?;
        let held = self
            .client
            .lock(resource, Some(LockOptions::new().with_lease(lease)))
            .await?;
        Ok(held.key().to_vec())
    }

    pub async fn release(&mut self, held: Vec<u8>) -> Result<()> {
        self.client.unlock(held).await?;
        Ok(())
    }

    /// A watch on every key under `prefix`, from now on.
    pub async fn watch(&mut self, prefix: &str) -> Result<WatchStream> {
        Ok(self
            .client
            .watch(prefix, Some(WatchOptions::new().with_prefix()))
            .await?)
    }

    pub async fn op(&mut self, w: Workload, key: &str, value: &[u8]) -> Result<()> {
        match w {
            Workload::Put => self.put(key, value).await,
            Workload::Get => {
                self.client.get(key, None).await?;
                Ok(())
            }
            Workload::Cas => {
                let own = format!("bench/cas/{}", self.id);
                let txn = Txn::new()
                    .when([Compare::mod_revision(own.as_str(), CompareOp::Equal, self.cas_revision)])
                    .and_then([TxnOp::put(own.as_str(), value, None)])
                    .or_else([TxnOp::get(own.as_str(), None)]);
                let r = self.client.txn(txn).await?;
                let revision = r.header().map_or(0, |h| h.revision());
                if !r.succeeded() {
                    bail!("compare-and-set lost to a concurrent writer");
                }
                self.cas_revision = revision;
                Ok(())
            }
            Workload::Lock | Workload::EphemeralLock => {
                let lease = self.lease().await?;
                let name = format!("bench/lock/{}", self.id);
                let held = self
                    .client
                    .lock(name, Some(LockOptions::new().with_lease(lease)))
                    .await?;
                self.client.unlock(held.key()).await?;
                Ok(())
            }
            Workload::Seq => {
                // Read the counter, then move it with a compare on its revision; retry on a lost race.
                loop {
                    let got = self.client.get("bench/seq", None).await?;
                    let (current, revision) = got
                        .kvs()
                        .first()
                        .map(|kv| {
                            let n = std::str::from_utf8(kv.value()).ok().and_then(|s| s.parse::<u64>().ok());
                            (n.unwrap_or(0), kv.mod_revision())
                        })
                        .unwrap_or((0, 0));
                    let txn = Txn::new()
                        .when([Compare::mod_revision("bench/seq", CompareOp::Equal, revision)])
                        .and_then([TxnOp::put("bench/seq", (current + 1).to_string(), None)]);
                    if self.client.txn(txn).await?.succeeded() {
                        return Ok(());
                    }
                }
            }
            Workload::Rate | Workload::EphemeralRate => bail!("etcd has no rate limiter"),
            Workload::Mixed | Workload::Load | Workload::Handoff | Workload::Watch => {
                bail!("{w:?} is not a single operation")
            }
        }
    }
}
