//! Transactions: `compare[] -> then[] / otherwise[]`, applied atomically as one command (one revision).

use std::time::Duration;

use kahuna_proto::v1 as pb;

use crate::client::{Client, HasHeader};
use crate::error::{Error, Result};
use crate::kv::{wire_enum, Fence, KeyValue};
use crate::retry::Safety;

/// How a [`Compare`] relates the stored thing to the given one.
///
/// ```
/// # use kahuna_client::CompareOp;
/// let op = CompareOp::Greater;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// Stored is greater.
    Greater,
    /// Stored is less.
    Less,
}

wire_enum!(CompareOp => pb::CompareOp: Equal, NotEqual, Greater, Less);

/// One condition of a transaction (persistent keys and locks).
///
/// ```
/// use kahuna_client::{Compare, CompareOp};
/// let c = Compare::value("mode", CompareOp::Equal, "primary");
/// let d = Compare::mod_revision("mode", CompareOp::Equal, 12);
/// let e = Compare::missing("lease/new");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare(pb::Compare);

impl Compare {
    fn number(key: &str, target: pb::CompareTarget, op: CompareOp, number: u64) -> Compare {
        Compare(pb::Compare {
            key: key.as_bytes().to_vec(),
            target: target as i32,
            op: op.pb(),
            value: Vec::new(),
            number,
        })
    }

    /// The key's value against `value` (a missing key never equals).
    ///
    /// ```
    /// # use kahuna_client::{Compare, CompareOp};
    /// let c = Compare::value("k", CompareOp::NotEqual, b"x");
    /// ```
    pub fn value(key: &str, op: CompareOp, value: impl AsRef<[u8]>) -> Compare {
        Compare(pb::Compare {
            key: key.as_bytes().to_vec(),
            target: pb::CompareTarget::Value as i32,
            op: op.pb(),
            value: value.as_ref().to_vec(),
            number: 0,
        })
    }

    /// The key's `mod_revision` (0 when missing).
    ///
    /// ```
    /// # use kahuna_client::{Compare, CompareOp};
    /// let c = Compare::mod_revision("k", CompareOp::Equal, 5);
    /// ```
    pub fn mod_revision(key: &str, op: CompareOp, revision: u64) -> Compare {
        Compare::number(key, pb::CompareTarget::ModRevision, op, revision)
    }

    /// The key's `create_revision` (0 when missing).
    ///
    /// ```
    /// # use kahuna_client::{Compare, CompareOp};
    /// let c = Compare::create_revision("k", CompareOp::Less, 100);
    /// ```
    pub fn create_revision(key: &str, op: CompareOp, revision: u64) -> Compare {
        Compare::number(key, pb::CompareTarget::CreateRevision, op, revision)
    }

    /// The key's version (0 when missing).
    ///
    /// ```
    /// # use kahuna_client::{Compare, CompareOp};
    /// let c = Compare::version("k", CompareOp::Equal, 0);
    /// ```
    pub fn version(key: &str, op: CompareOp, version: u64) -> Compare {
        Compare::number(key, pb::CompareTarget::Version, op, version)
    }

    /// The key exists.
    ///
    /// ```
    /// # use kahuna_client::Compare;
    /// let c = Compare::exists("k");
    /// ```
    pub fn exists(key: &str) -> Compare {
        Compare::number(key, pb::CompareTarget::Exists, CompareOp::Equal, 1)
    }

    /// The key does not exist.
    ///
    /// ```
    /// # use kahuna_client::Compare;
    /// let c = Compare::missing("k");
    /// ```
    pub fn missing(key: &str) -> Compare {
        Compare::number(key, pb::CompareTarget::Exists, CompareOp::Equal, 0)
    }

    /// The fencing token of the persistent lock `resource` (0 when free).
    ///
    /// ```
    /// # use kahuna_client::{Compare, CompareOp};
    /// let c = Compare::lock_token("jobs/nightly", CompareOp::Equal, 42);
    /// ```
    pub fn lock_token(resource: &str, op: CompareOp, token: u64) -> Compare {
        Compare::number(resource, pb::CompareTarget::LockToken, op, token)
    }
}

