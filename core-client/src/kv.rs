//! The key/value API: get, set, compare-and-set, delete, extend, exists, scan, history.

use std::time::Duration;

use kahuna_proto::v1 as pb;

use crate::client::{Client, HasHeader};
use crate::error::{Error, Result};
use crate::retry::Safety;

/// Where a key or lock lives. The two tiers are separate namespaces.
///
/// ```
/// use kahuna_client::Durability;
/// assert_eq!(Durability::default(), Durability::Persistent);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Replicated through the Raft log and fsynced on a quorum.
    #[default]
    Persistent,
    /// Kept in the leader's memory only: fast, lost on a leader change.
    Ephemeral,
}

/// `pb()`, the wire value of an enum whose variants mirror a proto enum's by name.
macro_rules! wire_enum {
    ($t:ident => $pb:ty: $($v:ident),+) => {
        impl $t {
            pub(crate) fn pb(self) -> i32 {
                (match self {
                    $($t::$v => <$pb>::$v,)+
                }) as i32
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(Durability => pb::Durability: Persistent, Ephemeral);

impl Durability {
    pub(crate) fn from_pb(v: i32) -> Durability {
        if v == pb::Durability::Ephemeral as i32 {
            Durability::Ephemeral
        } else {
            Durability::Persistent
        }
    }

    /// `"persistent"` or `"ephemeral"`.
    ///
    /// ```
    /// # use kahuna_client::Durability;
    /// assert_eq!(Durability::Ephemeral.as_str(), "ephemeral");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Persistent => "persistent",
            Durability::Ephemeral => "ephemeral",
        }
    }
}

/// How a read is served.
///
/// ```
/// use kahuna_client::Consistency;
/// assert_eq!(Consistency::default(), Consistency::Linearizable);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// Confirmed by the leader's read-index: sees every acknowledged write.
    #[default]
    Linearizable,
    /// Served by whichever member answers, from its own state: may be stale.
    Stale,
}

wire_enum!(Consistency => pb::ReadConsistency: Linearizable, Stale);

/// A write fenced by a lock: the server refuses it with [`Error::Fenced`] unless
/// `resource` is held with exactly `token` when the write is applied.
///
/// ```
/// use kahuna_client::Fence;
/// let fence = Fence::new("jobs/nightly", 42);
/// assert_eq!(fence.token, 42);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lock's resource name.
    pub resource: String,
    /// The fencing token the holder was granted.
    pub token: u64,
    /// The lock's tier.
    pub durability: Durability,
}

impl Fence {
    /// A fence on the persistent lock `resource` with `token`.
    ///
    /// ```
    /// # use kahuna_client::Fence;
    /// let f = Fence::new("r", 7);
    /// ```
    pub fn new(resource: impl Into<String>, token: u64) -> Fence {
        Fence {
            resource: resource.into(),
            token,
            durability: Durability::Persistent,
        }
    }

    pub(crate) fn pb(&self) -> pb::Fence {
        pb::Fence {
            resource: self.resource.as_bytes().to_vec(),
            token: self.token,
            durability: self.durability.pb(),
        }
    }
}

/// A key as stored, with its revisions.
///
/// ```
/// use kahuna_client::KeyValue;
/// let kv = KeyValue { key: "k".into(), value: b"v".to_vec(), ..KeyValue::default() };
/// assert_eq!(kv.value_str(), "v");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value (empty when the read asked for keys only).
    pub value: Vec<u8>,
    /// Revision of the change that last wrote the key.
    pub mod_revision: u64,
    /// Revision of the change that created this incarnation of the key.
    pub create_revision: u64,
    /// Writes since the key was created (1 after creation).
    pub version: u64,
    /// Expiry in the leader's clock, Unix milliseconds; `None` = never.
    pub expires_at_ms: Option<u64>,
}

impl KeyValue {
    pub(crate) fn from_pb(kv: pb::KeyValue) -> KeyValue {
        KeyValue {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: kv.value,
            mod_revision: kv.mod_revision,
            create_revision: kv.create_revision,
            version: kv.version,
            expires_at_ms: (kv.expires_at_ms != 0).then_some(kv.expires_at_ms),
        }
    }

