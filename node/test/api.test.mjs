// Every API call against the 3-node cluster.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import {
  KahunaClient,
  KahunaError,
  KahunaLock,
  InvalidArgumentError,
  FencedError,
  ConfigError,
  ClientClosedError,
  LockNotAcquiredError,
  LockNotHeldError,
  ERROR_CLASSES,
  client,
  endpoints,
  unique,
} from './helpers.mjs'

const c = client()
after(() => c.close())

test('ESM and CommonJS load the same module', () => {
  const require = createRequire(import.meta.url)
  const cjs = require('../dist/index.js')
  assert.equal(cjs.KahunaClient, KahunaClient)
  assert.equal(typeof cjs.KahunaError, 'function')
})

test('set, get, exists, getRevision, extend, delete', async () => {
  const k = unique('kv')
  const missing = await c.get(k)
  assert.equal(missing.success, false)
  assert.equal(missing.value, null)
  assert.equal(missing.valueAsString(), null)

  const s1 = await c.set(k, 'one')
  assert.equal(s1.success, true)
  assert.ok(s1.revision > 0, 'revisions are cluster-wide and never 0')
  assert.equal(s1.version, 1)
  const g = await c.get(k)
  assert.equal(g.success, true)
  assert.ok(g.value instanceof Uint8Array)
  assert.equal(g.valueAsString(), 'one')
  assert.equal(g.revision, s1.revision)

  const s2 = await c.set(k, new Uint8Array([0x34, 0x32]))
  assert.equal((await c.get(k)).valueAsNumber(), 42)
  assert.equal((await c.getRevision(k, s1.revision)).valueAsString(), 'one')
  assert.equal((await c.get(k, { revision: s2.revision })).valueAsString(), '42')
  assert.equal((await c.get(k, { consistency: 'stale' })).success, true)

  const ex = await c.exists(k)
  assert.equal(ex.success, true)
  assert.equal(ex.revision, s2.revision)
  assert.equal((await c.exists(unique('none'))).success, false)

  const e = await c.extend(k, 60_000)
  assert.equal(e.success, true)
  assert.ok((await c.get(k)).expiresAtMs > Date.now() - 600_000)
  assert.equal((await c.extend(k, null)).success, true)
  assert.equal((await c.get(k)).expiresAtMs, null)

  const d = await c.delete(k)
  assert.equal(d.success, true)
  assert.equal(d.deleted, true)
  assert.equal((await c.get(k)).success, false)
  assert.equal((await c.delete(k)).deleted, false)
})

test('set modes, TTLs and compare-and-set', async () => {
  const k = unique('cas')
  assert.equal((await c.set(k, 'a', { mode: 'ifExists' })).success, false)
  const a = await c.set(k, 'a', { mode: 'ifNotExists' })
  assert.equal(a.success, true)
  assert.equal((await c.set(k, 'b', { mode: 'ifNotExists' })).success, false)
  assert.equal((await c.set(k, 'b', { mode: 'ifExists' })).success, true)

  const bad = await c.compareValueAndSet(k, 'c', 'nope')
  assert.equal(bad.success, false)
  assert.equal(bad.valueAsString(), 'b', 'a failed compare carries the current value')
  const ok = await c.compareValueAndSet(k, 'c', 'b')
  assert.equal(ok.success, true)
  assert.equal((await c.compareRevisionAndSet(k, 'd', ok.revision - 1)).success, false)
  assert.equal((await c.compareRevisionAndSet(k, 'd', ok.revision)).success, true)
  assert.equal((await c.delete(k, { ifValue: 'x' })).success, false)
  const cur = await c.get(k)
  assert.equal((await c.delete(k, { ifRevision: cur.revision })).deleted, true)

  const t = unique('ttl')
  await c.set(t, 'soon', { expiry: 300 })
  assert.equal((await c.get(t)).success, true)
  await new Promise((r) => setTimeout(r, 700))
  assert.equal((await c.get(t)).success, false, 'an expired key is invisible')

  const eph = unique('eph')
  await c.set(eph, 'fast', { durability: 'ephemeral', expiry: 5000 })
  assert.equal((await c.get(eph, { durability: 'ephemeral' })).valueAsString(), 'fast')
  assert.equal((await c.get(eph)).success, false, 'ephemeral and persistent keys are separate')
})