/// One operation of a transaction branch.
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::TxnOp;
/// let ops = [TxnOp::set("a", "1"), TxnOp::set_with_ttl("b", "2", Duration::from_secs(5)), TxnOp::delete("c"), TxnOp::get("d")];
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOp(pb::TxnOp);

use crate::ttl::ceil_ms as ms;

impl TxnOp {
    /// Set `key` to `value`.
    ///
    /// ```
    /// # use kahuna_client::TxnOp;
    /// let op = TxnOp::set("k", "v");
    /// ```
    pub fn set(key: &str, value: impl AsRef<[u8]>) -> TxnOp {
        TxnOp(pb::TxnOp {
            op: Some(pb::txn_op::Op::Set(pb::TxnSet {
                key: key.as_bytes().to_vec(),
                value: value.as_ref().to_vec(),
                ttl_ms: 0,
            })),
        })
    }

    /// Set `key` to `value` with a time to live.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kahuna_client::TxnOp;
    /// let op = TxnOp::set_with_ttl("k", "v", Duration::from_secs(10));
    /// ```
    pub fn set_with_ttl(key: &str, value: impl AsRef<[u8]>, ttl: Duration) -> TxnOp {
        TxnOp(pb::TxnOp {
            op: Some(pb::txn_op::Op::Set(pb::TxnSet {
                key: key.as_bytes().to_vec(),
                value: value.as_ref().to_vec(),
                ttl_ms: ms(ttl),
            })),
        })
    }

    /// Delete `key`.
    ///
    /// ```
    /// # use kahuna_client::TxnOp;
    /// let op = TxnOp::delete("k");
    /// ```
    pub fn delete(key: &str) -> TxnOp {
        TxnOp(pb::TxnOp {
            op: Some(pb::txn_op::Op::Delete(pb::TxnDelete {
                key: key.as_bytes().to_vec(),
            })),
        })
    }

    /// Read `key` as of the transaction.
    ///
    /// ```
    /// # use kahuna_client::TxnOp;
    /// let op = TxnOp::get("k");
    /// ```
    pub fn get(key: &str) -> TxnOp {
        TxnOp(pb::TxnOp {
            op: Some(pb::txn_op::Op::Get(pb::TxnGet {
                key: key.as_bytes().to_vec(),
            })),
        })
    }

    /// Give `key` a new TTL (`None` removes its expiry).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kahuna_client::TxnOp;
    /// let op = TxnOp::extend("k", Some(Duration::from_secs(60)));
    /// ```
    pub fn extend(key: &str, ttl: Option<Duration>) -> TxnOp {
        TxnOp(pb::TxnOp {
            op: Some(pb::txn_op::Op::Extend(pb::TxnExtend {
                key: key.as_bytes().to_vec(),
                ttl_ms: ttl.map_or(0, ms),
            })),
        })
    }
}

/// The outcome of one operation of the branch that ran.
///
/// ```
/// # use kahuna_client::TxnOpResult;
/// let r = TxnOpResult { succeeded: true, kv: None };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOpResult {
    /// set/extend: it happened; delete: a key was removed; get: the key exists.
    pub succeeded: bool,
    /// set/extend: the key as written; delete: the key removed; get: the key.
    pub kv: Option<KeyValue>,
}

/// The answer to a transaction.
///
/// ```
/// # use kahuna_client::TxnResult;
/// let r = TxnResult { succeeded: false, results: vec![], revision: 4 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held (and `then` ran) or not (and `otherwise` ran).
    pub succeeded: bool,
    /// One per operation of the branch that ran, in order.
    pub results: Vec<TxnOpResult>,
    /// The store revision of the answer (the revision of its writes, if any).
    pub revision: u64,
}

