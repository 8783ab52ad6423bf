// Server-side rate limiters (checkRateLimit) against the 3-node cluster: each policy's
// decisions, the limit under concurrent callers on both tiers, and bad input.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { AbortError, InvalidArgumentError, client, sleep, unique } from './helpers.mjs'

const c = client()
after(() => c.close())

// Windows of an hour: fixed windows are aligned to cluster time, and a boundary crossed
// in the middle of a test would start a fresh count.
const HOUR = 3_600_000

test('fixed window: the limit, then not allowed with a wait within the window', async () => {
  const name = unique('rate-fixed')
  const policy = { kind: 'fixedWindow', limit: 3, windowMs: HOUR }
  const answers = []
  for (let i = 0; i < 3; i++) answers.push(await c.checkRateLimit(name, policy))
  assert.deepEqual(
    answers.map((d) => [d.allowed, d.remaining]),
    [
      [true, 2],
      [true, 1],
      [true, 0],
    ],
  )
  for (const d of answers) {
    assert.equal(d.retryAfterMs, 0)
    assert.ok(d.revision > 0, 'a persistent decision is a log entry')
  }
  assert.ok(answers[1].revision > answers[0].revision)
  const no = await c.checkRateLimit(name, policy)
  assert.equal(no.allowed, false)
  assert.equal(no.remaining, 0)
  assert.ok(no.retryAfterMs > 0 && no.retryAfterMs <= HOUR, `retryAfterMs ${no.retryAfterMs}`)
})

test('sliding window: the limit, then a wait', async () => {
  const name = unique('rate-sliding')
  const policy = { kind: 'slidingWindow', limit: 2, windowMs: HOUR }
  const a = await c.checkRateLimit(name, policy)
  const b = await c.checkRateLimit(name, policy)
  assert.deepEqual([a.allowed, a.remaining, b.allowed, b.remaining], [true, 1, true, 0])
  const no = await c.checkRateLimit(name, policy)
  assert.equal(no.allowed, false)
  assert.equal(no.remaining, 0)
  assert.ok(no.retryAfterMs > 0 && no.retryAfterMs <= 2 * HOUR, `retryAfterMs ${no.retryAfterMs}`)
})

test('token bucket: a burst of its capacity, then a wait of about one refill', async () => {
  const name = unique('rate-bucket')
  const policy = { kind: 'tokenBucket', capacity: 5, refillPerSecond: 2 }
  const burst = await c.checkRateLimit(name, policy, { cost: 5 })
  assert.equal(burst.allowed, true)
  assert.equal(burst.remaining, 0)
  const no = await c.checkRateLimit(name, policy)
  assert.equal(no.allowed, false)
  assert.ok(no.retryAfterMs > 0 && no.retryAfterMs <= 500, `retryAfterMs ${no.retryAfterMs} (one token every 500 ms)`)
  await sleep(no.retryAfterMs + 50)
  const again = await c.checkRateLimit(name, policy)
  assert.equal(again.allowed, true, 'allowed once the wait it gave has passed')
})

test('cost: taken whole or not at all; more than the policy ever allows is INVALID_ARGUMENT', async () => {
  const name = unique('rate-cost')
  const policy = { kind: 'fixedWindow', limit: 10, windowMs: HOUR }
  const a = await c.checkRateLimit(name, policy, { cost: 4 })
  assert.deepEqual([a.allowed, a.remaining], [true, 6])
  const b = await c.checkRateLimit(name, policy, { cost: 7 })
  assert.equal(b.allowed, false)
  assert.equal(b.remaining, 6, 'a refused check takes nothing')
  assert.ok(b.retryAfterMs > 0)
  const d = await c.checkRateLimit(name, policy, { cost: 6 })
  assert.deepEqual([d.allowed, d.remaining], [true, 0])
  await assert.rejects(c.checkRateLimit(name, policy, { cost: 11 }), InvalidArgumentError)
})

