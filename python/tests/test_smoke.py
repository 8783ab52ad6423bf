from __future__ import annotations

import asyncio

import kahuna
from cluster import Cluster


def test_set_get_sync(client: kahuna.Client, prefix: str) -> None:
    r = client.set(prefix + "a", "hello")
    assert r.succeeded and r.kv is not None
    kv = client.get(prefix + "a")
    assert kv is not None
    assert kv.value == b"hello" and kv.value_str == "hello" and kv.key == prefix + "a"
    assert kv.revision == r.revision and kv.version == 1
    assert client.get(prefix + "missing") is None


def test_lock_sync(client: kahuna.Client, prefix: str) -> None:
    with client.lock(prefix + "job", ttl=5) as lock:
        assert lock.acquired and lock.fencing_token is not None
        other = client.lock(prefix + "job", ttl=5)
        assert not other.acquired
    again = client.lock(prefix + "job", ttl=5)
    assert again.acquired
    assert again.fencing_token is not None and again.fencing_token > (lock.fencing_token or 0)
    again.release()


def test_async_basics(cluster: Cluster, prefix: str) -> None:
    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            r = await c.set(prefix + "x", b"\x00\x01")
            assert r.succeeded
            kv = await c.get(prefix + "x")
            assert kv is not None and kv.value == b"\x00\x01"
            async with c.lock(prefix + "job", ttl=5) as lock:
                assert lock.acquired
                await c.set(prefix + "state", "running", fence=lock)

    asyncio.run(main())


def test_installed_wheel_not_source_tree() -> None:
    assert "site-packages" in (kahuna.__file__ or ""), kahuna.__file__
    assert kahuna._native.__file__ is not None and "abi3" in kahuna._native.__file__
