"""Every API call, through the blocking client and the asyncio client."""

from __future__ import annotations

import asyncio
import datetime
import pickle
import threading

import pytest

import kahuna
from cluster import Cluster
from kahuna import Compare, Op


def test_kv_conditions_ttl_extend_exists_delete(client: kahuna.Client, prefix: str) -> None:
    k = prefix + "k"
    created = client.set(k, "v1", if_not_exists=True)
    assert created.succeeded and created.kv is not None and created.kv.version == 1
    assert not client.set(k, "x", if_not_exists=True).succeeded
    assert client.set(k, "v2", if_exists=True).succeeded
    assert not client.set(prefix + "nope", "x", if_exists=True).succeeded
    assert not client.compare_and_set(k, "wrong", "v3").succeeded
    r = client.compare_and_set(k, "v2", "v3")
    assert r and r.kv is not None and r.kv.value_str == "v3"
    assert not client.compare_revision_and_set(k, r.revision - 1, "v4").succeeded
    r4 = client.compare_revision_and_set(k, r.revision, b"v4")
    assert r4.succeeded and r4.kv is not None and r4.kv.create_revision == created.revision
    assert client.exists(k) == r4.revision
    assert client.exists(prefix + "missing") is None

    t = client.set(prefix + "ttl", "x", ttl=datetime.timedelta(seconds=30))
    assert t.kv is not None and t.kv.expires_at is not None and t.kv.expires_at_ms is not None
    assert t.kv.expires_at.tzinfo is not None
    e = client.extend(prefix + "ttl", 60)
    assert e.succeeded and e.kv is not None and (e.kv.expires_at_ms or 0) > (t.kv.expires_at_ms or 0)
    short = client.set(prefix + "short", "x", ttl=0.2)
    assert short.succeeded
    deadline = 50
    while client.get(prefix + "short") is not None and deadline:
        deadline -= 1
        threading.Event().wait(0.1)
    assert client.get(prefix + "short") is None

    assert not client.delete(k, if_value="nope").succeeded
    d = client.delete(k, if_revision=r4.revision)
    assert d.succeeded and d.deleted
    assert client.get(k) is None
    d2 = client.delete(k)
    assert d2.succeeded and not d2.deleted


def test_values_and_types(client: kahuna.Client, prefix: str) -> None:
    client.set(prefix + "s", "héllo")
    kv = client.get(prefix + "s")
    assert kv is not None and kv.value == "héllo".encode() and kv.value_str == "héllo"
    client.set(prefix + "b", bytearray(b"\xff\x00"))
    kv = client.get(prefix + "b")
    assert kv is not None and kv.value == b"\xff\x00" and kv.value_str == "\ufffd\x00"
    with pytest.raises(TypeError):
        client.set(prefix + "bad", 3)  # type: ignore[arg-type]
    with pytest.raises(dataclasses_frozen_error()):
        kv.value = b"x"  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_read_at_revision_and_history(client: kahuna.Client, prefix: str) -> None:
    k = prefix + "h"
    r1 = client.set(k, "a")
    r2 = client.set(k, "b")
    client.delete(k)
    old = client.get(k, revision=r1.revision)
    assert old is not None and old.value_str == "a"
    assert client.get(k, stale=True) is None
    h = client.history(k)
    kinds = [e.kind for e in h.events]
    assert kinds == ["put", "put", "delete"], kinds
    assert h.events[1].revision == r2.revision and h.events[1].kv.value_str == "b"
    assert len(client.history(k, limit=1).events) == 1
    with pytest.raises(kahuna.FutureRevisionError) as ei:
        client.get(k, revision=h.revision + 1_000_000)
    assert ei.value.code == "FUTURE_REVISION" and not ei.value.retryable


def test_scan_pages_and_iterator(client: kahuna.Client, prefix: str) -> None:
    for i in range(25):
        client.set(f"{prefix}scan/{i:03d}", str(i))
    page = client.scan(prefix + "scan/", limit=10)
    assert len(page.kvs) == 10 and page.next_page_token is not None and not page.is_last
    page2 = client.scan(prefix + "scan/", limit=10, page_token=page.next_page_token)
    assert page2.kvs[0].key == f"{prefix}scan/010"
    keys = [kv.key for kv in client.scan_iter(prefix + "scan/", page_size=7)]
    assert keys == [f"{prefix}scan/{i:03d}" for i in range(25)]
    assert len(client.scan_all(prefix + "scan/")) == 25
    ko = client.scan(prefix + "scan/", keys_only=True, limit=3)
    assert [kv.value for kv in ko.kvs] == [b"", b"", b""]


