// Rate limiting: at most `limit` calls per window per key, counted in a key per
// window with compare-and-set on its revision (the counter expires after two windows).
import { KahunaClient, CallOptions } from 'kahuna-rs'

export class RateLimiter {
  constructor(
    private readonly client: KahunaClient,
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  async tryAcquire(key: string, options?: CallOptions): Promise<boolean> {
    const window = Math.floor(Date.now() / Math.max(1, this.windowMs))
    const counter = `ratelimit/${key}/${window}`
    for (;;) {
      const current = await this.client.get(counter, options)
      const used = current.success ? (current.valueAsNumber() ?? 0) : 0
      if (used >= this.limit) return false
      const r = await this.client.compareRevisionAndSet(counter, String(used + 1), current.success ? current.revision : 0, {
        ...options,
        expiry: 2 * this.windowMs,
      })
      if (r.success) return true
    }
  }
}
