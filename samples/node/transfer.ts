// Transactional compare-and-set: move `amount` between two balances atomically, only
// if neither changed since they were read; retry on conflict.
import { KahunaClient } from 'kahuna-rs'

export async function transfer(client: KahunaClient, from: string, to: string, amount: number): Promise<boolean> {
  for (;;) {
    const a = await client.get(from)
    const b = await client.get(to)
    const fromBalance = a.valueAsNumber() ?? 0
    const toBalance = b.valueAsNumber() ?? 0
    if (fromBalance < amount) return false
    const r = await client
      .transaction()
      .ifRevision(from, a.revision)
      .ifRevision(to, b.revision)
      .thenSet(from, String(fromBalance - amount))
      .thenSet(to, String(toBalance + amount))
      .commit()
    if (r.success) return true
  }
}
