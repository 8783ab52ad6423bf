"""Fencing across a leader kill, and the lost-lock signal when the leader is paused.

Each test runs its own 3-node cluster, since it kills or pauses members."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Iterator, List

import pytest

import kahuna
from cluster import Cluster


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    c = Cluster(os.environ["KAHUNA_SERVER"]).up()
    try:
        yield c
    finally:
        c.down()


def test_fencing_tokens_increase_across_leader_kill(own_cluster: Cluster) -> None:
    c = kahuna.Client(own_cluster.endpoints, attempt_timeout=0.5)
    tokens: List[int] = []
    for _ in range(3):
        with c.lock("jobs/failover", ttl=2) as lock:
            assert lock.acquired and lock.fencing_token is not None
            tokens.append(lock.fencing_token)
    old = own_cluster.leader()
    own_cluster.kill(old)
    new = own_cluster.leader(timeout=30, exclude=old)
    assert new != old
    for _ in range(3):
        with c.lock("jobs/failover", ttl=2, wait=15) as lock:
            assert lock.acquired and lock.fencing_token is not None
            tokens.append(lock.fencing_token)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens
    # A write fenced with a pre-failover token is refused by the new leader.
    with pytest.raises(kahuna.FencedError):
        c.set("jobs/failover/state", "stale", fence=("jobs/failover", tokens[2]))


def test_lock_lost_when_leader_paused_before_anyone_else_is_granted(own_cluster: Cluster) -> None:
    leader = own_cluster.serving_leader()
    # The holder talks to the leader only, so pausing the leader cuts its renewals.
    holder = kahuna.Client(own_cluster.endpoint(leader), discover_members=False, timeout=2, attempt_timeout=0.5)
    others = [own_cluster.endpoint(i) for i in own_cluster.ids if i != leader]
    contender = kahuna.Client(others, discover_members=False, timeout=30, attempt_timeout=0.5)
    ttl = 2.0
    called: List[float] = []
    lock = holder.lock("jobs/paused", ttl=ttl, on_lost=lambda _l: called.append(time.monotonic()))
    assert lock.acquired and lock.fencing_token is not None
    old_token = lock.fencing_token

    lost_at: List[float] = []

    def watch() -> None:
        if lock.lost.wait(30):
            lost_at.append(time.monotonic())

    w = threading.Thread(target=watch)
    w.start()
    paused_at = time.monotonic()
    own_cluster.pause(leader)
    try:
        other = contender.lock("jobs/paused", ttl=ttl, wait=30, retry=0.05)
        granted_at = time.monotonic()
        assert other.acquired and other.fencing_token is not None and other.fencing_token > old_token
        w.join(30)
        assert lost_at, "lock.lost was never set"
        assert lost_at[0] < granted_at, (lost_at[0] - paused_at, granted_at - paused_at)
        assert lost_at[0] - paused_at <= ttl + 0.5
        assert not lock.acquired and lock.lost_reason
        deadline = time.monotonic() + 5
        while not called and time.monotonic() < deadline:
            time.sleep(0.05)
        assert called, "on_lost was not called"
        other.release()
    finally:
        own_cluster.resume(leader)


def test_async_lock_lost_event(own_cluster: Cluster) -> None:
    leader = own_cluster.serving_leader()

    async def main() -> None:
        c = kahuna.AsyncClient(own_cluster.endpoint(leader), discover_members=False, timeout=2, attempt_timeout=0.5)
        seen: List[str] = []

        async def on_lost(lock: kahuna.AsyncLock) -> None:
            seen.append(lock.lost_reason or "")

        lock = await c.lock("jobs/async-paused", ttl=1.5, on_lost=on_lost)
        assert lock.acquired
        own_cluster.pause(leader)
        try:
            await asyncio.wait_for(lock.lost.wait(), 10)
            await asyncio.sleep(0.1)
            assert seen and not lock.acquired
        finally:
            own_cluster.resume(leader)

    asyncio.run(main())
