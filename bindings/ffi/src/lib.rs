//! C ABI over Kahuna's core client (`kahuna-client`), for the .NET package and any other
//! language with a C FFI.
//!
//! Shape of the ABI:
//!
//! - Opaque handles with `_new` / `_free` pairs: [`KahunaClient`], [`KahunaLock`],
//!   [`KahunaCancel`]. Names are `kahuna_<object>_<verb>`.
//! - Asynchronous calls take `(handle, request, cancel, user_data, callback)`. They
//!   return at once; `callback(user_data, status, result)` is called **exactly once**,
//!   from a thread of the library's tokio runtime, with status 0 or a `KAHUNA_STATUS_*`
//!   code and the error text in `result.message`. The result is valid only while the
//!   callback runs.
//! - Panics never cross the boundary: each call runs under `catch_unwind`, and a drop
//!   guard completes the callback with `KAHUNA_STATUS_PANIC` if the operation is
//!   abandoned for any reason.
//! - `cancel` (nullable) is a [`KahunaCancel`]: `kahuna_cancel_cancel` completes the call
//!   with `KAHUNA_STATUS_CANCELLED`. `kahuna_client_free` completes every call still in
//!   flight on that client with `KAHUNA_STATUS_CLOSED`.
//!
//! One process-wide multi-threaded runtime runs every call; it is created on first use.

#![allow(clippy::missing_safety_doc)]

mod types;

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use kahuna_client::{
    Client, ClientOptions, Compare, CompareOp, Consistency, DeleteCondition, DeleteOptions, Durability, Error, Fence,
    GetOptions, KeyValue, LockGuard, LockInfo, LockOptions, ScanOptions, SetCondition, SetOptions, TxnOp,
};
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;

pub use types::*;

/// Success.
pub const KAHUNA_STATUS_OK: i32 = 0;
/// Malformed request (bad key, value too large, bad TTL, null pointer, invalid UTF-8).
pub const KAHUNA_STATUS_INVALID_ARGUMENT: i32 = 1;
/// A fenced write was refused: the fencing lock is no longer held with that token.
pub const KAHUNA_STATUS_FENCED: i32 = 2;
/// The revision asked for is no longer retained.
pub const KAHUNA_STATUS_COMPACTED: i32 = 3;
/// The revision asked for is newer than the latest.
pub const KAHUNA_STATUS_FUTURE_REVISION: i32 = 4;
/// A membership change was refused.
pub const KAHUNA_STATUS_MEMBERSHIP: i32 = 5;
/// No member could serve the request before its deadline.
pub const KAHUNA_STATUS_UNAVAILABLE: i32 = 6;
/// The call's deadline passed.
pub const KAHUNA_STATUS_TIMEOUT: i32 = 7;
/// The lock is no longer held by this guard.
pub const KAHUNA_STATUS_LOCK_NOT_HELD: i32 = 8;
/// Unusable endpoints or options.
pub const KAHUNA_STATUS_CONFIG: i32 = 9;
/// The server does not implement the call.
pub const KAHUNA_STATUS_UNIMPLEMENTED: i32 = 10;
/// The server (or this library) failed unexpectedly.
pub const KAHUNA_STATUS_INTERNAL: i32 = 11;
/// An error the client could not classify; the message starts with its code.
pub const KAHUNA_STATUS_OTHER: i32 = 12;
/// The call was cancelled through its `KahunaCancel`.
pub const KAHUNA_STATUS_CANCELLED: i32 = 13;
/// The client was freed while the call was in flight.
pub const KAHUNA_STATUS_CLOSED: i32 = 14;
/// A panic inside the library was caught; the call did not complete.
pub const KAHUNA_STATUS_PANIC: i32 = 15;

/// A connection to a Kahuna cluster (`kahuna_client_new` / `kahuna_client_free`).
pub struct KahunaClient {
    client: Client,
    /// Cancelled by `kahuna_client_free`: completes the calls still in flight.
    closed: CancellationToken,
}

/// A lock attempt's guard (`kahuna_lock_acquire` / `kahuna_lock_free`). Freeing it
/// releases the lock if it is still held.
pub struct KahunaLock {
    /// Shared with the extend/release calls in flight, so freeing the handle meanwhile
    /// is safe; the lock is released when the last reference goes.
    guard: Arc<LockGuard>,
    closed: CancellationToken,
    owner: Vec<u8>,
}

/// A cancellation source for one or more calls (`kahuna_cancel_new` / `kahuna_cancel_free`).
pub struct KahunaCancel {
    token: CancellationToken,
}

