"""Client (blocking) and AsyncClient (asyncio) over the native module.

Both flavours share one implementation of every call (argument checks and
conversions); they differ only in ``_call``: the blocking client runs the native call
with the GIL released and returns its result, the asyncio client starts it on the
native runtime and returns an ``asyncio.Future`` whose cancellation cancels the native
call. Precise signatures are in ``_client.pyi``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import functools
import inspect
import threading
import weakref
from typing import Any, Callable, Deque, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._errors import LockNotHeldError, make_error
from ._types import (
    Fence,
    FixedWindow,
    HistoryEvent,
    Leader,
    SlidingWindow,
    Tls,
    TokenBucket,
    WatchBatch,
    _delete_result,
    _history,
    _id_range,
    _kv_opt,
    _leader,
    _lock_info,
    _many_keys,
    _members,
    _rate_decision,
    _scan_page,
    _set_result,
    _status,
    _txn_result,
    _watch_batch,
)

Seconds = Union[float, int, datetime.timedelta]
Value = Union[str, bytes, bytearray, memoryview]
#: What ``set_many`` accepts: a mapping of key to value, or (key, value) pairs.
Items = Union[Mapping[str, Value], Iterable[Tuple[str, Value]]]

DEFAULT_ENDPOINT = "127.0.0.1:2070"


def _secs(d: Seconds, what: str = "duration") -> float:
    if isinstance(d, datetime.timedelta):
        return d.total_seconds()
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise TypeError(f"{what} must be seconds (float) or datetime.timedelta, not {type(d).__name__}")
    return float(d)


def _opt_secs(d: Optional[Seconds], what: str = "duration") -> Optional[float]:
    return None if d is None else _secs(d, what)


def _b(v: Value) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"value must be str or bytes, not {type(v).__name__}")


def _endpoints(endpoints: Union[str, Iterable[str], None]) -> List[str]:
    if endpoints is None:
        return [DEFAULT_ENDPOINT]
    if isinstance(endpoints, str):
        return [e.strip() for e in endpoints.split(",") if e.strip()]
    return list(endpoints)


def _fence(f: Any) -> Optional[Tuple[str, int, bool]]:
    if f is None:
        return None
    if isinstance(f, (Lock, AsyncLock)):
        t = f._n.fence()
        if t is None or not f.acquired:
            raise LockNotHeldError(f"lock {f.resource!r} is not held: refusing an unfenced write", "LOCK_NOT_HELD", False)
        return t  # type: ignore[no-any-return]
    if isinstance(f, Fence):
        return (f.resource, int(f.token), bool(f.ephemeral))
    if isinstance(f, tuple) and len(f) in (2, 3):
        return (str(f[0]), int(f[1]), bool(f[2]) if len(f) == 3 else False)
    raise TypeError("fence must be a Lock, a kahuna.Fence or a (resource, token) tuple")


def _set_cond(
    if_not_exists: bool, if_exists: bool, if_value: Optional[Value], if_revision: Optional[int]
) -> Tuple[str, bytes, int]:
    given = sum([bool(if_not_exists), bool(if_exists), if_value is not None, if_revision is not None])
    if given > 1:
        raise ValueError("give at most one of if_not_exists, if_exists, if_value, if_revision")
    if if_not_exists:
        return ("if_not_exists", b"", 0)
    if if_exists:
        return ("if_exists", b"", 0)
    if if_value is not None:
        return ("if_value", _b(if_value), 0)
    if if_revision is not None:
        return ("if_revision", b"", int(if_revision))
    return ("always", b"", 0)


def _count(n: Any, what: str) -> int:
    """A whole number of units for the native module (u64)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if n < 0 or n >= 1 << 64:
        raise make_error("INVALID_ARGUMENT", f"{what} must be a non-negative integer, got {n}", False)
    return n


