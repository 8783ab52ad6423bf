// Rate limiting: at most `limit` calls per window per key, shared by every process using
// the cluster. Each decision is one round trip to the cluster's own fixed-window limiter
// (client.checkRateLimit), decided atomically, so two processes never both take the
// last permit; a refusal says how long until the next window.
import { KahunaClient, CallOptions, RatePolicy } from 'kahuna-rs'

export class RateLimiter {
  private readonly policy: RatePolicy

  constructor(
    private readonly client: KahunaClient,
    limit: number,
    windowMs: number,
  ) {
    this.policy = { kind: 'fixedWindow', limit, windowMs }
  }

  /** Takes a permit for `key` in the current window: true if the call may go ahead. */
  async tryAcquire(key: string, options?: CallOptions): Promise<boolean> {
    const decision = await this.client.checkRateLimit(`ratelimit/${key}`, this.policy, options)
    if (!decision.allowed) console.log(`429 for ${key}: retry after ${Math.ceil(decision.retryAfterMs / 1000)} s`)
    return decision.allowed
  }
}
