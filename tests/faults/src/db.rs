//! The workloads' view of Kahuna: the Rust core client (`kahuna-client`), with every
//! answer sorted into one of three outcomes: it happened (with its answer), it
//! certainly did not happen, or it may or may not have happened.

use std::time::{Duration, Instant};

use kahuna_client::{
    Client, ClientOptions, Durability, Error, Fence, LockGuard, LockOptions, SetCondition, SetOptions, SetResult,
};

/// What became of a call.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    Ok(T),
    /// Certainly not applied, or a definite refusal such as FENCED (the text starts
    /// with the error code).
    Failed(String),
    /// May or may not have been applied.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Persistent,
    Ephemeral,
}

impl Tier {
    fn durability(self) -> Durability {
        match self {
            Tier::Persistent => Durability::Persistent,
            Tier::Ephemeral => Durability::Ephemeral,
        }
    }
}

/// A mutation that failed: the client retried what was safe to retry (with the same
/// request id, so at most once), so a cluster that stayed unavailable or too slow
/// leaves it unknown; any other error is a definite answer.
fn outcome<T>(r: Result<T, Error>) -> Outcome<T> {
    match r {
        Ok(v) => Outcome::Ok(v),
        Err(e) if e.is_retryable() => Outcome::Unknown(format!("{}: {e}", e.code())),
        Err(e) => Outcome::Failed(format!("{}: {e}", e.code())),
    }
}

/// One client of the cluster, with its own client id. A pinned client is given one
/// member and does not learn the others (that member forwards to the leader).
pub struct Db {
    client: Client,
}

/// A granted lock: the core client's guard, which renews the lease in the background.
pub struct Lease {
    guard: LockGuard,
}

impl Lease {
    pub fn token(&self) -> u64 {
        self.guard.fencing_token().unwrap_or(0)
    }

    /// Until when the holder may trust its lease by its own clock (`None` once lost).
    pub fn trusted_until(&self) -> Option<Instant> {
        let left = self.guard.trusted_for();
        if left.is_zero() || !self.guard.is_acquired() {
            None
        } else {
            Some(Instant::now() + left)
        }
    }

    pub async fn release(self) -> Outcome<bool> {
        outcome(self.guard.release().await)
    }
}

/// Whether a set applied, and at which revision (0 when it did not).
fn applied_at(r: SetResult) -> (bool, u64) {
    let rev = match (&r.kv, r.succeeded) {
        (Some(kv), true) => kv.mod_revision,
        _ => 0,
    };
    (r.succeeded, rev)
}

impl Db {
    pub fn new(endpoints: &[String], client_id: String, timeout: Duration, pinned: bool) -> anyhow::Result<Db> {
        let options = ClientOptions {
            client_id: Some(client_id),
            timeout,
            attempt_timeout: timeout.min(Duration::from_millis(1500)),
            discover_members: !pinned,
            ..ClientOptions::default()
        };
        Ok(Db {
            client: Client::connect_lazy(endpoints, options)?,
        })
    }

    /// Linearizable read: `Some(value)` or `None` when absent.
    pub async fn get(&self, key: &str) -> Outcome<Option<Vec<u8>>> {
        outcome(self.client.get(key).await.map(|kv| kv.map(|kv| kv.value)))
    }

    /// Set, optionally only when the current value is `expected` (`Some(None)`: only
    /// when absent). Answers whether it applied, and at which revision.
    pub async fn set(&self, key: &str, value: &[u8], expected: Option<Option<&[u8]>>) -> Outcome<(bool, u64)> {
        let condition = match expected {
            Some(Some(v)) => SetCondition::IfValue(v.to_vec()),
            Some(None) => SetCondition::IfNotExists,
            None => SetCondition::Always,
        };
        let options = SetOptions {
            condition,
            ..SetOptions::default()
        };
        outcome(self.client.set_with(key, value, options).await.map(applied_at))
    }

    /// A write of `key` fenced by the lock `resource` with `token`, in the lock's tier:
    /// an ephemeral lock fences an ephemeral key (the server checks the fence and
    /// writes in one step; it refuses persistent writes fenced by ephemeral locks).
    /// Answers whether it applied, and at which revision.
    pub async fn fenced_set(
        &self,
        key: &str,
        value: &[u8],
        resource: &str,
        token: u64,
        tier: Tier,
    ) -> Outcome<(bool, u64)> {
        let options = SetOptions {
            fence: Some(Fence {
                resource: resource.to_owned(),
                token,
                durability: tier.durability(),
            }),
            durability: tier.durability(),
            // Ephemeral keys need a TTL within the tier's limit (3 s in these runs).
            ttl: (tier == Tier::Ephemeral).then_some(Duration::from_secs(2)),
            ..SetOptions::default()
        };
        outcome(self.client.set_with(key, value, options).await.map(applied_at))
    }

    /// One attempt at the lock: `Ok(Some(lease))` when granted, `Ok(None)` when someone
    /// else holds it or it cannot be granted yet.
    pub async fn lock(
        &self,
        resource: &str,
        owner: &str,
        ttl: Duration,
        tier: Tier,
        wait: Duration,
    ) -> Outcome<Option<Lease>> {
        let options = LockOptions {
            ttl,
            wait,
            durability: tier.durability(),
            owner: Some(owner.to_owned()),
            ..LockOptions::default()
        };
        match outcome(self.client.lock(resource, options).await) {
            Outcome::Ok(guard) if guard.is_acquired() => Outcome::Ok(Some(Lease { guard })),
            Outcome::Ok(_) => Outcome::Ok(None),
            Outcome::Failed(e) => Outcome::Failed(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
        }
    }

    /// Sequence next with an idempotency key: `(first, count, replayed)`.
    pub async fn next(&self, name: &str, count: u64, key: &str) -> Outcome<(u64, u64, bool)> {
        outcome(
            self.client
                .next(name, count, Some(key))
                .await
                .map(|r| (r.first, r.count, r.replayed)),
        )
    }
}