test('scan: async iterator over every page, scanAllByPrefix, getByBucket, history', async () => {
  const p = unique('scan')
  for (let i = 0; i < 7; i++) await c.set(`${p}/${i}`, String(i))
  const seen = []
  for await (const e of c.scan(`${p}/`, { pageSize: 2 })) seen.push(e.valueAsString())
  assert.deepEqual(seen, ['0', '1', '2', '3', '4', '5', '6'])
  const page = await c.scanPage(`${p}/`, { pageSize: 3 })
  assert.equal(page.items.length, 3)
  assert.ok(page.nextPageToken instanceof Uint8Array)
  const next = await c.scanPage(`${p}/`, { pageSize: 3, pageToken: page.nextPageToken })
  assert.equal(next.items[0].key, `${p}/3`)
  assert.equal((await c.scanAllByPrefix(`${p}/`, { pageSize: 4 })).length, 7)
  assert.equal((await c.getByBucket(p)).length, 7)
  const keysOnly = await c.scanAllByPrefix(`${p}/`, { keysOnly: true })
  assert.equal(keysOnly.length, 7)

  const k = `${p}/0`
  await c.set(k, 'again')
  await c.delete(k)
  const h = await c.history(k)
  assert.deepEqual(
    h.events.map((e) => e.kind),
    ['put', 'put', 'delete'],
  )
  assert.ok(h.events[0].revision < h.events[1].revision)
  assert.equal(h.events[1].entry.valueAsString(), 'again')
})

test('transactions: compare, then, else', async () => {
  const k = unique('txn')
  const r1 = await c.transaction().ifMissing(k).thenSet(k, 'created').elseGet(k).commit()
  assert.equal(r1.success, true)
  const r2 = await c.transaction().ifMissing(k).thenSet(k, 'again').elseGet(k).commit()
  assert.equal(r2.success, false)
  assert.equal(r2.results[0].valueAsString(), 'created')
  const cur = await c.get(k)
  const r3 = await c
    .transaction()
    .ifValue(k, 'created')
    .ifRevision(k, cur.revision)
    .ifVersion(k, 1)
    .ifCreateRevision(k, cur.createRevision)
    .ifExists(k)
    .thenSet(k, 'moved', { expiry: 60_000 })
    .thenSet(`${k}/other`, 'x')
    .thenGet(k)
    .commit()
  assert.equal(r3.success, true)
  assert.equal(r3.results.length, 3)
  assert.equal((await c.get(`${k}/other`)).valueAsString(), 'x')
  const r4 = await c.transaction().ifValue(k, 'moved', '!=').thenDelete(k).elseDelete(k).elseExtend(`${k}/other`, 60_000).commit()
  assert.equal(r4.success, false)
  assert.equal((await c.get(k)).success, false)
})

test('sequences: ranges never overlap, idempotency keys replay', async () => {
  const s = unique('seq')
  assert.equal(await c.peekSequence(s), 1)
  const a = await c.reserveSequenceRange(s, 10)
  assert.equal(a.first, 1)
  assert.equal(a.count, 10)
  const b = await c.reserveSequenceRange(s, 5, { idempotencyKey: 'batch-1' })
  assert.equal(b.first, 11)
  const again = await c.reserveSequenceRange(s, 5, { idempotencyKey: 'batch-1' })
  assert.equal(again.first, 11)
  assert.equal(again.replayed, true)
  assert.equal(await c.nextSequenceValue(s), 16)
  assert.equal(await c.nextSequenceValue(s, { idempotencyKey: 'one' }), 17)
})

