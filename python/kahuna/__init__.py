"""Kahuna: leased locks with fencing tokens, key/value with revisions, transactions and
sequences, over Kahuna's Rust core client.

    import kahuna
    client = kahuna.Client("127.0.0.1:2070")
    with client.lock("jobs/nightly", ttl=30, wait=5) as lock:
        if lock.acquired:
            client.set("jobs/nightly/state", "running", fence=lock)
"""

from . import _native
from ._client import AsyncClient, AsyncLock, AsyncTxn, AsyncWatch, Client, Compare, Lock, Op, Txn, Watch
from ._errors import (
    ERRORS,
    CompactedError,
    ConfigError,
    FencedError,
    FutureRevisionError,
    InternalError,
    InvalidArgumentError,
    KahunaError,
    KahunaTimeoutError,
    LockNotHeldError,
    MembershipError,
    NoLeaderError,
    NotLeaderError,
    PermissionDeniedError,
    AlreadyAppliedError,
    ResourceExhaustedError,
    SequenceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    make_error,
)
from ._types import (
    ClusterStatus,
    DeleteResult,
    Fence,
    History,
    HistoryEvent,
    IdRange,
    KeyValue,
    LockInfo,
    Member,
    ScanPage,
    SetResult,
    Tls,
    TxnOpResult,
    TxnResult,
    WatchBatch,
)

_native.set_error_factory(make_error)

__all__ = [
    "AsyncClient",
    "AsyncLock",
    "AsyncTxn",
    "AsyncWatch",
    "Client",
    "ClusterStatus",
    "CompactedError",
    "Compare",
    "ConfigError",
    "DeleteResult",
    "ERRORS",
    "Fence",
    "FencedError",
    "FutureRevisionError",
    "History",
    "HistoryEvent",
    "IdRange",
    "InternalError",
    "InvalidArgumentError",
    "KahunaError",
    "KahunaTimeoutError",
    "KeyValue",
    "Lock",
    "LockInfo",
    "LockNotHeldError",
    "Member",
    "MembershipError",
    "NoLeaderError",
    "NotLeaderError",
    "Op",
    "ResourceExhaustedError",
    "ScanPage",
    "SequenceExhaustedError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "AlreadyAppliedError",
    "SetResult",
    "Txn",
    "Tls",
    "TxnOpResult",
    "TxnResult",
    "UnavailableError",
    "UnimplementedError",
    "Watch",
    "WatchBatch",
    "make_error",
]
