// Compiled with `strict` against the installed package: the declarations describe the
// API as documented (a typo or a wrong type here fails the compile).
import {
  KahunaClient,
  KahunaError,
  KahunaErrorCode,
  KahunaLock,
  KeyValueEntry,
  FencedError,
  ERROR_CLASSES,
  SequenceRange,
  TransactionResult,
  ClusterStatus,
  Durability,
  KahunaWatch,
  WatchBatch,
  HistoryEvent,
  KahunaLeadership,
  KahunaElectionObserver,
  Leader,
  RatePolicy,
  RateLimitDecision,
  ScanPage,
  SetManyItem,
  LockInfo,
} from 'kahuna-rs'

export async function usage(endpoints: string[]): Promise<void> {
  const client = new KahunaClient({ endpoints, defaultOperationTimeoutMs: 5000 })
  const ac = new AbortController()
  const e: KeyValueEntry = await client.set('k', 'v', { expiry: 1000, mode: 'ifNotExists', signal: ac.signal })
  const ok: boolean = e.success
  const v: Uint8Array | null = (await client.get('k')).value
  const s: string | null = (await client.get('k', { revision: e.revision, consistency: 'stale' })).valueAsString()
  const n: number | null = (await client.getRevision('k', 1)).valueAsNumber()
  await client.compareValueAndSet('k', 'w', 'v')
  await client.compareRevisionAndSet('k', new Uint8Array([1]), e.revision)
  await client.delete('k', { ifRevision: 3 })
  await client.extend('k', 5000)
  await client.exists('k')
  for await (const item of client.scan('p/', { pageSize: 100 })) {
    const key: string = item.key
    void key
  }
  const all: KeyValueEntry[] = await client.scanAllByPrefix('p/')
  await client.getByBucket('p')
  const h = await client.history('k', { limit: 10 })
  const kind: 'put' | 'delete' | 'expire' = h.events[0]!.kind
  {
    await using w: KahunaWatch = await client.watch('p/', { prefix: true, startRevision: 0, progressIntervalMs: 1000, signal: ac.signal })
    const b: WatchBatch = await w.nextBatch({ signal: ac.signal })
    const progress: boolean = b.isProgress && b.events.length === 0 && b.revision >= w.revision
    for await (const ev of w) {
      const change: HistoryEvent = ev
      void change.entry.valueAsString()
      w.close()
    }
    void progress
  }
  {
    const l: KahunaLeadership | null = await client.campaign('e', 'v', { ttlMs: 5000, waitMs: 100, signal: ac.signal })
    if (l !== null) {
      await using leadership = l
      const epoch: number = leadership.epoch
      const lost: AbortSignal = leadership.lost
      const leading: boolean = leadership.isLeader
      await leadership.proclaim(Buffer.from('w'), { signal: ac.signal })
      const resigned: boolean = await leadership.resign()
      void [epoch, lost, leading, resigned]
    }
    await using o: KahunaElectionObserver = await client.observe('e', { signal: ac.signal })
    const first: Leader | null = await o.next({ signal: ac.signal })
    for await (const leader of o) {
      const owner: string | undefined = leader?.owner
      void owner
      o.close()
    }
    const now: Leader | null = await client.electionLeader('e')
    void [first, now?.value.length]
  }
  {
    const policy: RatePolicy = { kind: 'tokenBucket', capacity: 10, refillPerSecond: 5 }
    const rd: RateLimitDecision = await client.checkRateLimit('api', policy, { cost: 2, durability: 'ephemeral', signal: ac.signal })
    const fixed = await client.checkRateLimit('api', { kind: 'fixedWindow', limit: 10, windowMs: 1000 })
    // @ts-expect-error a window policy has no capacity
    await client.checkRateLimit('api', { kind: 'slidingWindow', capacity: 10, windowMs: 1000 })
    const wait: number = fixed.allowed ? 0 : fixed.retryAfterMs
    const many: KeyValueEntry[] = await client.getMany(['a', 'b'], { consistency: 'stale', signal: ac.signal })
    const items: SetManyItem[] = [{ key: 'a', value: 'x' }, { key: 'b', value: new Uint8Array([1]) }]
    const rev: number = await client.setMany(items, { signal: ac.signal })
    const gone: number = await client.deleteMany(['a', 'b'], { signal: ac.signal })
    const page: ScanPage = await client.getByRange('a', 'b', { pageSize: 10, signal: ac.signal })
    for await (const item of client.scanByRange('a', '', { keysOnly: true, signal: ac.signal })) void item.key
    void [rd.remaining, rd.revision, wait, many, rev, gone, page.nextPageToken]
  }
  const t: TransactionResult = await client.transaction().ifValue('a', 'b').thenSet('a', 'c').elseGet('a').commit()
  const id: number = await client.nextSequenceValue('s', { idempotencyKey: 'x' })
  const r: SequenceRange = await client.reserveSequenceRange('s', 10)
  const lock: KahunaLock = await client.acquireLock('r', { expiry: 1000, wait: 0, retry: 50, durability: 'ephemeral' })
  const lost: AbortSignal = lock.lost
  const token: number | null = lock.fencingToken
  const d: Durability = lock.durability
  await lock.extend(2000)
  await lock.info()
  await lock.release()
  {
    await using held = await client.acquireLock('r2', { expiry: 1000 })
    void held.acquired
  }
  const x: number = await client.withLock('r3', { expiry: 1000 }, async (l) => l.fencingToken ?? 0)
  {
    await using permit: KahunaLock = await client.acquirePermit('pool', 4, { expiry: 1000, wait: 500, signal: ac.signal })
    if (permit.acquired) await client.set('pool/out', 'v', { fence: permit })
    const info: LockInfo | null = permit.holder ?? (await client.getLockInfo('pool', { signal: ac.signal }))
    const counts: [number, number, number] = [info?.permits ?? 0, info?.holders ?? 0, info?.waiters ?? 0]
    const done: string = await client.withPermit('pool', 4, { expiry: 1000, signal: ac.signal }, (p: KahunaLock) => p.resource)
    // @ts-expect-error the number of permits comes before the options
    await client.acquirePermit('pool', { expiry: 1000 })
    void [counts, done]
  }
  const st: ClusterStatus = await client.getClusterStatus()
  try {
    await client.set('k', 'v', { fence: { resource: 'r', token: 1 } })
  } catch (err) {
    if (err instanceof FencedError) {
      const code: KahunaErrorCode = err.code
      void code
    } else if (err instanceof KahunaError && err.retryable) {
      void ERROR_CLASSES.TIMEOUT
    }
  }
  await client.close()
  void [ok, v, s, n, all, kind, t, id, r, lost, token, d, x, st]
}
