"""Cancellation, leaks, parallelism and the cost of the crossing."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kahuna
from cluster import Cluster
from kahuna import _native


def _wait_inflight_zero(timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while _native.inflight() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _native.inflight()


def test_cancelling_a_task_cancels_the_native_call(cluster: Cluster, client: kahuna.Client, prefix: str) -> None:
    res = prefix + "busy"
    holder = client.lock(res, ttl=10)
    assert holder.acquired

    async def main() -> None:
        c = kahuna.AsyncClient(cluster.endpoints)
        before = _native.inflight()
        task = asyncio.ensure_future(c.lock(res, ttl=10, wait=30, retry=0.05))
        await asyncio.sleep(0.5)
        assert not task.done() and _native.inflight() == before + 1
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert task.cancelled()
        # wait_for's timeout cancels too.
        try:
            await asyncio.wait_for(c.lock(res, ttl=10, wait=30), 0.3)
        except asyncio.TimeoutError:
            pass

    asyncio.run(main())
    assert _wait_inflight_zero() == 0
    # Nobody acquires the lock in the background once it is free.
    holder.release()
    time.sleep(1.0)
    assert client.lock_info(res) is None


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_ten_thousand_calls_leak_nothing(cluster: Cluster, prefix: str) -> None:
    gc.collect()
    handles0, fds0 = _native.live_handles(), _fds()
    c = kahuna.Client(cluster.endpoints)
    c.set(prefix + "k", "v" * 100)
    for _ in range(1000):  # warm up allocator and connections
        c.get(prefix + "k", stale=True)
    rss0 = _rss_kb()
    for _ in range(5000):
        c.get(prefix + "k", stale=True)

    async def many() -> None:
        ac = kahuna.AsyncClient(cluster.endpoints)
        for _ in range(50):
            await asyncio.gather(*(ac.get(prefix + "k", stale=True) for _ in range(100)))

    asyncio.run(many())
    for i in range(100):
        with c.lock(f"{prefix}l{i % 5}", ttl=5) as lock:
            assert lock.acquired
    for i in range(100):
        c.lock(f"{prefix}m{i % 5}", ttl=5)  # dropped without release: released by the guard
    del c, lock
    gc.collect()
    assert _wait_inflight_zero() == 0
    deadline = time.monotonic() + 5
    while _native.live_handles() != handles0 and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert _native.live_handles() == handles0
    growth = _rss_kb() - rss0
    assert growth < 30_000, f"RSS grew by {growth} kB over 10,000 calls"
    assert _fds() <= fds0 + 16, (fds0, _fds())


def test_threads_are_faster_than_serial(client: kahuna.Client, prefix: str) -> None:
    n, threads = 240, 8
    client.set(prefix + "k", "v")

    def one(_: int) -> None:
        client.set(prefix + "k", "v")

    t0 = time.perf_counter()
    for i in range(n):
        one(i)
    serial = time.perf_counter() - t0
    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(one, range(n)))
        parallel = time.perf_counter() - t0
    print(f"{n} writes: serial {serial:.3f} s, {threads} threads {parallel:.3f} s")
    assert parallel < serial * 0.7, (serial, parallel)


def test_gil_is_released_while_waiting(cluster: Cluster, client: kahuna.Client, prefix: str) -> None:
    holder = client.lock(prefix + "gil", ttl=10)
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        waited = client.lock(prefix + "gil", ttl=5, wait=0.5)  # blocks ~0.5 s in native code
        assert not waited.acquired
    finally:
        stop.set()
        t.join()
        holder.release()
    assert ticks > 10_000, ticks


def test_overhead_of_python_over_the_core(cluster: Cluster, prefix: str) -> None:
    """Sequential (stale, member-local) gets against one server: the Python client vs the
    Rust core in the same process, interleaved rounds. The overhead is the median of the
    per-round differences; noise on a loaded machine only adds, so the best of five
    measurements is kept."""
    leader = cluster.leader()
    c = kahuna.Client(cluster.endpoint(leader), discover_members=False)
    key = prefix + "bench"
    c.set(key, "x" * 64)
    native: Any = getattr(c, "_n")  # the native client, to time the Rust core alone
    n, rounds = 300, 9
    native.bench_core_gets(key, 200, True)
    for _ in range(200):
        c.get(key, stale=True)
    best = None
    for _attempt in range(5):
        py, core = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                c.get(key, stale=True)
            py.append((time.perf_counter() - t0) / n)
            core.append(native.bench_core_gets(key, n, True) / n)
        py_us, core_us = statistics.median(py) * 1e6, statistics.median(core) * 1e6
        overhead = statistics.median(p - r for p, r in zip(py, core)) * 1e6
        print(f"per-call get: python {py_us:.1f} us, rust core {core_us:.1f} us, overhead {overhead:.1f} us")
        if best is None or overhead < best[2]:
            best = (py_us, core_us, overhead)
        if overhead < 50:
            break
    assert best is not None
    line = f"per-call get: python {best[0]:.1f} us, rust core {best[1]:.1f} us, overhead {best[2]:.1f} us"
    out = os.environ.get("KAHUNA_OVERHEAD_FILE")
    if out:
        with open(out, "w") as f:
            f.write(line + "\n")
    # Speed is judged by a benchmark run, not by the test suite on a shared CI machine:
    # the 50 us budget is asserted only when asked for (KAHUNA_ASSERT_OVERHEAD=1).
    if os.environ.get("KAHUNA_ASSERT_OVERHEAD") == "1":
        assert best[2] < 50, line


def test_ctrl_c_ends_a_blocking_wait(client: kahuna.Client, prefix: str) -> None:
    import _thread

    import pytest

    holder = client.lock(prefix + "intr", ttl=10)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        client.lock(prefix + "intr", ttl=5, wait=20)
    assert time.monotonic() - t0 < 3
    holder.release()
    time.sleep(0.5)
    assert client.lock_info(prefix + "intr") is None  # the abandoned wait took nothing


# Leaves the interpreter while runtime threads are handing results and a lost-lock
# notice to Python: released locks (their watchers fire), async calls in flight on a
# loop that is closing, a blocking client still open.
_EXIT_RACE = """
import asyncio, sys, threading
import kahuna

endpoints = sys.argv[1].split(",")
prefix = sys.argv[2]
c = kahuna.Client(endpoints)
locks = [c.lock(prefix + str(i), ttl=5, on_lost=lambda lock: None) for i in range(4)]

async def main() -> None:
    a = kahuna.AsyncClient(endpoints)
    alock = await a.lock(prefix + "async", ttl=5, on_lost=lambda lock: None)
    for _ in range(50):
        asyncio.ensure_future(a.get(prefix + "k"))
    await asyncio.sleep(0)
    await alock.release()

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
for lock in locks:
    threading.Thread(target=lock.release).start()
print("exiting", flush=True)
"""


def test_exit_while_callbacks_are_in_flight(cluster: Cluster, prefix: str) -> None:
    import subprocess
    import sys

    failures: list[str] = []
    for i in range(int(os.environ.get("KAHUNA_EXIT_RUNS", "20"))):
        p = subprocess.run(
            [sys.executable, "-c", _EXIT_RACE, ",".join(cluster.endpoints), f"{prefix}exit{i}/"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if p.returncode != 0 or "exiting" not in p.stdout or "Fatal Python error" in p.stderr:
            failures.append(f"run {i}: exit {p.returncode}\n{p.stderr[-2000:]}")
    assert not failures, "\n".join(failures)