test('locks: acquire, holder, extend, info, fenced writes, release, await using', async () => {
  const r = unique('lock')
  const l = await c.acquireLock(r, { expiry: 5000 })
  assert.ok(l instanceof KahunaLock)
  assert.equal(l.acquired, true)
  assert.ok(l.fencingToken > 0)
  assert.equal(l.lost.aborted, false)
  assert.ok(l.trustedForMs > 0)

  const other = client()
  try {
    const no = await other.acquireLock(r, { expiry: 5000 })
    assert.equal(no.acquired, false)
    assert.equal(no.fencingToken, null)
    assert.equal(no.holder.owner, l.owner)
    assert.equal(no.lost.aborted, true)
    assert.throws(() => no.fence, LockNotHeldError)
  } finally {
    await other.close()
  }

  await l.extend(8000)
  const info = await l.info()
  assert.equal(info.owner, l.owner)
  assert.equal(info.fencingToken, l.fencingToken)
  assert.equal(info.durability, 'persistent')
  assert.equal((await c.getLockInfo(r)).fencingToken, l.fencingToken)

  const k = unique('fenced')
  assert.equal((await c.set(k, 'v1', { fence: l })).success, true)
  const txn = await c.transaction().ifLockToken(r, l.fencingToken).thenSet(k, 'v2').fence(l).commit()
  assert.equal(txn.success, true)
  const fence = l.fence
  assert.equal(await l.release(), true)
  assert.equal(l.lost.aborted, true, 'lost aborts on release')
  assert.equal(l.acquired, false)
  assert.equal(await l.release(), false)
  await assert.rejects(c.set(k, 'stale', { fence }), (e) => e instanceof FencedError && e.code === 'FENCED')
  await assert.rejects(c.delete(k, { fence }), FencedError)
  await assert.rejects(l.extend(), LockNotHeldError)
  assert.equal(await c.getLockInfo(r), null)

  // await using (the runtime has Symbol.asyncDispose; the syntax itself is TypeScript's).
  const l2 = await c.acquireLock(r, { expiry: 5000 })
  assert.ok(l2.fencingToken > l.fencingToken, 'tokens strictly increase')
  await l2[Symbol.asyncDispose]()
  assert.equal(await c.getLockInfo(r), null)

  // Same owner re-locks idempotently and keeps the token; unlock by owner.
  const a = await c.acquireLock(r, { owner: 'me', expiry: 5000 })
  const b = await c.acquireLock(r, { owner: 'me', expiry: 5000 })
  assert.equal(a.fencingToken, b.fencingToken)
  assert.equal(await c.unlock(r, 'me'), true)

  // Ephemeral locks fence ephemeral keys.
  const e = await c.acquireLock(unique('elock'), { durability: 'ephemeral', expiry: 3000 })
  assert.equal(e.acquired, true)
  assert.equal(e.durability, 'ephemeral')
  const ek = unique('ekey')
  assert.equal((await c.set(ek, 'x', { durability: 'ephemeral', expiry: 3000, fence: e })).success, true)
  await e.release()
})

test('withLock runs fn while holding the lock and releases it after', async () => {
  const r = unique('with')
  const out = await c.withLock(r, { expiry: 5000 }, async (lock) => {
    assert.equal(lock.acquired, true)
    assert.equal((await c.getLockInfo(r)).owner, lock.owner)
    return 7
  })
  assert.equal(out, 7)
  assert.equal(await c.getLockInfo(r), null)
  await assert.rejects(
    c.withLock(r, { expiry: 5000 }, () => {
      throw new Error('boom')
    }),
    /boom/,
  )
  assert.equal(await c.getLockInfo(r), null, 'released after a throw too')
  const held = await c.acquireLock(r, { expiry: 5000 })
  await assert.rejects(c.withLock(r, { expiry: 5000, wait: 200 }, () => 1), LockNotAcquiredError)
  await held.release()
})

test('cluster status and members', async () => {
  const s = await c.getClusterStatus()
  assert.ok(s.leaderId > 0)
  assert.ok(s.term > 0)
  assert.equal(s.members.length, 3)
  const m = await c.getMembers()
  assert.equal(m.length, 3)
  assert.ok(m.every((x) => x.voter && x.clientAddr.includes(':')))
  assert.equal(typeof c.clientId, 'string')
  assert.ok(c.endpoints.length >= endpoints.length)
  await assert.rejects(c.promoteMember(99), KahunaError)
})

test('errors carry the core codes and map through one table', async () => {
  assert.throws(() => new KahunaClient({ endpoints: [] }), (e) => e instanceof ConfigError && e.code === 'CONFIG')
  await assert.rejects(c.set('', 'v'), (e) => e instanceof InvalidArgumentError && e.code === 'INVALID_ARGUMENT' && !e.retryable)
  await assert.rejects(c.acquireLock(unique('l'), { expiry: 0 }), InvalidArgumentError)
  await assert.rejects(c.getRevision('k', -1), InvalidArgumentError)
  await assert.rejects(c.get(42), InvalidArgumentError)
  for (const [code, cls] of Object.entries(ERROR_CLASSES)) {
    assert.equal(new cls(code, 'm').code, code)
    assert.ok(new cls(code, 'm') instanceof KahunaError)
  }
  const unreachable = new KahunaClient({ endpoints: ['127.0.0.1:1'], defaultOperationTimeoutMs: 500, discoverMembers: false })
  await assert.rejects(unreachable.get('k'), (e) => e instanceof KahunaError && e.retryable)
  await unreachable.close()
})

test('close releases held locks and refuses later calls', async () => {
  const c2 = client()
  const r = unique('close')
  const l = await c2.acquireLock(r, { expiry: 10_000 })
  assert.equal(l.acquired, true)
  await c2.close()
  assert.equal(l.lost.aborted, true)
  assert.equal(await c.getLockInfo(r), null)
  await assert.rejects(c2.get('k'), ClientClosedError)
  await c2.close()
})
