# The private extension module (bindings/python/src/lib.rs). Plain values cross it;
# the public, typed API is kahuna.Client / kahuna.AsyncClient.
from typing import Any, Callable, List, Optional, Tuple

def connect(
    endpoints: List[str],
    client_id: Optional[str],
    timeout: float,
    attempt_timeout: float,
    connect_timeout: float,
    discover_members: bool,
    tls: Tuple[Optional[bytes], List[str], bool, Optional[bytes], Optional[bytes]],
    token: Optional[str],
    lazy: bool,
    cb: Optional[Callable[[bool, Any], None]] = None,
) -> Any: ...
def set_error_factory(factory: Callable[[str, str, bool], BaseException]) -> None: ...
def inflight() -> int: ...
def live_handles() -> int: ...
def _shutdown() -> None: ...

class Pending:
    def cancel(self) -> None: ...

class Client:
    def __getattr__(self, name: str) -> Any: ...
    def bench_core_gets(self, key: str, n: int, stale: bool = False) -> float: ...

class Lock:
    def __getattr__(self, name: str) -> Any: ...
