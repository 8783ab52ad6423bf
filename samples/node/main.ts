// Runs the four workflows against a cluster and checks their results:
// `node out/samples/main.js HOST:PORT[,HOST:PORT...]` (node/test.sh runs it).
import { KahunaClient } from 'kahuna-rs'
import { RateLimiter } from './rateLimit'
import { runLeaderJob } from './leaderJob'
import { allocateIds } from './allocateIds'
import { transfer } from './transfer'

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`sample failed: ${what}`)
  console.log(`ok: ${what}`)
}

async function main(): Promise<void> {
  const endpoints = (process.argv[2] ?? '127.0.0.1:2070').split(',')
  const client = new KahunaClient({ endpoints })
  const run = `${process.pid}-${Date.now()}`
  try {
    const limiter = new RateLimiter(client, 3, 60_000)
    const answers = await Promise.all(Array.from({ length: 5 }, () => limiter.tryAcquire(`user-${run}`)))
    check(answers.filter((x) => x).length === 3, 'rate limiting lets 3 of 5 concurrent calls through')

    const first = await runLeaderJob(client, `nightly-${run}`, 3)
    const second = await runLeaderJob(client, `nightly-${run}`, 3)
    check(first.ran && second.ran && (second.token ?? 0) > (first.token ?? 0), 'leader job: each run gets a higher fencing token')
    const state = await client.get(`jobs/nightly-${run}/state`)
    check(state.valueAsString() === `step 3 by token ${second.token}`, 'leader job: fenced writes landed')

    const ids = await allocateIds(client, `orders-${run}`, 'import-42', 5)
    const again = await allocateIds(client, `orders-${run}`, 'import-42', 5)
    const next = await allocateIds(client, `orders-${run}`, 'import-43', 5)
    check(JSON.stringify(ids) === JSON.stringify(again), 'allocation: a retry gets the same ids')
    check(next[0] === (ids[4] ?? 0) + 1, 'allocation: the next batch follows')

    await client.set(`acct/${run}/a`, '100')
    await client.set(`acct/${run}/b`, '0')
    const moves = await Promise.all(Array.from({ length: 8 }, () => transfer(client, `acct/${run}/a`, `acct/${run}/b`, 10)))
    const a = (await client.get(`acct/${run}/a`)).valueAsNumber()
    const b = (await client.get(`acct/${run}/b`)).valueAsNumber()
    check(moves.every((m) => m) && a === 20 && b === 80, 'transfer: concurrent compare-and-set transactions keep the total')
  } finally {
    await client.close()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