/// An error on its way to the callback.
#[derive(Debug)]
struct FfiError {
    status: i32,
    message: String,
}

impl FfiError {
    fn new(status: i32, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(KAHUNA_STATUS_INVALID_ARGUMENT, message)
    }

    fn panic(payload: Box<dyn Any + Send>) -> FfiError {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        FfiError::new(KAHUNA_STATUS_PANIC, format!("panic in kahuna-ffi: {what}"))
    }
}

/// The one mapping from the core client's errors to status codes.
impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        let status = match &e {
            Error::InvalidArgument(_) => KAHUNA_STATUS_INVALID_ARGUMENT,
            Error::Fenced(_) => KAHUNA_STATUS_FENCED,
            Error::Compacted(_) => KAHUNA_STATUS_COMPACTED,
            Error::FutureRevision(_) => KAHUNA_STATUS_FUTURE_REVISION,
            Error::Membership(_) => KAHUNA_STATUS_MEMBERSHIP,
            Error::Unavailable(_) => KAHUNA_STATUS_UNAVAILABLE,
            Error::Timeout { .. } => KAHUNA_STATUS_TIMEOUT,
            Error::LockNotHeld(_) => KAHUNA_STATUS_LOCK_NOT_HELD,
            Error::Config(_) => KAHUNA_STATUS_CONFIG,
            Error::Unimplemented(_) => KAHUNA_STATUS_UNIMPLEMENTED,
            Error::Internal(_) => KAHUNA_STATUS_INTERNAL,
            _ => KAHUNA_STATUS_OTHER,
        };
        FfiError::new(status, e.to_string())
    }
}

/// What a call answers, owned; [`deliver`] lends it to the callback as a [`KahunaResult`].
#[derive(Default)]
struct Answer {
    succeeded: bool,
    deleted: bool,
    revision: u64,
    kv: Option<KeyValue>,
    kvs: Vec<(bool, Option<KeyValue>)>,
    next_page_token: Vec<u8>,
    first: u64,
    count: u64,
    lock: Option<Box<KahunaLock>>,
    lock_info: Option<LockInfo>,
}

type Outcome = Result<Answer, FfiError>;
type BoxedOp = Pin<Box<dyn Future<Output = Outcome> + Send>>;

fn bytes(b: &[u8]) -> KahunaBytes {
    KahunaBytes {
        ptr: if b.is_empty() { ptr::null() } else { b.as_ptr() },
        len: b.len(),
    }
}

const NO_BYTES: KahunaBytes = KahunaBytes {
    ptr: ptr::null(),
    len: 0,
};

const NO_KV: KahunaKeyValue = KahunaKeyValue {
    present: 0,
    succeeded: 0,
    key: NO_BYTES,
    value: NO_BYTES,
    mod_revision: 0,
    create_revision: 0,
    version: 0,
    expires_at_ms: 0,
};

fn kv_view(kv: Option<&KeyValue>, succeeded: bool) -> KahunaKeyValue {
    match kv {
        None => KahunaKeyValue {
            succeeded: u8::from(succeeded),
            ..NO_KV
        },
        Some(kv) => KahunaKeyValue {
            present: 1,
            succeeded: u8::from(succeeded),
            key: bytes(kv.key.as_bytes()),
            value: bytes(&kv.value),
            mod_revision: kv.mod_revision,
            create_revision: kv.create_revision,
            version: kv.version,
            expires_at_ms: kv.expires_at_ms.unwrap_or(0),
        },
    }
}

fn lock_info_view(info: Option<&LockInfo>) -> KahunaLockInfo {
    match info {
        None => KahunaLockInfo {
            present: 0,
            owner: NO_BYTES,
            fencing_token: 0,
            expires_at_ms: 0,
            remaining_ms: 0,
        },
        Some(i) => KahunaLockInfo {
            present: 1,
            owner: bytes(i.owner.as_bytes()),
            fencing_token: i.fencing_token,
            expires_at_ms: i.expires_at_ms,
            remaining_ms: i.remaining.as_millis().min(u64::MAX as u128) as u64,
        },
    }
}

fn empty_result() -> KahunaResult {
    KahunaResult {
        message: NO_BYTES,
        succeeded: 0,
        deleted: 0,
        revision: 0,
        kv: NO_KV,
        kvs: ptr::null(),
        kvs_len: 0,
        next_page_token: NO_BYTES,
        first: 0,
        count: 0,
        lock: ptr::null_mut(),
        lock_info: lock_info_view(None),
    }
}

