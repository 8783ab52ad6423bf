//! napi-rs addon over Kahuna's core client (`kahuna-client`) for the Node package in
//! `node/`. This module is private to the package: `node/src/index.ts` gives the
//! public API (names of Kahuna's TypeScript client, AbortSignal, error classes).
//!
//! - Every call is an `async fn` run on napi's tokio runtime (the core client's
//!   runtime too): the JavaScript thread only converts arguments and results.
//! - Cancellation: JavaScript takes a token with [`cancel_new`], fires it with
//!   [`cancel_fire`] when its AbortSignal aborts and frees it with [`cancel_free`]
//!   once the call settled. A fired token drops the call's future, which cancels the
//!   gRPC request; [`in_flight`] counts the calls whose futures are still alive.
//! - Errors: the core's [`Error::code`](kahuna_client::Error::code) travels as the
//!   prefix `[CODE] ` of the message; the JavaScript layer maps it to its error
//!   classes with one table keyed by the code. A call cancelled through its token
//!   fails with `[ABORTED]`.
//! - Numbers: 64-bit values cross as JavaScript numbers (exact up to 2^53 - 1);
//!   numbers coming in must be non-negative safe integers.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use kahuna_client::{
    CampaignOptions, Client, ClientOptions, ClientTls, ClusterStatus, Compare, CompareOp, Consistency, DeleteCondition,
    DeleteOptions, DeleteResult, Durability, Error, Fence, GetOptions, HistoryEvent, KeyValue, LockInfo, LockOptions,
    Member, ScanOptions, ScanPage, SetCondition, SetOptions, SetResult, TxnOp, WatchOptions,
};
use napi::bindgen_prelude::{within_runtime_if_available, Buffer};
use napi::{Result, Status};
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

mod batch;
mod election;
mod ratelimit;
mod watch;
use batch::{many_out, NativeManyKeys, NativeSetManyItem};
use election::{leader_out, Held, NativeLeader, NativeObserver};
use ratelimit::{decision_out, policy_in, NativeRateDecision, NativeRatePolicy};
use watch::{NativeWatch, NativeWatchOptions};

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// The one conversion from the core's error to a JavaScript error: `[CODE] message`.
fn fail(e: Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {}", e.code(), e))
}

fn invalid(msg: impl Into<String>) -> napi::Error {
    fail(Error::InvalidArgument(msg.into()))
}

fn aborted() -> napi::Error {
    napi::Error::new(Status::Cancelled, "[ABORTED] the operation was aborted".to_owned())
}

// --- cancellation tokens and the in-flight count ----------------------------------------

static CANCELS: LazyLock<Mutex<HashMap<u32, CancellationToken>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_CANCEL: AtomicU32 = AtomicU32::new(1);
static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

fn cancels() -> std::sync::MutexGuard<'static, HashMap<u32, CancellationToken>> {
    CANCELS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new cancellation token for one call; returns its id.
#[napi]
pub fn cancel_new() -> u32 {
    let id = NEXT_CANCEL.fetch_add(1, Ordering::Relaxed).max(1);
    cancels().insert(id, CancellationToken::new());
    id
}

/// Cancels the call holding token `id` (no-op if it is gone).
#[napi]
pub fn cancel_fire(id: u32) {
    if let Some(t) = cancels().get(&id) {
        t.cancel();
    }
}

/// Forgets token `id` (after its call settled).
#[napi]
pub fn cancel_free(id: u32) {
    cancels().remove(&id);
}

/// Native calls whose work is still alive (for tests: an aborted call leaves none).
#[napi]
pub fn in_flight() -> i64 {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Cancellation tokens not yet freed (for tests: nothing leaks).
#[napi]
pub fn cancel_tokens() -> u32 {
    u32::try_from(cancels().len()).unwrap_or(u32::MAX)
}

/// An async call that does nothing: one hop onto the runtime and the promise's
/// resolution back, so the crossing can be timed apart from any gRPC work.
#[napi]
pub async fn ping() -> Result<()> {
    Ok(())
}

/// Microseconds per round trip of `n` wake-ups between two threads that sleep in
/// between (a channel ping-pong): the floor under any call that hands work to another
/// thread and waits for the answer, set by the machine (scheduler, virtual CPUs).
#[napi]
pub fn bench_thread_wake(n: u32) -> Result<f64> {
    let (to_peer, from_main) = std::sync::mpsc::channel::<()>();
    let (to_main, from_peer) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        while from_main.recv().is_ok() {
            if to_main.send(()).is_err() {
                break;
            }
        }
    });
    let started = std::time::Instant::now();
    for _ in 0..n {
        to_peer
            .send(())
            .map_err(|_| napi::Error::from_reason("the ping-pong thread ended"))?;
        from_peer
            .recv()
            .map_err(|_| napi::Error::from_reason("the ping-pong thread ended"))?;
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1));
    drop(to_peer);
    peer.join()
        .map_err(|_| napi::Error::from_reason("the ping-pong thread panicked"))?;
    Ok(per)
}

struct InFlight;