    /// The value as text (invalid UTF-8 replaced by U+FFFD).
    ///
    /// ```
    /// # use kahuna_client::KeyValue;
    /// let kv = KeyValue { value: b"42".to_vec(), ..KeyValue::default() };
    /// assert_eq!(kv.value_str().parse::<u32>().ok(), Some(42));
    /// ```
    pub fn value_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// When a set applies.
///
/// ```
/// use kahuna_client::SetCondition;
/// let only_new = SetCondition::IfNotExists;
/// let cas = SetCondition::IfValue(b"old".to_vec());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SetCondition {
    /// Always.
    #[default]
    Always,
    /// Only when the key does not exist.
    IfNotExists,
    /// Only when the key exists.
    IfExists,
    /// Only when the current value equals this (compare-and-set by value).
    IfValue(Vec<u8>),
    /// Only when the key's `mod_revision` equals this; 0 = the key must not exist
    /// (compare-and-set by revision).
    IfRevision(u64),
}

/// Options of [`Client::set_with`].
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::{SetOptions, SetCondition};
/// let o = SetOptions { ttl: Some(Duration::from_secs(30)), condition: SetCondition::IfNotExists, ..SetOptions::default() };
/// ```
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    /// Time to live; `None` = no expiry.
    pub ttl: Option<Duration>,
    /// When the write applies.
    pub condition: SetCondition,
    /// The key's tier.
    pub durability: Durability,
    /// Apply only while this lock is held with this token.
    pub fence: Option<Fence>,
}

/// The answer to a set, compare-and-set or extend.
///
/// ```
/// # use kahuna_client::{SetResult, KeyValue};
/// let r = SetResult { succeeded: false, kv: None, revision: 7 };
/// assert!(!r.succeeded);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetResult {
    /// Whether the condition held and the write happened.
    pub succeeded: bool,
    /// On success the key as written; on failure the key as it stands (`None` if absent).
    pub kv: Option<KeyValue>,
    /// The store revision of the answer.
    pub revision: u64,
}

impl SetResult {
    /// From a set's or an extend's answer.
    fn from_pb(revision: u64, succeeded: bool, kv: Option<pb::KeyValue>) -> SetResult {
        SetResult {
            succeeded,
            kv: kv.map(KeyValue::from_pb),
            revision,
        }
    }
}

/// When a delete applies.
///
/// ```
/// # use kahuna_client::DeleteCondition;
/// let c = DeleteCondition::IfRevision(12);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeleteCondition {
    /// Always.
    #[default]
    Always,
    /// Only when the current value equals this.
    IfValue(Vec<u8>),
    /// Only when the key's `mod_revision` equals this.
    IfRevision(u64),
}

/// Options of [`Client::delete_with`].
///
/// ```
/// # use kahuna_client::{DeleteOptions, DeleteCondition};
/// let o = DeleteOptions { condition: DeleteCondition::IfValue(b"v".to_vec()), ..DeleteOptions::default() };
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// When the delete applies.
    pub condition: DeleteCondition,
    /// The key's tier.
    pub durability: Durability,
    /// Apply only while this lock is held with this token.
    pub fence: Option<Fence>,
}

/// The answer to a delete.
///
/// ```
/// # use kahuna_client::DeleteResult;
/// let r = DeleteResult { succeeded: true, deleted: false, kv: None, revision: 3 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteResult {
    /// False when a compare failed.
    pub succeeded: bool,
    /// True when a key was removed.
    pub deleted: bool,
    /// The key before the delete, or as it stands when the compare failed.
    pub kv: Option<KeyValue>,
    /// The store revision of the answer.
    pub revision: u64,
}

impl DeleteResult {
    fn from_pb(r: pb::DeleteResponse) -> DeleteResult {
        DeleteResult {
            succeeded: r.succeeded,
            deleted: r.deleted,
            revision: r.revision(),
            kv: r.kv.map(KeyValue::from_pb),
        }
    }
}

/// Options of [`Client::get_with`].
///
/// ```
/// # use kahuna_client::{GetOptions, Consistency};
/// let o = GetOptions { revision: Some(10), consistency: Consistency::Stale, ..GetOptions::default() };
/// ```
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Read the value as of this revision (if still retained) instead of the latest.
    pub revision: Option<u64>,
    /// Linearizable (default) or stale.
    pub consistency: Consistency,
    /// The key's tier.
    pub durability: Durability,
}

/// Options of [`Client::scan`].
///
/// ```
/// # use kahuna_client::ScanOptions;
/// let o = ScanOptions { limit: 50, keys_only: true, ..ScanOptions::default() };
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Page size; 0 = the server's default (100). At most 1000.
    pub limit: u32,
    /// `next_page_token` of the previous page; `None` for the first page.
    pub page_token: Option<Vec<u8>>,
    /// Leave values out.
    pub keys_only: bool,
    /// Linearizable (default) or stale.
    pub consistency: Consistency,
    /// The keys' tier.
    pub durability: Durability,
}