/// Calls the callback with `outcome`; everything lent to it is dropped afterwards.
fn deliver(callback: KahunaCallback, user_data: u64, outcome: Outcome) {
    let Some(cb) = callback else {
        return;
    };
    match outcome {
        Err(e) => {
            let mut r = empty_result();
            r.message = bytes(e.message.as_bytes());
            let status = if e.status == KAHUNA_STATUS_OK {
                KAHUNA_STATUS_INTERNAL
            } else {
                e.status
            };
            // SAFETY: the callback contract of the ABI; `r` and the message outlive the call.
            unsafe { cb(user_data, status, &r) };
        }
        Ok(a) => {
            let kvs: Vec<KahunaKeyValue> = a.kvs.iter().map(|(ok, kv)| kv_view(kv.as_ref(), *ok)).collect();
            let mut r = empty_result();
            r.succeeded = u8::from(a.succeeded);
            r.deleted = u8::from(a.deleted);
            r.revision = a.revision;
            r.kv = kv_view(a.kv.as_ref(), a.succeeded);
            r.kvs = if kvs.is_empty() { ptr::null() } else { kvs.as_ptr() };
            r.kvs_len = kvs.len();
            r.next_page_token = bytes(&a.next_page_token);
            r.first = a.first;
            r.count = a.count;
            r.lock_info = lock_info_view(a.lock_info.as_ref());
            // Ownership of the lock handle passes to the callee.
            r.lock = a.lock.map_or(ptr::null_mut(), |l| Box::into_raw(l).cast());
            // SAFETY: as above; `kvs` and `a` outlive the call.
            unsafe { cb(user_data, KAHUNA_STATUS_OK, &r) };
        }
    }
}

/// Completes a call exactly once: by [`Completion::finish`], or, if the operation is
/// dropped unfinished (a panic unwinding, a runtime shutting down), by its `Drop`.
struct Completion {
    callback: KahunaCallback,
    user_data: u64,
    done: bool,
}

impl Completion {
    fn new(callback: KahunaCallback, user_data: u64) -> Completion {
        Completion {
            callback,
            user_data,
            done: false,
        }
    }

    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        deliver(self.callback, self.user_data, outcome);
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            if SHUTTING_DOWN.load(Ordering::SeqCst) {
                return;
            }
            let e = FfiError::new(KAHUNA_STATUS_PANIC, "the operation was abandoned before it completed");
            deliver(self.callback, self.user_data, Err(e));
        }
    }
}

enum RuntimeState {
    NotStarted,
    Running(Runtime),
    Stopped,
}

static RUNTIME: Mutex<RuntimeState> = Mutex::new(RuntimeState::NotStarted);

/// Set by `kahuna_runtime_shutdown`: abandoned calls are then not completed, because the
/// host is exiting and may no longer accept callbacks.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

fn runtime() -> Result<Handle, FfiError> {
    let mut state = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let RuntimeState::NotStarted = *state {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kahuna-ffi")
            .enable_all()
            .build()
            .map_err(|e| {
                FfiError::new(
                    KAHUNA_STATUS_INTERNAL,
                    format!("cannot start the kahuna-ffi runtime: {e}"),
                )
            })?;
        *state = RuntimeState::Running(rt);
    }
    match &*state {
        RuntimeState::Running(rt) => Ok(rt.handle().clone()),
        _ => Err(FfiError::new(
            KAHUNA_STATUS_CLOSED,
            "the kahuna-ffi runtime was shut down",
        )),
    }
}

/// Stops the library's runtime threads, for hosts that must not exit with foreign threads
/// attached (Mono hangs at exit otherwise). Call it once, when the process exits: later
/// calls fail with `KAHUNA_STATUS_CLOSED`, and calls in flight are not completed.
#[no_mangle]
pub extern "C" fn kahuna_runtime_shutdown() {
    guarded((), || {
        SHUTTING_DOWN.store(true, Ordering::SeqCst);
        let state = {
            let mut state = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *state, RuntimeState::Stopped)
        };
        if let RuntimeState::Running(rt) = state {
            if Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_millis(500));
            }
        }
    })
}