impl InFlight {
    fn new() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one core call, cancelled when its token fires.
async fn run<T, F>(cancel: Option<u32>, fut: F) -> Result<T>
where
    F: Future<Output = kahuna_client::Result<T>>,
{
    let _alive = InFlight::new();
    let token = cancel.and_then(|id| cancels().get(&id).cloned());
    match token {
        None => fut.await.map_err(fail),
        Some(t) => {
            tokio::select! {
                biased;
                _ = t.cancelled() => Err(aborted()),
                r = fut => r.map_err(fail),
            }
        }
    }
}

// --- conversions ------------------------------------------------------------------------

fn u64_in(what: &str, v: f64) -> Result<u64> {
    if v.is_finite() && v.fract() == 0.0 && (0.0..=MAX_SAFE).contains(&v) {
        Ok(v as u64)
    } else {
        Err(invalid(format!("{what} must be a non-negative safe integer, got {v}")))
    }
}

fn num(v: u64) -> f64 {
    v as f64
}

fn ms_in(what: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && (0.0..=MAX_SAFE).contains(&v) {
        Ok(Duration::from_secs_f64(v / 1000.0))
    } else {
        Err(invalid(format!(
            "{what} must be a non-negative number of milliseconds, got {v}"
        )))
    }
}

fn ms_out(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn durability_in(v: Option<&str>) -> Result<Durability> {
    match v {
        None | Some("persistent") => Ok(Durability::Persistent),
        Some("ephemeral") => Ok(Durability::Ephemeral),
        Some(other) => Err(invalid(format!(
            "durability must be 'persistent' or 'ephemeral', got {other:?}"
        ))),
    }
}

fn consistency_in(v: Option<&str>) -> Result<Consistency> {
    match v {
        None | Some("linearizable") => Ok(Consistency::Linearizable),
        Some("stale") => Ok(Consistency::Stale),
        Some(other) => Err(invalid(format!(
            "consistency must be 'linearizable' or 'stale', got {other:?}"
        ))),
    }
}

/// Options every call takes.
#[napi(object)]
pub struct CallOptions {
    /// Token from `cancelNew`.
    pub cancel: Option<u32>,
    /// Deadline of this call, retries included (ms).
    pub timeout_ms: Option<f64>,
}

/// A fence: the write applies only while `resource` is locked with `token`.
#[napi(object)]
pub struct NativeFence {
    pub resource: String,
    pub token: f64,
    pub durability: Option<String>,
}

fn fence_in(f: Option<NativeFence>) -> Result<Option<Fence>> {
    f.map(|f| {
        Ok(Fence {
            resource: f.resource,
            token: u64_in("fence token", f.token)?,
            durability: durability_in(f.durability.as_deref())?,
        })
    })
    .transpose()
}

/// A key and its value with revisions.
#[napi(object)]
pub struct NativeKv {
    pub key: String,
    pub value: Buffer,
    pub revision: f64,
    pub create_revision: f64,
    pub version: f64,
    pub expires_at_ms: Option<f64>,
}

fn kv_out(kv: KeyValue) -> NativeKv {
    NativeKv {
        key: kv.key,
        value: kv.value.into(),
        revision: num(kv.mod_revision),
        create_revision: num(kv.create_revision),
        version: num(kv.version),
        expires_at_ms: kv.expires_at_ms.map(num),
    }
}

#[napi(object)]
pub struct NativeGetOptions {
    pub revision: Option<f64>,
    pub consistency: Option<String>,
    pub durability: Option<String>,
}

#[napi(object)]
pub struct NativeSetOptions {
    pub ttl_ms: Option<f64>,
    /// `'always'` (default), `'ifNotExists'`, `'ifExists'`.
    pub mode: Option<String>,
    pub if_value: Option<Buffer>,
    pub if_revision: Option<f64>,
    pub durability: Option<String>,
    pub fence: Option<NativeFence>,
}

#[napi(object)]
pub struct NativeSetResult {
    pub success: bool,
    pub kv: Option<NativeKv>,
    pub revision: f64,
}

fn set_out(r: SetResult) -> NativeSetResult {
    NativeSetResult {
        success: r.succeeded,
        kv: r.kv.map(kv_out),
        revision: num(r.revision),
    }
}

#[napi(object)]
pub struct NativeDeleteOptions {
    pub if_value: Option<Buffer>,
    pub if_revision: Option<f64>,
    pub durability: Option<String>,
    pub fence: Option<NativeFence>,
}

#[napi(object)]
pub struct NativeDeleteResult {
    pub success: bool,
    pub deleted: bool,
    pub kv: Option<NativeKv>,
    pub revision: f64,
}

fn delete_out(r: DeleteResult) -> NativeDeleteResult {
    NativeDeleteResult {
        success: r.succeeded,
        deleted: r.deleted,
        kv: r.kv.map(kv_out),
        revision: num(r.revision),
    }
}

#[napi(object)]
pub struct NativeScanOptions {
    pub limit: Option<u32>,
    pub page_token: Option<Buffer>,
    pub keys_only: Option<bool>,
    pub consistency: Option<String>,
    pub durability: Option<String>,
}

fn scan_options_in(options: Option<NativeScanOptions>) -> Result<ScanOptions> {
    Ok(match options {
        None => ScanOptions::default(),
        Some(o) => ScanOptions {
            limit: o.limit.unwrap_or(0),
            page_token: o.page_token.map(|t| t.to_vec()),
            keys_only: o.keys_only.unwrap_or(false),
            consistency: consistency_in(o.consistency.as_deref())?,
            durability: durability_in(o.durability.as_deref())?,
        },
    })
}

#[napi(object)]
pub struct NativeScanPage {
    pub items: Vec<NativeKv>,
    pub next_page_token: Option<Buffer>,
    pub revision: f64,
}

fn page_out(p: ScanPage) -> NativeScanPage {
    NativeScanPage {
        items: p.kvs.into_iter().map(kv_out).collect(),
        next_page_token: p.next_page_token.map(Buffer::from),
        revision: num(p.revision),
    }
}

#[napi(object)]
pub struct NativeHistoryEvent {
    /// `'put'`, `'delete'` or `'expire'`.
    pub kind: String,
    pub kv: NativeKv,
    pub revision: f64,
}

/// History and watch events alike.
fn history_event_out(e: HistoryEvent) -> NativeHistoryEvent {
    NativeHistoryEvent {
        kind: e.kind.as_str().to_owned(),
        kv: kv_out(e.kv),
        revision: num(e.revision),
    }
}

#[napi(object)]
pub struct NativeHistory {
    pub events: Vec<NativeHistoryEvent>,
    pub retained_from_revision: f64,
    pub revision: f64,
}

/// One transaction compare.
#[napi(object)]
pub struct NativeCompare {
    /// `'value'`, `'revision'`, `'createRevision'`, `'version'`, `'exists'`, `'missing'`, `'lockToken'`.
    pub target: String,
    /// The key (the lock resource for `'lockToken'`).
    pub key: String,
    /// `'='`, `'!='`, `'>'`, `'<'` (default `'='`).
    pub op: Option<String>,
    pub value: Option<Buffer>,
    pub number: Option<f64>,
}

/// One transaction operation.
#[napi(object)]
pub struct NativeTxnOp {
    /// `'set'`, `'delete'`, `'get'`, `'extend'`.
    pub kind: String,
    pub key: String,
    pub value: Option<Buffer>,
    pub ttl_ms: Option<f64>,
}

#[napi(object)]
pub struct NativeTxnOpResult {
    pub success: bool,
    pub kv: Option<NativeKv>,
}

#[napi(object)]
pub struct NativeTxnResult {
    pub success: bool,
    pub results: Vec<NativeTxnOpResult>,
    pub revision: f64,
}

fn op_in(op: Option<&str>) -> Result<CompareOp> {
    match op {
        None | Some("=") | Some("==") => Ok(CompareOp::Equal),
        Some("!=") => Ok(CompareOp::NotEqual),
        Some(">") => Ok(CompareOp::Greater),
        Some("<") => Ok(CompareOp::Less),
        Some(o) => Err(invalid(format!("compare op must be '=', '!=', '>' or '<', got {o:?}"))),
    }
}

fn compare_in(c: NativeCompare) -> Result<Compare> {
    let op = op_in(c.op.as_deref())?;
    let number = |what: &str| -> Result<u64> {
        match c.number {
            Some(n) => u64_in(what, n),
            None => Err(invalid(format!("a {what} compare needs a number"))),
        }
    };
    Ok(match c.target.as_str() {
        "value" => match &c.value {
            Some(v) => Compare::value(&c.key, op, v.as_ref()),
            None => return Err(invalid("a value compare needs a value")),
        },
        "revision" => Compare::mod_revision(&c.key, op, number("revision")?),
        "createRevision" => Compare::create_revision(&c.key, op, number("createRevision")?),
        "version" => Compare::version(&c.key, op, number("version")?),
        "exists" => Compare::exists(&c.key),
        "missing" => Compare::missing(&c.key),
        "lockToken" => Compare::lock_token(&c.key, op, number("lockToken")?),
        other => return Err(invalid(format!("unknown compare target {other:?}"))),
    })
}

fn txn_op_in(o: NativeTxnOp) -> Result<TxnOp> {
    Ok(match o.kind.as_str() {
        "set" => {
            let value = o.value.as_ref().map(|v| v.as_ref()).unwrap_or(&[]);
            match o.ttl_ms {
                Some(t) => TxnOp::set_with_ttl(&o.key, value, ms_in("ttl", t)?),
                None => TxnOp::set(&o.key, value),
            }
        }
        "delete" => TxnOp::delete(&o.key),
        "get" => TxnOp::get(&o.key),
        "extend" => TxnOp::extend(&o.key, o.ttl_ms.map(|t| ms_in("ttl", t)).transpose()?),
        other => return Err(invalid(format!("unknown transaction operation {other:?}"))),
    })
}

#[napi(object)]
pub struct NativeRange {
    pub first: f64,
    pub count: f64,
    pub replayed: bool,
}

#[napi(object)]
pub struct NativeLockOptions {
    pub ttl_ms: Option<f64>,
    pub wait_ms: Option<f64>,
    pub retry_ms: Option<f64>,
    pub durability: Option<String>,
    pub owner: Option<String>,
}

#[napi(object)]
pub struct NativeLockInfo {
    pub resource: String,
    pub owner: String,
    pub fencing_token: f64,
    pub expires_at_ms: f64,
    pub remaining_ms: f64,
    pub durability: String,
    /// What the holder announces (an election leader's value); empty for plain locks.
    pub value: Buffer,
    /// Callers waiting in the lock's queue (`lockInfo` only; 0 elsewhere).
    pub waiters: u32,
    /// A semaphore's number of permits; 0 for a lock.
    pub permits: u32,
    /// A semaphore's permits held now; 0 for a lock.
    pub holders: u32,
}

fn lock_info_out(i: &LockInfo) -> NativeLockInfo {
    NativeLockInfo {
        resource: i.resource.clone(),
        owner: i.owner.clone(),
        fencing_token: num(i.fencing_token),
        expires_at_ms: num(i.expires_at_ms),
        remaining_ms: ms_out(i.remaining),
        durability: i.durability.as_str().to_owned(),
        value: i.value.clone().into(),
        waiters: i.waiters,
        permits: i.permits,
        holders: i.holders,
    }
}

fn lock_options_in(options: Option<NativeLockOptions>) -> Result<LockOptions> {
    let d = LockOptions::default();
    Ok(match options {
        None => d,
        Some(o) => LockOptions {
            ttl: positive_ms("expiry", o.ttl_ms, d.ttl)?,
            wait: positive_ms("wait", o.wait_ms, d.wait)?,
            retry: positive_ms("retry", o.retry_ms, d.retry)?,
            durability: durability_in(o.durability.as_deref())?,
            owner: o.owner,
        },
    })
}

#[napi(object)]
pub struct NativeCampaignOptions {
    pub ttl_ms: Option<f64>,
    /// Absent: wait until elected (or aborted).
    pub wait_ms: Option<f64>,
}

#[napi(object)]
pub struct NativeMember {
    pub id: f64,
    pub peer_addr: String,
    pub client_addr: String,
    pub voter: bool,
}

fn members_out(m: Vec<Member>) -> Vec<NativeMember> {
    m.into_iter()
        .map(|m| NativeMember {
            id: num(m.id),
            peer_addr: m.peer_addr,
            client_addr: m.client_addr,
            voter: m.voter,
        })
        .collect()
}

#[napi(object)]
pub struct NativeClusterStatus {
    pub member_id: f64,
    pub leader_id: f64,
    pub term: f64,
    pub state: String,
    pub members: Vec<NativeMember>,
    pub committed_index: f64,
    pub applied_index: f64,
    pub last_log_index: f64,
    pub snapshot_index: f64,
    pub storage: String,
}

fn status_out(s: ClusterStatus) -> NativeClusterStatus {
    NativeClusterStatus {
        member_id: num(s.member_id),
        leader_id: num(s.leader_id),
        term: num(s.term),
        state: s.state,
        members: members_out(s.members),
        committed_index: num(s.committed_index),
        applied_index: num(s.applied_index),
        last_log_index: num(s.last_log_index),
        snapshot_index: num(s.snapshot_index),
        storage: s.storage,
    }
}

#[napi(object)]
pub struct NativeClientOptions {
    pub timeout_ms: Option<f64>,
    pub attempt_timeout_ms: Option<f64>,
    pub connect_timeout_ms: Option<f64>,
    pub client_id: Option<String>,
    pub discover_members: Option<bool>,
    /// PEM CA certificate(s) to trust instead of the system's roots.
    pub ca_pem: Option<Buffer>,
    /// PEM client certificate and key (both or neither).
    pub cert_pem: Option<Buffer>,
    pub key_pem: Option<Buffer>,
    /// SHA-256 fingerprints of trusted server certificates, instead of a CA.
    pub pins: Option<Vec<String>>,
    /// Accept any server certificate (development only).
    pub insecure_skip_verify: Option<bool>,
    /// Bearer token sent with every request.
    pub token: Option<String>,
}

// --- the client -------------------------------------------------------------------------

/// A connection to a Kahuna cluster (the core client; cheap to share).
#[napi]
pub struct NativeClient {
    client: Client,
}

fn positive_ms(what: &str, v: Option<f64>, default: Duration) -> Result<Duration> {
    match v {
        None => Ok(default),
        Some(v) => ms_in(what, v),
    }
}

#[napi]
impl NativeClient {
    /// Builds a client for `endpoints`; connections are opened on first use.
    #[napi(constructor)]
    pub fn new(endpoints: Vec<String>, options: Option<NativeClientOptions>) -> Result<Self> {
        let d = ClientOptions::default();
        let options = match options {
            None => d,
            Some(o) => ClientOptions {
                client_id: o.client_id,
                timeout: positive_ms("defaultOperationTimeoutMs", o.timeout_ms, d.timeout)?,
                attempt_timeout: positive_ms("attemptTimeoutMs", o.attempt_timeout_ms, d.attempt_timeout)?,
                connect_timeout: positive_ms("connectTimeoutMs", o.connect_timeout_ms, d.connect_timeout)?,
                discover_members: o.discover_members.unwrap_or(d.discover_members),
                tls: ClientTls::from_parts(
                    o.ca_pem.map(|b| b.to_vec()),
                    &o.pins.unwrap_or_default(),
                    o.insecure_skip_verify.unwrap_or(false),
                    o.cert_pem.map(|b| b.to_vec()),
                    o.key_pem.map(|b| b.to_vec()),
                )
                .map_err(|e| fail(Error::Config(format!("TLS: {e}"))))?,
                token: o.token,
                ..d
            },
        };
        let client = within_runtime_if_available(|| Client::connect_lazy(endpoints, options)).map_err(fail)?;
        Ok(NativeClient { client })
    }

    fn with(&self, call: &Option<CallOptions>) -> Result<Client> {
        match call.as_ref().and_then(|c| c.timeout_ms) {
            None => Ok(self.client.clone()),
            Some(t) => {
                let t = ms_in("timeoutMs", t)?;
                if t.is_zero() {
                    return Err(invalid("timeoutMs must be greater than zero"));
                }
                Ok(self.client.with_timeout(t))
            }
        }
    }

    /// This client's id in request ids.
    #[napi(getter)]
    pub fn client_id(&self) -> String {
        self.client.client_id().to_owned()
    }

    /// The members this client knows.
    #[napi(getter)]
    pub fn endpoints(&self) -> Vec<String> {
        self.client.endpoints()
    }

    /// The leader's client address, when known.
    #[napi(getter)]
    pub fn leader(&self) -> Option<String> {
        self.client.leader()
    }

    #[napi]
    pub async fn get(
        &self,
        key: String,
        options: Option<NativeGetOptions>,
        call: Option<CallOptions>,
    ) -> Result<Option<NativeKv>> {
        let c = self.with(&call)?;
        let o = match options {
            None => GetOptions::default(),
            Some(o) => GetOptions {
                revision: o.revision.map(|r| u64_in("revision", r)).transpose()?,
                consistency: consistency_in(o.consistency.as_deref())?,
                durability: durability_in(o.durability.as_deref())?,
            },
        };
        let r = run(call.and_then(|c| c.cancel), c.get_with(&key, o)).await?;
        Ok(r.map(kv_out))
    }

    #[napi]
    pub async fn set(
        &self,
        key: String,
        value: Buffer,
        options: Option<NativeSetOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeSetResult> {
        let c = self.with(&call)?;
        let o = match options {
            None => SetOptions::default(),
            Some(o) => {
                let condition = match (o.mode.as_deref(), o.if_value, o.if_revision) {
                    (None | Some("always"), None, None) => SetCondition::Always,
                    (Some("ifNotExists"), None, None) => SetCondition::IfNotExists,
                    (Some("ifExists"), None, None) => SetCondition::IfExists,
                    (None, Some(v), None) => SetCondition::IfValue(v.to_vec()),
                    (None, None, Some(r)) => SetCondition::IfRevision(u64_in("ifRevision", r)?),
                    _ => return Err(invalid("give at most one of mode, ifValue and ifRevision")),
                };
                SetOptions {
                    ttl: o.ttl_ms.map(|t| ms_in("expiry", t)).transpose()?,
                    condition,
                    durability: durability_in(o.durability.as_deref())?,
                    fence: fence_in(o.fence)?,
                }
            }
        };
        let r = run(call.and_then(|c| c.cancel), c.set_with(&key, value.as_ref(), o)).await?;
        Ok(set_out(r))
    }

    #[napi]
    pub async fn delete(
        &self,
        key: String,
        options: Option<NativeDeleteOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeDeleteResult> {
        let c = self.with(&call)?;
        let o = match options {
            None => DeleteOptions::default(),
            Some(o) => DeleteOptions {
                condition: match (o.if_value, o.if_revision) {
                    (None, None) => DeleteCondition::Always,
                    (Some(v), None) => DeleteCondition::IfValue(v.to_vec()),
                    (None, Some(r)) => DeleteCondition::IfRevision(u64_in("ifRevision", r)?),
                    _ => return Err(invalid("give at most one of ifValue and ifRevision")),
                },
                durability: durability_in(o.durability.as_deref())?,
                fence: fence_in(o.fence)?,
            },
        };
        let r = run(call.and_then(|c| c.cancel), c.delete_with(&key, o)).await?;
        Ok(delete_out(r))
    }

    /// Sets a key's TTL anew (`ttl_ms` absent: no expiry).
    #[napi]
    pub async fn extend(
        &self,
        key: String,
        ttl_ms: Option<f64>,
        durability: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<NativeSetResult> {
        let c = self.with(&call)?;
        let ttl = ttl_ms.map(|t| ms_in("expiry", t)).transpose()?;
        let d = durability_in(durability.as_deref())?;
        let r = run(call.and_then(|c| c.cancel), c.extend_with(&key, ttl, d)).await?;
        Ok(set_out(r))
    }

    /// The key's revision when it exists.
    #[napi]
    pub async fn exists(
        &self,
        key: String,
        consistency: Option<String>,
        durability: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<Option<f64>> {
        let c = self.with(&call)?;
        let cons = consistency_in(consistency.as_deref())?;
        let d = durability_in(durability.as_deref())?;
        let r = run(call.and_then(|c| c.cancel), c.exists_with(&key, cons, d)).await?;
        Ok(r.map(num))
    }

    #[napi]
    pub async fn scan(
        &self,
        prefix: String,
        options: Option<NativeScanOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeScanPage> {
        let c = self.with(&call)?;
        let o = scan_options_in(options)?;
        let p = run(call.and_then(|c| c.cancel), c.scan(&prefix, o)).await?;
        Ok(page_out(p))
    }

    /// One page of the keys in `[start, end)` (an empty `end`: to the last key).
    #[napi]
    pub async fn scan_range(
        &self,
        start: String,
        end: String,
        options: Option<NativeScanOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeScanPage> {
        let c = self.with(&call)?;
        let o = scan_options_in(options)?;
        let p = run(call.and_then(|c| c.cancel), c.scan_range(&start, &end, o)).await?;
        Ok(page_out(p))
    }

    /// Reads `keys` (at most 1,000) at one revision; missing keys are left out.
    #[napi]
    pub async fn get_many(
        &self,
        keys: Vec<String>,
        consistency: Option<String>,
        durability: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<NativeManyKeys> {
        let c = self.with(&call)?;
        let o = GetOptions {
            revision: None,
            consistency: consistency_in(consistency.as_deref())?,
            durability: durability_in(durability.as_deref())?,
        };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let m = run(call.and_then(|c| c.cancel), c.get_many(&keys, o)).await?;
        Ok(many_out(m))
    }

    /// Writes every item atomically at one revision (at most 128); returns it.
    #[napi]
    pub async fn set_many(&self, items: Vec<NativeSetManyItem>, call: Option<CallOptions>) -> Result<f64> {
        let c = self.with(&call)?;
        let items: Vec<(&str, &[u8])> = items.iter().map(|i| (i.key.as_str(), i.value.as_ref())).collect();
        Ok(num(run(call.and_then(|c| c.cancel), c.set_many(&items)).await?))
    }

    /// Deletes `keys` atomically at one revision (at most 128); returns how many existed.
    #[napi]
    pub async fn delete_many(&self, keys: Vec<String>, call: Option<CallOptions>) -> Result<u32> {
        let c = self.with(&call)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let n = run(call.and_then(|c| c.cancel), c.delete_many(&keys)).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Takes `cost` units (absent or 0: 1) from limiter `name` counting by `policy`.
    #[napi]
    pub async fn check_rate(
        &self,
        name: String,
        policy: NativeRatePolicy,
        cost: Option<f64>,
        durability: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<NativeRateDecision> {
        let c = self.with(&call)?;
        let p = policy_in(&policy)?;
        let cost = cost.map(|n| u64_in("cost", n)).transpose()?.unwrap_or(1);
        let d = durability_in(durability.as_deref())?;
        let r = run(call.and_then(|c| c.cancel), c.check_rate_with(&name, p, cost, d)).await?;
        Ok(decision_out(r))
    }

    #[napi]
    pub async fn history(&self, key: String, limit: Option<u32>, call: Option<CallOptions>) -> Result<NativeHistory> {
        let c = self.with(&call)?;
        let h = run(call.and_then(|c| c.cancel), c.history(&key, limit.unwrap_or(0))).await?;
        Ok(NativeHistory {
            events: h.events.into_iter().map(history_event_out).collect(),
            retained_from_revision: num(h.retained_from_revision),
            revision: num(h.revision),
        })
    }

    /// Opens a watch; resolves once the server has it in place.
    #[napi]
    pub async fn watch(
        &self,
        key: String,
        options: Option<NativeWatchOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeWatch> {
        let c = self.with(&call)?;
        let d = WatchOptions::default();
        let o = match options {
            None => d,
            Some(o) => WatchOptions {
                prefix: o.prefix.unwrap_or(false),
                start_revision: o
                    .start_revision
                    .map(|r| u64_in("startRevision", r))
                    .transpose()?
                    .unwrap_or(0),
                progress_interval: positive_ms("progressIntervalMs", o.progress_interval_ms, d.progress_interval)?,
            },
        };
        let w = run(call.and_then(|c| c.cancel), c.watch(&key, o)).await?;
        Ok(NativeWatch::new(w))
    }

    #[napi]
    pub async fn txn(
        &self,
        compares: Vec<NativeCompare>,
        then: Vec<NativeTxnOp>,
        otherwise: Vec<NativeTxnOp>,
        fence: Option<NativeFence>,
        call: Option<CallOptions>,
    ) -> Result<NativeTxnResult> {
        let c = self.with(&call)?;
        let mut t = c.txn();
        for x in compares {
            t = t.when(compare_in(x)?);
        }
        for x in then {
            t = t.then(txn_op_in(x)?);
        }
        for x in otherwise {
            t = t.otherwise(txn_op_in(x)?);
        }
        if let Some(f) = fence_in(fence)? {
            t = t.fence(f);
        }
        let r = run(call.and_then(|c| c.cancel), t.commit()).await?;
        Ok(NativeTxnResult {
            success: r.succeeded,
            results: r
                .results
                .into_iter()
                .map(|x| NativeTxnOpResult {
                    success: x.succeeded,
                    kv: x.kv.map(kv_out),
                })
                .collect(),
            revision: num(r.revision),
        })
    }

    /// Reserves `[first, first + count)` of sequence `name`.
    #[napi]
    pub async fn next(
        &self,
        name: String,
        count: f64,
        idempotency_key: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<NativeRange> {
        let c = self.with(&call)?;
        let count = u64_in("count", count)?;
        let r = run(
            call.and_then(|c| c.cancel),
            c.next(&name, count, idempotency_key.as_deref()),
        )
        .await?;
        Ok(NativeRange {
            first: num(r.first),
            count: num(r.count),
            replayed: r.replayed,
        })
    }

    /// The next value sequence `name` would hand out.
    #[napi]
    pub async fn peek_sequence(&self, name: String, call: Option<CallOptions>) -> Result<f64> {
        let c = self.with(&call)?;
        Ok(num(run(call.and_then(|c| c.cancel), c.peek_sequence(&name)).await?))
    }

    #[napi]
    pub async fn lock(
        &self,
        resource: String,
        options: Option<NativeLockOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeLock> {
        let c = self.with(&call)?;
        let o = lock_options_in(options)?;
        let guard = run(call.and_then(|c| c.cancel), c.lock(&resource, o)).await?;
        Ok(NativeLock {
            resource,
            guard: Arc::new(Held::Lock(guard)),
        })
    }

    /// Takes one of the `permits` permits of the semaphore `name` (persistent only; 1
    /// is the lock of that name): a guard like `lock`'s, with a token of its own.
    #[napi]
    pub async fn acquire_permit(
        &self,
        name: String,
        permits: f64,
        options: Option<NativeLockOptions>,
        call: Option<CallOptions>,
    ) -> Result<NativeLock> {
        let c = self.with(&call)?;
        let permits = u32::try_from(u64_in("permits", permits)?)
            .map_err(|_| invalid(format!("permits must be at most 10000, got {permits}")))?;
        let o = lock_options_in(options)?;
        let guard = run(call.and_then(|c| c.cancel), c.acquire_permit(&name, permits, o)).await?;
        Ok(NativeLock {
            resource: name,
            guard: Arc::new(Held::Lock(guard)),
        })
    }

    /// Campaigns in election `name`: the leadership as a lock, or `null` when `waitMs`
    /// passed first. Aborting withdraws the candidacy.
    #[napi]
    pub async fn campaign(
        &self,
        name: String,
        value: Buffer,
        options: Option<NativeCampaignOptions>,
        call: Option<CallOptions>,
    ) -> Result<Option<NativeLock>> {
        let c = self.with(&call)?;
        let d = CampaignOptions::default();
        let o = match options {
            None => d,
            Some(o) => CampaignOptions {
                ttl: positive_ms("ttlMs", o.ttl_ms, d.ttl)?,
                wait: o.wait_ms.map(|w| ms_in("waitMs", w)).transpose()?,
            },
        };
        let value = value.to_vec();
        let elected = run(call.and_then(|c| c.cancel), c.campaign(&name, value, o)).await?;
        Ok(elected.map(|l| NativeLock {
            resource: name,
            guard: Arc::new(Held::Leader(l)),
        }))
    }

    /// The leader of election `name` now (a linearizable read), or `null`.
    #[napi]
    pub async fn election_leader(&self, name: String, call: Option<CallOptions>) -> Result<Option<NativeLeader>> {
        let c = self.with(&call)?;
        let l = run(call.and_then(|c| c.cancel), c.election_leader(&name)).await?;
        Ok(l.map(leader_out))
    }

    /// Opens an observer of election `name`.
    #[napi]
    pub async fn observe(&self, name: String, call: Option<CallOptions>) -> Result<NativeObserver> {
        let c = self.with(&call)?;
        let o = run(call.and_then(|c| c.cancel), c.observe(&name)).await?;
        Ok(NativeObserver::new(o))
    }

    /// Releases `resource` held by `owner` (true if it was held by that owner).
    #[napi]
    pub async fn unlock(
        &self,
        resource: String,
        owner: String,
        durability: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<bool> {
        let c = self.with(&call)?;
        let d = durability_in(durability.as_deref())?;
        run(call.and_then(|c| c.cancel), c.unlock(&resource, &owner, d)).await
    }

    #[napi]
    pub async fn lock_info(
        &self,
        resource: String,
        durability: Option<String>,
        call: Option<CallOptions>,
    ) -> Result<Option<NativeLockInfo>> {
        let c = self.with(&call)?;
        let d = durability_in(durability.as_deref())?;
        let r = run(call.and_then(|c| c.cancel), c.lock_info(&resource, d)).await?;
        Ok(r.as_ref().map(lock_info_out))
    }

    #[napi]
    pub async fn status(&self, call: Option<CallOptions>) -> Result<NativeClusterStatus> {
        let c = self.with(&call)?;
        Ok(status_out(run(call.and_then(|c| c.cancel), c.status()).await?))
    }

    #[napi]
    pub async fn members(&self, call: Option<CallOptions>) -> Result<Vec<NativeMember>> {
        let c = self.with(&call)?;
        Ok(members_out(run(call.and_then(|c| c.cancel), c.members()).await?))
    }

    #[napi]
    pub async fn add_learner(
        &self,
        id: f64,
        peer_addr: String,
        call: Option<CallOptions>,
    ) -> Result<Vec<NativeMember>> {
        let c = self.with(&call)?;
        let id = u64_in("id", id)?;
        Ok(members_out(
            run(call.and_then(|c| c.cancel), c.add_learner(id, &peer_addr)).await?,
        ))
    }

    #[napi]
    pub async fn change_membership(
        &self,
        voters: Vec<f64>,
        retain: bool,
        call: Option<CallOptions>,
    ) -> Result<Vec<NativeMember>> {
        let c = self.with(&call)?;
        let voters = voters
            .into_iter()
            .map(|v| u64_in("voter id", v))
            .collect::<Result<Vec<_>>>()?;
        Ok(members_out(
            run(call.and_then(|c| c.cancel), c.change_membership(&voters, retain)).await?,
        ))
    }

    #[napi]
    pub async fn promote(&self, id: f64, call: Option<CallOptions>) -> Result<Vec<NativeMember>> {
        let c = self.with(&call)?;
        let id = u64_in("id", id)?;
        Ok(members_out(run(call.and_then(|c| c.cancel), c.promote(id)).await?))
    }

    #[napi]
    pub async fn remove_member(&self, id: f64, call: Option<CallOptions>) -> Result<Vec<NativeMember>> {
        let c = self.with(&call)?;
        let id = u64_in("id", id)?;
        Ok(members_out(
            run(call.and_then(|c| c.cancel), c.remove_member(id)).await?,
        ))
    }

    /// `n` sequential gets of `key` made by the core client alone (no JavaScript in
    /// between), for measuring the cost of the crossing: microseconds per call.
    #[napi]
    pub async fn bench_sequential_gets(&self, key: String, n: u32, stale: Option<bool>) -> Result<f64> {
        let c = self.client.clone();
        let options = GetOptions {
            consistency: if stale.unwrap_or(false) {
                Consistency::Stale
            } else {
                Consistency::Linearizable
            },
            ..GetOptions::default()
        };
        let started = std::time::Instant::now();
        for _ in 0..n {
            c.get_with(&key, options.clone()).await.map_err(fail)?;
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1)))
    }

    #[napi]
    pub async fn trigger_snapshot(&self, call: Option<CallOptions>) -> Result<()> {
        let c = self.with(&call)?;
        run(call.and_then(|c| c.cancel), c.trigger_snapshot()).await
    }
}

// --- locks ------------------------------------------------------------------------------

/// A lock attempt's guard, or a leadership (the election's lock); renews itself while
/// held. Released (resigned) by `release()`, or when garbage-collected.
#[napi]
pub struct NativeLock {
    resource: String,
    guard: Arc<Held>,
}

#[napi]
impl NativeLock {
    #[napi(getter)]
    pub fn resource(&self) -> String {
        self.resource.clone()
    }

    /// Held now, by this guard, with a lease the client still trusts.
    #[napi(getter)]
    pub fn acquired(&self) -> bool {
        self.guard.is_acquired()
    }

    #[napi(getter)]
    pub fn fencing_token(&self) -> Option<f64> {
        self.guard.fencing_token().map(num)
    }

    #[napi(getter)]
    pub fn owner(&self) -> Option<String> {
        self.guard.owner().map(str::to_owned)
    }

    /// Who held the lock when it was not acquired.
    #[napi(getter)]
    pub fn holder(&self) -> Option<NativeLockInfo> {
        self.guard.holder().map(lock_info_out)
    }

    #[napi(getter)]
    pub fn trusted_for_ms(&self) -> f64 {
        ms_out(self.guard.trusted_for())
    }

    #[napi(getter)]
    pub fn lost_reason(&self) -> Option<String> {
        self.guard.lost_reason()
    }

    /// Resolves with the reason once the lease can no longer be trusted (or the lock is
    /// released); at once when it was never acquired.
    #[napi]
    pub async fn wait_lost(&self) -> Result<String> {
        let g = self.guard.clone();
        let lost = g.lost();
        lost.await;
        Ok(g.lost_reason().unwrap_or_else(|| "released".to_owned()))
    }

    #[napi]
    pub async fn extend(&self, ttl_ms: Option<f64>, call: Option<CallOptions>) -> Result<()> {
        let g = self.guard.clone();
        let ttl = ttl_ms.map(|t| ms_in("expiry", t)).transpose()?;
        run(call.and_then(|c| c.cancel), g.extend(ttl)).await
    }

    #[napi]
    pub async fn release(&self, call: Option<CallOptions>) -> Result<bool> {
        let g = self.guard.clone();
        run(call.and_then(|c| c.cancel), g.release()).await
    }

    /// Announces a new value as the leader (LOCK_NOT_HELD once deposed); refused for a
    /// plain lock.
    #[napi]
    pub async fn proclaim(&self, value: Buffer, call: Option<CallOptions>) -> Result<()> {
        let held = self.guard.clone();
        let value = value.to_vec();
        run(call.and_then(|c| c.cancel), async move {
            match &*held {
                Held::Leader(l) => l.proclaim(value).await,
                Held::Lock(_) => Err(Error::InvalidArgument("this lock is not a leadership".into())),
            }
        })
        .await
    }
}