/// A transaction being built; run it with [`Txn::commit`].
///
/// ```no_run
/// use kahuna_client::{Compare, CompareOp, TxnOp};
/// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
/// let r = client
///     .txn()
///     .when(Compare::value("balance/alice", CompareOp::Equal, "100"))
///     .then(TxnOp::set("balance/alice", "50"))
///     .then(TxnOp::set("balance/bob", "50"))
///     .otherwise(TxnOp::get("balance/alice"))
///     .commit()
///     .await?;
/// println!("transferred: {}", r.succeeded);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a transaction does nothing until committed"]
pub struct Txn {
    client: Client,
    compare: Vec<pb::Compare>,
    then: Vec<pb::TxnOp>,
    otherwise: Vec<pb::TxnOp>,
    fence: Option<Fence>,
}

impl Client {
    /// Starts a transaction over persistent keys and locks.
    ///
    /// ```no_run
    /// # use kahuna_client::{Compare, TxnOp};
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let created = client.txn().when(Compare::missing("k")).then(TxnOp::set("k", "v")).commit().await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub fn txn(&self) -> Txn {
        Txn {
            client: self.clone(),
            compare: Vec::new(),
            then: Vec::new(),
            otherwise: Vec::new(),
            fence: None,
        }
    }
}

impl Txn {
    /// Adds a condition; all must hold for `then` to run.
    ///
    /// ```no_run
    /// # use kahuna_client::Compare;
    /// # fn f(client: kahuna_client::Client) {
    /// let t = client.txn().when(Compare::exists("a")).when(Compare::missing("b"));
    /// # }
    /// ```
    pub fn when(mut self, compare: Compare) -> Txn {
        self.compare.push(compare.0);
        self
    }

    /// Adds an operation to run when every condition holds.
    ///
    /// ```no_run
    /// # use kahuna_client::TxnOp;
    /// # fn f(client: kahuna_client::Client) {
    /// let t = client.txn().then(TxnOp::set("a", "1"));
    /// # }
    /// ```
    pub fn then(mut self, op: TxnOp) -> Txn {
        self.then.push(op.0);
        self
    }

    /// Adds an operation to run when a condition does not hold.
    ///
    /// ```no_run
    /// # use kahuna_client::TxnOp;
    /// # fn f(client: kahuna_client::Client) {
    /// let t = client.txn().otherwise(TxnOp::get("a"));
    /// # }
    /// ```
    pub fn otherwise(mut self, op: TxnOp) -> Txn {
        self.otherwise.push(op.0);
        self
    }

    /// Applies the transaction only while `fence`'s lock is held with its token
    /// (refused with [`Error::Fenced`] otherwise).
    ///
    /// ```no_run
    /// # use kahuna_client::{Fence, TxnOp};
    /// # fn f(client: kahuna_client::Client) {
    /// let t = client.txn().then(TxnOp::set("report", "done")).fence(Fence::new("jobs/report", 42));
    /// # }
    /// ```
    pub fn fence(mut self, fence: Fence) -> Txn {
        self.fence = Some(fence);
        self
    }

    /// Sends the transaction (retried safely: it carries a request id).
    ///
    /// ```no_run
    /// # use kahuna_client::TxnOp;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let r = client.txn().then(TxnOp::set("a", "1")).then(TxnOp::set("b", "2")).commit().await?;
    /// assert!(r.succeeded);
    /// # Ok(()) }
    /// ```
    pub async fn commit(self) -> Result<TxnResult> {
        if self.then.is_empty() && self.otherwise.is_empty() && self.compare.is_empty() {
            return Err(Error::InvalidArgument(
                "a transaction needs at least one compare or operation".into(),
            ));
        }
        let msg = pb::TxnRequest {
            compare: self.compare,
            then: self.then,
            otherwise: self.otherwise,
            fence: self.fence.as_ref().map(Fence::pb),
            request_id: Some(self.client.request_id()),
        };
        let r = self.client.unary(Safety::Deduplicated, msg).await?;
        Ok(TxnResult {
            succeeded: r.succeeded,
            revision: r.revision(),
            results: r
                .results
                .into_iter()
                .map(|o| TxnOpResult {
                    succeeded: o.succeeded,
                    kv: o.kv.map(KeyValue::from_pb),
                })
                .collect(),
        })
    }
}