def test_transactions(client: kahuna.Client, prefix: str) -> None:
    a, b = prefix + "a", prefix + "b"
    ra = client.set(a, "1")
    r = (
        client.txn()
        .when(Compare.value(a, "==", "1"), Compare.missing(b), Compare.mod_revision(a, "==", ra.revision))
        .when(Compare.version(a, "==", 1), Compare.create_revision(a, "==", ra.revision), Compare.exists(a))
        .then(Op.set(a, "2"), Op.set(b, "x", ttl=30), Op.get(a), Op.extend(b, 60))
        .otherwise(Op.get(a))
        .commit()
    )
    assert r.succeeded and len(r.results) == 4
    got = r.results[2].kv
    assert got is not None and got.value_str == "2"
    r2 = client.txn().when(Compare.value(a, "==", "1")).then(Op.delete(a)).otherwise(Op.get(a)).commit()
    assert not r2.succeeded and r2.results[0].kv is not None and r2.results[0].kv.value_str == "2"
    with pytest.raises(ValueError):
        Compare.value(a, "=~", "x")


def test_sequences(client: kahuna.Client, prefix: str) -> None:
    s = prefix + "seq"
    r1 = client.next(s, 10)
    r2 = client.next(s, 5, idempotency_key="k1")
    r3 = client.next(s, 5, idempotency_key="k1")
    assert r2.first >= r1.first + 10 and r3.first == r2.first and r3.replayed and not r2.replayed
    assert list(r1) == list(range(r1.first, r1.first + 10)) and len(r1) == 10
    assert client.peek_sequence(s) >= r2.first + 5
    with pytest.raises(kahuna.InvalidArgumentError) as ei:
        client.next(s, 0)
    assert ei.value.code == "INVALID_ARGUMENT" and isinstance(ei.value, ValueError)


def test_locks_and_fenced_writes(client: kahuna.Client, prefix: str) -> None:
    res = prefix + "lock"
    with client.lock(res, ttl=5, owner="me") as lock:
        assert lock.acquired and bool(lock) and lock.owner == "me" and lock.trusted_for > 0
        assert lock.fence is not None and lock.fence.token == lock.fencing_token
        info = client.lock_info(res)
        assert info is not None and info.owner == "me" and info.fencing_token == lock.fencing_token
        other = client.lock(res, ttl=5)
        assert not other.acquired and other.fencing_token is None
        assert other.holder is not None and other.holder.owner == "me"
        assert client.set(prefix + "state", "v", fence=lock).succeeded
        assert client.set(prefix + "state", "v", fence=kahuna.Fence(res, lock.fencing_token or 0)).succeeded
        lock.extend(8)
        assert not lock.lost.is_set()
        token = lock.fencing_token or 0
    assert client.lock_info(res) is None
    with pytest.raises(kahuna.FencedError) as ei:
        client.set(prefix + "state", "late", fence=(res, token))
    assert ei.value.code == "FENCED"
    with pytest.raises(kahuna.LockNotHeldError):
        client.set(prefix + "state", "late", fence=lock)
    with pytest.raises(kahuna.LockNotHeldError):
        lock.extend()
    assert not lock.lost.is_set()  # released, not lost

    # Unlock by owner, ephemeral locks, waiting for a lock.
    held = client.lock(res, ttl=5, owner="x")
    assert client.unlock(res, "x") is True
    assert client.unlock(res, "x") is False
    del held
    eph = client.lock(prefix + "eph", ttl=5, ephemeral=True)
    assert eph.acquired and eph.ephemeral
    assert client.set(prefix + "ek", "v", ttl=5, ephemeral=True, fence=eph).succeeded
    kv = client.get(prefix + "ek", ephemeral=True)
    assert kv is not None and kv.value_str == "v"
    assert client.lock_info(prefix + "eph", ephemeral=True) is not None
    assert eph.release() is True

    first = client.lock(res, ttl=5)
    assert first.acquired
    threading.Timer(0.5, first.release).start()
    waited = client.lock(res, ttl=5, wait=10, retry=0.05)
    assert waited.acquired and (waited.fencing_token or 0) > (first.fencing_token or 0)
    waited.release()


def test_lock_renewal_keeps_lease(client: kahuna.Client, prefix: str) -> None:
    lock = client.lock(prefix + "renew", ttl=0.6)
    threading.Event().wait(1.5)
    assert lock.acquired and not lock.lost.is_set()
    lock.release()


