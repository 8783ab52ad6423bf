//! napi-rs addon over Kahuna's core client (`kahuna-client`) for the Node package in
//! `node/`. This module is private to the package: `node/src/index.ts` gives the
//! public API (names of Kahuna's TypeScript client, AbortSignal, error classes).
//!
//! - Every call is an `async fn` run on napi's tokio runtime (the core client's
//!   runtime too): the JavaScript thread only converts arguments and results. The
//!   calls share one shape, declared once by [`calls!`]: each names its arguments, its
//!   core call and its result's conversion.
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
    DeleteOptions, DeleteResult, Durability, Error, Fence, GetOptions, History, HistoryEvent, IdRange, KeyValue,
    LockInfo, LockOptions, Member, ScanOptions, ScanPage, SetCondition, SetOptions, SetResult, Txn, TxnOp, TxnResult,
};
use napi::bindgen_prelude::{within_runtime_if_available, Buffer};
use napi::{Result, Status};
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

mod batch;
mod election;
mod ratelimit;
mod subscription;
mod watch;
use batch::{items_in, many_out, strs, NativeManyKeys, NativeSetManyItem};
use election::{leader_out, proclaim, Held, NativeLeader, NativeObserver};
use ratelimit::{cost_in, decision_out, policy_in, NativeRateDecision, NativeRatePolicy};
use watch::{watch_options_in, NativeWatch, NativeWatchOptions};

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

/// An expiry, absent for none.
fn ttl_in(ttl_ms: Option<f64>) -> Result<Option<Duration>> {
    ttl_ms.map(|t| ms_in("expiry", t)).transpose()
}

