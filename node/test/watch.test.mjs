// Watches against the 3-node cluster: the scenarios every SDK runs (events in order with
// their kinds and values, a transaction as one revision, replay from a past revision,
// progress, a refused interval, closing while a next is pending).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { ClientClosedError, InvalidArgumentError, KahunaWatch, AbortError, _diagnostics, client, sleep, unique } from './helpers.mjs'

const c = client()
after(() => c.close())

/** The next `count` events, failing after `withinMs`. */
async function collect(watch, count, withinMs) {
  const events = []
  const take = (async () => {
    for await (const e of watch) {
      events.push(e)
      if (events.length === count) return
    }
    assert.fail(`the watch ended after ${JSON.stringify(summary(events, ''))}`)
  })()
  let timer
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the watch delivered only ${JSON.stringify(summary(events, ''))} within ${withinMs} ms`)), withinMs)
  })
  try {
    await Promise.race([take, late])
  } finally {
    clearTimeout(timer)
  }
  return events
}

function summary(events, prefix) {
  return events.map((e) => [e.kind, e.entry.key.slice(prefix.length), e.entry.valueAsString()])
}

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

test('a watch delivers every change in revision order, and replays from a past revision', async () => {
  const p = `${unique('watch')}/`
  const watch = await c.watch(p, { prefix: true })
  assert.ok(watch instanceof KahunaWatch)
  try {
    const opened = watch.revision
    const a = await c.set(`${p}a`, '1')
    await c.set(`${unique('unwatched')}`, 'x')
    const b = await c.set(`${p}b`, '2')
    const txn = await c.transaction().thenSet(`${p}c`, '3').thenSet(`${p}d`, '4').commit()
    assert.equal(txn.success, true)
    await c.delete(`${p}a`)
    await c.set(`${p}e`, 'short-lived', { expiry: 300 })

    const events = await collect(watch, 7, 20_000)
    assert.deepEqual(summary(events, p), [
      ['put', 'a', '1'],
      ['put', 'b', '2'],
      ['put', 'c', '3'],
      ['put', 'd', '4'],
      ['delete', 'a', ''],
      ['put', 'e', 'short-lived'],
      ['expire', 'e', ''],
    ])
    assert.equal(events[0].revision, a.revision)
    assert.ok(events[0].revision > opened)
    assert.equal(events[0].entry.version, 1)
    assert.equal(events[1].revision, b.revision)
    assert.equal(events[2].revision, txn.revision, "the transaction's revision")
    assert.equal(events[3].revision, events[2].revision, 'a transaction is one revision')
    const revisions = events.map((e) => e.revision)
    assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y))
    assert.equal(new Set(revisions).size, 6, `${revisions}`)
    assert.equal(events[4].entry.value.length, 0, 'a delete carries no value')
    assert.equal(events[4].entry.success, false)
    assert.equal(events[4].entry.createRevision, a.createRevision, 'a delete names what it removed')
    assert.equal(events[6].entry.value.length, 0, 'an expiry carries no value')
    assert.ok(watch.revision >= events[6].revision)

    // From a past revision: the same changes, batch by batch, then a live one.
    const replay = await c.watch(p, { prefix: true, startRevision: a.revision })
    try {
      const again = []
      const until = Date.now() + 20_000
      while (again.length < events.length) {
        assert.ok(Date.now() < until, `replayed only ${JSON.stringify(summary(again, p))}`)
        const batch = await replay.nextBatch()
        assert.equal(batch.isProgress, batch.events.length === 0)
        for (const e of batch.events) assert.ok(e.revision <= batch.revision)
        again.push(...batch.events)
      }
      assert.deepEqual(summary(again, p), summary(events, p))
      assert.deepEqual(
        again.map((e) => e.revision),
        revisions,
      )
      const f = await c.set(`${p}f`, 'live')
      const live = await collect(replay, 1, 10_000)
      assert.deepEqual(summary(live, p), [['put', 'f', 'live']])
      assert.equal(live[0].revision, f.revision)
    } finally {
      replay.close()
    }
  } finally {
    watch.close()
  }
})

test('an idle watch hears progress up to a write elsewhere', async () => {
  const watch = await c.watch(unique('idle'), { progressIntervalMs: 200 })
  try {
    const written = await c.set(unique('elsewhere'), 'x')
    const started = Date.now()
    for (;;) {
      const batch = await watch.nextBatch({ signal: AbortSignal.timeout(5000) })
      assert.equal(batch.isProgress, true, JSON.stringify(batch))
      assert.deepEqual(batch.events, [])
      if (batch.revision >= written.revision) break
      assert.ok(Date.now() - started < 10_000, `progress stuck at ${batch.revision}`)
    }
    assert.ok(watch.revision >= written.revision)
  } finally {
    watch.close()
  }
})

test('a progress interval of 10 ms is refused', async () => {
  await assert.rejects(c.watch('k', { progressIntervalMs: 10 }), (e) => {
    assert.ok(e instanceof InvalidArgumentError, String(e))
    assert.equal(e.code, 'INVALID_ARGUMENT')
    assert.match(e.message, /progress_interval/)
    return true
  })
})

test('closing a watch completes a pending next, and the client goes on', async () => {
  const key = unique('closing')

  // A pending nextBatch rejects with ClientClosedError.
  const watch = await c.watch(key)
  const pending = watch.nextBatch()
  await sleep(300)
  assert.equal(await settlesWithin(pending, 0), false, 'nothing was written: the next is pending')
  watch.close()
  assert.equal(watch.closed, true)
  assert.equal(await settlesWithin(pending, 5000), true, 'closing completes the pending next')
  await assert.rejects(pending, ClientClosedError)
  await assert.rejects(watch.nextBatch(), ClientClosedError)

  // A pending iteration ends.
  const watch2 = await c.watch(key)
  const iterating = (async () => {
    const seen = []
    for await (const e of watch2) seen.push(e)
    return seen
  })()
  await sleep(300)
  assert.equal(await settlesWithin(iterating, 0), false)
  watch2.close()
  assert.equal(await settlesWithin(iterating, 5000), true, 'closing ends the iteration')
  assert.deepEqual(await iterating, [])

  // Aborting a next loses nothing: the following one gets the change.
  const watch3 = await c.watch(key)
  try {
    await assert.rejects(watch3.nextBatch({ signal: AbortSignal.timeout(300) }), AbortError)
    const s = await c.set(key, 'after')
    const events = await collect(watch3, 1, 10_000)
    assert.deepEqual(
      events.map((e) => [e.kind, e.entry.valueAsString(), e.revision]),
      [['put', 'after', s.revision]],
    )
  } finally {
    watch3.close()
  }

  // The client still works, and no native call is left behind.
  assert.equal((await c.get(key)).valueAsString(), 'after')
  const until = Date.now() + 2000
  while (_diagnostics.inFlight() !== 0 && Date.now() < until) await sleep(10)
  assert.equal(_diagnostics.inFlight(), 0)
})

test('closing the client closes its watches', async () => {
  const other = client()
  const watch = await other.watch(unique('client-closing'))
  const pending = watch.nextBatch()
  await sleep(300)
  await other.close()
  assert.equal(await settlesWithin(pending, 5000), true)
  await assert.rejects(pending, ClientClosedError)
  assert.equal(watch.closed, true)
})