/// Runs one asynchronous call: `prepare` (on the caller's thread) validates and copies
/// the request and returns the operation; the operation runs on the runtime, racing the
/// call's cancel token and the client's close. The callback is called exactly once.
fn start<P>(callback: KahunaCallback, user_data: u64, cancel: *const KahunaCancel, prepare: P)
where
    P: FnOnce() -> Result<(CancellationToken, BoxedOp), FfiError>,
{
    let completion = Completion::new(callback, user_data);
    let cancel = unsafe { cancel.as_ref() }.map(|c| c.token.clone());
    let prepared = match catch_unwind(AssertUnwindSafe(prepare)) {
        Ok(p) => p,
        Err(payload) => Err(FfiError::panic(payload)),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return completion.finish(Err(e)),
    };
    match prepared {
        Err(e) => {
            rt.spawn(async move { completion.finish(Err(e)) });
        }
        Ok((closed, op)) => {
            rt.spawn(async move {
                let cancelled = async move {
                    match cancel {
                        Some(t) => t.cancelled().await,
                        None => std::future::pending().await,
                    }
                };
                let outcome = tokio::select! {
                    biased;
                    _ = closed.cancelled() => Err(FfiError::new(KAHUNA_STATUS_CLOSED, "the client was disposed")),
                    _ = cancelled => Err(FfiError::new(KAHUNA_STATUS_CANCELLED, "the operation was cancelled")),
                    r = AssertUnwindSafe(op).catch_unwind() => r.unwrap_or_else(|p| Err(FfiError::panic(p))),
                };
                completion.finish(outcome);
            });
        }
    }
}

/// Runs a synchronous entry point, turning a panic into `fallback`.
fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

// ---- decoding borrowed input -------------------------------------------------------

unsafe fn slice<'a>(b: KahunaBytes) -> Result<&'a [u8], FfiError> {
    if b.len == 0 {
        Ok(&[])
    } else if b.ptr.is_null() {
        Err(FfiError::invalid("null pointer with a non-zero length"))
    } else {
        Ok(std::slice::from_raw_parts(b.ptr, b.len))
    }
}

unsafe fn owned_bytes(b: KahunaBytes) -> Result<Vec<u8>, FfiError> {
    slice(b).map(<[u8]>::to_vec)
}

unsafe fn string(b: KahunaBytes, what: &str) -> Result<String, FfiError> {
    let s = slice(b)?;
    std::str::from_utf8(s)
        .map(str::to_owned)
        .map_err(|_| FfiError::invalid(format!("{what} is not valid UTF-8")))
}

unsafe fn array<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T], FfiError> {
    if len == 0 {
        Ok(&[])
    } else if p.is_null() {
        Err(FfiError::invalid(format!(
            "{what}: null pointer with a non-zero length"
        )))
    } else {
        Ok(std::slice::from_raw_parts(p, len))
    }
}

unsafe fn request<'a, T>(p: *const T) -> Result<&'a T, FfiError> {
    p.as_ref().ok_or_else(|| FfiError::invalid("request is null"))
}

unsafe fn client<'a>(p: *const KahunaClient) -> Result<&'a KahunaClient, FfiError> {
    p.as_ref().ok_or_else(|| FfiError::invalid("client handle is null"))
}

unsafe fn lock<'a>(p: *const KahunaLock) -> Result<&'a KahunaLock, FfiError> {
    p.as_ref().ok_or_else(|| FfiError::invalid("lock handle is null"))
}

fn durability(d: i32) -> Result<Durability, FfiError> {
    match d {
        0 => Ok(Durability::Persistent),
        1 => Ok(Durability::Ephemeral),
        _ => Err(FfiError::invalid(format!("unknown durability {d}"))),
    }
}

fn consistency(c: i32) -> Result<Consistency, FfiError> {
    match c {
        0 => Ok(Consistency::Linearizable),
        1 => Ok(Consistency::Stale),
        _ => Err(FfiError::invalid(format!("unknown consistency {c}"))),
    }
}