async function concurrent(durability) {
  const name = unique(`rate-concurrent-${durability}`)
  const policy = { kind: 'fixedWindow', limit: 7, windowMs: HOUR }
  const clients = [c, client(), client()]
  try {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => clients[i % clients.length].checkRateLimit(name, policy, { durability })),
    )
    const allowed = answers.filter((d) => d.allowed)
    assert.equal(allowed.length, 7, `exactly the limit of 20 concurrent ${durability} checks is allowed`)
    assert.deepEqual(
      allowed.map((d) => d.remaining).sort((x, y) => x - y),
      [0, 1, 2, 3, 4, 5, 6],
      'each allowed check saw its own count',
    )
    for (const d of answers.filter((d) => !d.allowed)) assert.ok(d.retryAfterMs > 0)
  } finally {
    await Promise.all(clients.slice(1).map((x) => x.close()))
  }
}

test('the limit holds across 20 concurrent callers (persistent)', () => concurrent('persistent'))
test('the limit holds across 20 concurrent callers (ephemeral)', () => concurrent('ephemeral'))

test('ephemeral limiters are their own namespace', async () => {
  const name = unique('rate-tiers')
  const policy = { kind: 'slidingWindow', limit: 2, windowMs: HOUR }
  for (let i = 0; i < 2; i++) assert.equal((await c.checkRateLimit(name, policy, { durability: 'ephemeral' })).allowed, true)
  const no = await c.checkRateLimit(name, policy, { durability: 'ephemeral' })
  assert.equal(no.allowed, false)
  assert.ok(no.retryAfterMs > 0)
  const persistent = await c.checkRateLimit(name, policy)
  assert.deepEqual([persistent.allowed, persistent.remaining], [true, 1], 'the persistent limiter of the same name is untouched')
})

test('bad input is INVALID_ARGUMENT', async () => {
  const name = unique('rate-bad')
  const bad = [
    [name, { kind: 'fixedWindow', limit: 3, windowMs: 0 }],
    [name, { kind: 'slidingWindow', limit: 3, windowMs: 1.5 }],
    [name, { kind: 'slidingWindow', limit: 3, windowMs: 2 * 24 * HOUR }],
    [name, { kind: 'fixedWindow', limit: 0, windowMs: 1000 }],
    [name, { kind: 'fixedWindow', limit: -1, windowMs: 1000 }],
    [name, { kind: 'tokenBucket', capacity: 5, refillPerSecond: 0 }],
    [name, { kind: 'tokenBucket', capacity: 5 }],
    [name, { kind: 'leakyBucket', limit: 5, windowMs: 1000 }],
    ['x'.repeat(1025), { kind: 'fixedWindow', limit: 3, windowMs: 1000 }],
    ['', { kind: 'fixedWindow', limit: 3, windowMs: 1000 }],
  ]
  for (const [n, policy] of bad) {
    await assert.rejects(c.checkRateLimit(n, policy), (e) => {
      assert.ok(e instanceof InvalidArgumentError, `${JSON.stringify(policy)} (name of ${n.length}): ${e}`)
      assert.equal(e.code, 'INVALID_ARGUMENT')
      assert.equal(e.retryable, false)
      return true
    })
  }
  await assert.rejects(c.checkRateLimit(name, { kind: 'fixedWindow', limit: 3, windowMs: 1000 }, { cost: -1 }), InvalidArgumentError)
  await assert.rejects(
    c.checkRateLimit(name, { kind: 'fixedWindow', limit: 3, windowMs: 1000 }, { durability: 'durable' }),
    InvalidArgumentError,
  )
  // Nothing was counted by the refused checks.
  const d = await c.checkRateLimit(name, { kind: 'fixedWindow', limit: 3, windowMs: HOUR })
  assert.deepEqual([d.allowed, d.remaining], [true, 2])
})

test('an aborted signal rejects with AbortError', async () => {
  const ac = new AbortController()
  ac.abort(new Error('stop'))
  await assert.rejects(
    c.checkRateLimit(unique('rate-abort'), { kind: 'fixedWindow', limit: 3, windowMs: 1000 }, { signal: ac.signal }),
    AbortError,
  )
})
