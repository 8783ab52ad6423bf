"""Watches against the real 3-node cluster: the scenarios every SDK runs (events in
order with their kinds and values, a transaction as one revision, replay from a past
revision, progress, a refused interval, closing while a next is pending), through the
asyncio client, and the blocking client's iterator."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import List, Tuple

import pytest

import kahuna
from cluster import Cluster
from kahuna import HistoryEvent, Op


async def collect(watch: kahuna.AsyncWatch, count: int, within: float) -> List[HistoryEvent]:
    """The next ``count`` events, failing after ``within`` seconds."""
    events: List[HistoryEvent] = []

    async def take() -> None:
        async for e in watch:
            events.append(e)
            if len(events) == count:
                return
        pytest.fail(f"the watch ended after {events}")

    try:
        await asyncio.wait_for(take(), within)
    except asyncio.TimeoutError:
        pytest.fail(f"the watch delivered only {events} within {within} s")
    return events


def summary(events: List[HistoryEvent], prefix: str) -> List[Tuple[str, str, bytes]]:
    return [(e.kind, e.kv.key[len(prefix) :], e.kv.value) for e in events]


def test_a_watch_delivers_every_change_in_order_and_replays(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            async with c.watch(prefix, prefix=True) as watch:
                opened = watch.revision
                a = await c.set(prefix + "a", "1")
                await c.set(prefix.rstrip("/") + "-unwatched", "x")
                b = await c.set(prefix + "b", "2")
                txn = await c.txn().then(Op.set(prefix + "c", "3"), Op.set(prefix + "d", "4")).commit()
                assert txn.succeeded
                await c.delete(prefix + "a")
                await c.set(prefix + "e", "short-lived", ttl=0.3)

                events = await collect(watch, 7, 20)
                assert summary(events, prefix) == [
                    ("put", "a", b"1"),
                    ("put", "b", b"2"),
                    ("put", "c", b"3"),
                    ("put", "d", b"4"),
                    ("delete", "a", b""),
                    ("put", "e", b"short-lived"),
                    ("expire", "e", b""),
                ]
                assert events[0].revision == a.revision > opened
                assert events[0].kv.version == 1 and events[0].kv.create_revision == a.revision
                assert events[1].revision == b.revision
                assert events[2].revision == events[3].revision == txn.revision, "a transaction is one revision"
                revisions = [e.revision for e in events]
                assert revisions == sorted(revisions) and len(set(revisions)) == 6, revisions
                assert events[4].kv.create_revision == a.revision, "a delete names what it removed"
                assert watch.revision >= events[6].revision

            assert watch.closed

            # From a past revision: the same changes, batch by batch, then a live one.
            async with c.watch(prefix, prefix=True, start_revision=a.revision) as replay:
                again: List[HistoryEvent] = []
                deadline = time.monotonic() + 20
                while len(again) < len(events):
                    assert time.monotonic() < deadline, f"replayed only {again}"
                    batch = await asyncio.wait_for(replay.next_batch(), 10)
                    assert batch.is_progress == (not batch.events)
                    assert all(e.revision <= batch.revision for e in batch.events)
                    again.extend(batch.events)
                assert again == events
                f = await c.set(prefix + "f", "live")
                live = await collect(replay, 1, 10)
                assert summary(live, prefix) == [("put", "f", b"live")]
                assert live[0].revision == f.revision

    asyncio.run(main())


def test_an_idle_watch_hears_progress_up_to_a_write_elsewhere(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            async with c.watch(prefix + "idle", progress_interval=0.2) as watch:
                written = await c.set(prefix + "elsewhere", "x")
                started = time.monotonic()
                while True:
                    batch = await asyncio.wait_for(watch.next_batch(), 5)
                    assert batch.is_progress and batch.events == [], batch
                    if batch.revision >= written.revision:
                        break
                    assert time.monotonic() - started < 10, f"progress stuck at {batch.revision}"
                assert watch.revision >= written.revision

    asyncio.run(main())


def test_a_progress_interval_of_10_ms_is_refused(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            with pytest.raises(kahuna.InvalidArgumentError) as ei:
                await c.watch(prefix, progress_interval=0.01)
            assert "progress_interval" in str(ei.value)
            assert ei.value.code == "INVALID_ARGUMENT"

    asyncio.run(main())


def test_closing_a_watch_completes_a_pending_next(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            key = prefix + "closing"
            before = kahuna._native.live_handles()

            # A pending next_batch raises the closed error (the same as a closed client's).
            watch = await c.watch(key)
            pending = asyncio.ensure_future(watch.next_batch())
            await asyncio.sleep(0.3)
            assert not pending.done(), "nothing was written: the next is pending"
            watch.close()
            with pytest.raises(kahuna.ConfigError, match="closed"):
                await asyncio.wait_for(pending, 5)
            with pytest.raises(kahuna.ConfigError):
                await watch.next_batch()

            # A pending iteration ends.
            watch2 = await c.watch(key)

            async def iterate() -> List[HistoryEvent]:
                return [e async for e in watch2]

            iterating = asyncio.ensure_future(iterate())
            await asyncio.sleep(0.3)
            assert not iterating.done()
            watch2.close()
            assert await asyncio.wait_for(iterating, 5) == []

            # Cancelling a next loses nothing: the following one gets the change.
            async with c.watch(key) as watch3:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(watch3.next_batch(), 0.3)
                s = await c.set(key, "after")
                events = await collect(watch3, 1, 10)
                assert [(e.kind, e.kv.value, e.revision) for e in events] == [("put", b"after", s.revision)]

            # The client still works, and the handles are gone.
            got = await c.get(key)
            assert got is not None and got.value == b"after"
            # (A raised exception's traceback holds the watch until it is collected.)
            del watch, watch2, watch3, pending, iterating
            gc.collect()
            assert kahuna._native.live_handles() <= before

    asyncio.run(main())


def test_the_blocking_client_iterates_and_close_ends_it(client: kahuna.Client, prefix: str) -> None:
    with client.watch(prefix, prefix=True) as watch:
        client.set(prefix + "x", "1")
        client.delete(prefix + "x")
        it = iter(watch)
        first, second = next(it), next(it)
        assert (first.kind, first.kv.value, second.kind) == ("put", b"1", "delete")

        # close() from another thread ends an iteration waiting with the GIL released.
        seen: List[HistoryEvent] = []
        t = threading.Thread(target=lambda: seen.extend(watch))
        t.start()
        time.sleep(0.3)
        assert t.is_alive()
        watch.close()
        t.join(5)
        assert not t.is_alive() and seen == []
    with pytest.raises(kahuna.ConfigError):
        watch.next_batch()
    with pytest.raises(kahuna.InvalidArgumentError):
        client.watch(prefix, progress_interval=0.01)