fn ttl(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

unsafe fn fence(f: &KahunaFence) -> Result<Option<Fence>, FfiError> {
    if f.present == 0 {
        return Ok(None);
    }
    Ok(Some(Fence {
        resource: string(f.resource, "fence resource")?,
        token: f.token,
        durability: durability(f.durability)?,
    }))
}

fn compare_op(op: i32) -> Result<CompareOp, FfiError> {
    match op {
        0 => Ok(CompareOp::Equal),
        1 => Ok(CompareOp::NotEqual),
        2 => Ok(CompareOp::Greater),
        3 => Ok(CompareOp::Less),
        _ => Err(FfiError::invalid(format!("unknown compare operator {op}"))),
    }
}

unsafe fn compare(c: &KahunaCompare) -> Result<Compare, FfiError> {
    let key = string(c.key, "compare key")?;
    let op = compare_op(c.op)?;
    Ok(match c.kind {
        0 => Compare::value(&key, op, slice(c.value)?),
        1 => Compare::mod_revision(&key, op, c.number),
        2 => Compare::create_revision(&key, op, c.number),
        3 => Compare::version(&key, op, c.number),
        4 => Compare::exists(&key),
        5 => Compare::missing(&key),
        6 => Compare::lock_token(&key, op, c.number),
        k => return Err(FfiError::invalid(format!("unknown compare kind {k}"))),
    })
}

unsafe fn txn_op(o: &KahunaTxnOp) -> Result<TxnOp, FfiError> {
    let key = string(o.key, "operation key")?;
    Ok(match o.kind {
        0 => match ttl(o.ttl_ms) {
            Some(t) => TxnOp::set_with_ttl(&key, slice(o.value)?, t),
            None => TxnOp::set(&key, slice(o.value)?),
        },
        1 => TxnOp::delete(&key),
        2 => TxnOp::get(&key),
        3 => TxnOp::extend(&key, ttl(o.ttl_ms)),
        k => return Err(FfiError::invalid(format!("unknown transaction operation {k}"))),
    })
}

// ---- cancellation --------------------------------------------------------------------

/// A new cancellation source. Pass it to any number of calls; free it with
/// `kahuna_cancel_free` (calls already started keep their own reference).
#[no_mangle]
pub extern "C" fn kahuna_cancel_new() -> *mut KahunaCancel {
    guarded(ptr::null_mut(), || {
        Box::into_raw(Box::new(KahunaCancel {
            token: CancellationToken::new(),
        }))
    })
}

/// Cancels every call started with `cancel`: each completes with `KAHUNA_STATUS_CANCELLED`
/// unless it already completed.
#[no_mangle]
pub unsafe extern "C" fn kahuna_cancel_cancel(cancel: *const KahunaCancel) {
    guarded((), || {
        if let Some(c) = cancel.as_ref() {
            c.token.cancel();
        }
    })
}

/// Frees a cancellation source (null is ignored).
#[no_mangle]
pub unsafe extern "C" fn kahuna_cancel_free(cancel: *mut KahunaCancel) {
    guarded((), || {
        if !cancel.is_null() {
            drop(Box::from_raw(cancel));
        }
    })
}

// ---- client --------------------------------------------------------------------------

/// Creates a client for the cluster at `endpoints` (`host:port` strings; any subset of
/// the members). No I/O happens here: connections open on the first call. Returns 0
/// and stores the handle in `*out_client`, or a status and stores the error text in
/// `*out_error` (free it with `kahuna_bytes_free`).
#[no_mangle]
pub unsafe extern "C" fn kahuna_client_new(
    endpoints: *const KahunaBytes,
    endpoints_len: usize,
    options: *const KahunaClientOptions,
    out_client: *mut *mut KahunaClient,
    out_error: *mut KahunaBytes,
) -> i32 {
    let made = catch_unwind(AssertUnwindSafe(|| -> Result<*mut KahunaClient, FfiError> {
        let list = array(endpoints, endpoints_len, "endpoints")?;
        let mut names = Vec::with_capacity(list.len());
        for e in list {
            names.push(string(*e, "endpoint")?);
        }
        let mut o = ClientOptions::default();
        if let Some(opts) = options.as_ref() {
            if opts.timeout_ms > 0 {
                o.timeout = Duration::from_millis(opts.timeout_ms);
            }
            if opts.attempt_timeout_ms > 0 {
                o.attempt_timeout = Duration::from_millis(opts.attempt_timeout_ms);
            }
            if opts.connect_timeout_ms > 0 {
                o.connect_timeout = Duration::from_millis(opts.connect_timeout_ms);
            }
            let id = string(opts.client_id, "client id")?;
            if !id.is_empty() {
                o.client_id = Some(id);
            }
        }
        let rt = runtime()?;
        let _enter = rt.enter();
        let client = Client::connect_lazy(names, o)?;
        Ok(Box::into_raw(Box::new(KahunaClient {
            client,
            closed: CancellationToken::new(),
        })))
    }))
    .unwrap_or_else(|p| Err(FfiError::panic(p)));
    match made {
        Ok(c) => {
            if let Some(out) = out_client.as_mut() {
                *out = c;
                KAHUNA_STATUS_OK
            } else {
                kahuna_client_free(c);
                KAHUNA_STATUS_INVALID_ARGUMENT
            }
        }
        Err(e) => {
            if let Some(out) = out_error.as_mut() {
                let b: Box<[u8]> = e.message.into_bytes().into_boxed_slice();
                let len = b.len();
                *out = KahunaBytes {
                    ptr: Box::into_raw(b).cast::<u8>(),
                    len,
                };
            }
            e.status
        }
    }
}

/// Frees bytes this library allocated for the caller (the error of `kahuna_client_new`).
#[no_mangle]
pub unsafe extern "C" fn kahuna_bytes_free(b: KahunaBytes) {
    guarded((), || {
        if !b.ptr.is_null() {
            let s = ptr::slice_from_raw_parts_mut(b.ptr.cast_mut(), b.len);
            drop(Box::from_raw(s));
        }
    })
}

/// Frees a client. Calls still in flight complete with `KAHUNA_STATUS_CLOSED`; locks
/// taken through it stay valid until freed themselves.
#[no_mangle]
pub unsafe extern "C" fn kahuna_client_free(client: *mut KahunaClient) {
    guarded((), || {
        if !client.is_null() {
            let c = Box::from_raw(client);
            c.closed.cancel();
            let rt = runtime().ok();
            let _enter = rt.as_ref().map(Handle::enter);
            drop(c);
        }
    })
}

fn op<F>(closed: &CancellationToken, f: F) -> Result<(CancellationToken, BoxedOp), FfiError>
where
    F: Future<Output = Outcome> + Send + 'static,
{
    Ok((closed.clone(), Box::pin(f)))
}

// ---- key/value -----------------------------------------------------------------------

/// Reads a key. Result: `kv` (`kv.present == 0` when there is none).
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_get(
    client_handle: *const KahunaClient,
    req: *const KahunaGetRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let key = string(r.key, "key")?;
        let options = GetOptions {
            revision: (r.revision > 0).then_some(r.revision),
            consistency: consistency(r.consistency)?,
            durability: durability(r.durability)?,
        };
        let cl = c.client.clone();
        op(&c.closed, async move {
            let kv = cl.get_with(&key, options).await?;
            Ok(Answer {
                succeeded: kv.is_some(),
                revision: kv.as_ref().map_or(0, |k| k.mod_revision),
                kv,
                ..Answer::default()
            })
        })
    })
}

