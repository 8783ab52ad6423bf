"""Leader-owned job: one worker at a time holds the job's lock and fences every write with
the lock's token, so a worker that lost the lock (paused, partitioned) cannot overwrite the
newer holder's results: the server refuses the stale token."""

from __future__ import annotations

import datetime

import kahuna


def run_once(client: kahuna.Client, job: str, worker: str) -> int:
    """Runs one step of `job` if this worker can take its lock; returns the fencing token it
    wrote with, or 0 when another worker holds the job."""
    with client.lock(f"jobs/{job}", ttl=10) as lock:
        if not lock.acquired or lock.fencing_token is None:
            return 0
        client.set(f"jobs/{job}/state", f"run by {worker}", fence=lock)
        if lock.lost.is_set():  # stop the work the moment the lease can't be trusted
            return 0
        client.txn().fence(lock).then(
            kahuna.Op.set(f"jobs/{job}/last-run", datetime.datetime.now(datetime.timezone.utc).isoformat())
        ).commit()
        return lock.fencing_token
