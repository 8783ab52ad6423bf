// An aborted signal cancels the native call and leaves no native work behind.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { AbortError, _diagnostics, client, unique, sleep } from './helpers.mjs'

const c = client()
after(() => c.close())

async function settled() {
  const until = Date.now() + 2000
  while ((_diagnostics.inFlight() !== 0 || _diagnostics.cancelTokens() !== 0) && Date.now() < until) await sleep(10)
  return { inFlight: _diagnostics.inFlight(), tokens: _diagnostics.cancelTokens() }
}

test('aborting a waiting acquireLock rejects at once and cancels the native call', async () => {
  const r = unique('abort')
  const held = await c.acquireLock(r, { expiry: 10_000 })
  const ac = new AbortController()
  const started = Date.now()
  const p = c.acquireLock(r, { expiry: 10_000, wait: 20_000, signal: ac.signal })
  await sleep(200)
  assert.equal(_diagnostics.inFlight(), 1, 'the waiting call is alive in the native layer')
  ac.abort(new Error('stop waiting'))
  await assert.rejects(p, (e) => e instanceof AbortError && e.code === 'ABORTED' && e.cause.message === 'stop waiting')
  assert.ok(Date.now() - started < 2000)
  assert.deepEqual(await settled(), { inFlight: 0, tokens: 0 }, 'no native work and no token left')
  await held.release()
  // The aborted waiter's place in the server's queue is given back in the background:
  // if the holder's release is applied first, the waiter is granted for a moment and
  // the give-back releases it. Either way the lock ends up free, and quickly.
  const deadline = Date.now() + 10_000
  let info = await c.getLockInfo(r)
  while (info !== null && Date.now() < deadline) {
    await sleep(50)
    info = await c.getLockInfo(r)
  }
  assert.equal(info, null, 'the aborted attempt holds nothing')
})

test('an already aborted signal rejects without a native call', async () => {
  const signal = AbortSignal.abort()
  await assert.rejects(c.get('k', { signal }), AbortError)
  assert.deepEqual(await settled(), { inFlight: 0, tokens: 0 })
})

test('AbortSignal.timeout and many aborted calls leave nothing behind', async () => {
  const r = unique('abort-many')
  const held = await c.acquireLock(r, { expiry: 10_000 })
  const calls = []
  for (let i = 0; i < 50; i++) {
    calls.push(c.acquireLock(r, { wait: 30_000, signal: AbortSignal.timeout(100 + i) }))
  }
  const results = await Promise.allSettled(calls)
  assert.ok(results.every((x) => x.status === 'rejected' && x.reason instanceof AbortError))
  assert.deepEqual(await settled(), { inFlight: 0, tokens: 0 })
  // A signal that never aborts: the call completes normally and frees its token.
  const ac = new AbortController()
  assert.equal((await c.set(unique('k'), 'v', { signal: ac.signal })).success, true)
  assert.deepEqual(await settled(), { inFlight: 0, tokens: 0 })
  await held.release()
})

test('per-call timeoutMs bounds a call', async () => {
  const dead = client({ endpoints: ['127.0.0.1:1'], discoverMembers: false, defaultOperationTimeoutMs: 60_000 })
  const started = Date.now()
  await assert.rejects(dead.get('k', { timeoutMs: 400 }), (e) => e.retryable && (e.code === 'TIMEOUT' || e.code === 'UNAVAILABLE'))
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
  await dead.close()
})
