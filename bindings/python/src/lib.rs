//! `kahuna._native`: the pyo3 extension module under the `kahuna` Python package.
//!
//! A thin skin over the core client (`kahuna-client`): routing, retries, exactly-once
//! request ids, lease renewal and the lost-lock signal all come from the core. The
//! pure-Python layer (`python/kahuna/`) gives the idiomatic API; this module only
//! moves plain values (str, bytes, int, float, tuples) across.
//!
//! Every client call takes a trailing `cb`:
//!
//! - `cb=None`: the call blocks the calling thread **with the GIL released** and
//!   returns the result (or raises).
//! - `cb=callable`: the call is spawned on the module's tokio runtime and returns a
//!   `Pending` handle at once; `cb(ok, value)` is called exactly once, from a runtime
//!   thread holding the GIL, with `ok=True` and the result or `ok=False` and the
//!   exception, unless `Pending.cancel()` came first: then the native call is dropped
//!   (its future is cancelled) and `cb` is never called.
//!
//! Errors become exceptions through one factory registered by the Python package
//! (`set_error_factory`), called with `(code, message, retryable)` where `code` is
//! exactly [`kahuna_client::Error::code`]; the table from code to class lives there.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kahuna_client::{
    CampaignOptions, Client, ClientOptions, ClientTls, ClusterStatus, Compare, CompareOp, Consistency, DeleteCondition,
    DeleteOptions, DeleteResult, Durability, Error, Fence, GetOptions, History, HistoryEvent, KeyValue, Leader,
    Leadership, LockGuard, LockInfo, LockOptions, Member, Observer, ScanOptions, ScanPage, SetCondition, SetOptions,
    SetResult, TxnOp, TxnResult, WatchOptions,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

mod batch;
mod election;
mod ratelimit;
mod shutdown;
mod stream;
mod watch;
use batch::many_keys;
use election::{leader, Held, NativeObserver};
use ratelimit::{decision, PolicyArg};
use shutdown::with_python;
use watch::NativeWatch;

/// Native calls spawned and not yet finished (completed, cancelled or dropped).
static INFLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Live native clients and locks.
static HANDLES: AtomicUsize = AtomicUsize::new(0);
/// `kahuna._errors.make_error(code, message, retryable) -> Exception`.
static ERROR_FACTORY: OnceLock<Py<PyAny>> = OnceLock::new();
static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
/// How often a blocking call looks at Python's signal handlers (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);
static SIGNAL_TICK: OnceLock<Arc<tokio::sync::Notify>> = OnceLock::new();

/// Notified every [`SIGNAL_CHECK`] by one task on the runtime.
fn signal_tick() -> Arc<tokio::sync::Notify> {
    SIGNAL_TICK
        .get_or_init(|| {
            let n = Arc::new(tokio::sync::Notify::new());
            let ticker = n.clone();
            if let Ok(rt) = runtime() {
                rt.spawn(async move {
                    let mut every = tokio::time::interval(SIGNAL_CHECK);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        every.tick().await;
                        ticker.notify_waiters();
                    }
                });
            }
            n
        })
        .clone()
}

fn runtime() -> PyResult<&'static Runtime> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kahuna-rt")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the kahuna runtime: {e}"))
    });
    rt.as_ref().map_err(|e| PyRuntimeError::new_err(e.clone()))
}

/// The one conversion from a core error to a Python exception (via the package's table).
fn to_pyerr(py: Python<'_>, e: &Error) -> PyErr {
    let message = e.to_string();
    match ERROR_FACTORY.get() {
        Some(f) => match f.call1(py, (e.code(), message.as_str(), e.is_retryable())) {
            Ok(exc) => PyErr::from_value(exc.into_bound(py)),
            Err(err) => err,
        },
        None => PyRuntimeError::new_err(format!("{}: {message}", e.code())),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

fn duration(seconds: f64, what: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        invalid(format!(
            "{what} must be a non-negative number of seconds, got {seconds}"
        ))
    })
}

fn opt_duration(seconds: Option<f64>, what: &str) -> Result<Option<Duration>, Error> {
    seconds.map(|s| duration(s, what)).transpose()
}

fn durability(ephemeral: bool) -> Durability {
    if ephemeral {
        Durability::Ephemeral
    } else {
        Durability::Persistent
    }
}

