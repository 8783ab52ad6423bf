"""Result types: small frozen dataclasses built from the native module's tuples."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Tuple, Union

__all__ = [
    "KeyValue",
    "SetResult",
    "DeleteResult",
    "ScanPage",
    "ManyKeys",
    "HistoryEvent",
    "History",
    "WatchBatch",
    "Leader",
    "TxnOpResult",
    "TxnResult",
    "IdRange",
    "FixedWindow",
    "SlidingWindow",
    "TokenBucket",
    "RatePolicy",
    "RateDecision",
    "LockInfo",
    "Member",
    "ClusterStatus",
    "Fence",
    "Tls",
]


def _when(ms: Optional[int]) -> Optional[datetime.datetime]:
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)


@dataclass(frozen=True)
class KeyValue:
    """A key as stored: value, revisions, version and expiry (cluster time)."""

    key: str
    value: bytes
    revision: int
    create_revision: int
    version: int
    expires_at_ms: Optional[int] = None

    @property
    def value_str(self) -> str:
        """The value as text (invalid UTF-8 replaced by U+FFFD)."""
        return self.value.decode("utf-8", errors="replace")

    @property
    def mod_revision(self) -> int:
        """Same as ``revision``: the revision of the last write."""
        return self.revision

    @property
    def expires_at(self) -> Optional[datetime.datetime]:
        """When the key expires (UTC, cluster time), or None for no expiry."""
        return _when(self.expires_at_ms)


def _kv(t: Any) -> KeyValue:
    return KeyValue(t[0], t[1], t[2], t[3], t[4], t[5])


def _kv_opt(t: Any) -> Optional[KeyValue]:
    return None if t is None else _kv(t)


@dataclass(frozen=True)
class SetResult:
    """The answer to a conditional write: ``succeeded`` false when the condition failed."""

    succeeded: bool
    kv: Optional[KeyValue]
    revision: int

    def __bool__(self) -> bool:
        return self.succeeded


def _set_result(t: Any) -> SetResult:
    return SetResult(t[0], _kv_opt(t[1]), t[2])


@dataclass(frozen=True)
class DeleteResult:
    """The answer to a delete: ``deleted`` says whether a key was removed."""

    succeeded: bool
    deleted: bool
    kv: Optional[KeyValue]
    revision: int

    def __bool__(self) -> bool:
        return self.succeeded


def _delete_result(t: Any) -> DeleteResult:
    return DeleteResult(t[0], t[1], _kv_opt(t[2]), t[3])


@dataclass(frozen=True)
class ScanPage:
    """One page of a prefix or range scan; pass ``next_page_token`` back for the next one."""

    kvs: List[KeyValue]
    next_page_token: Optional[bytes]
    revision: int

    @property
    def is_last(self) -> bool:
        return self.next_page_token is None


def _scan_page(t: Any) -> ScanPage:
    return ScanPage([_kv(k) for k in t[0]], t[1], t[2])


@dataclass(frozen=True)
class ManyKeys:
    """Keys read together by ``get_many``: those that exist, in the order asked, all read
    at ``revision``."""

    kvs: List[KeyValue]
    #: The revision every key was read at.
    revision: int

    def get(self, key: str) -> Optional[KeyValue]:
        """The key ``key``, or None when it does not exist (or was not asked for)."""
        for kv in self.kvs:
            if kv.key == key:
                return kv
        return None

    def __contains__(self, key: object) -> bool:
        return any(kv.key == key for kv in self.kvs)

    def __iter__(self) -> Iterator[KeyValue]:
        return iter(self.kvs)

    def __len__(self) -> int:
        return len(self.kvs)


def _many_keys(t: Any) -> ManyKeys:
    return ManyKeys([_kv(k) for k in t[0]], t[1])


@dataclass(frozen=True)
class HistoryEvent:
    """One change of a key: ``kind`` is "put", "delete" or "expire". A delete or an
    expiry carries the key's revisions but no value (``kv.value`` is empty)."""

    kind: str
    kv: KeyValue
    revision: int


@dataclass(frozen=True)
class History:
    """A key's retained changes, oldest first."""

    events: List[HistoryEvent]
    retained_from_revision: int
    revision: int


def _events(t: Any) -> List[HistoryEvent]:
    return [HistoryEvent(e[0], _kv(e[1]), e[2]) for e in t]


def _history(t: Any) -> History:
    return History(_events(t[0]), t[1], t[2])


@dataclass(frozen=True)
class WatchBatch:
    """One message of a watch: the changes of one or more whole revisions, oldest first
    (a transaction's changes share one revision), or none: a progress notification."""

    events: List[HistoryEvent]
    #: Every change to the watched keys up to and including this revision was delivered.
    revision: int

    @property
    def is_progress(self) -> bool:
        """No changes: nothing changed up to ``revision``."""
        return not self.events


def _watch_batch(t: Any) -> WatchBatch:
    return WatchBatch(_events(t[0]), t[1])


@dataclass(frozen=True)
class TxnOpResult:
    """The result of one operation of the branch taken."""

    succeeded: bool
    kv: Optional[KeyValue]


@dataclass(frozen=True)
class TxnResult:
    """``succeeded``: every compare held and ``then`` ran (else ``otherwise`` ran)."""

    succeeded: bool
    results: List[TxnOpResult]
    revision: int

    def __bool__(self) -> bool:
        return self.succeeded


def _txn_result(t: Any) -> TxnResult:
    return TxnResult(t[0], [TxnOpResult(r[0], _kv_opt(r[1])) for r in t[1]], t[2])


