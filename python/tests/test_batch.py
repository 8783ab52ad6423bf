"""Batches and ranges against the real 3-node cluster: several keys read at one
revision (missing ones left out), written and deleted atomically at one revision, range
scans of [start, end) in pages, and the bounds as typed errors, through the blocking and
the asyncio client."""

from __future__ import annotations

import asyncio
import uuid
from typing import List

import pytest

import kahuna
from cluster import Cluster
from kahuna import InvalidArgumentError, ManyKeys


def test_many_keys_at_one_revision_and_ranges_in_pages(client: kahuna.Client, prefix: str) -> None:
    items = {f"{prefix}{i:02}": f"v{i}" for i in range(20)}
    revision = client.set_many(items)
    assert isinstance(revision, int) and revision > 0

    got = client.get_many([prefix + "03", prefix + "missing", prefix + "17"])
    assert isinstance(got, ManyKeys)
    assert len(got) == 2, "a missing key is left out"
    assert [kv.key for kv in got] == [prefix + "03", prefix + "17"], "in the order asked"
    kv17 = got.get(prefix + "17")
    assert kv17 is not None and kv17.value_str == "v17"
    assert got.get(prefix + "missing") is None and prefix + "missing" not in got and prefix + "03" in got
    assert all(kv.revision == revision for kv in got.kvs), "one revision for the whole batch"
    assert got.revision >= revision

    # Pairs (bytes values too) work like a mapping; the batch is one later revision.
    again = client.set_many([(prefix + "00", b"\xff"), (prefix + "01", "w1")])
    assert again > revision
    both = client.get_many(iter([prefix + "00", prefix + "01"]))
    assert [(kv.value, kv.revision) for kv in both] == [(b"\xff", again), (b"w1", again)]

    # [05, 15) in pages of 4: ten keys, in order, none outside.
    keys: List[str] = []
    token = None
    pages = 0
    while True:
        page = client.scan_range(prefix + "05", prefix + "15", limit=4, page_token=token)
        pages += 1
        assert len(page.kvs) <= 4
        keys.extend(kv.key for kv in page.kvs)
        if page.is_last:
            break
        token = page.next_page_token
    assert keys == [f"{prefix}{i:02}" for i in range(5, 15)]
    assert pages >= 3, pages
    # The iterator pages by itself; keys_only leaves the values out.
    it = list(client.scan_range_iter(prefix + "05", prefix + "15", page_size=3, keys_only=True))
    assert [kv.key for kv in it] == keys and all(kv.value == b"" for kv in it)
    assert [kv.key for kv in client.scan_range_all(prefix + "18", prefix + "99")] == [prefix + "18", prefix + "19"]

    # Deleted together: those that existed are counted.
    assert client.delete_many([prefix + "00", prefix + "01", prefix + "missing"]) == 2
    left = client.get_many([prefix + "00", prefix + "01", prefix + "02"])
    assert [kv.key for kv in left] == [prefix + "02"]

    # The ephemeral tier answers get_many too (a name space of its own).
    assert len(client.get_many([prefix + "02"], ephemeral=True)) == 0
    assert len(client.get_many([prefix + "02"], stale=True)) == 1


def test_an_open_end_runs_to_the_last_key(client: kahuna.Client) -> None:
    # A prefix after every other key of the session's cluster.
    last = f"\U0010ffff/{uuid.uuid4().hex[:12]}/"
    client.set_many({last + "a": "1", last + "b": "2", last + "c": "3"})
    tail = client.scan_range_all(last + "b")
    assert [kv.key for kv in tail] == [last + "b", last + "c"]
    assert [kv.key for kv in client.scan_range(last + "a", limit=1).kvs] == [last + "a"]


def test_batch_and_range_bounds_are_typed_errors(client: kahuna.Client, prefix: str) -> None:
    with pytest.raises(InvalidArgumentError, match="1000"):
        client.get_many([f"{prefix}{i}" for i in range(1001)])
    with pytest.raises(InvalidArgumentError):
        client.get_many([])
    # A batch past the transaction limit is refused as a whole.
    with pytest.raises(InvalidArgumentError):
        client.set_many({f"{prefix}{i}": "v" for i in range(129)})
    assert client.get(prefix + "0") is None, "nothing of it was applied"
    client.set(prefix + "0", "kept")
    with pytest.raises(InvalidArgumentError):
        client.delete_many([f"{prefix}{i}" for i in range(129)])
    kept = client.get(prefix + "0")
    assert kept is not None and kept.value_str == "kept", "nothing of it was applied"
    with pytest.raises(InvalidArgumentError, match="range_end must come after range_start"):
        client.scan_range(prefix + "b", prefix + "a")
    with pytest.raises(InvalidArgumentError, match="page_token"):
        client.scan_range(prefix + "a", prefix + "c", page_token=b"d")
    with pytest.raises(TypeError):
        client.get_many(prefix + "a")
    with pytest.raises(TypeError):
        client.delete_many([prefix + "a", 1])  # type: ignore[list-item]


def test_batches_and_ranges_through_the_asyncio_client(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            revision = await c.set_many([(f"{prefix}{i:02}", f"v{i}") for i in range(12)])
            got = await c.get_many([prefix + "11", prefix + "nope", prefix + "00"])
            assert [kv.key for kv in got] == [prefix + "11", prefix + "00"]
            assert {kv.revision for kv in got} == {revision} and got.revision >= revision

            page = await c.scan_range(prefix + "02", prefix + "06", limit=2)
            assert [kv.key for kv in page.kvs] == [prefix + "02", prefix + "03"] and not page.is_last
            rest = await c.scan_range(prefix + "02", prefix + "06", limit=2, page_token=page.next_page_token)
            assert [kv.key for kv in rest.kvs] == [prefix + "04", prefix + "05"]
            keys = [kv.key async for kv in c.scan_range_iter(prefix + "02", prefix + "10", page_size=3)]
            assert keys == [f"{prefix}{i:02}" for i in range(2, 10)]
            assert [kv.key for kv in await c.scan_range_all(prefix + "10", prefix + "99")] == [
                prefix + "10",
                prefix + "11",
            ]

            assert await c.delete_many([prefix + "00", prefix + "01", prefix + "nope"]) == 2
            assert len(await c.get_many([prefix + "00", prefix + "01"])) == 0
            with pytest.raises(InvalidArgumentError):
                await c.get_many([f"{prefix}{i}" for i in range(1001)])
            with pytest.raises(InvalidArgumentError):
                await c.set_many({f"{prefix}x{i}": "v" for i in range(129)})
            assert len(await c.get_many([prefix + "x0"])) == 0

    asyncio.run(main())
