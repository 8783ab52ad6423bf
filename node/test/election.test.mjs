// Leader election against the 3-node cluster: the scenarios every SDK runs (elected with
// a value and observed; a proclaimed value with the same epoch; the next candidate
// elected on resignation with a larger epoch; a candidate not elected within its wait; no
// leader after the last resigns; closing an observer while a next is pending).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { ClientClosedError, LockNotHeldError, _diagnostics, client, sleep, unique } from './helpers.mjs'

const c = client()
after(() => c.close())

/** Whether `p` settles within `ms`. */
async function settlesWithin(p, ms) {
  let timer
  const late = new Promise((r) => (timer = setTimeout(() => r(false), ms)))
  const settled = p.then(
    () => true,
    () => true,
  )
  try {
    return await Promise.race([settled, late])
  } finally {
    clearTimeout(timer)
  }
}

/** The observer's next item, failing after 10 s. */
async function next(observer, what) {
  const signal = AbortSignal.timeout(10_000)
  try {
    return await observer.next({ signal })
  } catch (e) {
    if (signal.aborted) assert.fail(`the observer saw nothing within 10 s; expected ${what}`)
    throw e
  }
}

/**
 * The observer's first leader. The member that serves an observer answers from its applied
 * state, which may be a moment behind a campaign just answered by the Raft leader: "no
 * leader" may come first, but never another leader.
 */
async function firstLeader(observer) {
  let seen = await next(observer, 'the leader')
  const until = Date.now() + 5000
  while (seen === null && Date.now() < until) seen = await next(observer, 'the leader after no leader')
  return seen
}

function same(seen, leadership, value, what) {
  assert.notEqual(seen, null, `${what}: expected a leader, saw none`)
  assert.deepEqual([seen.owner, seen.epoch, seen.value.toString('utf8')], [leadership.owner, leadership.epoch, value], what)
}

test('candidates are elected in turn and observers follow them', async () => {
  const name = unique('election')

  // (a) A is elected with its value; an observer's first item and a read agree.
  const a = await c.campaign(name, 'a-1', { ttlMs: 10_000 })
  assert.notEqual(a, null, 'nobody leads, so A is elected at once')
  assert.equal(a.isLeader, true)
  assert.ok(a.epoch > 0)
  assert.equal(a.name, name)
  assert.equal(a.lost.aborted, false)
  const observer = await c.observe(name)
  try {
    same(await firstLeader(observer), a, 'a-1', 'first item')
    same(await c.electionLeader(name), a, 'a-1', 'election leader')
    const info = await c.getLockInfo(name)
    assert.equal(info.value.toString('utf8'), 'a-1', 'the lock carries the value')

    // (b) A proclaims a new value: same leader, same epoch.
    await a.proclaim('a-2')
    same(await next(observer, "A's new value"), a, 'a-2', 'after proclaim')

    // (c) B waits while A leads; A resigns; B is elected with a larger epoch.
    const bElected = c.campaign(name, Buffer.from('b-1'), { ttlMs: 10_000 })
    let waiters = 0
    for (let i = 0; i < 100 && waiters === 0; i++) {
      await sleep(50)
      waiters = (await c.getLockInfo(name))?.waiters ?? 0
    }
    assert.equal(waiters, 1, "B waits in the election's queue")
    assert.equal(await settlesWithin(bElected, 0), false, 'B is not elected while A leads')
    assert.equal(await a.resign(), true, 'A still led when it resigned')
    assert.equal(a.isLeader, false)
    assert.equal(await settlesWithin(bElected, 10_000), true, 'B is elected once A resigns')
    const b = await bElected
    assert.notEqual(b, null)
    assert.equal(b.isLeader, true)
    assert.ok(b.epoch > a.epoch, 'a later leader has a larger epoch')
    same(await next(observer, 'B'), b, 'b-1', 'after A resigned')
    const until = Date.now() + 2000
    while (!a.lost.aborted && Date.now() < until) await sleep(20)
    assert.equal(a.lost.aborted, true, "A's lost signal aborts once it resigned")
    await assert.rejects(a.proclaim('stale'), LockNotHeldError)

    // (d) C is not elected within a short wait while B leads.
    const started = Date.now()
    assert.equal(await c.campaign(name, 'c-1', { ttlMs: 10_000, waitMs: 300 }), null)
    assert.ok(Date.now() - started >= 290, 'C waited')
    same(await c.electionLeader(name), b, 'b-1', 'still B')

    // (e) B resigns (by disposing): nobody leads.
    await b[Symbol.asyncDispose]()
    assert.equal(await next(observer, 'no leader'), null, 'after B resigned')
    assert.equal(await c.electionLeader(name), null)
  } finally {
    observer.close()
    await a.resign()
  }
})

test('closing an observer completes a pending next, and the client goes on', async () => {
  const name = unique('observing')

  // (f) A pending next rejects with ClientClosedError when the observer closes.
  const observer = await c.observe(name)
  assert.equal(await next(observer, 'no leader'), null, 'nobody leads a new election')
  const pending = observer.next()
  await sleep(300)
  assert.equal(await settlesWithin(pending, 0), false, 'nothing changed: the next is pending')
  observer.close()
  assert.equal(observer.closed, true)
  assert.equal(await settlesWithin(pending, 5000), true, 'closing completes the pending next')
  await assert.rejects(pending, ClientClosedError)
  await assert.rejects(observer.next(), ClientClosedError)

  // A pending iteration ends.
  const observer2 = await c.observe(name)
  const iterating = (async () => {
    const seen = []
    for await (const l of observer2) seen.push(l)
    return seen
  })()
  await sleep(300)
  assert.equal(await settlesWithin(iterating, 0), false)
  observer2.close()
  assert.equal(await settlesWithin(iterating, 5000), true, 'closing ends the iteration')
  assert.deepEqual(await iterating, [null], 'the first item (no leader), then the end')

  // The client still works: a campaign is elected and read back; no native call is left behind.
  const leadership = await c.campaign(name, 'after', { waitMs: 5000 })
  assert.notEqual(leadership, null)
  assert.equal((await c.electionLeader(name)).value.toString('utf8'), 'after')
  await leadership[Symbol.asyncDispose]()
  assert.equal(await c.electionLeader(name), null, 'disposing resigned')
  const until = Date.now() + 2000
  while (_diagnostics.inFlight() !== 0 && Date.now() < until) await sleep(10)
  assert.equal(_diagnostics.inFlight(), 0)
})

test('closing the client closes its observers and resigns its leaderships', async () => {
  const other = client()
  const name = unique('client-closing')
  const leadership = await other.campaign(name, 'x')
  const observer = await other.observe(name)
  assert.notEqual(await firstLeader(observer), null)
  const pending = observer.next()
  pending.catch(() => {}) // handled below; close() may reject it before then
  await sleep(300)
  await other.close()
  assert.equal(await settlesWithin(pending, 5000), true)
  await assert.rejects(pending, ClientClosedError)
  assert.equal(observer.closed, true)
  assert.equal(leadership.isLeader, false)
  assert.equal(await c.electionLeader(name), null)
})