def test_cluster_calls(client: kahuna.Client, cluster: Cluster) -> None:
    s = client.status()
    assert s.leader_id in (1, 2, 3) and len(s.members) == 3 and s.term >= 1
    assert s.leader is not None and s.applied_index <= s.last_log_index
    ms = client.members()
    assert sorted(m.id for m in ms) == [1, 2, 3] and all(m.voter for m in ms)
    client.trigger_snapshot()
    assert client.leader is not None and client.client_id and len(client.endpoints) == 3
    with pytest.raises(kahuna.KahunaError) as ei:
        client.remove_member(42)
    assert ei.value.code in ("MEMBERSHIP", "INVALID_ARGUMENT")
    quick = client.with_timeout(0.5)
    assert quick.get("anything") is None


def test_errors_table_and_pickle() -> None:
    for code, cls in kahuna.ERRORS.items():
        e = kahuna.make_error(code, "m", code == "UNAVAILABLE")
        assert type(e) is cls and e.code == code and isinstance(e, kahuna.KahunaError)
    other = kahuna.make_error("SOMETHING_NEW", "m", False)
    assert type(other) is kahuna.KahunaError and other.code == "SOMETHING_NEW"
    e = kahuna.make_error("FENCED", "token 3 < 4", False)
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is kahuna.FencedError and e2.code == "FENCED" and str(e2) == "token 3 < 4"
    with pytest.raises(kahuna.ConfigError):
        kahuna.Client([])
    with pytest.raises((kahuna.UnavailableError, kahuna.KahunaTimeoutError)) as ei:
        kahuna.Client("127.0.0.1:1", timeout=0.5)
    assert ei.value.retryable
    with pytest.raises(kahuna.InvalidArgumentError):
        kahuna.Client("127.0.0.1:1", timeout=-1, lazy=True)


def test_async_every_call(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        c = await kahuna.AsyncClient.connect(cluster.endpoints)
        k = prefix + "ak"
        r = await c.set(k, "v1", if_not_exists=True, ttl=30)
        assert r.succeeded
        assert not (await c.compare_and_set(k, "no", "x")).succeeded
        r2 = await c.compare_revision_and_set(k, r.revision, "v2")
        assert r2.succeeded
        assert (await c.extend(k, 60)).succeeded
        assert await c.exists(k) == r2.revision
        kv = await c.get(k, revision=r.revision)
        assert kv is not None and kv.value_str == "v1"
        for i in range(5):
            await c.set(f"{prefix}as/{i}", str(i))
        page = await c.scan(prefix + "as/", limit=2)
        assert len(page.kvs) == 2
        assert [kv.key async for kv in c.scan_iter(prefix + "as/", page_size=2)] == [f"{prefix}as/{i}" for i in range(5)]
        assert len(await c.scan_all(prefix + "as/")) == 5
        h = await c.history(k)
        assert len(h.events) == 2
        t = await c.txn().when(Compare.value(k, "==", "v2")).then(Op.set(k, "v3"), Op.get(k)).commit()
        assert t.succeeded
        ids = await c.next(prefix + "seq", 3, idempotency_key="a")
        assert (await c.next(prefix + "seq", 3, idempotency_key="a")).first == ids.first
        assert await c.peek_sequence(prefix + "seq") == ids.first + 3
        d = await c.delete(k, if_value="v3")
        assert d.deleted

        async with c.lock(prefix + "alock", ttl=5, wait=1) as lock:
            assert lock.acquired and lock.fencing_token is not None
            assert (await c.set(prefix + "fenced", "x", fence=lock)).succeeded
            info = await c.lock_info(prefix + "alock")
            assert info is not None and info.fencing_token == lock.fencing_token
            other = await c.lock(prefix + "alock", ttl=5)
            assert not other.acquired
            await lock.extend(6)
            txn = await c.txn().fence(lock).then(Op.set(prefix + "fenced", "y")).commit()
            assert txn.succeeded
        assert await c.lock_info(prefix + "alock") is None
        assert not lock.lost.is_set()
        l2 = await c.lock(prefix + "alock2", owner="o")
        assert await c.unlock(prefix + "alock2", "o") is True
        del l2
        s = await c.status()
        assert len(s.members) == 3
        assert len(await c.members()) == 3
        await c.trigger_snapshot()
        with pytest.raises(kahuna.FencedError):
            await c.set(prefix + "fenced", "z", fence=(prefix + "alock", lock.fencing_token or 0))
        with pytest.raises(kahuna.InvalidArgumentError):
            await c.next(prefix + "seq", 0)
        assert (await c.with_timeout(1).get(prefix + "nothing")) is None
        await c.close()
        with pytest.raises(kahuna.ConfigError):
            await c.get(k)

    asyncio.run(main())
