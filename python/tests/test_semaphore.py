"""Semaphores against the real 3-node cluster, the scenarios of the core's
core-client/tests/semaphore.rs: at most N permits held at once under many concurrent
acquirers, every waiter granted in arrival order as permits free up, each permit's token
fencing writes while it is held and refused (FencedError) once released, the info showing
permits, holders and waiters, and a name asked two ways as InvalidArgumentError, through
the blocking client (threads) and the asyncio client."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable, List, Optional, Tuple

import pytest

import kahuna
from cluster import Cluster
from kahuna import FencedError, InvalidArgumentError

PERMITS = 3
WORKERS = 10


class Tally:
    """How many hold a permit now, the most at once, and each worker's token."""

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.inside = 0
        self.most = 0
        self.grants: List[Tuple[int, int]] = []

    def enter(self, worker: int, token: int) -> None:
        with self.mu:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.grants.append((worker, token))

    def leave(self) -> None:
        with self.mu:
            self.inside -= 1


def check_grants(tally: Tally, first: List[int]) -> None:
    assert tally.most <= PERMITS, f"{tally.most} held a semaphore of {PERMITS} at once"
    assert len(tally.grants) == WORKERS, "a waiter was never granted"
    # Tokens follow the grant order (two grants can reach their workers in either order):
    # in token order, the workers are in the order they asked.
    by_token = sorted(tally.grants, key=lambda g: g[1])
    assert [w for w, _ in by_token] == list(range(WORKERS)), f"granted out of arrival order: {by_token}"
    tokens = first + [t for _, t in tally.grants]
    assert len(set(tokens)) == len(tokens), f"two permits shared a token: {tokens}"
    assert min(t for _, t in tally.grants) > max(first), "a waiter's token is not above the first holders'"