/// One page of a scan.
///
/// ```
/// # use kahuna_client::ScanPage;
/// let p = ScanPage { kvs: vec![], next_page_token: None, revision: 0 };
/// assert!(p.is_last());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys in byte order.
    pub kvs: Vec<KeyValue>,
    /// Pass to the next [`Client::scan`] to continue; `None` on the last page.
    pub next_page_token: Option<Vec<u8>>,
    /// The store revision of the answer.
    pub revision: u64,
}

impl ScanPage {
    /// Whether this was the last page.
    ///
    /// ```
    /// # use kahuna_client::ScanPage;
    /// assert!(!ScanPage { kvs: vec![], next_page_token: Some(vec![1]), revision: 0 }.is_last());
    /// ```
    pub fn is_last(&self) -> bool {
        self.next_page_token.is_none()
    }
}

/// What happened to a key in a [`HistoryEvent`].
///
/// ```
/// # use kahuna_client::EventKind;
/// assert_eq!(EventKind::Put.as_str(), "put");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Written.
    Put,
    /// Deleted.
    Delete,
    /// Expired.
    Expire,
}

impl EventKind {
    /// `"put"`, `"delete"` or `"expire"`.
    ///
    /// ```
    /// # use kahuna_client::EventKind;
    /// assert_eq!(EventKind::Expire.as_str(), "expire");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Put => "put",
            EventKind::Delete => "delete",
            EventKind::Expire => "expire",
        }
    }
}

/// One change of a key.
///
/// ```
/// # use kahuna_client::{HistoryEvent, EventKind, KeyValue};
/// let e = HistoryEvent { kind: EventKind::Put, kv: KeyValue::default(), revision: 5 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// What happened.
    pub kind: EventKind,
    /// For a put the key as written; for delete/expire the key as it was.
    pub kv: KeyValue,
    /// The revision of the change.
    pub revision: u64,
}

impl HistoryEvent {
    pub(crate) fn from_pb(e: pb::KeyEvent) -> Self {
        HistoryEvent {
            kind: match pb::EventKind::try_from(e.kind) {
                Ok(pb::EventKind::Delete) => EventKind::Delete,
                Ok(pb::EventKind::Expire) => EventKind::Expire,
                _ => EventKind::Put,
            },
            kv: e.kv.map(KeyValue::from_pb).unwrap_or_default(),
            revision: e.revision,
        }
    }
}

/// The retained changes of a key.
///
/// ```
/// # use kahuna_client::History;
/// let h = History { events: vec![], retained_from_revision: 1, revision: 9 };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Oldest first.
    pub events: Vec<HistoryEvent>,
    /// Revisions below this are no longer retained.
    pub retained_from_revision: u64,
    /// The store revision of the answer.
    pub revision: u64,
}

fn ttl_ms(ttl: Option<Duration>) -> Result<u64> {
    match ttl {
        None => Ok(0),
        Some(d) if d.is_zero() => Err(Error::InvalidArgument("ttl must be greater than zero".into())),
        Some(d) => Ok(crate::ttl::ceil_ms(d)),
    }
}

