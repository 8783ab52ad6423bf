// Faults on the real cluster (run last: they kill and pause members).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { client, cluster, healthy, unique } from './helpers.mjs'

const c = client({ defaultOperationTimeoutMs: 30_000 })
after(() => c.close())

test('fencing tokens increase across a leader kill', async () => {
  await healthy(c)
  const r = unique('kill')
  const first = await c.acquireLock(r, { expiry: 2000 })
  assert.equal(first.acquired, true)
  const t1 = first.fencingToken
  await first.release()
  const leader = cluster('leader')
  cluster('kill', leader)
  try {
    const second = await c.acquireLock(r, { expiry: 2000, wait: 20_000 })
    assert.equal(second.acquired, true)
    assert.ok(second.fencingToken > t1, `token ${second.fencingToken} after ${t1}`)
    const k = unique('after-kill')
    assert.equal((await c.set(k, 'v', { fence: second })).success, true)
    await second.release()
  } finally {
    cluster('start', leader)
  }
  await healthy(c)
})

test('lock.lost aborts when the leader pauses longer than the TTL, before anyone else is granted', async () => {
  await healthy(c)
  const holder = client({ attemptTimeoutMs: 3000 })
  const other = client({ defaultOperationTimeoutMs: 30_000 })
  const r = unique('pause')
  const lock = await holder.acquireLock(r, { expiry: 1000 })
  assert.equal(lock.acquired, true)
  let lostAt = 0
  const lost = new Promise((resolve) => lock.lost.addEventListener('abort', () => resolve((lostAt = Date.now())), { once: true }))
  const leader = cluster('leader')
  const stoppedAt = Date.now()
  cluster('stop', leader)
  try {
    const grant = other.acquireLock(r, { expiry: 1000, wait: 25_000 }).then((l) => ({ l, at: Date.now() }))
    const first = await Promise.race([lost, new Promise((res) => setTimeout(() => res('timeout'), 4000))])
    assert.notEqual(first, 'timeout', 'lock.lost did not abort while the leader was paused')
    assert.ok(lostAt - stoppedAt < 2500, `lost after ${lostAt - stoppedAt} ms`)
    assert.equal(lock.acquired, false)
    assert.equal(lock.lost.reason.code, 'LOCK_NOT_HELD')
    const { l, at } = await grant
    assert.equal(l.acquired, true)
    assert.ok(at > lostAt, 'nobody else was granted before lost fired')
    assert.ok(l.fencingToken > lock.fencingToken)
    await l.release()
  } finally {
    cluster('cont', leader)
  }
  await lock.release().catch(() => undefined)
  await holder.close()
  await other.close()
  await healthy(c)
})
