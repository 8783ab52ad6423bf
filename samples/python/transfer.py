"""Transactional compare-and-set: move an amount between two accounts atomically. The
transaction applies only if neither balance changed since it was read; otherwise it reads
again and retries. Written with the AsyncClient."""

from __future__ import annotations

from kahuna import AsyncClient, Compare, Op


async def move(client: AsyncClient, src: str, dst: str, amount: int) -> bool:
    """Moves `amount` from `src` to `dst`; False when funds are short."""
    while True:
        a = await client.get(src)
        b = await client.get(dst)
        have = int(a.value_str) if a else 0
        other = int(b.value_str) if b else 0
        if have < amount:
            return False
        r = await (
            client.txn()
            .when(Compare.mod_revision(src, "==", a.revision if a else 0))
            .when(Compare.mod_revision(dst, "==", b.revision if b else 0))
            .then(Op.set(src, str(have - amount)), Op.set(dst, str(other + amount)))
            .commit()
        )
        if r.succeeded:
            return True