@dataclass(frozen=True)
class IdRange:
    """Identifiers ``[first, first + count)``; ``replayed`` when the idempotency key was seen."""

    first: int
    count: int
    replayed: bool

    @property
    def ids(self) -> range:
        return range(self.first, self.first + self.count)

    def __iter__(self) -> Any:
        return iter(self.ids)

    def __len__(self) -> int:
        return self.count


def _id_range(t: Any) -> IdRange:
    return IdRange(t[0], t[1], t[2])


@dataclass(frozen=True)
class FixedWindow:
    """At most ``limit`` units per window of ``window`` seconds (or a ``timedelta``; whole
    milliseconds, at least 1), windows aligned to cluster time."""

    limit: int
    window: Union[float, datetime.timedelta]


@dataclass(frozen=True)
class SlidingWindow:
    """At most ``limit`` units in any ``window`` (seconds or a ``timedelta``; whole
    milliseconds, at least 1), estimated from the current and the previous fixed window."""

    limit: int
    window: Union[float, datetime.timedelta]


@dataclass(frozen=True)
class TokenBucket:
    """A bucket of ``capacity`` tokens (the largest burst), refilled at
    ``refill_per_second`` tokens per second. A new bucket starts full."""

    capacity: int
    refill_per_second: int


#: How a limiter counts: ``FixedWindow``, ``SlidingWindow`` or ``TokenBucket``.
RatePolicy = Union[FixedWindow, SlidingWindow, TokenBucket]


@dataclass(frozen=True)
class RateDecision:
    """A limiter's answer: ``allowed`` (the cost was taken), the units ``remaining`` now,
    and when refused, ``retry_after``: seconds until the same check would be allowed."""

    allowed: bool
    remaining: int
    retry_after: float
    #: The store revision of the answer (persistent limiters).
    revision: int

    def __bool__(self) -> bool:
        return self.allowed


def _rate_decision(t: Any) -> RateDecision:
    return RateDecision(t[0], t[1], t[2], t[3])


@dataclass(frozen=True)
class LockInfo:
    """A lock (or a semaphore) as the server reports it.

    For a semaphore (``permits`` > 0), a held permit's ``holder`` is that permit (its
    owner, token and expiry); ``lock_info`` and a refused attempt's ``holder`` have no
    owner and the newest live permit's token."""

    resource: str
    owner: str
    fencing_token: int
    expires_at_ms: int
    remaining: float
    ephemeral: bool
    #: What the holder announces (an election leader's value); empty for plain locks.
    value: bytes = b""
    #: Callers waiting in the lock's queue (filled by ``lock_info``; 0 elsewhere).
    waiters: int = 0
    #: A semaphore's number of permits; 0 for a lock.
    permits: int = 0
    #: A semaphore's permits held now; 0 for a lock.
    holders: int = 0

    @property
    def expires_at(self) -> Optional[datetime.datetime]:
        return _when(self.expires_at_ms)


def _lock_info(t: Any) -> Optional[LockInfo]:
    return None if t is None else LockInfo(t[0], t[1], t[2], t[3], t[4], t[5], bytes(t[6]), t[7], t[8], t[9])


@dataclass(frozen=True)
class Leader:
    """An election's leader as observers see it."""

    #: The leader's owner name (unique per campaign).
    owner: str
    #: The leader's epoch: its fencing token, larger for every later leader.
    epoch: int
    #: What the leader announces.
    value: bytes

    @property
    def value_str(self) -> str:
        return self.value.decode("utf-8", "replace")


def _leader(t: Any) -> Optional[Leader]:
    return None if t is None else Leader(t[0], t[1], bytes(t[2]))


@dataclass(frozen=True)
class Member:
    """A cluster member."""

    id: int
    peer_addr: str
    client_addr: str
    voter: bool


def _members(t: Any) -> List[Member]:
    return [Member(m[0], m[1], m[2], m[3]) for m in t]


@dataclass(frozen=True)
class ClusterStatus:
    """What the answering member knows about the cluster."""

    member_id: int
    leader_id: int
    term: int
    state: str
    members: List[Member]
    committed_index: int
    applied_index: int
    last_log_index: int
    snapshot_index: int
    storage: str

    @property
    def leader(self) -> Optional[Member]:
        for m in self.members:
            if m.id == self.leader_id:
                return m
        return None


def _status(t: Any) -> ClusterStatus:
    idx: Tuple[int, int, int, int] = t[5]
    return ClusterStatus(t[0], t[1], t[2], t[3], _members(t[4]), idx[0], idx[1], idx[2], idx[3], t[6])


@dataclass(frozen=True)
class Fence:
    """A lock's fencing token for fenced writes (``fence=lock`` also works)."""

    resource: str
    token: int
    ephemeral: bool = field(default=False)


@dataclass(frozen=True)
class Tls:
    """How to reach a cluster over TLS. ``https://`` endpoints turn TLS on with the
    system's trusted roots; give this to trust a private CA, pin certificates or present
    a client certificate (then ``host:port`` endpoints use TLS too).

    Paths name PEM files: ``ca_cert`` the CA that signs the members' certificates;
    ``client_cert`` and ``client_key`` a client certificate (both or neither);
    ``pins`` SHA-256 fingerprints of trusted server certificates (64 hex digits, colons
    allowed) instead of a CA; ``insecure_skip_verify`` accepts any certificate
    (encrypted, not authenticated: development only). One way of trusting at most.
    """

    ca_cert: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    pins: Tuple[str, ...] = ()
    insecure_skip_verify: bool = False
