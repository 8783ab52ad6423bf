"""Rate limiters kept by the cluster, against the real 3-node cluster: each policy's
decisions (the limit, what remains, how long to wait), exactly the limit allowed under
concurrent callers on both tiers, the ephemeral tier as a name space of its own, and bad
input as typed errors, through the blocking and the asyncio client."""

from __future__ import annotations

import asyncio
import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Tuple

import pytest

import kahuna
from cluster import Cluster
from kahuna import FixedWindow, InvalidArgumentError, RateDecision, RatePolicy, SlidingWindow, TokenBucket


def test_each_policy_allows_its_limit_and_says_when_to_retry(client: kahuna.Client, prefix: str) -> None:
    # A token bucket: the burst, then one token a second (slow enough that no token comes
    # back between the checks of a loaded machine, where a persistent check can take
    # 100 ms or more).
    bucket = TokenBucket(capacity=3, refill_per_second=1)
    for left in (2, 1, 0):
        d = client.check_rate(prefix + "bucket", bucket)
        assert isinstance(d, RateDecision) and d.allowed and d
        assert d.remaining == left
        assert d.revision > 0, "a persistent limiter answers at a store revision"
    refused = client.check_rate(prefix + "bucket", bucket)
    assert not refused.allowed and not refused
    assert refused.remaining == 0
    assert 0 < refused.retry_after <= 1.0, refused.retry_after
    time.sleep(refused.retry_after + 0.02)
    assert client.check_rate(prefix + "bucket", bucket).allowed

    # A fixed window: the limit per window, then a wait to the window's end.
    fixed = FixedWindow(limit=5, window=2)
    decisions = [client.check_rate(prefix + "fixed", fixed) for _ in range(8)]
    allowed = sum(d.allowed for d in decisions)
    # The 8 checks may straddle a window boundary: 5 in one window, the rest in the next.
    assert 5 <= allowed <= 8, decisions
    if allowed == 5:
        waits = [d.retry_after for d in decisions if not d.allowed]
        assert all(0 < w <= 2 for w in waits), waits

    # A sliding window (a timedelta window), with costs: several units at once.
    sliding = SlidingWindow(limit=10, window=datetime.timedelta(minutes=1))
    first = client.check_rate(prefix + "sliding", sliding, 7)
    assert first.allowed and first.remaining == 3
    d = client.check_rate(prefix + "sliding", sliding, cost=4)
    assert not d.allowed and d.remaining == 3 and d.retry_after > 0
    assert client.check_rate(prefix + "sliding", sliding, 3).allowed
    # One more than the limit can never pass.
    with pytest.raises(InvalidArgumentError, match="could never be allowed"):
        client.check_rate(prefix + "sliding", sliding, 11)


def test_the_limit_holds_across_concurrent_callers(cluster: Cluster, client: kahuna.Client, prefix: str) -> None:
    policy = FixedWindow(limit=50, window=3600)

    async def race(ephemeral: bool) -> int:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            name = prefix + ("race-ephemeral" if ephemeral else "race")
            ds = await asyncio.gather(*(c.check_rate(name, policy, ephemeral=ephemeral) for _ in range(64)))
            return sum(d.allowed for d in ds)

    for ephemeral in (False, True):
        assert asyncio.run(race(ephemeral)) == 50, f"exactly the limit (ephemeral={ephemeral})"

    # Threads of the blocking client share one budget too.
    small = TokenBucket(capacity=10, refill_per_second=1)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        ds: List[RateDecision] = list(pool.map(lambda _: client.check_rate(prefix + "threads", small), range(24)))
    refilled = int(time.monotonic() - started) + 1
    allowed = sum(d.allowed for d in ds)
    assert 10 <= allowed <= 10 + refilled, f"the burst, and the tokens refilled meanwhile: {allowed}"


def test_the_ephemeral_tier_is_a_name_space_of_its_own(client: kahuna.Client, prefix: str) -> None:
    one = TokenBucket(capacity=1, refill_per_second=1)
    name = prefix + "tiers"
    assert client.check_rate(name, one).allowed
    assert not client.check_rate(name, one).allowed
    e = client.check_rate(name, one, ephemeral=True)
    assert e.allowed and e.remaining == 0, "the ephemeral limiter of that name is another one"
    refused = client.check_rate(name, one, ephemeral=True)
    assert not refused.allowed and 0 < refused.retry_after <= 1.0


def test_bad_input_is_a_typed_error(cluster: Cluster, client: kahuna.Client, prefix: str) -> None:
    name = prefix + "bad"
    cases: List[Tuple[RatePolicy, str]] = [
        (FixedWindow(limit=5, window=0), "rate window"),
        (SlidingWindow(limit=5, window=0.0005), "rate window"),
        (FixedWindow(limit=0, window=1), "limit is 0"),
        (TokenBucket(capacity=0, refill_per_second=1), "capacity"),
        (TokenBucket(capacity=1, refill_per_second=0), "refill"),
    ]
    for policy, says in cases:
        with pytest.raises(InvalidArgumentError, match=says):
            client.check_rate(name, policy)
    with pytest.raises(InvalidArgumentError, match="name"):
        client.check_rate("n" * 1025, TokenBucket(1, 1))
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        client.check_rate(name, FixedWindow(limit=-1, window=1))
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        client.check_rate(name, FixedWindow(limit=1, window=-1))
    with pytest.raises(InvalidArgumentError, match="cost"):
        client.check_rate(name, FixedWindow(limit=1, window=1), -1)
    with pytest.raises(TypeError, match="policy"):
        client.check_rate(name, (5, 1))  # type: ignore[arg-type]
    # A window of 0.3 s is whole milliseconds, although 0.3 is not exact as a float.
    assert client.check_rate(name, FixedWindow(limit=1, window=0.3)).allowed

    async def main() -> None:
        async with kahuna.AsyncClient(cluster.endpoints) as c:
            with pytest.raises(InvalidArgumentError, match="rate window"):
                await c.check_rate(name, FixedWindow(limit=5, window=0))
            with pytest.raises(InvalidArgumentError, match="name"):
                await c.check_rate("n" * 1025, TokenBucket(1, 1), ephemeral=True)
            d = await c.check_rate(prefix + "async", TokenBucket(2, 1), 2)
            assert d.allowed and d.remaining == 0
            refused = await c.check_rate(prefix + "async", TokenBucket(2, 1))
            assert not refused.allowed and 0 < refused.retry_after <= 1.0

    asyncio.run(main())