impl Client {
    /// The latest value of `key` (linearizable), or `None` when it does not exist.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// if let Some(kv) = client.get("config/mode").await? {
    ///     println!("{} at revision {}", kv.value_str(), kv.mod_revision);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.get_with(key, GetOptions::default()).await
    }

    /// [`Client::get`] with a revision, consistency or tier.
    ///
    /// ```no_run
    /// # use kahuna_client::GetOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let old = client.get_with("k", GetOptions { revision: Some(3), ..GetOptions::default() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_with(&self, key: &str, options: GetOptions) -> Result<Option<KeyValue>> {
        let msg = pb::GetRequest {
            key: key.as_bytes().to_vec(),
            revision: options.revision.unwrap_or(0),
            consistency: options.consistency.pb(),
            durability: options.durability.pb(),
        };
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(r.kv.map(KeyValue::from_pb))
    }

    /// Sets `key` to `value` unconditionally and returns the key as written.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let kv = client.set("greeting", "hello").await?;
    /// println!("written at revision {}", kv.mod_revision);
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<KeyValue> {
        let r = self.set_with(key, value, SetOptions::default()).await?;
        match (r.succeeded, r.kv) {
            (true, Some(kv)) => Ok(kv),
            _ => Err(Error::Internal("an unconditional set was not applied".into())),
        }
    }

    /// Sets `key` with a TTL, a condition, a tier or a fence. A condition that does not
    /// hold is an answer (`succeeded == false`, with the current key), not an error.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kahuna_client::{SetOptions, SetCondition};
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let r = client
    ///     .set_with("session/42", "alive", SetOptions { ttl: Some(Duration::from_secs(30)), condition: SetCondition::IfNotExists, ..SetOptions::default() })
    ///     .await?;
    /// if !r.succeeded { println!("already there"); }
    /// # Ok(()) }
    /// ```
    pub async fn set_with(&self, key: &str, value: impl AsRef<[u8]>, options: SetOptions) -> Result<SetResult> {
        let (mut if_not_exists, mut if_exists, mut compare_value, mut compare_revision) = (false, false, None, None);
        match options.condition {
            SetCondition::Always => {}
            SetCondition::IfNotExists => if_not_exists = true,
            SetCondition::IfExists => if_exists = true,
            SetCondition::IfValue(v) => compare_value = Some(v),
            SetCondition::IfRevision(r) => compare_revision = Some(r),
        }
        let msg = pb::SetRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_ref().to_vec(),
            ttl_ms: ttl_ms(options.ttl)?,
            if_not_exists,
            if_exists,
            compare_value,
            compare_revision,
            durability: options.durability.pb(),
            fence: options.fence.as_ref().map(Fence::pb),
            request_id: Some(self.request_id()),
        };
        let r = self.unary(Safety::Deduplicated, msg).await?;
        Ok(SetResult::from_pb(r.revision(), r.succeeded, r.kv))
    }

    /// Compare-and-set by value: sets `key` to `value` only when its current value is
    /// `expected`.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let r = client.compare_and_set("mode", "primary", "draining").await?;
    /// if !r.succeeded { println!("mode changed under us: {:?}", r.kv.map(|kv| kv.value)); }
    /// # Ok(()) }
    /// ```
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<SetResult> {
        let options = SetOptions {
            condition: SetCondition::IfValue(expected.as_ref().to_vec()),
            ..SetOptions::default()
        };
        self.set_with(key, value, options).await
    }

    /// Compare-and-set by revision: sets `key` only when its `mod_revision` is
    /// `revision` (0 = only when it does not exist).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let current = client.get("counter").await?;
    /// let (n, rev) = current.map_or((0, 0), |kv| (kv.value_str().parse::<u64>().unwrap_or(0), kv.mod_revision));
    /// let r = client.compare_revision_and_set("counter", rev, (n + 1).to_string()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn compare_revision_and_set(
        &self,
        key: &str,
        revision: u64,
        value: impl AsRef<[u8]>,
    ) -> Result<SetResult> {
        let options = SetOptions {
            condition: SetCondition::IfRevision(revision),
            ..SetOptions::default()
        };
        self.set_with(key, value, options).await
    }

    /// Deletes `key`; `deleted` tells whether there was one.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let r = client.delete("greeting").await?;
    /// println!("removed: {}", r.deleted);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<DeleteResult> {
        self.delete_with(key, DeleteOptions::default()).await
    }

    /// Deletes `key` under a condition, tier or fence.
    ///
    /// ```no_run
    /// # use kahuna_client::{DeleteOptions, DeleteCondition};
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let r = client.delete_with("k", DeleteOptions { condition: DeleteCondition::IfRevision(8), ..DeleteOptions::default() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_with(&self, key: &str, options: DeleteOptions) -> Result<DeleteResult> {
        let (compare_value, compare_revision) = match options.condition {
            DeleteCondition::Always => (None, None),
            DeleteCondition::IfValue(v) => (Some(v), None),
            DeleteCondition::IfRevision(r) => (None, Some(r)),
        };
        let msg = pb::DeleteRequest {
            key: key.as_bytes().to_vec(),
            compare_value,
            compare_revision,
            durability: options.durability.pb(),
            fence: options.fence.as_ref().map(Fence::pb),
            request_id: Some(self.request_id()),
        };
        Ok(DeleteResult::from_pb(self.unary(Safety::Deduplicated, msg).await?))
    }

    /// Gives `key` a new time to live from now (`None` removes its expiry).
    /// `succeeded == false` when the key does not exist.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.extend("session/42", Some(Duration::from_secs(30))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, key: &str, ttl: Option<Duration>) -> Result<SetResult> {
        self.extend_with(key, ttl, Durability::Persistent).await
    }

    /// [`Client::extend`] for a key of the given tier.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kahuna_client::Durability;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.extend_with("session/42", Some(Duration::from_secs(5)), Durability::Ephemeral).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend_with(&self, key: &str, ttl: Option<Duration>, durability: Durability) -> Result<SetResult> {
        let msg = pb::ExtendRequest {
            key: key.as_bytes().to_vec(),
            ttl_ms: ttl_ms(ttl)?,
            durability: durability.pb(),
            request_id: Some(self.request_id()),
        };
        let r = self.unary(Safety::Deduplicated, msg).await?;
        Ok(SetResult::from_pb(r.revision(), r.succeeded, r.kv))
    }

    /// Whether `key` exists: `Some(mod_revision)` if it does.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// if client.exists("k").await?.is_some() { println!("present"); }
    /// # Ok(()) }
    /// ```
    pub async fn exists(&self, key: &str) -> Result<Option<u64>> {
        self.exists_with(key, Consistency::Linearizable, Durability::Persistent)
            .await
    }

    /// [`Client::exists`] with a consistency and tier.
    ///
    /// ```no_run
    /// # use kahuna_client::{Consistency, Durability};
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// client.exists_with("k", Consistency::Stale, Durability::Ephemeral).await?;
    /// # Ok(()) }
    /// ```
    pub async fn exists_with(
        &self,
        key: &str,
        consistency: Consistency,
        durability: Durability,
    ) -> Result<Option<u64>> {
        let msg = pb::ExistsRequest {
            key: key.as_bytes().to_vec(),
            consistency: consistency.pb(),
            durability: durability.pb(),
        };
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(r.exists.then_some(r.mod_revision))
    }

    /// One page of the keys starting with `prefix` (empty = all), in byte order.
    ///
    /// ```no_run
    /// # use kahuna_client::ScanOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let mut options = ScanOptions { limit: 100, ..ScanOptions::default() };
    /// loop {
    ///     let page = client.scan("jobs/", options.clone()).await?;
    ///     for kv in &page.kvs { println!("{}", kv.key); }
    ///     match page.next_page_token { Some(t) => options.page_token = Some(t), None => break }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn scan(&self, prefix: &str, options: ScanOptions) -> Result<ScanPage> {
        let msg = pb::ScanRequest {
            prefix: prefix.as_bytes().to_vec(),
            limit: options.limit,
            page_token: options.page_token.unwrap_or_default(),
            consistency: options.consistency.pb(),
            keys_only: options.keys_only,
            durability: options.durability.pb(),
            range_start: Vec::new(),
            range_end: Vec::new(),
        };
        self.scan_page(msg).await
    }

    /// One page of the scan `msg` asks for (a prefix or a range).
    pub(crate) async fn scan_page(&self, msg: pb::ScanRequest) -> Result<ScanPage> {
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(ScanPage {
            revision: r.revision(),
            kvs: r.kvs.into_iter().map(KeyValue::from_pb).collect(),
            next_page_token: (!r.next_page_token.is_empty()).then_some(r.next_page_token),
        })
    }

    /// Every key starting with `prefix`, paging through the whole range. Each page is
    /// a separate read, so keys changed during the scan may be seen at different
    /// revisions.
    ///
    /// ```no_run
    /// # use kahuna_client::ScanOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let all = client.scan_all("jobs/", ScanOptions::default()).await?;
    /// println!("{} jobs", all.len());
    /// # Ok(()) }
    /// ```
    pub async fn scan_all(&self, prefix: &str, mut options: ScanOptions) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        loop {
            let page = self.scan(prefix, options.clone()).await?;
            out.extend(page.kvs);
            match page.next_page_token {
                Some(t) => options.page_token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The retained changes of `key`, oldest first, at most `limit` of them (0 = the
    /// server's default of 100).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// for e in client.history("k", 0).await?.events {
    ///     println!("{} {} at {}", e.kind.as_str(), e.kv.value_str(), e.revision);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(&self, key: &str, limit: u32) -> Result<History> {
        let msg = pb::HistoryRequest {
            key: key.as_bytes().to_vec(),
            limit,
            consistency: Consistency::Linearizable.pb(),
        };
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(History {
            revision: r.revision(),
            retained_from_revision: r.retained_from_revision,
            events: r.events.into_iter().map(HistoryEvent::from_pb).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_and_zero_is_refused() {
        assert_eq!(ttl_ms(None).ok(), Some(0));
        assert_eq!(ttl_ms(Some(Duration::from_micros(1500))).ok(), Some(2));
        // Below a millisecond is 1 ms, not 0 ("no expiry").
        assert_eq!(ttl_ms(Some(Duration::from_nanos(500))).ok(), Some(1));
        assert!(ttl_ms(Some(Duration::ZERO)).is_err());
    }
}