def _permits(n: Any) -> int:
    """A semaphore's number of permits for the native module (u32; the server allows
    1 to 10,000 and says so with its own message)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"permits must be an int, not {type(n).__name__}")
    if n < 1 or n >= 1 << 32:
        raise make_error("INVALID_ARGUMENT", f"a semaphore has 1 to 10000 permits, got {n}", False)
    return n


def _policy(p: Any) -> Tuple[str, int, float]:
    if isinstance(p, FixedWindow):
        return ("fixed_window", _count(p.limit, "limit"), _secs(p.window, "window"))
    if isinstance(p, SlidingWindow):
        return ("sliding_window", _count(p.limit, "limit"), _secs(p.window, "window"))
    if isinstance(p, TokenBucket):
        return ("token_bucket", _count(p.capacity, "capacity"), float(_count(p.refill_per_second, "refill_per_second")))
    raise TypeError(f"policy must be a kahuna.FixedWindow, SlidingWindow or TokenBucket, not {type(p).__name__}")


def _keys(keys: Any) -> List[str]:
    if isinstance(keys, (str, bytes)):
        raise TypeError("keys must be an iterable of str, not a single key")
    out = list(keys)
    for k in out:
        if not isinstance(k, str):
            raise TypeError(f"a key must be str, not {type(k).__name__}")
    return out


def _items(items: Any) -> List[Tuple[str, bytes]]:
    if isinstance(items, (str, bytes)):
        raise TypeError("items must be a mapping or an iterable of (key, value) pairs")
    pairs = items.items() if isinstance(items, Mapping) else items
    out: List[Tuple[str, bytes]] = []
    for pair in pairs:
        k, v = pair
        if not isinstance(k, str):
            raise TypeError(f"a key must be str, not {type(k).__name__}")
        out.append((k, _b(v)))
    return out


# --- transactions -----------------------------------------------------------------------

_OPS = ("==", "!=", ">", "<")


class Compare:
    """A transaction compare: ``Compare.value("k", "==", "v")``, ``Compare.exists("k")``, ..."""

    __slots__ = ("_t",)

    def __init__(self, target: str, key: str, op: str = "==", value: bytes = b"", number: int = 0) -> None:
        if op not in _OPS:
            raise ValueError(f"compare operator must be one of {_OPS}, not {op!r}")
        self._t = (target, key, op, value, number)

    def __repr__(self) -> str:
        return f"Compare{self._t!r}"

    @staticmethod
    def value(key: str, op: str, value: Value) -> "Compare":
        return Compare("value", key, op, _b(value))

    @staticmethod
    def mod_revision(key: str, op: str, revision: int) -> "Compare":
        return Compare("mod_revision", key, op, b"", revision)

    @staticmethod
    def create_revision(key: str, op: str, revision: int) -> "Compare":
        return Compare("create_revision", key, op, b"", revision)

    @staticmethod
    def version(key: str, op: str, version: int) -> "Compare":
        return Compare("version", key, op, b"", version)

    @staticmethod
    def exists(key: str) -> "Compare":
        return Compare("exists", key)

    @staticmethod
    def missing(key: str) -> "Compare":
        return Compare("missing", key)

    @staticmethod
    def lock_token(resource: str, op: str, token: int) -> "Compare":
        return Compare("lock_token", resource, op, b"", token)


class Op:
    """A transaction operation: ``Op.set``, ``Op.delete``, ``Op.get``, ``Op.extend``."""

    __slots__ = ("_t",)

    def __init__(self, kind: str, key: str, value: bytes = b"", ttl: Optional[float] = None) -> None:
        self._t = (kind, key, value, ttl)

    def __repr__(self) -> str:
        return f"Op{self._t!r}"

    @staticmethod
    def set(key: str, value: Value, ttl: Optional[Seconds] = None) -> "Op":
        return Op("set", key, _b(value), _opt_secs(ttl, "ttl"))

    @staticmethod
    def delete(key: str) -> "Op":
        return Op("delete", key)

    @staticmethod
    def get(key: str) -> "Op":
        return Op("get", key)

    @staticmethod
    def extend(key: str, ttl: Optional[Seconds] = None) -> "Op":
        return Op("extend", key, b"", _opt_secs(ttl, "ttl"))


class Txn:
    """``client.txn().when(...).then(...).otherwise(...).commit()`` (awaitable on AsyncClient)."""

    def __init__(self, client: "_Calls") -> None:
        self._client = client
        self._when: List[Any] = []
        self._then: List[Any] = []
        self._else: List[Any] = []
        self._fence: Optional[Tuple[str, int, bool]] = None

    def when(self, *compares: Compare) -> "Txn":
        self._when.extend(c._t for c in compares)
        return self

    def then(self, *ops: Op) -> "Txn":
        self._then.extend(o._t for o in ops)
        return self

    def otherwise(self, *ops: Op) -> "Txn":
        self._else.extend(o._t for o in ops)
        return self

    def fence(self, fence: Any) -> "Txn":
        self._fence = _fence(fence)
        return self

    def commit(self) -> Any:
        c = self._client
        return c._call(_txn_result, c._n.txn, self._when, self._then, self._else, self._fence)


# --- the calls both clients share ----------------------------------------------------------


def _ident(x: Any) -> Any:
    return x


def _none(_: Any) -> None:
    return None


class _Calls:
    _n: Any

    def _call(self, conv: Callable[[Any], Any], fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    # key/value
    def get(self, key: str, *, revision: Optional[int] = None, stale: bool = False, ephemeral: bool = False) -> Any:
        return self._call(_kv_opt, self._n.get, key, revision or 0, stale, ephemeral)

    def set(
        self,
        key: str,
        value: Value,
        *,
        ttl: Optional[Seconds] = None,
        if_not_exists: bool = False,
        if_exists: bool = False,
        if_value: Optional[Value] = None,
        if_revision: Optional[int] = None,
        ephemeral: bool = False,
        fence: Any = None,
    ) -> Any:
        cond = _set_cond(if_not_exists, if_exists, if_value, if_revision)
        return self._call(
            _set_result, self._n.set, key, _b(value), _opt_secs(ttl, "ttl"), cond, ephemeral, _fence(fence)
        )

    def compare_and_set(self, key: str, expected: Value, value: Value, *, ttl: Optional[Seconds] = None) -> Any:
        return self.set(key, value, ttl=ttl, if_value=expected)

    def compare_revision_and_set(self, key: str, revision: int, value: Value, *, ttl: Optional[Seconds] = None) -> Any:
        return self.set(key, value, ttl=ttl, if_revision=revision)

    def delete(
        self,
        key: str,
        *,
        if_value: Optional[Value] = None,
        if_revision: Optional[int] = None,
        ephemeral: bool = False,
        fence: Any = None,
    ) -> Any:
        if if_value is not None and if_revision is not None:
            raise ValueError("give at most one of if_value, if_revision")
        cond = _set_cond(False, False, if_value, if_revision)
        return self._call(_delete_result, self._n.delete, key, cond, ephemeral, _fence(fence))

    def extend(self, key: str, ttl: Optional[Seconds] = None, *, ephemeral: bool = False) -> Any:
        return self._call(_set_result, self._n.extend, key, _opt_secs(ttl, "ttl"), ephemeral)

    def exists(self, key: str, *, stale: bool = False, ephemeral: bool = False) -> Any:
        return self._call(_ident, self._n.exists, key, stale, ephemeral)

    def scan(
        self,
        prefix: str,
        *,
        limit: int = 0,
        page_token: Optional[bytes] = None,
        keys_only: bool = False,
        stale: bool = False,
        ephemeral: bool = False,
    ) -> Any:
        return self._call(_scan_page, self._n.scan, prefix, None, limit, page_token, keys_only, stale, ephemeral)

    def scan_range(
        self,
        start: str,
        end: str = "",
        *,
        limit: int = 0,
        page_token: Optional[bytes] = None,
        keys_only: bool = False,
        stale: bool = False,
        ephemeral: bool = False,
    ) -> Any:
        return self._call(_scan_page, self._n.scan, start, end, limit, page_token, keys_only, stale, ephemeral)

    # batches
    def get_many(self, keys: Iterable[str], *, stale: bool = False, ephemeral: bool = False) -> Any:
        return self._call(_many_keys, self._n.get_many, _keys(keys), stale, ephemeral)

    def set_many(self, items: Any) -> Any:
        return self._call(_ident, self._n.set_many, _items(items))

    def delete_many(self, keys: Iterable[str]) -> Any:
        return self._call(_ident, self._n.delete_many, _keys(keys))

    def history(self, key: str, *, limit: int = 0) -> Any:
        return self._call(_history, self._n.history, key, limit)

    def txn(self) -> Txn:
        return Txn(self)

    def election_leader(self, name: str) -> Any:
        return self._call(_leader, self._n.election_leader, name)

    @staticmethod
    def _campaign_args(name: str, value: Value, ttl: Seconds, wait: Optional[Seconds]) -> Tuple[Any, ...]:
        return (name, _b(value), _secs(ttl, "ttl"), _opt_secs(wait, "wait"))

    def _watch_args(self, key: str, prefix: bool, start_revision: int, progress_interval: Seconds) -> Tuple[Any, ...]:
        return (key, bool(prefix), int(start_revision), _secs(progress_interval, "progress_interval"))

    # sequences
    def next(self, name: str, count: int = 1, *, idempotency_key: Optional[str] = None) -> Any:
        return self._call(_id_range, self._n.next, name, count, idempotency_key)

    def peek_sequence(self, name: str) -> Any:
        return self._call(_ident, self._n.peek_sequence, name)

    # rate limiters
    def check_rate(self, name: str, policy: Any, cost: int = 1, *, ephemeral: bool = False) -> Any:
        return self._call(
            _rate_decision, self._n.check_rate, name, _policy(policy), _count(cost, "cost"), ephemeral
        )

    # locks
    def unlock(self, resource: str, owner: str, *, ephemeral: bool = False) -> Any:
        return self._call(_ident, self._n.unlock, resource, owner, ephemeral)

    def lock_info(self, resource: str, *, ephemeral: bool = False) -> Any:
        return self._call(_lock_info, self._n.lock_info, resource, ephemeral)

    def _lock_args(
        self, resource: str, ttl: Seconds, wait: Seconds, retry: Seconds, ephemeral: bool, owner: Optional[str]
    ) -> Tuple[Any, ...]:
        return (resource, _secs(ttl, "ttl"), _secs(wait, "wait"), _secs(retry, "retry"), ephemeral, owner)

    def _permit_args(
        self, name: str, permits: int, ttl: Seconds, wait: Seconds, retry: Seconds, owner: Optional[str]
    ) -> Tuple[Any, ...]:
        return (name, _permits(permits), _secs(ttl, "ttl"), _secs(wait, "wait"), _secs(retry, "retry"), owner)

    # cluster
    def status(self) -> Any:
        return self._call(_status, self._n.status)

    def members(self) -> Any:
        return self._call(_members, self._n.members)

    def add_learner(self, node_id: int, peer_addr: str) -> Any:
        return self._call(_members, self._n.add_learner, node_id, peer_addr)

    def change_membership(self, voters: Sequence[int], *, retain: bool = False) -> Any:
        return self._call(_members, self._n.change_membership, list(voters), retain)

    def promote(self, node_id: int) -> Any:
        return self._call(_members, self._n.promote, node_id)

    def remove_member(self, node_id: int) -> Any:
        return self._call(_members, self._n.remove_member, node_id)

    def trigger_snapshot(self) -> Any:
        return self._call(_none, self._n.trigger_snapshot)

    # the connection
    @property
    def client_id(self) -> str:
        return self._n.client_id()  # type: ignore[no-any-return]

    @property
    def endpoints(self) -> List[str]:
        return self._n.endpoints()  # type: ignore[no-any-return]

    @property
    def leader(self) -> Optional[str]:
        return self._n.leader()  # type: ignore[no-any-return]


def _read_pem(path: Optional[str], what: str) -> Optional[bytes]:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise make_error("CONFIG", f"cannot read the {what} {path!r}: {e.strerror}", False) from e


def _connect_args(
    endpoints: Union[str, Iterable[str], None],
    timeout: Seconds,
    attempt_timeout: Seconds,
    connect_timeout: Seconds,
    client_id: Optional[str],
    discover_members: bool,
    tls: Optional[Tls],
    token: Optional[str],
) -> Tuple[Any, ...]:
    t = tls or Tls()
    return (
        _endpoints(endpoints),
        client_id,
        _secs(timeout, "timeout"),
        _secs(attempt_timeout, "attempt_timeout"),
        _secs(connect_timeout, "connect_timeout"),
        discover_members,
        (
            _read_pem(t.ca_cert, "CA certificate"),
            list(t.pins),
            t.insecure_skip_verify,
            _read_pem(t.client_cert, "client certificate"),
            _read_pem(t.client_key, "client key"),
        ),
        token,
    )


# --- blocking ------------------------------------------------------------------------------


class Client(_Calls):
    """A blocking client; every call releases the GIL while it waits. Thread-safe."""

    def __init__(
        self,
        endpoints: Union[str, Iterable[str], None] = None,
        *,
        timeout: Seconds = 10.0,
        attempt_timeout: Seconds = 2.0,
        connect_timeout: Seconds = 0.5,
        client_id: Optional[str] = None,
        discover_members: bool = True,
        lazy: bool = False,
        tls: Optional[Tls] = None,
        token: Optional[str] = None,
        _native_client: Any = None,
    ) -> None:
        if _native_client is not None:
            self._n = _native_client
            return
        args = _connect_args(
            endpoints, timeout, attempt_timeout, connect_timeout, client_id, discover_members, tls, token
        )
        self._n = _native.connect(*args, lazy)

    def _call(self, conv: Callable[[Any], Any], fn: Callable[..., Any], *args: Any) -> Any:
        return conv(fn(*args))

    def with_timeout(self, timeout: Seconds) -> "Client":
        return Client(_native_client=self._n.with_timeout(_secs(timeout, "timeout")))

    def lock(
        self,
        resource: str,
        *,
        ttl: Seconds = 10.0,
        wait: Seconds = 0.0,
        retry: Seconds = 0.1,
        ephemeral: bool = False,
        owner: Optional[str] = None,
        on_lost: Optional[Callable[["Lock"], Any]] = None,
    ) -> "Lock":
        n = self._n.lock(*self._lock_args(resource, ttl, wait, retry, ephemeral, owner))
        return Lock(n, resource, ephemeral, on_lost)

    def acquire_permit(
        self,
        name: str,
        permits: int,
        *,
        ttl: Seconds = 10.0,
        wait: Seconds = 0.0,
        retry: Seconds = 0.1,
        owner: Optional[str] = None,
        on_lost: Optional[Callable[["Lock"], Any]] = None,
    ) -> "Lock":
        """Takes one of the ``permits`` permits of the semaphore ``name``: a ``Lock``
        holding the permit (its own lease, renewed in the background, and its own fencing
        token), or not acquired when ``wait`` passed first. Persistent only."""
        n = self._n.acquire_permit(*self._permit_args(name, permits, ttl, wait, retry, owner))
        return Lock(n, name, False, on_lost)

    def watch(
        self, key: str, *, prefix: bool = False, start_revision: int = 0, progress_interval: Seconds = 5.0
    ) -> "Watch":
        n = self._n.watch(*self._watch_args(key, prefix, start_revision, progress_interval))
        return Watch(n, key, prefix)

    def campaign(
        self, name: str, value: Value, *, ttl: Seconds = 10.0, wait: Optional[Seconds] = None
    ) -> Optional["Leadership"]:
        n = self._n.campaign(*self._campaign_args(name, value, ttl, wait))
        return None if n is None else Leadership(n, name)

    def observe(self, name: str) -> "Observer":
        return Observer(self._n.observe(name), name)

    def scan_iter(
        self, prefix: str, *, page_size: int = 0, keys_only: bool = False, stale: bool = False, ephemeral: bool = False
    ) -> Any:
        token: Optional[bytes] = None
        while True:
            page = self.scan(
                prefix, limit=page_size, page_token=token, keys_only=keys_only, stale=stale, ephemeral=ephemeral
            )
            yield from page.kvs
            if page.next_page_token is None:
                return
            token = page.next_page_token

    def scan_all(self, prefix: str, *, keys_only: bool = False, stale: bool = False, ephemeral: bool = False) -> Any:
        return list(self.scan_iter(prefix, keys_only=keys_only, stale=stale, ephemeral=ephemeral))

    def scan_range_iter(
        self,
        start: str,
        end: str = "",
        *,
        page_size: int = 0,
        keys_only: bool = False,
        stale: bool = False,
        ephemeral: bool = False,
    ) -> Any:
        token: Optional[bytes] = None
        while True:
            page = self.scan_range(
                start, end, limit=page_size, page_token=token, keys_only=keys_only, stale=stale, ephemeral=ephemeral
            )
            yield from page.kvs
            if page.next_page_token is None:
                return
            token = page.next_page_token

    def scan_range_all(
        self, start: str, end: str = "", *, keys_only: bool = False, stale: bool = False, ephemeral: bool = False
    ) -> Any:
        return list(self.scan_range_iter(start, end, keys_only=keys_only, stale=stale, ephemeral=ephemeral))

    def close(self) -> None:
        """Drops the connection (calls in flight on other threads finish first)."""
        self._n = _Closed()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"kahuna.Client(endpoints={self.endpoints!r})"


class _Closed:
    def __getattr__(self, name: str) -> Any:
        from ._errors import make_error

        raise make_error("CONFIG", "the client is closed", False)


def _lost_watcher(ref: "weakref.ref[Any]") -> Callable[[Optional[str]], None]:
    def lost(reason: Optional[str]) -> None:
        lock = ref()
        if lock is not None:
            lock._on_native_lost(reason)

    return lost


class _LockBase:
    _n: Any

    def __init__(self, native: Any, resource: str, ephemeral: bool) -> None:
        self._n = native
        self.resource = resource
        self.ephemeral = ephemeral
        self._released = False
        self.lost_reason: Optional[str] = None

    @property
    def acquired(self) -> bool:
        """Held, and the lease is still trusted by this client's clock."""
        return bool(self._n.acquired())

    @property
    def fencing_token(self) -> Optional[int]:
        return self._n.fencing_token()  # type: ignore[no-any-return]

    @property
    def owner(self) -> Optional[str]:
        return self._n.owner()  # type: ignore[no-any-return]

    @property
    def holder(self) -> Any:
        """The holder the server reported when the lock was not acquired."""
        return _lock_info(self._n.holder())

    @property
    def trusted_for(self) -> float:
        """Seconds the lease can still be trusted (0 when not held)."""
        return float(self._n.trusted_for())

    @property
    def fence(self) -> Optional[Fence]:
        t = self._n.fence()
        return None if t is None else Fence(t[0], t[1], t[2])

    def __bool__(self) -> bool:
        return self.acquired

    def __repr__(self) -> str:
        return (
            f"<kahuna lock {self.resource!r} acquired={self.acquired} token={self.fencing_token}"
            f" lost={self.lost_reason is not None}>"
        )