def wait_for_waiters(client: kahuna.Client, name: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        info = client.lock_info(name)
        if info is not None and info.waiters >= n:
            return
        assert time.monotonic() < deadline, f"waiter {n} never took its place in the queue"
        time.sleep(0.01)


def test_at_most_n_hold_at_once_and_every_waiter_is_granted_in_order(client: kahuna.Client, prefix: str) -> None:
    name = prefix + "pool"
    first = [client.acquire_permit(name, PERMITS, ttl=10) for _ in range(PERMITS)]
    assert all(p.acquired and p.fencing_token is not None for p in first)
    full = client.acquire_permit(name, PERMITS, ttl=10)
    assert not full.acquired and full.fencing_token is None, "a fourth permit of three was granted"
    seen = full.holder
    assert seen is not None and (seen.permits, seen.holders) == (PERMITS, PERMITS)
    assert first[0].holder is not None and first[0].holder.permits == PERMITS, "a permit's own view"
    with full:  # a refusal's context exit releases nothing
        pass

    tally = Tally()
    failures: List[BaseException] = []

    def worker(i: int) -> None:
        try:
            with client.acquire_permit(name, PERMITS, ttl=10, wait=90) as permit:
                assert permit.acquired, f"worker {i} gave up"
                token = permit.fencing_token
                assert token is not None
                tally.enter(i, token)
                # A permit's token fences writes while it is held.
                assert client.set(f"{name}/out/{i}", "v", fence=permit).succeeded
                assert client.set(f"{name}/out/{i}", "v", fence=(name, token)).succeeded
                time.sleep(0.1)
                tally.leave()
            assert not permit.lost.is_set(), "released, not lost"
            # Released, its token fences no more.
            with pytest.raises(FencedError):
                client.set(f"{name}/late/{i}", "v", fence=(name, token))
            with pytest.raises(kahuna.LockNotHeldError):
                client.set(f"{name}/late/{i}", "v", fence=permit)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            failures.append(e)

    threads = []
    for i in range(WORKERS):
        t = threading.Thread(target=worker, args=(i,), name=f"permit-{i}")
        t.start()
        threads.append(t)
        # The next asks only once this one has its place.
        wait_for_waiters(client, name, i + 1)

    info = client.lock_info(name)
    assert info is not None
    assert (info.permits, info.holders, info.waiters) == (PERMITS, PERMITS, WORKERS)
    assert info.owner == "" and info.fencing_token == max(p.fencing_token or 0 for p in first)

    with tally.mu:
        tally.inside = tally.most = PERMITS
    tokens = [p.fencing_token or 0 for p in first]
    for p in first:
        tally.leave()
        assert p.release() is True
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a waiter was not granted within 60 s"
    if failures:
        raise failures[0]
    check_grants(tally, tokens)
    assert client.lock_info(name) is None, "the semaphore outlived its last holder"


def test_asyncio_at_most_n_hold_at_once_and_every_waiter_is_granted_in_order(cluster: Cluster, prefix: str) -> None:
    name = prefix + "apool"

    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            first = [await c.acquire_permit(name, PERMITS, ttl=10) for _ in range(PERMITS)]
            assert all(p.acquired for p in first)
            full = await c.acquire_permit(name, PERMITS, ttl=10)
            assert not full.acquired
            assert full.holder is not None and (full.holder.permits, full.holder.holders) == (PERMITS, PERMITS)

            tally = Tally()

            async def worker(i: int) -> None:
                async with c.acquire_permit(name, PERMITS, ttl=10, wait=90) as permit:
                    assert permit.acquired, f"worker {i} gave up"
                    token = permit.fencing_token
                    assert token is not None
                    tally.enter(i, token)
                    assert (await c.set(f"{name}/out/{i}", "v", fence=permit)).succeeded
                    await asyncio.sleep(0.1)
                    tally.leave()
                assert not permit.lost.is_set()
                with pytest.raises(FencedError):
                    await c.set(f"{name}/late/{i}", "v", fence=(name, token))

            async def place_taken(n: int) -> None:
                deadline = time.monotonic() + 10
                while True:
                    info = await c.lock_info(name)
                    if info is not None and info.waiters >= n:
                        return
                    assert time.monotonic() < deadline, f"waiter {n} never took its place in the queue"
                    await asyncio.sleep(0.01)

            tasks = []
            for i in range(WORKERS):
                tasks.append(asyncio.ensure_future(worker(i)))
                await place_taken(i + 1)
            info = await c.lock_info(name)
            assert info is not None
            assert (info.permits, info.holders, info.waiters) == (PERMITS, PERMITS, WORKERS)

            with tally.mu:
                tally.inside = tally.most = PERMITS
            tokens = [p.fencing_token or 0 for p in first]
            for p in first:
                tally.leave()
                assert await p.release() is True
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            check_grants(tally, tokens)
            assert await c.lock_info(name) is None

    asyncio.run(main())


def test_a_permit_is_renewed_and_released_like_a_lock(client: kahuna.Client, prefix: str) -> None:
    name = prefix + "renewed"
    lost: List[Optional[str]] = []
    with client.acquire_permit(name, 2, ttl=0.9, owner="me", on_lost=lambda p: lost.append(p.lost_reason)) as permit:
        assert permit.acquired and permit.owner == "me" and permit.resource == name and not permit.ephemeral
        other = client.acquire_permit(name, 2, ttl=0.9)
        assert other.acquired and other.fencing_token != permit.fencing_token
        time.sleep(2.5)  # past both leases: renewed in the background
        assert permit.acquired and other.acquired and permit.trusted_for > 0
        info = client.lock_info(name)
        assert info is not None and (info.permits, info.holders) == (2, 2)
        permit.extend(5)
        assert other.release() is True
        info = client.lock_info(name)
        assert info is not None and (info.permits, info.holders) == (2, 1)
        assert info.owner == "" and info.fencing_token == permit.fencing_token, "the newest live permit's token"
        assert client.unlock(name, "me") is True
        assert permit.lost.wait(5), "a permit unlocked by owner is reported lost"
    assert lost and lost[0], "on_lost ran with a reason"
    assert client.lock_info(name) is None


def test_a_name_asked_two_ways_and_bad_input_are_typed_errors(client: kahuna.Client, prefix: str) -> None:
    name = prefix + "kinds"
    held = client.acquire_permit(name, 3, ttl=10)
    assert held.acquired
    view = held.holder
    assert view is not None and (view.permits, view.holders) == (3, 1)
    asks: List[Tuple[str, Callable[[], kahuna.Lock]]] = [
        ("another number of permits", lambda: client.acquire_permit(name, 5, ttl=10)),
        ("as a lock", lambda: client.lock(name, ttl=10)),
        ("as a semaphore of 1 permit (the lock)", lambda: client.acquire_permit(name, 1, ttl=10)),
    ]
    for what, ask in asks:
        with pytest.raises(InvalidArgumentError, match="semaphore of 3 permits") as e:
            ask()
        assert e.value.code == "INVALID_ARGUMENT" and not e.value.retryable, what
        assert isinstance(e.value, ValueError), what

    lock = client.lock(prefix + "a-lock", ttl=10)
    assert lock.acquired
    with pytest.raises(InvalidArgumentError, match="is a lock"):
        client.acquire_permit(prefix + "a-lock", 2, ttl=10)
    with pytest.raises(InvalidArgumentError, match="10000"):
        client.acquire_permit(prefix + "huge", 10_001, ttl=10)
    for bad in (0, -1, 1 << 32):
        with pytest.raises(InvalidArgumentError):
            client.acquire_permit(prefix + "none", bad, ttl=10)
    with pytest.raises(TypeError):
        client.acquire_permit(prefix + "none", "3", ttl=10)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.acquire_permit(prefix + "none", 3, ttl="10")  # type: ignore[arg-type]

    # A semaphore of one permit is the lock of that name.
    one = client.acquire_permit(prefix + "one", 1, ttl=10)
    assert one.acquired and one.holder is not None and one.holder.permits == 0
    info = client.lock_info(prefix + "one")
    assert info is not None and (info.permits, info.holders) == (0, 0)
    assert client.lock(prefix + "one", ttl=10).acquired is False

    # Nobody holds or waits: the name is free to be a semaphore of another size.
    assert held.release() is True
    again = client.acquire_permit(name, 5, ttl=10)
    assert again.acquired
    for g in (again, one, lock):
        g.release()


def test_asyncio_typed_errors(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            async with c.acquire_permit(prefix + "akinds", 2, ttl=10) as permit:
                assert permit.acquired
                with pytest.raises(InvalidArgumentError, match="semaphore of 2 permits"):
                    await c.acquire_permit(prefix + "akinds", 4, ttl=10)
                with pytest.raises(InvalidArgumentError, match="semaphore of 2 permits"):
                    await c.lock(prefix + "akinds", ttl=10)
            with pytest.raises(InvalidArgumentError):
                await c.acquire_permit(prefix + "akinds", 0)
            assert await c.lock_info(prefix + "akinds") is None

    asyncio.run(main())
