// Semaphores (client.acquirePermit / withPermit) against the real cluster, the scenarios
// of core-client/tests/semaphore.rs: at most N holders at once with many concurrent
// acquirers, waiters granted in arrival order as permits free up, each permit fencing
// writes with a token of its own while held and refused after release, a name asked two
// ways as InvalidArgumentError, the info's permits/holders/waiters, and an aborted wait
// giving its place back.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  AbortError,
  FencedError,
  InvalidArgumentError,
  KahunaLock,
  LockNotAcquiredError,
  _diagnostics,
  client,
  sleep,
  unique,
} from './helpers.mjs'

const c = client()
after(() => c.close())

/** Lease 10 s; `wait` ms in the server's queue (0: one attempt). */
const opts = (wait = 0, extra = {}) => ({ expiry: 10_000, wait, ...extra })

/** Polls `getLockInfo(name)` until `ok(info)`, failing after `ms`. */
async function until(name, ok, what, ms = 10_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const info = await c.getLockInfo(name)
    if (ok(info)) return info
    assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(info && { ...info, value: undefined })}`)
    await sleep(10)
  }
}

test('at most N hold at once; 12 waiters are all granted, in arrival order, each fencing with its own token', async () => {
  const name = unique('sem/pool')
  const PERMITS = 3
  const WORKERS = 12
  const first = []
  for (let i = 0; i < PERMITS; i++) {
    const p = await c.acquirePermit(name, PERMITS, opts())
    assert.ok(p instanceof KahunaLock)
    assert.equal(p.acquired, true)
    assert.equal(p.durability, 'persistent')
    assert.equal(p.lost.aborted, false)
    first.push(p)
  }
  const full = await c.acquirePermit(name, PERMITS, opts())
  assert.equal(full.acquired, false, 'a fourth permit of three was granted')
  assert.equal(full.fencingToken, null)
  assert.equal(full.lost.aborted, true)
  assert.equal(full.holder.permits, PERMITS, 'the refusal names the semaphore')
  assert.equal(full.holder.holders, PERMITS)

  const tokens = first.map((p) => p.fencingToken)
  let inside = PERMITS
  let most = PERMITS
  const grants = []
  const workers = []
  for (let i = 0; i < WORKERS; i++) {
    workers.push(
      (async () => {
        const p = await c.acquirePermit(name, PERMITS, opts(90_000))
        assert.equal(p.acquired, true, `worker ${i} gave up`)
        inside += 1
        most = Math.max(most, inside)
        grants.push([i, p.fencingToken])
        // A permit's token fences writes while it is held (the permit itself as the fence).
        assert.equal((await c.set(`${name}/out/${i}`, 'v', { fence: p })).success, true)
        await sleep(100)
        inside -= 1
        const fence = p.fence
        assert.equal(await p.release(), true)
        assert.equal(p.lost.aborted, true, 'lost aborts on release')
        // Released, its token fences no more.
        await assert.rejects(c.set(`${name}/late/${i}`, 'v', { fence }), (e) => e instanceof FencedError && e.code === 'FENCED')
      })(),
    )
    // The next asks only once this one has its place in the queue.
    await until(name, (info) => info !== null && info.waiters > i, `worker ${i} never took its place`)
  }
  const info = await c.getLockInfo(name)
  assert.equal(info.permits, PERMITS)
  assert.equal(info.holders, PERMITS)
  assert.equal(info.waiters, WORKERS)
  assert.equal(info.owner, '', 'a semaphore read by name has no single owner')
  for (const p of first) {
    inside -= 1
    await p.release()
  }
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('not every worker was granted within 60 s')), 60_000)
  })
  try {
    await Promise.race([Promise.all(workers), timeout])
  } finally {
    clearTimeout(timer)
  }
  assert.ok(most <= PERMITS, `${most} held at once`)
  // Tokens follow the grant order: in token order, the workers are in the order they asked.
  grants.sort((a, b) => a[1] - b[1])
  assert.deepEqual(
    grants.map((g) => g[0]),
    Array.from({ length: WORKERS }, (_, i) => i),
    'granted out of arrival order',
  )
  const all = [...tokens, ...grants.map((g) => g[1])]
  assert.equal(new Set(all).size, all.length, `two permits shared a token: ${all}`)
  assert.equal(await c.getLockInfo(name), null, 'the semaphore outlived its last holder')
})

test('a name asked two ways, and bad permits, are InvalidArgumentError', async () => {
  const name = unique('sem/kinds')
  const held = await c.acquirePermit(name, 3, opts())
  assert.equal(held.acquired, true)
  assert.deepEqual([held.holder.permits, held.holder.holders], [3, 1], "the permit's view")
  const view = await held.info()
  assert.deepEqual([view.permits, view.holders], [3, 1])
  await assert.rejects(c.acquirePermit(name, 5, opts()), (e) => e instanceof InvalidArgumentError && /semaphore of 3 permits/.test(e.message))
  await assert.rejects(c.acquireLock(name, opts()), (e) => e instanceof InvalidArgumentError && /semaphore of 3 permits/.test(e.message))
  await assert.rejects(c.withPermit(name, 4, opts(), () => 1), InvalidArgumentError)

  const lockName = unique('sem/a-lock')
  const lock = await c.acquireLock(lockName, opts())
  assert.equal(lock.acquired, true)
  await assert.rejects(c.acquirePermit(lockName, 2, opts()), (e) => e instanceof InvalidArgumentError && /is a lock/.test(e.message))
  await lock.release()

  await assert.rejects(c.acquirePermit(unique('sem/eph'), 2, opts(0, { durability: 'ephemeral' })), InvalidArgumentError)
  await assert.rejects(c.acquirePermit(unique('sem/huge'), 10_001, opts()), (e) => e instanceof InvalidArgumentError && /10000/.test(e.message))
  for (const bad of [0, -1, 2.5, Number.NaN, 2 ** 32]) {
    await assert.rejects(c.acquirePermit(unique('sem/bad'), bad, opts()), InvalidArgumentError, `permits ${bad}`)
  }
  // A semaphore of one permit is the lock of that name.
  const oneName = unique('sem/one')
  const one = await c.acquirePermit(oneName, 1, opts())
  assert.equal(one.acquired, true)
  assert.equal((await c.getLockInfo(oneName)).permits, 0)
  assert.equal((await c.getLockInfo(oneName)).owner, one.owner)
  assert.equal((await c.acquireLock(oneName, opts())).acquired, false, 'the lock of that name is taken')
  await one.release()

  // Nobody holds or waits: the name is free to be a semaphore of another size.
  await held.release()
  const again = await c.acquirePermit(name, 5, opts())
  assert.equal(again.acquired, true)
  assert.equal((await c.getLockInfo(name)).permits, 5)
  await again[Symbol.asyncDispose]()
  assert.equal(await c.getLockInfo(name), null)
})

test('the info shows permits, holders and waiters', async () => {
  const name = unique('sem/info')
  const a = await c.acquirePermit(name, 2, opts())
  let info = await c.getLockInfo(name)
  assert.deepEqual([info.permits, info.holders, info.waiters, info.durability], [2, 1, 0, 'persistent'])
  assert.equal(info.fencingToken, a.fencingToken, 'the newest permit token')
  const b = await c.acquirePermit(name, 2, opts())
  assert.ok(b.fencingToken > a.fencingToken, 'tokens increase')
  info = await c.getLockInfo(name)
  assert.deepEqual([info.permits, info.holders, info.waiters], [2, 2, 0])
  assert.equal(info.fencingToken, b.fencingToken)
  const waiting = c.acquirePermit(name, 2, opts(30_000))
  info = await until(name, (i) => i.waiters === 1, 'the waiter never took its place')
  assert.deepEqual([info.permits, info.holders], [2, 2])
  await a.release()
  const w = await waiting
  assert.equal(w.acquired, true)
  assert.ok(w.fencingToken > b.fencingToken)
  info = await c.getLockInfo(name)
  assert.deepEqual([info.permits, info.holders, info.waiters], [2, 2, 0])
  await b.release()
  info = await c.getLockInfo(name)
  assert.deepEqual([info.permits, info.holders], [2, 1])
  await w.release()
  assert.equal(await c.getLockInfo(name), null)
})

test('withPermit runs fn while holding a permit and releases it after', async () => {
  const name = unique('sem/with')
  const out = await c.withPermit(name, 2, opts(), async (permit) => {
    assert.equal(permit.acquired, true)
    assert.equal((await c.getLockInfo(name)).holders, 1)
    assert.equal((await c.set(`${name}/out`, 'v', { fence: permit })).success, true)
    return 42
  })
  assert.equal(out, 42)
  assert.equal(await c.getLockInfo(name), null)
  await assert.rejects(
    c.withPermit(name, 2, opts(), () => {
      throw new Error('boom')
    }),
    /boom/,
  )
  assert.equal(await c.getLockInfo(name), null, 'released after a throw too')
  const a = await c.acquirePermit(name, 2, opts())
  const b = await c.acquirePermit(name, 2, opts())
  await assert.rejects(c.withPermit(name, 2, opts(200), () => 1), LockNotAcquiredError)
  await a.release()
  await b.release()
})

test('aborting a waiting acquirePermit gives its place back', async () => {
  const name = unique('sem/abort')
  const a = await c.acquirePermit(name, 2, opts())
  const b = await c.acquirePermit(name, 2, opts())
  const ac = new AbortController()
  const aborted = c.acquirePermit(name, 2, opts(60_000, { signal: ac.signal }))
  await until(name, (i) => i.waiters === 1, 'the first waiter never took its place')
  const next = c.acquirePermit(name, 2, opts(60_000))
  await until(name, (i) => i.waiters === 2, 'the second waiter never took its place')
  const started = Date.now()
  ac.abort(new Error('stop waiting'))
  await assert.rejects(aborted, (e) => e instanceof AbortError && e.code === 'ABORTED' && e.cause.message === 'stop waiting')
  assert.ok(Date.now() - started < 2000, 'the abort rejected at once')
  await until(name, (i) => i.waiters === 1, 'the aborted waiter kept its place')
  // The freed permit goes to the next waiter, not to the aborted one.
  await a.release()
  const n = await next
  assert.equal(n.acquired, true)
  const info = await c.getLockInfo(name)
  assert.deepEqual([info.holders, info.waiters], [2, 0])
  await b.release()
  await n.release()
  assert.equal(await c.getLockInfo(name), null, 'the aborted attempt holds nothing')
  const deadline = Date.now() + 2000
  while (_diagnostics.inFlight() !== 0 && Date.now() < deadline) await sleep(10)
  assert.equal(_diagnostics.inFlight(), 0, 'no native work left')
})
