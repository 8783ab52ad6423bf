// Idempotent ID allocation: a batch job reserves its identifiers with an idempotency
// key, so a retry (after a crash or a timeout) gets the same range, never a second one.
import { KahunaClient } from 'kahuna-rs'

export async function allocateIds(client: KahunaClient, sequence: string, batch: string, count: number): Promise<number[]> {
  const range = await client.reserveSequenceRange(sequence, count, { idempotencyKey: batch })
  return Array.from({ length: range.count }, (_, i) => range.first + i)
}
