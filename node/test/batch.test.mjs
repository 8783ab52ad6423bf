// Batches and ranges against the 3-node cluster: getMany at one revision, setMany and
// deleteMany as one atomic write, range scans of [start, end) across pages, and the bounds.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { AbortError, InvalidArgumentError, KeyValueEntry, client, unique } from './helpers.mjs'

const c = client()
after(() => c.close())

const pad = (i) => String(i).padStart(2, '0')

test('getMany: one entry per key asked, missing ones success === false, all at one revision', async () => {
  const p = unique('mget')
  const a = await c.set(`${p}/a`, 'one')
  const cc = await c.set(`${p}/c`, new Uint8Array([7, 8]))
  const got = await c.getMany([`${p}/c`, `${p}/b`, `${p}/a`, `${p}/c`])
  assert.equal(got.length, 4)
  assert.ok(got.every((e) => e instanceof KeyValueEntry))
  assert.deepEqual(
    got.map((e) => [e.key, e.success]),
    [
      [`${p}/c`, true],
      [`${p}/b`, false],
      [`${p}/a`, true],
      [`${p}/c`, true],
    ],
  )
  assert.deepEqual([...got[0].value], [7, 8])
  assert.equal(got[1].value, null)
  assert.equal(got[1].revision, 0)
  assert.equal(got[2].valueAsString(), 'one')
  assert.equal(got[2].revision, a.revision)
  assert.equal(got[0].revision, cc.revision)
  const rev = got[0].storeRevision
  assert.ok(got.every((e) => e.storeRevision === rev), 'every entry carries the one revision of the read')
  assert.ok(rev >= cc.revision)
  // Stale reads and the ephemeral tier go through the same call.
  assert.equal((await c.getMany([`${p}/a`], { consistency: 'stale' }))[0].success, true)
  await c.set(`${p}/e`, 'fast', { durability: 'ephemeral', expiry: 20_000 })
  const eph = await c.getMany([`${p}/e`, `${p}/a`], { durability: 'ephemeral' })
  assert.deepEqual(
    eph.map((e) => e.success),
    [true, false],
    'ephemeral keys are their own namespace',
  )
})

test('setMany: atomic, every key at the one revision it returns', async () => {
  const p = unique('mset')
  const items = Array.from({ length: 10 }, (_, i) => ({ key: `${p}/k${pad(i)}`, value: i % 2 ? `v${i}` : new Uint8Array([i]) }))
  const rev = await c.setMany(items)
  assert.ok(rev > 0)
  const got = await c.getMany(items.map((i) => i.key))
  for (const [i, e] of got.entries()) {
    assert.equal(e.success, true)
    assert.equal(e.revision, rev, `${e.key} was written at the batch's revision`)
    if (i % 2) assert.equal(e.valueAsString(), `v${i}`)
    else assert.deepEqual([...e.value], [i])
  }
  // One bad item fails the whole batch: nothing of it is written.
  const q = unique('mset-bad')
  await assert.rejects(
    c.setMany([
      { key: `${q}/ok`, value: 'x' },
      { key: '', value: 'y' },
    ]),
    InvalidArgumentError,
  )
  assert.equal((await c.get(`${q}/ok`)).success, false, 'no part of a refused batch is applied')
})

test('deleteMany: atomic, resolves with how many existed', async () => {
  const p = unique('mdel')
  const keys = [0, 1, 2].map((i) => `${p}/k${i}`)
  await c.setMany(keys.map((key) => ({ key, value: 'x' })))
  assert.equal(await c.deleteMany([...keys, `${p}/missing`]), 3)
  const got = await c.getMany(keys)
  assert.ok(got.every((e) => !e.success), 'all deleted')
  assert.equal(await c.deleteMany(keys), 0)
})

