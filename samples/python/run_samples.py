"""Runs the four workflows against a cluster and checks what they promise:

    python run_samples.py 127.0.0.1:2070,127.0.0.1:2170,127.0.0.1:2270
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import kahuna
from idempotent_ids import ids_for_batch
from leader_job import run_once
from rate_limit import RateLimiter
from transfer import move


def expect(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        raise AssertionError(what)


def main(endpoints: str) -> None:
    run = uuid.uuid4().hex
    with kahuna.Client(endpoints) as client:
        limiter = RateLimiter(client, 5, 60)
        with ThreadPoolExecutor(12) as pool:
            granted = sum(pool.map(lambda _: limiter.try_acquire(f"api-{run}"), range(12)))
        expect(granted == 5, f"rate limiting: 5 of 12 concurrent requests get a permit ({granted})")
        refused = limiter.check(f"api-{run}")
        expect(
            not refused.allowed and refused.remaining == 0 and 0 < refused.retry_after <= 60,
            f"rate limiting: a refusal says when to retry ({refused.retry_after:.1f} s)",
        )

        t1 = run_once(client, f"report-{run}", "worker-a")
        t2 = run_once(client, f"report-{run}", "worker-b")
        expect(0 < t1 < t2, "leader-owned job: each run holds the lock with a higher fencing token")
        try:
            client.txn().fence((f"jobs/report-{run}", t1)).then(kahuna.Op.set(f"jobs/report-{run}/state", "stale")).commit()
            expect(False, "leader-owned job: a write fenced with an old token is refused")
        except kahuna.FencedError as e:
            expect(e.code == "FENCED", "leader-owned job: a write fenced with an old token is refused")

        first = ids_for_batch(client, run, 100)
        retry = ids_for_batch(client, run, 100)
        other = ids_for_batch(client, run + "-2", 100)
        expect(first.first == retry.first and retry.replayed, "idempotent allocation: a retry gets the same range")
        expect(not set(first.ids) & set(other.ids), "idempotent allocation: ranges never overlap")

    async def transfers() -> None:
        async with kahuna.AsyncClient(endpoints) as c:
            a, b = f"accounts/{run}/a", f"accounts/{run}/b"
            await c.set(a, "100")
            await c.set(b, "0")
            moves = await asyncio.gather(*(move(c, a, b, 10) for _ in range(8)))
            ka, kb = await c.get(a), await c.get(b)
            left = int(ka.value_str) if ka else -1
            right = int(kb.value_str) if kb else -1
            expect(all(moves) and left == 20 and right == 80, "transactional compare-and-set: 8 concurrent transfers, no lost update")
            expect(not await move(c, a, b, 50), "transactional compare-and-set: short funds are refused")

    asyncio.run(transfers())
    print("samples: 4 workflows passed")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2070")