/// Ids crossing as numbers (`what` names one in the error).
fn ids_in(what: &str, ids: Vec<f64>) -> Result<Vec<u64>> {
    ids.into_iter().map(|v| u64_in(what, v)).collect()
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

fn get_options_in(options: Option<NativeGetOptions>) -> Result<GetOptions> {
    Ok(match options {
        None => GetOptions::default(),
        Some(o) => GetOptions {
            revision: o.revision.map(|r| u64_in("revision", r)).transpose()?,
            ..read_options_in(o.consistency, o.durability)?
        },
    })
}

/// The options of a read at the latest revision.
fn read_options_in(consistency: Option<String>, durability: Option<String>) -> Result<GetOptions> {
    Ok(GetOptions {
        revision: None,
        consistency: consistency_in(consistency.as_deref())?,
        durability: durability_in(durability.as_deref())?,
    })
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

fn set_options_in(options: Option<NativeSetOptions>) -> Result<SetOptions> {
    let Some(o) = options else {
        return Ok(SetOptions::default());
    };
    let condition = match (o.mode.as_deref(), o.if_value, o.if_revision) {
        (None | Some("always"), None, None) => SetCondition::Always,
        (Some("ifNotExists"), None, None) => SetCondition::IfNotExists,
        (Some("ifExists"), None, None) => SetCondition::IfExists,
        (None, Some(v), None) => SetCondition::IfValue(v.to_vec()),
        (None, None, Some(r)) => SetCondition::IfRevision(u64_in("ifRevision", r)?),
        _ => return Err(invalid("give at most one of mode, ifValue and ifRevision")),
    };
    Ok(SetOptions {
        ttl: ttl_in(o.ttl_ms)?,
        condition,
        durability: durability_in(o.durability.as_deref())?,
        fence: fence_in(o.fence)?,
    })
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

fn delete_options_in(options: Option<NativeDeleteOptions>) -> Result<DeleteOptions> {
    Ok(match options {
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
    })
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

fn history_out(h: History) -> NativeHistory {
    NativeHistory {
        events: h.events.into_iter().map(history_event_out).collect(),
        retained_from_revision: num(h.retained_from_revision),
        revision: num(h.revision),
    }
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

fn txn_in(
    mut t: Txn,
    compares: Vec<NativeCompare>,
    then: Vec<NativeTxnOp>,
    otherwise: Vec<NativeTxnOp>,
    fence: Option<NativeFence>,
) -> Result<Txn> {
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
    Ok(t)
}

fn txn_out(r: TxnResult) -> NativeTxnResult {
    NativeTxnResult {
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
    }
}

#[napi(object)]
pub struct NativeRange {
    pub first: f64,
    pub count: f64,
    pub replayed: bool,
}

fn range_out(r: IdRange) -> NativeRange {
    NativeRange {
        first: num(r.first),
        count: num(r.count),
        replayed: r.replayed,
    }
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

fn campaign_options_in(options: Option<NativeCampaignOptions>) -> Result<CampaignOptions> {
    let d = CampaignOptions::default();
    Ok(match options {
        None => d,
        Some(o) => CampaignOptions {
            ttl: positive_ms("ttlMs", o.ttl_ms, d.ttl)?,
            wait: o.wait_ms.map(|w| ms_in("waitMs", w)).transpose()?,
        },
    })
}

/// A semaphore's number of permits.
fn permits_in(permits: f64) -> Result<u32> {
    u32::try_from(u64_in("permits", permits)?)
        .map_err(|_| invalid(format!("permits must be at most 10000, got {permits}")))
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

/// Declares `#[napi]` methods of the one call shape every call of `NativeClient` and
/// `NativeLock` has: the method's arguments and then `call` (timeout, cancel token);
/// `|c|` names the handle the type gives for the call (`for_call`); the expression after
/// it is the one core call, its arguments converted in place (a conversion that fails
/// returns before anything runs); the function after `=>` converts the core result
/// (none: the result crosses as it is). The core call runs under the call's cancel
/// token (see [`run`]).
///
/// A method's doc is written `#[doc = " ..."]`: napi-rs copies a doc's string literal
/// into `index.d.ts` as written, and a `///` comment passed through `macro_rules!`
/// arrives as a raw string literal (`r" ..."`), which it would copy with its `r"`.
macro_rules! calls {
    ($ty:ident { $(
        $(#[doc = $doc:tt])*
        fn $name:ident($($arg:ident: $arg_ty:ty),* $(,)?) -> $out:ty = |$c:ident| $call:expr $(=> $conv:expr)?;
    )* }) => {
        #[napi]
        impl $ty { $(
            $(#[doc = $doc])*
            #[napi]
            pub async fn $name(&self, $($arg: $arg_ty,)* call: Option<CallOptions>) -> Result<$out> {
                let $c = self.for_call(&call)?;
                run(call.and_then(|c| c.cancel), $call).await $(.map($conv))?
            }
        )* }
    };
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

    /// The client one call uses: this one, or a copy with the call's `timeoutMs`.
    fn for_call(&self, call: &Option<CallOptions>) -> Result<Client> {
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
}

calls! { NativeClient {
    fn get(key: String, options: Option<NativeGetOptions>) -> Option<NativeKv>
        = |c| c.get_with(&key, get_options_in(options)?) => |r| r.map(kv_out);
    fn set(key: String, value: Buffer, options: Option<NativeSetOptions>) -> NativeSetResult
        = |c| c.set_with(&key, value.as_ref(), set_options_in(options)?) => set_out;
    fn delete(key: String, options: Option<NativeDeleteOptions>) -> NativeDeleteResult
        = |c| c.delete_with(&key, delete_options_in(options)?) => delete_out;
    #[doc = " Sets a key's TTL anew (`ttl_ms` absent: no expiry)."]
    fn extend(key: String, ttl_ms: Option<f64>, durability: Option<String>) -> NativeSetResult
        = |c| c.extend_with(&key, ttl_in(ttl_ms)?, durability_in(durability.as_deref())?) => set_out;
    #[doc = " The key's revision when it exists."]
    fn exists(key: String, consistency: Option<String>, durability: Option<String>) -> Option<f64>
        = |c| c.exists_with(&key, consistency_in(consistency.as_deref())?, durability_in(durability.as_deref())?)
        => |r| r.map(num);
    fn scan(prefix: String, options: Option<NativeScanOptions>) -> NativeScanPage
        = |c| c.scan(&prefix, scan_options_in(options)?) => page_out;
    #[doc = " One page of the keys in `[start, end)` (an empty `end`: to the last key)."]
    fn scan_range(start: String, end: String, options: Option<NativeScanOptions>) -> NativeScanPage
        = |c| c.scan_range(&start, &end, scan_options_in(options)?) => page_out;
    #[doc = " Reads `keys` (at most 1,000) at one revision; missing keys are left out."]
    fn get_many(keys: Vec<String>, consistency: Option<String>, durability: Option<String>) -> NativeManyKeys
        = |c| c.get_many(&strs(&keys), read_options_in(consistency, durability)?) => many_out;
    #[doc = " Writes every item atomically at one revision (at most 128); returns it."]
    fn set_many(items: Vec<NativeSetManyItem>) -> f64 = |c| c.set_many(&items_in(&items)) => num;
    #[doc = " Deletes `keys` atomically at one revision (at most 128); returns how many existed."]
    fn delete_many(keys: Vec<String>) -> u32
        = |c| c.delete_many(&strs(&keys)) => |n| u32::try_from(n).unwrap_or(u32::MAX);
    #[doc = " Takes `cost` units (absent or 0: 1) from limiter `name` counting by `policy`."]
    fn check_rate(name: String, policy: NativeRatePolicy, cost: Option<f64>, durability: Option<String>)
        -> NativeRateDecision
        = |c| c.check_rate_with(&name, policy_in(&policy)?, cost_in(cost)?, durability_in(durability.as_deref())?)
        => decision_out;
    fn history(key: String, limit: Option<u32>) -> NativeHistory
        = |c| c.history(&key, limit.unwrap_or(0)) => history_out;
    #[doc = " Opens a watch; resolves once the server has it in place."]
    fn watch(key: String, options: Option<NativeWatchOptions>) -> NativeWatch
        = |c| c.watch(&key, watch_options_in(options)?) => NativeWatch::new;
    fn txn(compares: Vec<NativeCompare>, then: Vec<NativeTxnOp>, otherwise: Vec<NativeTxnOp>, fence: Option<NativeFence>)
        -> NativeTxnResult
        = |c| txn_in(c.txn(), compares, then, otherwise, fence)?.commit() => txn_out;
    #[doc = " Reserves `[first, first + count)` of sequence `name`."]
    fn next(name: String, count: f64, idempotency_key: Option<String>) -> NativeRange
        = |c| c.next(&name, u64_in("count", count)?, idempotency_key.as_deref()) => range_out;
    #[doc = " The next value sequence `name` would hand out."]
    fn peek_sequence(name: String) -> f64 = |c| c.peek_sequence(&name) => num;
    fn lock(resource: String, options: Option<NativeLockOptions>) -> NativeLock
        = |c| c.lock(&resource, lock_options_in(options)?) => |g| NativeLock::new(resource, Held::Lock(g));
    #[doc = " Takes one of the `permits` permits of the semaphore `name` (persistent only; 1"]
    #[doc = " is the lock of that name): a guard like `lock`'s, with a token of its own."]
    fn acquire_permit(name: String, permits: f64, options: Option<NativeLockOptions>) -> NativeLock
        = |c| c.acquire_permit(&name, permits_in(permits)?, lock_options_in(options)?)
        => |g| NativeLock::new(name, Held::Lock(g));
    #[doc = " Campaigns in election `name`: the leadership as a lock, or `null` when `waitMs`"]
    #[doc = " passed first. Aborting withdraws the candidacy."]
    fn campaign(name: String, value: Buffer, options: Option<NativeCampaignOptions>) -> Option<NativeLock>
        = |c| c.campaign(&name, value.to_vec(), campaign_options_in(options)?)
        => |l| l.map(|l| NativeLock::new(name, Held::Leader(l)));
    #[doc = " The leader of election `name` now (a linearizable read), or `null`."]
    fn election_leader(name: String) -> Option<NativeLeader> = |c| c.election_leader(&name) => |l| l.map(leader_out);
    #[doc = " Opens an observer of election `name`."]
    fn observe(name: String) -> NativeObserver = |c| c.observe(&name) => NativeObserver::new;
    #[doc = " Releases `resource` held by `owner` (true if it was held by that owner)."]
    fn unlock(resource: String, owner: String, durability: Option<String>) -> bool
        = |c| c.unlock(&resource, &owner, durability_in(durability.as_deref())?);
    fn lock_info(resource: String, durability: Option<String>) -> Option<NativeLockInfo>
        = |c| c.lock_info(&resource, durability_in(durability.as_deref())?) => |r| r.as_ref().map(lock_info_out);
    fn status() -> NativeClusterStatus = |c| c.status() => status_out;
    fn members() -> Vec<NativeMember> = |c| c.members() => members_out;
    fn add_learner(id: f64, peer_addr: String) -> Vec<NativeMember>
        = |c| c.add_learner(u64_in("id", id)?, &peer_addr) => members_out;
    fn change_membership(voters: Vec<f64>, retain: bool) -> Vec<NativeMember>
        = |c| c.change_membership(&ids_in("voter id", voters)?, retain) => members_out;
    fn promote(id: f64) -> Vec<NativeMember> = |c| c.promote(u64_in("id", id)?) => members_out;
    fn remove_member(id: f64) -> Vec<NativeMember> = |c| c.remove_member(u64_in("id", id)?) => members_out;
    fn trigger_snapshot() -> () = |c| c.trigger_snapshot();
} }

#[napi]
impl NativeClient {
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
}

// --- locks ------------------------------------------------------------------------------

/// A lock attempt's guard, or a leadership (the election's lock); renews itself while
/// held. Released (resigned) by `release()`, or when garbage-collected.
#[napi]
pub struct NativeLock {
    resource: String,
    guard: Arc<Held>,
}

impl NativeLock {
    fn new(resource: String, held: Held) -> NativeLock {
        NativeLock {
            resource,
            guard: Arc::new(held),
        }
    }

    /// The guard a call works on; a lock's calls take no `timeoutMs`.
    fn for_call(&self, _call: &Option<CallOptions>) -> Result<Arc<Held>> {
        Ok(self.guard.clone())
    }
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
}

calls! { NativeLock {
    fn extend(ttl_ms: Option<f64>) -> () = |g| g.extend(ttl_in(ttl_ms)?);
    fn release() -> bool = |g| g.release();
    #[doc = " Announces a new value as the leader (LOCK_NOT_HELD once deposed); refused for a"]
    #[doc = " plain lock."]
    fn proclaim(value: Buffer) -> () = |g| proclaim(&g, value.to_vec());
} }