test('range scans: [start, end) in byte order across several pages', async () => {
  const p = unique('range')
  const all = Array.from({ length: 25 }, (_, i) => `${p}/k${pad(i)}`)
  await c.setMany(all.map((key, i) => ({ key, value: `v${i}` })))

  // One page at a time.
  const first = await c.getByRange(`${p}/k05`, `${p}/k15`, { pageSize: 4 })
  assert.deepEqual(
    first.items.map((e) => e.key),
    all.slice(5, 9),
  )
  assert.ok(first.nextPageToken !== null && first.nextPageToken.length > 0)
  assert.ok(first.storeRevision > 0)
  assert.equal(first.items[0].valueAsString(), 'v5')
  const pages = [first.items.map((e) => e.key)]
  let token = first.nextPageToken
  while (token !== null) {
    const page = await c.getByRange(`${p}/k05`, `${p}/k15`, { pageSize: 4, pageToken: token })
    pages.push(page.items.map((e) => e.key))
    token = page.nextPageToken
  }
  assert.deepEqual(pages, [all.slice(5, 9), all.slice(9, 13), all.slice(13, 15)], 'the end key is left out')

  // The async iterator over every page.
  const keys = []
  for await (const e of c.scanByRange(`${p}/k05`, `${p}/k15`, { pageSize: 3 })) keys.push(e.key)
  assert.deepEqual(keys, all.slice(5, 15))

  // A start between keys, keys only.
  const between = []
  for await (const e of c.scanByRange(`${p}/k19x`, `${p}/k22`, { pageSize: 2, keysOnly: true })) between.push([e.key, e.value?.length])
  assert.deepEqual(between, [
    [`${p}/k20`, 0],
    [`${p}/k21`, 0],
  ])

  // An empty end: to the last key (other tests' keys follow ours, so stop early).
  const open = []
  for await (const e of c.scanByRange(`${p}/k22`, '', { pageSize: 2 })) {
    open.push(e.key)
    if (open.length === 4) break
  }
  assert.deepEqual(open.slice(0, 3), all.slice(22, 25))
  assert.ok(open.length < 4 || open[3] > all[24])

  // A range with no keys in it.
  assert.deepEqual((await c.getByRange(`${p}/k10x`, `${p}/k11`)).items, [])
})

test('too many keys and bad bounds are INVALID_ARGUMENT', async () => {
  const p = unique('batch-bounds')
  const keys = (n) => Array.from({ length: n }, (_, i) => `${p}/k${i}`)
  const invalid = (e) => {
    assert.ok(e instanceof InvalidArgumentError, String(e))
    assert.equal(e.code, 'INVALID_ARGUMENT')
    return true
  }
  assert.equal((await c.getMany(keys(1000))).length, 1000, '1,000 keys is the limit, not past it')
  await assert.rejects(c.getMany(keys(1001)), invalid)
  await assert.rejects(c.getMany([]), invalid)
  await assert.rejects(c.setMany(keys(129).map((key) => ({ key, value: 'x' }))), invalid)
  await assert.rejects(c.deleteMany(keys(129)), invalid)
  assert.equal((await c.get(`${p}/k0`)).success, false, 'nothing of the refused batch was written')
  await assert.rejects(c.getByRange(`${p}/a`, `${p}/b`, { pageSize: 1001 }), invalid)
  await assert.rejects(c.getByRange('x'.repeat(5000), ''), invalid)
  await assert.rejects(c.getByRange(`${p}/b`, `${p}/a`), invalid, 'the end comes before the start')
  await assert.rejects(c.getByRange(`${p}/a`, `${p}/a`), invalid, 'an empty range')
})

test('an aborted signal rejects batch and range calls with AbortError', async () => {
  const ac = new AbortController()
  ac.abort()
  const signal = ac.signal
  await assert.rejects(c.getMany(['a'], { signal }), AbortError)
  await assert.rejects(c.setMany([{ key: unique('abort'), value: 'x' }], { signal }), AbortError)
  await assert.rejects(c.deleteMany(['a'], { signal }), AbortError)
  await assert.rejects(c.getByRange('a', 'b', { signal }), AbortError)
  await assert.rejects(async () => {
    for await (const e of c.scanByRange('a', 'b', { signal })) void e
  }, AbortError)
})