/// Sets a key under a condition. Result: `succeeded`, `revision`, `kv` (the key as
/// written, or the current key when the condition failed).
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_set(
    client_handle: *const KahunaClient,
    req: *const KahunaSetRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let key = string(r.key, "key")?;
        let value = owned_bytes(r.value)?;
        let condition = match r.condition {
            0 => SetCondition::Always,
            1 => SetCondition::IfNotExists,
            2 => SetCondition::IfExists,
            3 => SetCondition::IfValue(owned_bytes(r.compare_value)?),
            4 => SetCondition::IfRevision(r.compare_revision),
            k => return Err(FfiError::invalid(format!("unknown set condition {k}"))),
        };
        let options = SetOptions {
            ttl: ttl(r.ttl_ms),
            condition,
            durability: durability(r.durability)?,
            fence: fence(&r.fence)?,
        };
        let cl = c.client.clone();
        op(&c.closed, async move {
            let s = cl.set_with(&key, value, options).await?;
            Ok(Answer {
                succeeded: s.succeeded,
                revision: s.revision,
                kv: s.kv,
                ..Answer::default()
            })
        })
    })
}

/// Deletes a key under a condition. Result: `succeeded`, `deleted`, `revision`, `kv`
/// (the current key when the condition failed).
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_delete(
    client_handle: *const KahunaClient,
    req: *const KahunaDeleteRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let key = string(r.key, "key")?;
        let condition = match r.condition {
            0 => DeleteCondition::Always,
            3 => DeleteCondition::IfValue(owned_bytes(r.compare_value)?),
            4 => DeleteCondition::IfRevision(r.compare_revision),
            k => return Err(FfiError::invalid(format!("unknown delete condition {k}"))),
        };
        let options = DeleteOptions {
            condition,
            durability: durability(r.durability)?,
            fence: fence(&r.fence)?,
        };
        let cl = c.client.clone();
        op(&c.closed, async move {
            let d = cl.delete_with(&key, options).await?;
            Ok(Answer {
                succeeded: d.succeeded,
                deleted: d.deleted,
                revision: d.revision,
                kv: d.kv,
                ..Answer::default()
            })
        })
    })
}