class Lock(_LockBase):
    """A lock attempt (blocking client). ``with client.lock(...) as lock:`` releases on exit."""

    def __init__(self, native: Any, resource: str, ephemeral: bool, on_lost: Optional[Callable[["Lock"], Any]]) -> None:
        super().__init__(native, resource, ephemeral)
        self.lost = threading.Event()
        self._on_lost = on_lost
        if native.fencing_token() is not None:
            native.watch(_lost_watcher(weakref.ref(self)))

    def _on_native_lost(self, reason: Optional[str]) -> None:
        # On a runtime thread: hand user code to a thread of its own.
        if self._released:
            return
        self.lost_reason = reason or "lost"
        self.lost.set()
        if self._on_lost is not None:
            threading.Thread(target=self._on_lost, args=(self,), name="kahuna-on-lost", daemon=True).start()

    def extend(self, ttl: Optional[Seconds] = None) -> None:
        self._n.extend(_opt_secs(ttl, "ttl"))

    def release(self) -> bool:
        self._released = True
        return bool(self._n.release())

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fencing_token is not None and not self._released:
            self.release()


# --- asyncio ----------------------------------------------------------------------------


def _settle(fut: "asyncio.Future[Any]", conv: Callable[[Any], Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        try:
            fut.set_result(conv(value))
        except BaseException as e:  # noqa: BLE001 - a conversion error goes to the awaiter
            fut.set_exception(e)
    else:
        fut.set_exception(value)


def _cancel_native(handle: Any, fut: "asyncio.Future[Any]") -> None:
    if fut.cancelled():
        handle.cancel()


def _start(conv: Callable[[Any], Any], fn: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def done(ok: bool, value: Any) -> None:  # a runtime thread, holding the GIL
        try:
            loop.call_soon_threadsafe(_settle, fut, conv, ok, value)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting

    handle = fn(*args, done)
    fut.add_done_callback(functools.partial(_cancel_native, handle))
    return fut


class AsyncClient(_Calls):
    """An asyncio client: every call returns an awaitable; cancelling it cancels the native call.

    ``AsyncClient(...)`` opens no connection until the first call; ``await
    AsyncClient.connect(...)`` connects (and fails) up front.
    """

    def __init__(
        self,
        endpoints: Union[str, Iterable[str], None] = None,
        *,
        timeout: Seconds = 10.0,
        attempt_timeout: Seconds = 2.0,
        connect_timeout: Seconds = 0.5,
        client_id: Optional[str] = None,
        discover_members: bool = True,
        tls: Optional[Tls] = None,
        token: Optional[str] = None,
        _native_client: Any = None,
    ) -> None:
        if _native_client is not None:
            self._n = _native_client
            return
        args = _connect_args(
            endpoints, timeout, attempt_timeout, connect_timeout, client_id, discover_members, tls, token
        )
        self._n = _native.connect(*args, True)

    @classmethod
    async def connect(
        cls,
        endpoints: Union[str, Iterable[str], None] = None,
        *,
        timeout: Seconds = 10.0,
        attempt_timeout: Seconds = 2.0,
        connect_timeout: Seconds = 0.5,
        client_id: Optional[str] = None,
        discover_members: bool = True,
        tls: Optional[Tls] = None,
        token: Optional[str] = None,
    ) -> "AsyncClient":
        args = _connect_args(
            endpoints, timeout, attempt_timeout, connect_timeout, client_id, discover_members, tls, token
        )
        n = await _start(_ident, _native.connect, *args, False)
        return cls(_native_client=n)

    def _call(self, conv: Callable[[Any], Any], fn: Callable[..., Any], *args: Any) -> Any:
        return _start(conv, fn, *args)

    def with_timeout(self, timeout: Seconds) -> "AsyncClient":
        return AsyncClient(_native_client=self._n.with_timeout(_secs(timeout, "timeout")))

    def lock(
        self,
        resource: str,
        *,
        ttl: Seconds = 10.0,
        wait: Seconds = 0.0,
        retry: Seconds = 0.1,
        ephemeral: bool = False,
        owner: Optional[str] = None,
        on_lost: Optional[Callable[["AsyncLock"], Any]] = None,
    ) -> "_LockRequest":
        args = self._lock_args(resource, ttl, wait, retry, ephemeral, owner)

        async def acquire() -> AsyncLock:
            n = await _start(_ident, self._n.lock, *args)
            return AsyncLock(n, resource, ephemeral, on_lost, asyncio.get_running_loop())

        return _LockRequest(acquire)

    def acquire_permit(
        self,
        name: str,
        permits: int,
        *,
        ttl: Seconds = 10.0,
        wait: Seconds = 0.0,
        retry: Seconds = 0.1,
        owner: Optional[str] = None,
        on_lost: Optional[Callable[["AsyncLock"], Any]] = None,
    ) -> "_LockRequest":
        """Takes one of the ``permits`` permits of the semaphore ``name``: ``await`` it or
        ``async with`` it, like ``lock``. Persistent only."""
        args = self._permit_args(name, permits, ttl, wait, retry, owner)

        async def acquire() -> AsyncLock:
            n = await _start(_ident, self._n.acquire_permit, *args)
            return AsyncLock(n, name, False, on_lost, asyncio.get_running_loop())

        return _LockRequest(acquire)

    def watch(
        self, key: str, *, prefix: bool = False, start_revision: int = 0, progress_interval: Seconds = 5.0
    ) -> "_WatchRequest":
        args = self._watch_args(key, prefix, start_revision, progress_interval)

        async def open_watch() -> AsyncWatch:
            n = await _start(_ident, self._n.watch, *args)
            return AsyncWatch(n, key, prefix)

        return _WatchRequest(open_watch)

    def campaign(
        self, name: str, value: Value, *, ttl: Seconds = 10.0, wait: Optional[Seconds] = None
    ) -> "_CampaignRequest":
        args = self._campaign_args(name, value, ttl, wait)

        async def elect() -> Optional[AsyncLeadership]:
            n = await _start(_ident, self._n.campaign, *args)
            return None if n is None else AsyncLeadership(n, name, asyncio.get_running_loop())

        return _CampaignRequest(elect)

    def observe(self, name: str) -> "_ObserveRequest":
        async def open_observer() -> AsyncObserver:
            n = await _start(_ident, self._n.observe, name)
            return AsyncObserver(n, name)

        return _ObserveRequest(open_observer)

    async def scan_iter(
        self, prefix: str, *, page_size: int = 0, keys_only: bool = False, stale: bool = False, ephemeral: bool = False
    ) -> Any:
        token: Optional[bytes] = None
        while True:
            page = await self.scan(
                prefix, limit=page_size, page_token=token, keys_only=keys_only, stale=stale, ephemeral=ephemeral
            )
            for kv in page.kvs:
                yield kv
            if page.next_page_token is None:
                return
            token = page.next_page_token

    async def scan_all(
        self, prefix: str, *, keys_only: bool = False, stale: bool = False, ephemeral: bool = False
    ) -> Any:
        return [kv async for kv in self.scan_iter(prefix, keys_only=keys_only, stale=stale, ephemeral=ephemeral)]

    async def scan_range_iter(
        self,
        start: str,
        end: str = "",
        *,
        page_size: int = 0,
        keys_only: bool = False,
        stale: bool = False,
        ephemeral: bool = False,
    ) -> Any:
        token: Optional[bytes] = None
        while True:
            page = await self.scan_range(
                start, end, limit=page_size, page_token=token, keys_only=keys_only, stale=stale, ephemeral=ephemeral
            )
            for kv in page.kvs:
                yield kv
            if page.next_page_token is None:
                return
            token = page.next_page_token

    async def scan_range_all(
        self, start: str, end: str = "", *, keys_only: bool = False, stale: bool = False, ephemeral: bool = False
    ) -> Any:
        return [
            kv
            async for kv in self.scan_range_iter(start, end, keys_only=keys_only, stale=stale, ephemeral=ephemeral)
        ]

    async def close(self) -> None:
        self._n = _Closed()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"kahuna.AsyncClient(endpoints={self.endpoints!r})"


class _LockRequest:
    """``await client.lock(...)`` or ``async with client.lock(...) as lock:``."""

    def __init__(self, acquire: Callable[[], Any]) -> None:
        self._acquire = acquire
        self._lock: Optional[AsyncLock] = None

    def __await__(self) -> Any:
        return self._acquire().__await__()

    async def __aenter__(self) -> "AsyncLock":
        self._lock = await self._acquire()
        return self._lock

    async def __aexit__(self, *exc: object) -> None:
        lock = self._lock
        if lock is not None and lock.fencing_token is not None and not lock._released:
            await lock.release()


class AsyncLock(_LockBase):
    """A lock attempt (asyncio client); ``lost`` is an ``asyncio.Event``."""

    def __init__(
        self,
        native: Any,
        resource: str,
        ephemeral: bool,
        on_lost: Optional[Callable[["AsyncLock"], Any]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(native, resource, ephemeral)
        self.lost = asyncio.Event()
        self._on_lost = on_lost
        self._loop = loop
        if native.fencing_token() is not None:
            native.watch(_lost_watcher(weakref.ref(self)))

    def _on_native_lost(self, reason: Optional[str]) -> None:
        if self._released:
            return
        try:
            self._loop.call_soon_threadsafe(self._lost_in_loop, reason)
        except RuntimeError:
            pass

    def _lost_in_loop(self, reason: Optional[str]) -> None:
        if self._released:
            return
        self.lost_reason = reason or "lost"
        self.lost.set()
        if self._on_lost is not None:
            r = self._on_lost(self)
            if inspect.isawaitable(r):
                asyncio.ensure_future(r)

    def extend(self, ttl: Optional[Seconds] = None) -> "asyncio.Future[None]":
        return _start(_none, self._n.extend, _opt_secs(ttl, "ttl"))

    def release(self) -> "asyncio.Future[bool]":
        self._released = True
        return _start(bool, self._n.release)

    async def __aenter__(self) -> "AsyncLock":
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.fencing_token is not None and not self._released:
            await self.release()


#: What a call's ``endpoints`` accepts: "host:port[,host:port...]" or an iterable of them.
Endpoints = Union[str, Iterable[str], None]
#: What ``fence=`` accepts.
FenceLike = Union[Lock, AsyncLock, Fence, Tuple[str, int], Tuple[str, int, bool], None]

#: The asyncio client's transaction builder is the same class; its ``commit()`` is awaitable.
AsyncTxn = Txn


# --- watches ------------------------------------------------------------------------------


def _watch_closed(key: str) -> BaseException:
    # The same error as a call on a closed client.
    return make_error("CONFIG", f"the watch on {key!r} is closed", False)


class _WatchBase:
    """What both watches share; the native handle moves plain tuples."""

    _n: Any

    def __init__(self, native: Any, key: str, prefix: bool) -> None:
        self._n = native
        self.key = key
        self.prefix = prefix
        # Events of a batch taken by the iterator and not yet handed out.
        self._pending: Deque[HistoryEvent] = collections.deque()

    def _batch(self, t: Any) -> WatchBatch:
        if t is None:
            raise _watch_closed(self.key)
        return _watch_batch(t)

    @property
    def revision(self) -> int:
        """Every change up to and including this revision has been delivered."""
        return int(self._n.revision())

    @property
    def closed(self) -> bool:
        return bool(self._n.closed())

    def close(self) -> None:
        """Closes the watch: a pending iteration ends, a pending ``next_batch`` raises."""
        self._n.close()

    def __repr__(self) -> str:
        what = "prefix" if self.prefix else "key"
        return f"<kahuna watch on {what} {self.key!r} revision={self.revision} closed={self.closed}>"


class Watch(_WatchBase):
    """A watch (blocking client): ``for event in watch`` or ``watch.next_batch()``; each
    call waits with the GIL released. ``with client.watch(...) as w:`` closes it on exit;
    ``close()`` from another thread ends an iteration in progress."""

    def next_batch(self) -> WatchBatch:
        return self._batch(self._n.next())

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> HistoryEvent:
        while not self._pending:
            t = self._n.next()
            if t is None:
                raise StopIteration
            self._pending.extend(_watch_batch(t).events)
        return self._pending.popleft()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncWatch(_WatchBase):
    """A watch (asyncio client): ``async for event in watch`` or ``await
    watch.next_batch()``. Cancelling a pending one loses nothing."""

    def next_batch(self) -> "asyncio.Future[WatchBatch]":
        return _start(self._batch, self._n.next)

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> HistoryEvent:
        while not self._pending:
            t = await _start(_ident, self._n.next)
            if t is None:
                raise StopAsyncIteration
            self._pending.extend(_watch_batch(t).events)
        return self._pending.popleft()

    async def __aenter__(self) -> "AsyncWatch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _WatchRequest:
    """``await client.watch(...)`` or ``async with client.watch(...) as watch:``."""

    def __init__(self, open_watch: Callable[[], Any]) -> None:
        self._open = open_watch
        self._watch: Optional[AsyncWatch] = None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncWatch:
        self._watch = await self._open()
        return self._watch

    async def __aexit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.close()


# --- leader election ------------------------------------------------------------------------


class Leadership(Lock):
    """Being the leader of an election (blocking client): the election's lock, so ``lost``
    (a ``threading.Event``), ``lost_reason`` and ``fence`` work as a lock's and it can be
    passed as ``fence=``. ``with client.campaign(...) as leadership:`` resigns on exit."""

    def __init__(self, native: Any, name: str) -> None:
        super().__init__(native, name, False, None)
        self.name = name

    @property
    def epoch(self) -> int:
        """The fencing token of this leadership: larger than every earlier leader's."""
        return int(self._n.fencing_token() or 0)

    @property
    def is_leader(self) -> bool:
        """Still the leader by this client's clock."""
        return self.acquired

    def proclaim(self, value: Value) -> None:
        """Announces a new value; ``LockNotHeldError`` once no longer the leader."""
        self._n.proclaim(_b(value))

    def resign(self) -> bool:
        """Steps down so the next candidate is elected at once; whether the server still had it."""
        return self.release()

    def __enter__(self) -> "Leadership":
        return self

    def __repr__(self) -> str:
        return f"<kahuna leadership {self.name!r} epoch={self.epoch} leader={self.is_leader}>"


class AsyncLeadership(AsyncLock):
    """Being the leader of an election (asyncio client); ``lost`` is an ``asyncio.Event``.
    ``async with`` resigns on exit."""

    def __init__(self, native: Any, name: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(native, name, False, None, loop)
        self.name = name

    @property
    def epoch(self) -> int:
        """The fencing token of this leadership: larger than every earlier leader's."""
        return int(self._n.fencing_token() or 0)

    @property
    def is_leader(self) -> bool:
        """Still the leader by this client's clock."""
        return self.acquired

    def proclaim(self, value: Value) -> "asyncio.Future[None]":
        """Announces a new value; ``LockNotHeldError`` once no longer the leader."""
        return _start(_none, self._n.proclaim, _b(value))

    def resign(self) -> "asyncio.Future[bool]":
        """Steps down so the next candidate is elected at once; whether the server still had it."""
        return self.release()

    async def __aenter__(self) -> "AsyncLeadership":
        return self

    def __repr__(self) -> str:
        return f"<kahuna leadership {self.name!r} epoch={self.epoch} leader={self.is_leader}>"


class _CampaignRequest:
    """``await client.campaign(...)`` or ``async with client.campaign(...) as leadership:``
    (None when not elected within ``wait``; resigns on exit)."""

    def __init__(self, elect: Callable[[], Any]) -> None:
        self._elect = elect
        self._leadership: Optional[AsyncLeadership] = None

    def __await__(self) -> Any:
        return self._elect().__await__()

    async def __aenter__(self) -> Optional[AsyncLeadership]:
        self._leadership = await self._elect()
        return self._leadership

    async def __aexit__(self, *exc: object) -> None:
        leadership = self._leadership
        if leadership is not None and not leadership._released:
            await leadership.resign()


def _observer_closed(name: str) -> BaseException:
    # The same error as a call on a closed client.
    return make_error("CONFIG", f"the observer of {name!r} is closed", False)


class _ObserverBase:
    _n: Any

    def __init__(self, native: Any, name: str) -> None:
        self._n = native
        self.name = name

    def _leader(self, t: Any) -> Optional[Leader]:
        if not t[0]:
            raise _observer_closed(self.name)
        return _leader(t[1])

    @property
    def closed(self) -> bool:
        return bool(self._n.closed())

    def close(self) -> None:
        """Closes the observer: a pending iteration ends, a pending ``next`` raises."""
        self._n.close()

    def __repr__(self) -> str:
        return f"<kahuna observer of {self.name!r} closed={self.closed}>"


class Observer(_ObserverBase):
    """Follows an election's leader (blocking client): the leader now, then each change
    (None: no leader), by ``for leader in observer`` or ``observer.next()``; each call waits
    with the GIL released. ``with`` closes it on exit; ``close()`` from another thread ends
    an iteration in progress."""

    def next(self) -> Optional[Leader]:
        return self._leader(self._n.next())

    def __iter__(self) -> "Observer":
        return self

    def __next__(self) -> Optional[Leader]:
        t = self._n.next()
        if not t[0]:
            raise StopIteration
        return _leader(t[1])

    def __enter__(self) -> "Observer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncObserver(_ObserverBase):
    """Follows an election's leader (asyncio client): ``async for leader in observer`` or
    ``await observer.next()``. Cancelling a pending one loses nothing."""

    def next(self) -> "asyncio.Future[Optional[Leader]]":
        return _start(self._leader, self._n.next)

    def __aiter__(self) -> "AsyncObserver":
        return self

    async def __anext__(self) -> Optional[Leader]:
        t = await _start(_ident, self._n.next)
        if not t[0]:
            raise StopAsyncIteration
        return _leader(t[1])

    async def __aenter__(self) -> "AsyncObserver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _ObserveRequest:
    """``await client.observe(...)`` or ``async with client.observe(...) as observer:``."""

    def __init__(self, open_observer: Callable[[], Any]) -> None:
        self._open = open_observer
        self._observer: Optional[AsyncObserver] = None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncObserver:
        self._observer = await self._open()
        return self._observer

    async def __aexit__(self, *exc: object) -> None:
        if self._observer is not None:
            self._observer.close()
