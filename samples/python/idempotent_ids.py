"""Idempotent allocation: reserve ranges of identifiers that never overlap; a retry with the
same idempotency key (after a timeout, a crash, from another process) gets the same range."""

from __future__ import annotations

import kahuna


def ids_for_batch(client: kahuna.Client, batch_id: str, count: int) -> kahuna.IdRange:
    return client.next("orders", count, idempotency_key=f"import-{batch_id}")