/// Gives a key a new TTL. Result: `succeeded` (false when the key does not exist), `kv`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_extend(
    client_handle: *const KahunaClient,
    req: *const KahunaExtendRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let key = string(r.key, "key")?;
        let d = durability(r.durability)?;
        let t = ttl(r.ttl_ms);
        let cl = c.client.clone();
        op(&c.closed, async move {
            let s = cl.extend_with(&key, t, d).await?;
            Ok(Answer {
                succeeded: s.succeeded,
                revision: s.revision,
                kv: s.kv,
                ..Answer::default()
            })
        })
    })
}

/// Whether a key exists. Result: `succeeded` (exists) and `revision` (its mod revision).
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_exists(
    client_handle: *const KahunaClient,
    req: *const KahunaExistsRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let key = string(r.key, "key")?;
        let cons = consistency(r.consistency)?;
        let d = durability(r.durability)?;
        let cl = c.client.clone();
        op(&c.closed, async move {
            let rev = cl.exists_with(&key, cons, d).await?;
            Ok(Answer {
                succeeded: rev.is_some(),
                revision: rev.unwrap_or(0),
                ..Answer::default()
            })
        })
    })
}

/// One page of the keys starting with a prefix. Result: `kvs`, `next_page_token`
/// (empty on the last page), `revision`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_scan(
    client_handle: *const KahunaClient,
    req: *const KahunaScanRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let prefix = string(r.prefix, "prefix")?;
        let token = owned_bytes(r.page_token)?;
        let options = ScanOptions {
            limit: r.limit,
            page_token: (!token.is_empty()).then_some(token),
            keys_only: r.keys_only != 0,
            consistency: consistency(r.consistency)?,
            durability: durability(r.durability)?,
        };
        let cl = c.client.clone();
        op(&c.closed, async move {
            let page = cl.scan(&prefix, options).await?;
            Ok(Answer {
                succeeded: true,
                revision: page.revision,
                kvs: page.kvs.into_iter().map(|kv| (true, Some(kv))).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
                ..Answer::default()
            })
        })
    })
}

// ---- transactions --------------------------------------------------------------------

/// Commits an atomic transaction over persistent keys. Result: `succeeded` (whether the
/// compares held and `then` ran), `revision`, and in `kvs` one entry per operation of
/// the branch that ran (`succeeded`, and the key for gets).
#[no_mangle]
pub unsafe extern "C" fn kahuna_txn_commit(
    client_handle: *const KahunaClient,
    req: *const KahunaTxnRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let mut txn = c.client.txn();
        for cmp in array(r.compares, r.compares_len, "compares")? {
            txn = txn.when(compare(cmp)?);
        }
        for o in array(r.then_ops, r.then_len, "then")? {
            txn = txn.then(txn_op(o)?);
        }
        for o in array(r.else_ops, r.else_len, "else")? {
            txn = txn.otherwise(txn_op(o)?);
        }
        if let Some(f) = fence(&r.fence)? {
            txn = txn.fence(f);
        }
        op(&c.closed, async move {
            let t = txn.commit().await?;
            Ok(Answer {
                succeeded: t.succeeded,
                revision: t.revision,
                kvs: t.results.into_iter().map(|o| (o.succeeded, o.kv)).collect(),
                ..Answer::default()
            })
        })
    })
}

// ---- sequences -----------------------------------------------------------------------

/// Reserves identifiers. Result: `first`, `count` (the range `[first, first + count)`),
/// `succeeded` = replayed (the range was reserved earlier under the same key).
#[no_mangle]
pub unsafe extern "C" fn kahuna_sequence_next(
    client_handle: *const KahunaClient,
    req: *const KahunaSequenceRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let name = string(r.name, "sequence name")?;
        let key = string(r.idempotency_key, "idempotency key")?;
        let count = r.count;
        let cl = c.client.clone();
        op(&c.closed, async move {
            let key = (!key.is_empty()).then_some(key);
            let range = cl.next(&name, count, key.as_deref()).await?;
            Ok(Answer {
                succeeded: range.replayed,
                first: range.first,
                count: range.count,
                ..Answer::default()
            })
        })
    })
}

// ---- locks ---------------------------------------------------------------------------

