// A leader-owned job: whoever holds the job lock runs it and fences every write with
// the lock, so a worker that lost the lock (paused, partitioned) cannot overwrite the
// new owner's state. `lock.lost` stops the work as soon as the lease can't be trusted.
import { KahunaClient } from 'kahuna-rs'

export async function runLeaderJob(
  client: KahunaClient,
  job: string,
  steps: number,
): Promise<{ ran: boolean; token: number | null }> {
  const lock = await client.acquireLock(`jobs/${job}`, { expiry: 5000, wait: 0 })
  if (!lock.acquired) return { ran: false, token: null }
  try {
    for (let step = 1; step <= steps; step++) {
      lock.lost.throwIfAborted()
      await client.set(`jobs/${job}/state`, `step ${step} by token ${lock.fencingToken}`, {
        fence: lock,
        signal: lock.lost,
      })
    }
    return { ran: true, token: lock.fencingToken }
  } finally {
    await lock.release()
  }
}
