"""Leader election against the real 3-node cluster: the scenarios every SDK runs (elected
with a value and observed; a proclaimed value with the same epoch; the next candidate
elected on resignation with a larger epoch; a candidate not elected within its wait; no
leader after the last resigns; closing an observer while a next is pending), through the
asyncio client, and the blocking client's leadership and observer."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import List, Optional

import pytest

import kahuna
from cluster import Cluster
from kahuna import Leader


async def next_leader(observer: kahuna.AsyncObserver, what: str) -> Optional[Leader]:
    try:
        return await asyncio.wait_for(observer.next(), 10)
    except asyncio.TimeoutError:
        pytest.fail(f"the observer saw nothing within 10 s; expected {what}")


async def first_leader(observer: kahuna.AsyncObserver) -> Optional[Leader]:
    """The observer's first leader. The member that serves an observer answers from its
    applied state, which may be a moment behind a campaign just answered by the Raft
    leader: "no leader" may come first, but never another leader."""
    seen = await next_leader(observer, "the leader")
    deadline = time.monotonic() + 5
    while seen is None and time.monotonic() < deadline:
        seen = await next_leader(observer, "the leader after no leader")
    return seen


def same(seen: Optional[Leader], leadership: kahuna.AsyncLeadership, value: bytes) -> None:
    assert seen is not None, "expected a leader, saw none"
    assert (seen.owner, seen.epoch, seen.value) == (leadership.owner, leadership.epoch, value)


def test_candidates_are_elected_in_turn_and_observers_follow(cluster: Cluster, prefix: str) -> None:
    name = prefix + "election"

    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            # (a) A is elected with its value; an observer's first item and a read agree.
            a = await c.campaign(name, "a-1", ttl=10)
            assert a is not None and a.is_leader and a.epoch > 0 and a.name == name
            assert not a.lost.is_set()
            async with c.observe(name) as observer:
                same(await first_leader(observer), a, b"a-1")
                same(await c.election_leader(name), a, b"a-1")
                info = await c.lock_info(name)
                assert info is not None and info.value == b"a-1" and info.fencing_token == a.epoch

                # (b) A proclaims a new value: same leader, same epoch.
                await a.proclaim(b"a-2")
                same(await next_leader(observer, "A's new value"), a, b"a-2")

                # (c) B waits while A leads; A resigns; B is elected with a larger epoch.
                b_task = asyncio.ensure_future(c.campaign(name, "b-1", ttl=10))
                waiters = 0
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    info = await c.lock_info(name)
                    waiters = info.waiters if info is not None else 0
                    if waiters:
                        break
                assert waiters == 1, "B waits in the election's queue"
                assert not b_task.done(), "B is not elected while A leads"
                assert await a.resign() is True
                assert not a.is_leader
                b = await asyncio.wait_for(b_task, 10)
                assert b is not None and b.is_leader
                assert b.epoch > a.epoch, "a later leader has a larger epoch"
                same(await next_leader(observer, "B"), b, b"b-1")
                with pytest.raises(kahuna.LockNotHeldError):
                    await a.proclaim("stale")

                # (d) C is not elected within a short wait while B leads.
                started = time.monotonic()
                assert await c.campaign(name, "c-1", ttl=10, wait=0.3) is None
                assert time.monotonic() - started >= 0.3
                same(await c.election_leader(name), b, b"b-1")

                # (e) B resigns (by leaving its context): nobody leads.
                async with b:
                    pass
                assert await next_leader(observer, "no leader") is None
                assert await c.election_leader(name) is None

    asyncio.run(main())


def test_closing_an_observer_completes_a_pending_next(cluster: Cluster, prefix: str) -> None:
    name = prefix + "observing"

    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            before = kahuna._native.live_handles()

            # (f) A pending next raises the closed error (the same as a closed client's).
            observer = await c.observe(name)
            assert await next_leader(observer, "no leader") is None
            pending = asyncio.ensure_future(observer.next())
            await asyncio.sleep(0.3)
            assert not pending.done(), "nothing changed: the next is pending"
            observer.close()
            with pytest.raises(kahuna.ConfigError, match="closed"):
                await asyncio.wait_for(pending, 5)
            with pytest.raises(kahuna.ConfigError):
                await observer.next()

            # A pending iteration ends.
            observer2 = await c.observe(name)

            async def iterate() -> List[Optional[Leader]]:
                return [leader async for leader in observer2]

            iterating = asyncio.ensure_future(iterate())
            await asyncio.sleep(0.3)
            assert not iterating.done()
            observer2.close()
            assert await asyncio.wait_for(iterating, 5) == [None], "the first item (no leader), then the end"

            # The client still works: a campaign is elected and read back; the handles are gone.
            async with c.campaign(name, "after", wait=5) as leadership:
                assert leadership is not None
                leader = await c.election_leader(name)
                assert leader is not None and leader.value_str == "after"
            assert await c.election_leader(name) is None, "leaving the context resigned"
            del observer, observer2, pending, iterating, leadership
            gc.collect()
            assert kahuna._native.live_handles() <= before

    asyncio.run(main())


def test_the_blocking_client_campaigns_and_observes(client: kahuna.Client, prefix: str) -> None:
    name = prefix + "blocking"
    elected = client.campaign(name, "x", ttl=5)
    assert elected is not None
    with elected as leadership:
        assert leadership.is_leader and not leadership.lost.is_set()
        with client.observe(name) as observer:
            first = observer.next()
            if first is None:  # a member a moment behind the campaign (see first_leader)
                first = observer.next()
            assert first is not None and (first.owner, first.epoch, first.value) == (
                leadership.owner,
                leadership.epoch,
                b"x",
            )
            leadership.proclaim("y")
            it = iter(observer)
            second = next(it)
            assert second is not None and second.value == b"y" and second.epoch == leadership.epoch
            assert client.campaign(name, "other", wait=0.3) is None

            # close() from another thread ends an iteration waiting with the GIL released.
            seen: List[Optional[Leader]] = []
            t = threading.Thread(target=lambda: seen.extend(observer))
            t.start()
            time.sleep(0.3)
            assert t.is_alive()
            observer.close()
            t.join(5)
            assert not t.is_alive() and seen == []
        with pytest.raises(kahuna.ConfigError):
            observer.next()
    assert not leadership.is_leader, "leaving the context resigned"
    assert client.election_leader(name) is None
