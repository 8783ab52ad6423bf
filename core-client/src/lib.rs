//! Kahuna's Rust core client: one [`Client`] for the key/value store, transactions,
//! sequences, leased locks with fencing tokens, and cluster administration.
//!
//! The client finds and caches the leader, follows `NOT_LEADER` hints, fails over
//! between members, gives every call a deadline, and retries only what is safe (see
//! [`retry`] for the table). Every mutation carries `(client_id, request_id)`, so a
//! retried mutation is applied exactly once. Lock guards renew themselves and signal
//! **lost** as soon as their lease can no longer be trusted by the client's own clock.
//!
//! The C#, Python and Node packages wrap this crate; its behaviour is theirs.
//!
//! ```no_run
//! use std::time::Duration;
//! use kahuna_client::{Client, ClientOptions, LockOptions, SetOptions};
//!
//! # async fn run() -> kahuna_client::Result<()> {
//! let client = Client::connect(["127.0.0.1:2070"], ClientOptions::default()).await?;
//!
//! // Key/value with compare-and-set.
//! let kv = client.set("config/mode", "primary").await?;
//! let r = client.compare_revision_and_set("config/mode", kv.mod_revision, "draining").await?;
//! assert!(r.succeeded);
//!
//! // A lock guarding fenced writes.
//! let guard = client.lock("jobs/nightly", LockOptions { ttl: Duration::from_secs(10), ..LockOptions::default() }).await?;
//! if guard.is_acquired() {
//!     client.set_with("jobs/nightly/state", "running", SetOptions { fence: guard.fence(), ..SetOptions::default() }).await?;
//!     guard.release().await?;
//! }
//!
//! // Identifiers that never overlap, safe to retry.
//! let ids = client.next("orders", 10, Some("batch-7")).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backup;
mod batch;
mod client;
mod cluster;
mod election;
mod error;
mod kv;
mod lock;
mod ratelimit;
pub mod retry;
mod rpc;
mod seq;
mod ttl;
mod txn;
mod watch;

pub use backup::SnapshotDownload;
pub use batch::ManyKeys;
pub use client::{Client, ClientOptions, DEFAULT_ENDPOINT, DEFAULT_PORT};
pub use cluster::{ClusterStatus, Member, Transferred, Usage};
pub use election::{CampaignOptions, HeldLock, Leader, Leadership, Observer};
pub use error::{Error, ErrorKind, Result};
/// TLS settings of [`ClientOptions::tls`].
pub use kahuna_proto::tls::{fingerprint, parse_pin, ClientTls, ServerTrust};
pub use kv::{
    Consistency, DeleteCondition, DeleteOptions, DeleteResult, Durability, EventKind, Fence, GetOptions, History,
    HistoryEvent, KeyValue, ScanOptions, ScanPage, SetCondition, SetOptions, SetResult,
};
pub use lock::{LockGuard, LockInfo, LockOptions};
pub use ratelimit::{RateDecision, RatePolicy};
pub use retry::RetryPolicy;
pub use seq::IdRange;
pub use tokio_util::sync::CancellationToken;
pub use txn::{Compare, CompareOp, Txn, TxnOp, TxnOpResult, TxnResult};
pub use watch::{Watch, WatchBatch, WatchOptions};

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<F: std::future::Future + Send>(_: F) {}

    /// The bindings move clients, guards and futures across threads.
    #[tokio::test]
    async fn handles_and_futures_are_send() {
        send_sync::<Client>();
        send_sync::<LockGuard>();
        send_sync::<Error>();
        let Ok(c) = Client::connect_lazy(["127.0.0.1:1"], ClientOptions::default()) else {
            panic!("lazy client");
        };
        send(c.get("k"));
        send(c.set("k", "v"));
        send(c.lock("r", LockOptions::default()));
        send(c.txn().commit());
        send(c.next("s", 1, None));
        send(c.watch("k", WatchOptions::default()));
        send(c.campaign("e", "v", CampaignOptions::default()));
        send(c.observe("e"));
    }
}