/// Tries to take a lock, waiting and retrying as asked. Result: `succeeded` (acquired),
/// `lock` (a new handle in both cases, which the callee owns and frees with
/// `kahuna_lock_free`), `lock_info` (the holder when known).
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_acquire(
    client_handle: *const KahunaClient,
    req: *const KahunaLockRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let resource = string(r.resource, "resource")?;
        let owner = string(r.owner, "owner")?;
        let mut options = LockOptions {
            ttl: Duration::from_millis(r.ttl_ms),
            wait: Duration::from_millis(r.wait_ms),
            durability: durability(r.durability)?,
            owner: (!owner.is_empty()).then_some(owner),
            ..LockOptions::default()
        };
        if r.retry_ms > 0 {
            options.retry = Duration::from_millis(r.retry_ms);
        }
        let cl = c.client.clone();
        let closed = c.closed.clone();
        op(&c.closed, async move {
            let guard = cl.lock(&resource, options).await?;
            let owner = guard.owner().unwrap_or_default().as_bytes().to_vec();
            Ok(Answer {
                succeeded: guard.is_acquired(),
                lock_info: guard.holder().cloned(),
                lock: Some(Box::new(KahunaLock {
                    guard: Arc::new(guard),
                    closed,
                    owner,
                })),
                ..Answer::default()
            })
        })
    })
}

/// Who holds a lock. Result: `lock_info` (`present == 0` when free).
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_get_info(
    client_handle: *const KahunaClient,
    req: *const KahunaLockInfoRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let c = client(client_handle)?;
        let r = request(req)?;
        let resource = string(r.resource, "resource")?;
        let d = durability(r.durability)?;
        let cl = c.client.clone();
        op(&c.closed, async move {
            let info = cl.lock_info(&resource, d).await?;
            Ok(Answer {
                succeeded: info.is_some(),
                lock_info: info,
                ..Answer::default()
            })
        })
    })
}

/// Renews a held lock now. Fails with `KAHUNA_STATUS_LOCK_NOT_HELD` when it is no
/// longer this guard's.
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_extend(
    lock_handle: *const KahunaLock,
    req: *const KahunaLockExtendRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let l = lock(lock_handle)?;
        let r = request(req)?;
        let t = ttl(r.ttl_ms);
        let guard = l.guard.clone();
        op(&l.closed, async move {
            guard.extend(t).await?;
            Ok(Answer {
                succeeded: true,
                ..Answer::default()
            })
        })
    })
}

/// Releases a lock and stops renewing it. Result: `succeeded` (the server released it).
/// The handle must still be freed.
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_release(
    lock_handle: *const KahunaLock,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let l = lock(lock_handle)?;
        let guard = l.guard.clone();
        op(&l.closed, async move {
            let released = guard.release().await?;
            Ok(Answer {
                succeeded: released,
                ..Answer::default()
            })
        })
    })
}

/// Completes (status 0) when the lock stops being held: lost, expired, released or
/// freed. Completes at once for a lock that was not acquired.
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_on_lost(
    lock_handle: *const KahunaLock,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    start(callback, user_data, cancel, || {
        let l = lock(lock_handle)?;
        let lost = l.guard.lost();
        // Not tied to the client's close: a lock outlives its client handle.
        let never = CancellationToken::new();
        op(&never, async move {
            lost.await;
            Ok(Answer::default())
        })
    })
}

/// Whether the lock is held and its lease still trusted by the client's clock.
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_is_acquired(lock_handle: *const KahunaLock) -> u8 {
    guarded(0, || {
        lock_handle.as_ref().map_or(0, |l| u8::from(l.guard.is_acquired()))
    })
}

/// The fencing token of the grant (0 when not acquired).
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_fencing_token(lock_handle: *const KahunaLock) -> u64 {
    guarded(0, || {
        lock_handle.as_ref().and_then(|l| l.guard.fencing_token()).unwrap_or(0)
    })
}

/// The owner name the lock was taken as (empty when not acquired). Borrowed from the
/// handle: valid until `kahuna_lock_free`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_owner(lock_handle: *const KahunaLock) -> KahunaBytes {
    guarded(NO_BYTES, || lock_handle.as_ref().map_or(NO_BYTES, |l| bytes(&l.owner)))
}

/// Frees a lock handle, releasing the lock (in the background) if it is still held.
#[no_mangle]
pub unsafe extern "C" fn kahuna_lock_free(lock_handle: *mut KahunaLock) {
    guarded((), || {
        if !lock_handle.is_null() {
            let l = Box::from_raw(lock_handle);
            let rt = runtime().ok();
            let _enter = rt.as_ref().map(Handle::enter);
            drop(l);
        }
    })
}

#[cfg(test)]
mod tests;
