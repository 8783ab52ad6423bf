"""Rate limiting: at most `limit` actions per key per fixed window, shared by every process
using the cluster. Each window has one counter key that expires with the window; taking a
permit is a compare-and-set by revision, so two processes never both take the last permit."""

from __future__ import annotations

import time

import kahuna


class RateLimiter:
    def __init__(self, client: kahuna.Client, limit: int, window: float) -> None:
        self.client = client
        self.limit = limit
        self.window = window

    def try_acquire(self, key: str) -> bool:
        """Takes a permit for `key` in the current window: True if the action may go ahead."""
        counter = f"ratelimit/{key}/{int(time.time() // self.window)}"
        while True:
            current = self.client.get(counter)
            used = int(current.value_str) if current else 0
            if used >= self.limit:
                return False
            if current is None:
                r = self.client.set(counter, str(used + 1), ttl=2 * self.window, if_not_exists=True)
            else:
                r = self.client.set(counter, str(used + 1), ttl=2 * self.window, if_revision=current.revision)
            if r.succeeded:
                return True
            # Someone else took a permit at the same moment: look again.