fn consistency(stale: bool) -> Consistency {
    if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    }
}

/// The options of a scan, prefix or range, from the call's arguments.
fn scan_options(
    limit: u32,
    page_token: Option<&Bound<'_, PyBytes>>,
    keys_only: bool,
    stale: bool,
    ephemeral: bool,
) -> ScanOptions {
    ScanOptions {
        limit,
        page_token: page_token.map(bytes_arg),
        keys_only,
        consistency: consistency(stale),
        durability: durability(ephemeral),
    }
}

type FenceArg = (String, u64, bool);

fn fence(f: Option<FenceArg>) -> Option<Fence> {
    f.map(|(resource, token, ephemeral)| Fence {
        resource,
        token,
        durability: durability(ephemeral),
    })
}

struct InflightGuard;

impl InflightGuard {
    fn new() -> InflightGuard {
        INFLIGHT.fetch_add(1, Ordering::SeqCst);
        InflightGuard
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A native call in flight for an asyncio awaitable.
#[pyclass(frozen, module = "kahuna._native")]
struct Pending {
    token: CancellationToken,
}

#[pymethods]
impl Pending {
    /// Cancels the native call (its future is dropped); the callback is not called.
    fn cancel(&self) {
        self.token.cancel();
    }
}

/// Runs `fut` either blocking (GIL released) or spawned with a completion callback.
fn run<T, F, C>(py: Python<'_>, cb: Option<Py<PyAny>>, fut: F, conv: C) -> PyResult<Py<PyAny>>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let rt = runtime()?;
    match cb {
        None => {
            if tokio::runtime::Handle::try_current().is_ok() {
                return Err(PyRuntimeError::new_err(
                    "a blocking kahuna call cannot run on kahuna's own runtime thread (use a thread or the AsyncClient)",
                ));
            }
            // Waits with the GIL released, looking at Python's signals every
            // SIGNAL_CHECK so that Ctrl-C (KeyboardInterrupt) ends a long wait and
            // drops, i.e. cancels, the native call.
            let r = py.detach(|| {
                rt.block_on(async move {
                    let mut fut = std::pin::pin!(fut);
                    let ticker = signal_tick();
                    loop {
                        // One shared ticker instead of a timer per call: registering a
                        // timer per call costs a wake-up of the runtime's timer driver.
                        let tick = ticker.notified();
                        tokio::select! {
                            biased;
                            r = &mut fut => return Ok(r),
                            _ = tick => {
                                Python::attach(|py| py.check_signals())?;
                            }
                        }
                    }
                })
            });
            match r {
                Ok(Ok(v)) => conv(py, v),
                Ok(Err(e)) => Err(to_pyerr(py, &e)),
                Err(interrupted) => Err(interrupted),
            }
        }
        Some(cb) => {
            let token = CancellationToken::new();
            let cancelled = token.clone();
            let guard = InflightGuard::new();
            rt.spawn(async move {
                let _guard = guard;
                tokio::select! {
                    r = fut => {
                        with_python(|py| {
                            let (ok, value) = match r.map_err(|e| to_pyerr(py, &e)).and_then(|v| conv(py, v)) {
                                Ok(v) => (true, v),
                                Err(e) => (false, e.into_value(py).into_any()),
                            };
                            if let Err(e) = cb.call1(py, (ok, value)) {
                                e.write_unraisable(py, None);
                            }
                        });
                    }
                    _ = cancelled.cancelled() => {}
                }
            });
            Py::new(py, Pending { token }).map(Py::into_any)
        }
    }
}

/// A native call: the future that makes it and the conversion of its result for Python.
struct Call<F, C> {
    fut: F,
    conv: C,
}

/// Pairs a call's future with its conversion; the bounds here let a conversion closure's
/// `Python<'_>` argument be inferred for every lifetime, as [`run`] needs.
fn call<T, F, C>(fut: F, conv: C) -> Call<F, C>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    Call { fut, conv }
}

impl<F, C> Call<F, C> {
    fn run<T>(self, py: Python<'_>, cb: Option<Py<PyAny>>) -> PyResult<Py<PyAny>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, Error>> + Send + 'static,
        C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    {
        run(py, cb, self.fut, self.conv)
    }
}

/// A `#[pymethods]` block of a handle class: the methods under `impl` as written, then
/// its native calls, which all have one shape. `fn name(args) |py, h| { ...; call(future,
/// conversion) }` becomes the method `name(args, cb=None)` that clones `self.<field>`
/// into `h` and runs the [`Call`] its body builds through [`run`]: blocking with the GIL
/// released when `cb` is None, else spawned with `cb` as the completion callback. The body
/// may return an error (`?`) before anything runs.
macro_rules! pymethods_with_calls {
    (
        impl $class:ident { $($method:tt)* }
        calls($field:ident) {
            $(
                $(#[$meta:meta])*
                fn $name:ident($($arg:ident: $ty:ty),* $(,)?) |$py:ident, $handle:ident| $body:block
            )*
        }
    ) => {
        #[pymethods]
        impl $class {
            $($method)*
            $(
                $(#[$meta])*
                #[pyo3(signature = ($($arg,)* cb=None))]
                #[allow(clippy::too_many_arguments)]
                fn $name(&self, $py: Python<'_>, $($arg: $ty,)* cb: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
                    let $handle = self.$field.clone();
                    let call: Call<_, _> = $body;
                    call.run($py, cb)
                }
            )*
        }
    };
}

fn any<T: for<'py> IntoPyObject<'py>>(py: Python<'_>, v: T) -> PyResult<Py<PyAny>> {
    v.into_py_any(py)
}

/// A core error from checking a call's arguments, raised before the call runs.
fn checked<T>(py: Python<'_>, r: Result<T, Error>) -> PyResult<T> {
    r.map_err(|e| to_pyerr(py, &e))
}

/// The result of a call that returns nothing.
fn none(py: Python<'_>, (): ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

type KvTuple = (String, Py<PyBytes>, u64, u64, u64, Option<u64>);

fn kv(py: Python<'_>, kv: KeyValue) -> KvTuple {
    (
        kv.key,
        PyBytes::new(py, &kv.value).unbind(),
        kv.mod_revision,
        kv.create_revision,
        kv.version,
        kv.expires_at_ms,
    )
}

fn set_result(py: Python<'_>, r: SetResult) -> PyResult<Py<PyAny>> {
    any(py, (r.succeeded, r.kv.map(|k| kv(py, k)), r.revision))
}

fn delete_result(py: Python<'_>, r: DeleteResult) -> PyResult<Py<PyAny>> {
    any(py, (r.succeeded, r.deleted, r.kv.map(|k| kv(py, k)), r.revision))
}

fn scan_page(py: Python<'_>, p: ScanPage) -> PyResult<Py<PyAny>> {
    let kvs: Vec<KvTuple> = p.kvs.into_iter().map(|k| kv(py, k)).collect();
    let token = p.next_page_token.map(|t| PyBytes::new(py, &t).unbind());
    any(py, (kvs, token, p.revision))
}

type EventTuple = (&'static str, KvTuple, u64);

/// History and watch events alike: `(kind, kv, revision)`.
fn events(py: Python<'_>, events: Vec<HistoryEvent>) -> Vec<EventTuple> {
    events
        .into_iter()
        .map(|e| (e.kind.as_str(), kv(py, e.kv), e.revision))
        .collect()
}

fn history(py: Python<'_>, h: History) -> PyResult<Py<PyAny>> {
    any(py, (events(py, h.events), h.retained_from_revision, h.revision))
}

fn txn_result(py: Python<'_>, r: TxnResult) -> PyResult<Py<PyAny>> {
    let results: Vec<(bool, Option<KvTuple>)> = r
        .results
        .into_iter()
        .map(|o| (o.succeeded, o.kv.map(|k| kv(py, k))))
        .collect();
    any(py, (r.succeeded, results, r.revision))
}

/// `(resource, owner, token, expires_at_ms, remaining, ephemeral, value, waiters,
/// permits, holders)`.
type LockInfoTuple = (String, String, u64, u64, f64, bool, Vec<u8>, u32, u32, u32);

fn lock_info(i: &LockInfo) -> LockInfoTuple {
    (
        i.resource.clone(),
        i.owner.clone(),
        i.fencing_token,
        i.expires_at_ms,
        i.remaining.as_secs_f64(),
        i.durability == Durability::Ephemeral,
        i.value.clone(),
        i.waiters,
        i.permits,
        i.holders,
    )
}

type MemberTuple = (u64, String, String, bool);

fn member(m: Member) -> MemberTuple {
    (m.id, m.peer_addr, m.client_addr, m.voter)
}

fn members(py: Python<'_>, ms: Vec<Member>) -> PyResult<Py<PyAny>> {
    any(py, ms.into_iter().map(member).collect::<Vec<_>>())
}

fn status(py: Python<'_>, s: ClusterStatus) -> PyResult<Py<PyAny>> {
    let ms: Vec<MemberTuple> = s.members.into_iter().map(member).collect();
    any(
        py,
        (
            s.member_id,
            s.leader_id,
            s.term,
            s.state,
            ms,
            (s.committed_index, s.applied_index, s.last_log_index, s.snapshot_index),
            s.storage,
        ),
    )
}

/// `(kind, value, revision)`: a write's condition, with the value for `if_value` and the
/// revision for `if_revision`.
type ConditionArg = (String, Vec<u8>, u64);

fn set_condition((kind, value, revision): ConditionArg) -> Result<SetCondition, Error> {
    Ok(match kind.as_str() {
        "always" => SetCondition::Always,
        "if_not_exists" => SetCondition::IfNotExists,
        "if_exists" => SetCondition::IfExists,
        "if_value" => SetCondition::IfValue(value),
        "if_revision" => SetCondition::IfRevision(revision),
        other => return Err(invalid(format!("unknown set condition {other:?}"))),
    })
}

fn delete_condition((kind, value, revision): ConditionArg) -> Result<DeleteCondition, Error> {
    Ok(match kind.as_str() {
        "always" => DeleteCondition::Always,
        "if_value" => DeleteCondition::IfValue(value),
        "if_revision" => DeleteCondition::IfRevision(revision),
        other => return Err(invalid(format!("unknown delete condition {other:?}"))),
    })
}

fn compare_op(op: &str) -> Result<CompareOp, Error> {
    Ok(match op {
        "==" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        ">" => CompareOp::Greater,
        "<" => CompareOp::Less,
        other => return Err(invalid(format!("unknown compare operator {other:?} (==, !=, >, <)"))),
    })
}

/// `(target, key, op, value, number)` with target one of value, mod_revision,
/// create_revision, version, exists, missing, lock_token (key = resource).
type CompareArg = (String, String, String, Vec<u8>, u64);
/// `(kind, key, value, ttl_seconds)` with kind one of set, delete, get, extend.
type OpArg = (String, String, Vec<u8>, Option<f64>);

fn compare(c: &CompareArg) -> Result<Compare, Error> {
    let (target, key, op, value, number) = c;
    Ok(match target.as_str() {
        "value" => Compare::value(key, compare_op(op)?, value),
        "mod_revision" => Compare::mod_revision(key, compare_op(op)?, *number),
        "create_revision" => Compare::create_revision(key, compare_op(op)?, *number),
        "version" => Compare::version(key, compare_op(op)?, *number),
        "exists" => Compare::exists(key),
        "missing" => Compare::missing(key),
        "lock_token" => Compare::lock_token(key, compare_op(op)?, *number),
        other => return Err(invalid(format!("unknown compare target {other:?}"))),
    })
}

fn txn_op(o: &OpArg) -> Result<TxnOp, Error> {
    let (kind, key, value, ttl) = o;
    let ttl = opt_duration(*ttl, "ttl")?;
    Ok(match (kind.as_str(), ttl) {
        ("set", None) => TxnOp::set(key, value),
        ("set", Some(t)) => TxnOp::set_with_ttl(key, value, t),
        ("delete", _) => TxnOp::delete(key),
        ("get", _) => TxnOp::get(key),
        ("extend", t) => TxnOp::extend(key, t),
        (other, _) => return Err(invalid(format!("unknown transaction operation {other:?}"))),
    })
}

/// `Tls` as plain values: CA PEM, pins, insecure, client certificate PEM, client key PEM.
type TlsArg = (Option<Vec<u8>>, Vec<String>, bool, Option<Vec<u8>>, Option<Vec<u8>>);

/// Opens a client: `lazy` skips the connect-time discovery (no I/O until the first call).
#[pyfunction]
#[pyo3(signature = (endpoints, client_id, timeout, attempt_timeout, connect_timeout, discover_members, tls, token, lazy, cb=None))]
#[allow(clippy::too_many_arguments)]
fn connect(
    py: Python<'_>,
    endpoints: Vec<String>,
    client_id: Option<String>,
    timeout: f64,
    attempt_timeout: f64,
    connect_timeout: f64,
    discover_members: bool,
    tls: TlsArg,
    token: Option<String>,
    lazy: bool,
    cb: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let built = (|| -> Result<ClientOptions, Error> {
        let (ca, pins, insecure, cert, key) = tls;
        Ok(ClientOptions {
            client_id,
            timeout: duration(timeout, "timeout")?,
            attempt_timeout: duration(attempt_timeout, "attempt_timeout")?,
            connect_timeout: duration(connect_timeout, "connect_timeout")?,
            discover_members,
            tls: ClientTls::from_parts(ca, &pins, insecure, cert, key)
                .map_err(|e| Error::Config(format!("TLS: {e}")))?,
            token,
            ..ClientOptions::default()
        })
    })();
    let options = checked(py, built)?;
    let rt = runtime()?;
    let client = {
        let _enter = rt.enter();
        checked(py, Client::connect_lazy(endpoints, options))?
    };
    let conv = |py: Python<'_>, c: Client| any(py, NativeClient::new(c));
    if lazy {
        return match cb {
            None => conv(py, client),
            Some(_) => run(py, cb, async move { Ok(client) }, conv),
        };
    }
    run(
        py,
        cb,
        async move {
            // Client::connect = connect_lazy + discovery; a cluster status call does the
            // same round (finds a member that answers, learns the leader).
            client.status().await?;
            Ok(client)
        },
        conv,
    )
}

/// Registers the function that turns `(code, message, retryable)` into an exception.
#[pyfunction]
fn set_error_factory(factory: Py<PyAny>) {
    let _ = ERROR_FACTORY.set(factory);
}

/// Native calls spawned for asyncio and not finished yet.
#[pyfunction]
fn inflight() -> usize {
    INFLIGHT.load(Ordering::SeqCst)
}

/// Live native clients and locks.
#[pyfunction]
fn live_handles() -> usize {
    HANDLES.load(Ordering::SeqCst)
}

#[pyclass(frozen, module = "kahuna._native", name = "Client")]
struct NativeClient {
    client: Client,
}

impl NativeClient {
    fn new(client: Client) -> NativeClient {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        NativeClient { client }
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}

fn bytes_arg(b: &Bound<'_, PyBytes>) -> Vec<u8> {
    b.as_bytes().to_vec()
}

pymethods_with_calls! {
    impl NativeClient {
        fn client_id(&self) -> String {
            self.client.client_id().to_owned()
        }

        fn endpoints(&self) -> Vec<String> {
            self.client.endpoints()
        }

        fn leader(&self) -> Option<String> {
            self.client.leader()
        }

        fn with_timeout(&self, py: Python<'_>, timeout: f64) -> PyResult<NativeClient> {
            let t = checked(py, duration(timeout, "timeout"))?;
            if t.is_zero() {
                return Err(PyValueError::new_err("timeout must be greater than zero"));
            }
            Ok(NativeClient::new(self.client.with_timeout(t)))
        }

        /// `n` sequential gets of `key` from the Rust core alone (no Python in the loop),
        /// for measuring the cost of the crossing; returns the elapsed seconds.
        #[pyo3(signature = (key, n, stale=false))]
        fn bench_core_gets(&self, py: Python<'_>, key: String, n: u32, stale: bool) -> PyResult<f64> {
            let c = self.client.clone();
            let options = GetOptions {
                consistency: consistency(stale),
                ..GetOptions::default()
            };
            let timed = async move {
                let start = Instant::now();
                for _ in 0..n {
                    c.get_with(&key, options.clone()).await?;
                }
                Ok(start.elapsed().as_secs_f64())
            };
            run(py, None, timed, |py, s: f64| any(py, s))?.extract(py)
        }
    }

    calls(client) {
        fn get(key: String, revision: u64, stale: bool, ephemeral: bool) |py, c| {
            let options = GetOptions {
                revision: (revision != 0).then_some(revision),
                consistency: consistency(stale),
                durability: durability(ephemeral),
            };
            call(async move { c.get_with(&key, options).await }, |py, r: Option<KeyValue>| {
                any(py, r.map(|k| kv(py, k)))
            })
        }

        fn set(
            key: String,
            value: &Bound<'_, PyBytes>,
            ttl: Option<f64>,
            condition: ConditionArg,
            ephemeral: bool,
            fence_: Option<FenceArg>,
        ) |py, c| {
            let value = bytes_arg(value);
            let options = (|| -> Result<SetOptions, Error> {
                Ok(SetOptions {
                    ttl: opt_duration(ttl, "ttl")?,
                    condition: set_condition(condition)?,
                    durability: durability(ephemeral),
                    fence: fence(fence_),
                })
            })();
            let options = checked(py, options)?;
            call(async move { c.set_with(&key, value, options).await }, set_result)
        }

        fn delete(key: String, condition: ConditionArg, ephemeral: bool, fence_: Option<FenceArg>) |py, c| {
            let options = DeleteOptions {
                condition: checked(py, delete_condition(condition))?,
                durability: durability(ephemeral),
                fence: fence(fence_),
            };
            call(async move { c.delete_with(&key, options).await }, delete_result)
        }

        fn extend(key: String, ttl: Option<f64>, ephemeral: bool) |py, c| {
            let ttl = checked(py, opt_duration(ttl, "ttl"))?;
            call(async move { c.extend_with(&key, ttl, durability(ephemeral)).await }, set_result)
        }

        fn exists(key: String, stale: bool, ephemeral: bool) |py, c| {
            call(
                async move { c.exists_with(&key, consistency(stale), durability(ephemeral)).await },
                |py, r: Option<u64>| any(py, r),
            )
        }

        /// One page of the keys under `start` (`end` None: a prefix scan) or in
        /// `[start, end)` (an empty `end`: to the last key).
        fn scan(
            start: String,
            end: Option<String>,
            limit: u32,
            page_token: Option<&Bound<'_, PyBytes>>,
            keys_only: bool,
            stale: bool,
            ephemeral: bool,
        ) |py, c| {
            let options = scan_options(limit, page_token, keys_only, stale, ephemeral);
            let read = async move {
                match end {
                    None => c.scan(&start, options).await,
                    Some(end) => c.scan_range(&start, &end, options).await,
                }
            };
            call(read, scan_page)
        }

        /// The keys of `keys` that exist, at one revision: `([kv, ...], revision)`.
        fn get_many(keys: Vec<String>, stale: bool, ephemeral: bool) |py, c| {
            let options = GetOptions {
                revision: None,
                consistency: consistency(stale),
                durability: durability(ephemeral),
            };
            let read = async move {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                c.get_many(&keys, options).await
            };
            call(read, many_keys)
        }

        /// Writes every `(key, value)` atomically; the revision of the write.
        fn set_many(items: Vec<(String, Vec<u8>)>) |py, c| {
            let write = async move {
                let items: Vec<(&str, &[u8])> = items.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                c.set_many(&items).await
            };
            call(write, |py, r: u64| any(py, r))
        }

        /// Deletes every key of `keys` atomically; how many existed.
        fn delete_many(keys: Vec<String>) |py, c| {
            let write = async move {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                c.delete_many(&keys).await
            };
            call(write, |py, n: usize| any(py, n))
        }

        fn history(key: String, limit: u32) |py, c| {
            call(async move { c.history(&key, limit).await }, history)
        }

        /// Opens a watch once the server has it in place: a `Watch` handle.
        fn watch(key: String, prefix: bool, start_revision: u64, progress_interval: f64) |py, c| {
            let options = WatchOptions {
                prefix,
                start_revision,
                progress_interval: checked(py, duration(progress_interval, "progress_interval"))?,
            };
            call(async move { c.watch(&key, options).await }, |py, w| any(py, NativeWatch::new(w)))
        }

        fn txn(compares: Vec<CompareArg>, then: Vec<OpArg>, otherwise: Vec<OpArg>, fence_: Option<FenceArg>) |py, c| {
            let built = (|| -> Result<kahuna_client::Txn, Error> {
                let mut t = c.txn();
                for cmp in &compares {
                    t = t.when(compare(cmp)?);
                }
                for o in &then {
                    t = t.then(txn_op(o)?);
                }
                for o in &otherwise {
                    t = t.otherwise(txn_op(o)?);
                }
                if let Some(f) = fence(fence_) {
                    t = t.fence(f);
                }
                Ok(t)
            })();
            let t = checked(py, built)?;
            call(async move { t.commit().await }, txn_result)
        }

        fn next(name: String, count: u64, idempotency_key: Option<String>) |py, c| {
            call(
                async move { c.next(&name, count, idempotency_key.as_deref()).await },
                |py, r: kahuna_client::IdRange| any(py, (r.first, r.count, r.replayed)),
            )
        }

        fn peek_sequence(name: String) |py, c| {
            call(async move { c.peek_sequence(&name).await }, |py, r: u64| any(py, r))
        }

        /// Takes `cost` units from the limiter `name` if it has them:
        /// `(allowed, remaining, retry_after_seconds, revision)`.
        fn check_rate(name: String, policy: PolicyArg, cost: u64, ephemeral: bool) |py, c| {
            let policy = checked(py, ratelimit::policy(&policy))?;
            call(
                async move { c.check_rate_with(&name, policy, cost, durability(ephemeral)).await },
                |py, d| any(py, decision(d)),
            )
        }

        fn lock(
            resource: String,
            ttl: f64,
            wait: f64,
            retry: f64,
            ephemeral: bool,
            owner: Option<String>,
        ) |py, c| {
            let options = checked(py, lock_options(ttl, wait, retry, durability(ephemeral), owner))?;
            call(async move { c.lock(&resource, options).await }, lock_handle)
        }

        /// Takes one of the `permits` permits of the semaphore `name` (persistent): a
        /// `Lock` handle holding the permit (its own lease and fencing token), or not
        /// acquired when `wait` passed first.
        fn acquire_permit(
            name: String,
            permits: u32,
            ttl: f64,
            wait: f64,
            retry: f64,
            owner: Option<String>,
        ) |py, c| {
            let options = checked(py, lock_options(ttl, wait, retry, Durability::Persistent, owner))?;
            call(async move { c.acquire_permit(&name, permits, options).await }, lock_handle)
        }

        /// Campaigns in election `name`: a `Lock` handle holding the leadership, or None
        /// when `wait` (seconds; None: forever) passed first.
        fn campaign(name: String, value: Vec<u8>, ttl: f64, wait: Option<f64>) |py, c| {
            let options = (|| -> Result<CampaignOptions, Error> {
                Ok(CampaignOptions {
                    ttl: duration(ttl, "ttl")?,
                    wait: opt_duration(wait, "wait")?,
                })
            })();
            let options = checked(py, options)?;
            call(
                async move { c.campaign(&name, value, options).await },
                |py, l: Option<Leadership>| any(py, l.map(NativeLock::leader)),
            )
        }

        /// The leader of election `name` as `(owner, epoch, value)`, or None.
        fn election_leader(name: String) |py, c| {
            call(async move { c.election_leader(&name).await }, |py, l: Option<Leader>| {
                any(py, l.map(|l| leader(py, l)))
            })
        }

        /// Opens an observer of election `name`: an `Observer` handle.
        fn observe(name: String) |py, c| {
            call(async move { c.observe(&name).await }, |py, o: Observer| {
                any(py, NativeObserver::new(o))
            })
        }

        fn unlock(resource: String, owner: String, ephemeral: bool) |py, c| {
            call(
                async move { c.unlock(&resource, &owner, durability(ephemeral)).await },
                |py, r: bool| any(py, r),
            )
        }

        fn lock_info(resource: String, ephemeral: bool) |py, c| {
            call(
                async move { c.lock_info(&resource, durability(ephemeral)).await },
                |py, r: Option<LockInfo>| any(py, r.as_ref().map(lock_info)),
            )
        }

        fn status() |py, c| {
            call(async move { c.status().await }, status)
        }

        fn members() |py, c| {
            call(async move { c.members().await }, members)
        }

        fn add_learner(node_id: u64, peer_addr: String) |py, c| {
            call(async move { c.add_learner(node_id, &peer_addr).await }, members)
        }

        fn change_membership(voters: Vec<u64>, retain: bool) |py, c| {
            call(async move { c.change_membership(&voters, retain).await }, members)
        }

        fn promote(node_id: u64) |py, c| {
            call(async move { c.promote(node_id).await }, members)
        }

        fn remove_member(node_id: u64) |py, c| {
            call(async move { c.remove_member(node_id).await }, members)
        }

        fn trigger_snapshot() |py, c| {
            call(async move { c.trigger_snapshot().await }, none)
        }
    }
}

/// The options of a lock attempt or a semaphore permit.
fn lock_options(
    ttl: f64,
    wait: f64,
    retry: f64,
    durability: Durability,
    owner: Option<String>,
) -> Result<LockOptions, Error> {
    Ok(LockOptions {
        ttl: duration(ttl, "ttl")?,
        wait: duration(wait, "wait")?,
        retry: duration(retry, "retry")?,
        durability,
        owner,
    })
}

fn lock_handle(py: Python<'_>, g: LockGuard) -> PyResult<Py<PyAny>> {
    any(py, NativeLock::new(g))
}

/// A lock attempt's guard, or a leadership (the election's lock). Dropping it releases
/// the lock (resigns) if it is still held.
#[pyclass(frozen, module = "kahuna._native", name = "Lock")]
struct NativeLock {
    guard: Arc<Held>,
}

impl NativeLock {
    fn new(guard: LockGuard) -> NativeLock {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        NativeLock {
            guard: Arc::new(Held::Lock(guard)),
        }
    }

    fn leader(leadership: Leadership) -> NativeLock {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        NativeLock {
            guard: Arc::new(Held::Leader(leadership)),
        }
    }
}

impl Drop for NativeLock {
    fn drop(&mut self) {
        HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}

pymethods_with_calls! {
    impl NativeLock {
        fn acquired(&self) -> bool {
            self.guard.is_acquired()
        }

        fn fencing_token(&self) -> Option<u64> {
            self.guard.fencing_token()
        }

        /// `(resource, token, ephemeral)` for fenced writes, or None when not acquired.
        fn fence(&self) -> Option<FenceArg> {
            self.guard
                .fence()
                .map(|f| (f.resource, f.token, f.durability == Durability::Ephemeral))
        }

        fn owner(&self) -> Option<String> {
            self.guard.owner().map(str::to_owned)
        }

        fn holder(&self) -> Option<LockInfoTuple> {
            self.guard.holder().map(lock_info)
        }

        fn trusted_for(&self) -> f64 {
            self.guard.trusted_for().as_secs_f64()
        }

        fn lost_reason(&self) -> Option<String> {
            self.guard.lost_reason()
        }

        /// Calls `cb(reason)` (from a runtime thread, with the GIL) once the lock is lost
        /// or released; never when it was not acquired.
        fn watch(&self, py: Python<'_>, cb: Py<PyAny>) -> PyResult<()> {
            if self.guard.fencing_token().is_none() {
                return Ok(());
            }
            let rt = runtime()?;
            let lost = self.guard.lost_token();
            let guard = Arc::downgrade(&self.guard);
            let _ = py;
            rt.spawn(async move {
                lost.cancelled().await;
                let reason = guard.upgrade().and_then(|g| g.lost_reason());
                with_python(|py| {
                    if let Err(e) = cb.call1(py, (reason,)) {
                        e.write_unraisable(py, None);
                    }
                });
            });
            Ok(())
        }
    }

    calls(guard) {
        fn extend(ttl: Option<f64>) |py, g| {
            let ttl = checked(py, opt_duration(ttl, "ttl"))?;
            call(async move { g.extend(ttl).await }, none)
        }

        /// Announces a new value as the leader (LOCK_NOT_HELD once deposed); refused for a
        /// plain lock.
        fn proclaim(value: Vec<u8>) |py, held| {
            let Held::Leader(_) = &*held else {
                return Err(to_pyerr(py, &invalid("this lock is not a leadership")));
            };
            let announce = async move {
                match &*held {
                    Held::Leader(l) => l.proclaim(value).await,
                    Held::Lock(_) => Err(invalid("this lock is not a leadership")),
                }
            };
            call(announce, none)
        }

        fn release() |py, g| {
            call(async move { g.release().await }, |py, r: bool| any(py, r))
        }
    }
}

#[pymodule]
#[pyo3(name = "_native")]
fn kahuna_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(set_error_factory, m)?)?;
    m.add_function(wrap_pyfunction!(inflight, m)?)?;
    m.add_function(wrap_pyfunction!(live_handles, m)?)?;
    m.add_class::<NativeClient>()?;
    m.add_class::<NativeLock>()?;
    m.add_class::<NativeWatch>()?;
    m.add_class::<NativeObserver>()?;
    m.add_class::<Pending>()?;
    shutdown::register(m)?;
    Ok(())
}
