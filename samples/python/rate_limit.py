"""Rate limiting: at most `limit` actions per key per fixed window, shared by every process
using the cluster. The cluster keeps the limiter: each decision is one round trip
(``check_rate``), decided atomically by the server, so two processes never both take the
last permit, and a refusal says how long until the next one."""

from __future__ import annotations

import kahuna


class RateLimiter:
    def __init__(self, client: kahuna.Client, limit: int, window: float) -> None:
        self.client = client
        self.policy = kahuna.FixedWindow(limit=limit, window=window)

    def check(self, key: str) -> kahuna.RateDecision:
        """Takes a permit for `key` in the current window if one is left."""
        return self.client.check_rate(f"ratelimit/{key}", self.policy)

    def try_acquire(self, key: str) -> bool:
        """Takes a permit for `key` in the current window: True if the action may go ahead."""
        return self.check(key).allowed
