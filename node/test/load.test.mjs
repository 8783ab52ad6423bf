// 10,000 calls do not grow memory; 64 concurrent calls run concurrently without
// blocking the event loop; the per-call cost of the crossing against the Rust core.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import os from 'node:os'
import v8 from 'node:v8'
import vm from 'node:vm'
import { _diagnostics, client, unique } from './helpers.mjs'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')
const c = client()
after(() => c.close())

async function waves(n, width, f) {
  for (let i = 0; i < n; i += width) {
    const batch = []
    for (let j = i; j < Math.min(n, i + width); j++) batch.push(f(j))
    await Promise.all(batch)
  }
}

test('10,000 calls do not grow the process memory', async () => {
  const k = unique('mem')
  await c.set(k, 'x'.repeat(256))
  const ac = new AbortController()
  const call = (i) => (i % 4 === 0 ? c.set(k, `v${i}`, { signal: ac.signal }) : c.get(k, i % 2 ? { signal: ac.signal } : undefined))
  await waves(3000, 32, call) // warm-up: allocator pools, connections, JIT
  gc()
  const before = process.memoryUsage()
  await waves(10_000, 32, call)
  gc()
  await new Promise((r) => setTimeout(r, 100))
  gc()
  const afterMem = process.memoryUsage()
  const rss = (afterMem.rss - before.rss) / 1048576
  const heap = (afterMem.heapUsed - before.heapUsed) / 1048576
  console.log(`memory after 10,000 calls: rss ${rss.toFixed(1)} MiB, heap ${heap.toFixed(1)} MiB`)
  assert.ok(rss < 24, `rss grew ${rss.toFixed(1)} MiB`)
  assert.ok(heap < 8, `heap grew ${heap.toFixed(1)} MiB`)
  assert.equal(_diagnostics.inFlight(), 0)
  assert.equal(_diagnostics.cancelTokens(), 0)
})

test('64 concurrent calls from one event loop run concurrently, without blocking it', async () => {
  const k = unique('conc')
  await c.set(k, 'v')
  for (let i = 0; i < 100; i++) await c.get(k)
  const n = 640
  let t = performance.now()
  for (let i = 0; i < n; i++) await c.get(k)
  const sequential = n / ((performance.now() - t) / 1000)
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  t = performance.now()
  await waves(n, 64, () => c.get(k))
  const concurrent = n / ((performance.now() - t) / 1000)
  h.disable()
  console.log(
    `gets/s sequential ${sequential.toFixed(0)}, 64 concurrent ${concurrent.toFixed(0)} (x${(concurrent / sequential).toFixed(1)}); ` +
      `event loop delay max ${(h.max / 1e6).toFixed(1)} ms`,
  )
  assert.ok(concurrent > 2.5 * sequential, 'concurrent throughput well above the sequential rate')
  assert.ok(h.max / 1e6 < 200, 'the event loop kept running')
})

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

// What the overhead is made of: a native async call with no work (argument-free hop
// onto the runtime, promise resolved back) and the machine's floor for any such hop,
// a ping-pong of wake-ups between two sleeping threads. On a virtual machine whose
// idle CPUs halt, each cross-CPU wake-up costs tens of microseconds of the hypervisor's
// time, and a call handed to another thread pays two of them.
async function crossingBreakdown() {
  const n = 2000
  const rounds = []
  for (let r = 0; r < 5; r++) {
    const t = performance.now()
    for (let i = 0; i < n; i++) await _diagnostics.ping()
    rounds.push(((performance.now() - t) * 1000) / n)
  }
  const wake = median([1, 2, 3, 4, 5].map(() => _diagnostics.benchThreadWake(n)))
  return (
    `CROSSING no-op async call ${median(rounds).toFixed(1)} us; ` +
    `two-thread wake-up round trip ${wake.toFixed(1)} us (the machine's floor for a hop and back)`
  )
}

test('the crossing alone: an async native call that does nothing resolves', async () => {
  for (let i = 0; i < 100; i++) assert.equal(await _diagnostics.ping(), undefined)
  assert.ok(_diagnostics.benchThreadWake(10) > 0)
})

// The same sequential gets, alternately from JavaScript and from the Rust core alone
// (in the addon, on the same runtime and connection), in interleaved rounds so both
// see the same cluster load. Stale reads (answered by the member itself) keep the
// server's share small, and the median of the per-round differences is the cost of
// crossing into Node: argument conversion, the promise, the thread hop back.
for (const consistency of ['stale', 'linearizable']) {
  test(`per-call overhead of Node over the Rust core (${consistency} gets, interleaved rounds)`, async () => {
    const k = unique('overhead')
    await c.set(k, 'value')
    const stale = consistency === 'stale'
    const options = { consistency }
    for (let i = 0; i < 300; i++) await c.get(k, options)
    await _diagnostics.benchRustGets(c, k, 300, stale)
    const n = stale ? 1000 : 300
    const rounds = 7
    const node = []
    const rust = []
    for (let round = 0; round < rounds; round++) {
      const t = performance.now()
      for (let i = 0; i < n; i++) await c.get(k, options)
      node.push(((performance.now() - t) * 1000) / n)
      rust.push(await _diagnostics.benchRustGets(c, k, n, stale))
    }
    const overhead = median(node.map((x, i) => x - rust[i]))
    console.log(
      `OVERHEAD ${consistency} get: node ${median(node).toFixed(1)} us/call, rust core ${median(rust).toFixed(1)} us/call, ` +
        `overhead ${overhead.toFixed(1)} us/call (median of ${rounds} interleaved rounds of ${n})`,
    )
    if (stale) console.log(await crossingBreakdown())
    // Judged only on a machine that is not oversubscribed: with more runnable threads
    // than cores, the wake-up of the event loop thread measures the scheduler instead.
    const [load] = os.loadavg()
    // Speed is a benchmark figure, not a CI assertion on a shared machine: the 50 us
    // budget is judged only when asked for (KAHUNA_ASSERT_OVERHEAD=1) on an idle machine.
    if (stale && process.env.KAHUNA_ASSERT_OVERHEAD === '1' && load < os.cpus().length) {
      assert.ok(overhead < 50, `overhead ${overhead.toFixed(1)} us/call`)
    }
    else if (stale) console.log(`OVERHEAD not judged: load average ${load.toFixed(1)} on ${os.cpus().length} cores`)
  })
}
