/**
 * Kahuna for Node.js: a Promise API over Kahuna's Rust core client (routing, retries,
 * lease renewal and fencing all live in Rust; the work runs on the core's tokio
 * runtime, never on the event loop).
 *
 * Numbers: revisions, fencing tokens, versions and sequence values are JavaScript
 * numbers, exact up to `Number.MAX_SAFE_INTEGER` (2^53 - 1). Persistent tokens are
 * revisions and sequence values count up from 1, so they stay far below it; an
 * ephemeral token is `(term << 32) | counter`, exact while the term is below 2^21.
 * Numbers passed in must be non-negative safe integers. Durations are milliseconds.
 */

import * as native from '../native/index.js'
import { AbortError, ClientClosedError, KahunaError, LockNotAcquiredError, fromNative, kahunaError } from './errors'

export * from './errors'

// --- shared types -----------------------------------------------------------------------

/** Persistent (replicated, fsynced) or ephemeral (leader memory, faster) tier. */
export type Durability = 'persistent' | 'ephemeral'
/** Linearizable (default) or a stale local read from any member. */
export type Consistency = 'linearizable' | 'stale'
/** A value: strings are stored as UTF-8. */
export type Value = string | Uint8Array

/** Options every call takes. */
export interface CallOptions {
  /** Aborting it cancels the native call; the Promise rejects with an {@link AbortError}. */
  signal?: AbortSignal
  /** Deadline of this call, retries included (default: the client's `defaultOperationTimeoutMs`). */
  timeoutMs?: number
}

/** A fence: the write applies only while `resource` is locked with `token`. */
export interface Fence {
  resource: string
  token: number
  durability?: Durability
}

/** Something that can fence a write: a {@link Fence} or a held {@link KahunaLock}. */
export type Fencer = Fence | KahunaLock

function fenceOf(f: Fencer | undefined): native.NativeFence | undefined {
  if (f === undefined) return undefined
  if (f instanceof KahunaLock) return f.fence
  return { resource: f.resource, token: f.token, durability: f.durability }
}

function bytes(v: Value): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8')
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

// --- entries ----------------------------------------------------------------------------

/** A key/value answer (kahuna-ts's `KahunaKeyValue`). */
export class KeyValueEntry {
  /** Whether the operation did what was asked (found, set, compare held, deleted). */
  readonly success: boolean
  readonly key: string
  /** The value (`null` when there is none: missing key, keys-only scan, ...). */
  readonly value: Uint8Array | null
  /** Revision of the key's last change (its mod revision); 0 when it has none. */
  readonly revision: number
  /** Revision that created the key. */
  readonly createRevision: number
  /** Changes since creation (1 for a new key). */
  readonly version: number
  /** Expiry in cluster time (ms since the epoch), `null` for none. */
  readonly expiresAtMs: number | null
  /** Store revision of the answer. */
  readonly storeRevision: number

  /** @internal */
  constructor(success: boolean, key: string, kv: native.NativeKv | null | undefined, storeRevision: number) {
    this.success = success
    this.key = kv?.key ?? key
    this.value = kv ? kv.value : null
    this.revision = kv?.revision ?? 0
    this.createRevision = kv?.createRevision ?? 0
    this.version = kv?.version ?? 0
    this.expiresAtMs = kv?.expiresAtMs ?? null
    this.storeRevision = storeRevision
  }

  /** The value as UTF-8 text (`null` without a value). */
  valueAsString(): string | null {
    return this.value === null ? null : Buffer.from(this.value.buffer, this.value.byteOffset, this.value.byteLength).toString('utf8')
  }

  /** The value parsed as a number (`null` without a value or when it is not a number). */
  valueAsNumber(): number | null {
    const s = this.valueAsString()
    if (s === null || s.trim() === '') return null
    const n = Number(s)
    return Number.isNaN(n) ? null : n
  }
}

/** A delete's answer: `deleted` says whether a key was there to delete. */
export class DeleteEntry extends KeyValueEntry {
  readonly deleted: boolean
  /** @internal */
  constructor(key: string, r: native.NativeDeleteResult) {
    super(r.success, key, r.kv, r.revision)
    this.deleted = r.deleted
  }
}

function entry(key: string, r: native.NativeSetResult): KeyValueEntry {
  return new KeyValueEntry(r.success, key, r.kv, r.revision)
}

// --- options ----------------------------------------------------------------------------

export interface KahunaClientOptions {
  /** Members' client addresses, `HOST:PORT` (one is enough: the others are discovered). */
  endpoints: string | readonly string[]
  /** Deadline of one call, retries included (default 10,000). */
  defaultOperationTimeoutMs?: number
  /** Deadline of one attempt against one member (default 2,000). */
  attemptTimeoutMs?: number
  /** How long opening a connection may take (default 500). */
  connectTimeoutMs?: number
  /** This client's id in request ids (default: random). Two live clients must never share one. */
  clientId?: string
  /** Learn the other members from the cluster (default true). */
  discoverMembers?: boolean
  /**
   * TLS settings, as Node's `tls` module names them. `https://` endpoints turn TLS on with
   * the system's trusted roots; these trust a private CA, pin certificates or present a
   * client certificate (and then `HOST:PORT` endpoints use TLS too).
   */
  tls?: KahunaTlsOptions
  /** Bearer token sent with every request, for a cluster started with `--auth-tokens`. */
  token?: string
}

export interface KahunaTlsOptions {
  /** PEM CA certificate(s) that sign the members' certificates. */
  ca?: string | Buffer
  /** PEM client certificate (chain), with `key`, for a cluster that requires one. */
  cert?: string | Buffer
  /** PEM private key of `cert`. */
  key?: string | Buffer
  /** SHA-256 fingerprints of trusted server certificates instead of a CA (64 hex digits, `:` allowed). */
  trustedServerCertificateThumbprints?: readonly string[]
  /** `false` accepts any server certificate: encrypted, not authenticated. Development only. */
  rejectUnauthorized?: boolean
}

function pem(v: string | Buffer | undefined): Buffer | undefined {
  return v === undefined ? undefined : typeof v === 'string' ? Buffer.from(v, 'utf8') : v
}

export interface GetOptions extends CallOptions {
  /** Read the key as of this revision (within the retention window). */
  revision?: number
  consistency?: Consistency
  durability?: Durability
}

/** `'ifNotExists'`: only create; `'ifExists'`: only replace. */
export type SetMode = 'always' | 'ifNotExists' | 'ifExists'

export interface SetOptions extends CallOptions {
  /** TTL in ms (kahuna-ts's `expiry`); absent: no expiry. */
  expiry?: number
  mode?: SetMode
  durability?: Durability
  /** Apply only while this lock is held with this token. */
  fence?: Fencer
}

export interface CompareSetOptions extends CallOptions {
  expiry?: number
  durability?: Durability
  fence?: Fencer
}

export interface DeleteOptions extends CallOptions {
  /** Delete only when the value is this. */
  ifValue?: Value
  /** Delete only when the key's revision is this. */
  ifRevision?: number
  durability?: Durability
  fence?: Fencer
}

export interface ReadOptions extends CallOptions {
  consistency?: Consistency
  durability?: Durability
}

export interface ScanOptions extends ReadOptions {
  /** Page size (server default and maximum 1000). */
  pageSize?: number
  /** Only keys, no values. */
  keysOnly?: boolean
}

export interface ScanPageOptions extends ScanOptions {
  /** `nextPageToken` of the previous page. */
  pageToken?: Uint8Array
}

export interface ScanPage {
  items: KeyValueEntry[]
  /** `null` on the last page. */
  nextPageToken: Uint8Array | null
  storeRevision: number
}

function pageOf(p: native.NativeScanPage, keysOnly: boolean | undefined): ScanPage {
  return {
    items: p.items.map((kv) => new KeyValueEntry(true, kv.key, keysOnly ? { ...kv, value: Buffer.alloc(0) } : kv, p.revision)),
    nextPageToken: p.nextPageToken ?? null,
    storeRevision: p.revision,
  }
}

function nativeScanOptions(o: ScanPageOptions | undefined): native.NativeScanOptions {
  return {
    limit: o?.pageSize,
    pageToken: o?.pageToken === undefined ? undefined : bytes(o.pageToken),
    keysOnly: o?.keysOnly,
    consistency: o?.consistency,
    durability: o?.durability,
  }
}

/** One write of {@link KahunaClient.setMany}. */
export interface SetManyItem {
  readonly key: string
  readonly value: Value
}

// --- rate limiters ----------------------------------------------------------------------

/**
 * How a server-side rate limiter counts (kahuna-ts's fixed window, sliding window and
 * token bucket limiters). Limits, capacities and rates are integers from 1; windows are
 * whole milliseconds from 1 to a day.
 */
export type RatePolicy =
  /** At most `limit` units per window; windows are aligned to cluster time. */
  | { readonly kind: 'fixedWindow'; readonly limit: number; readonly windowMs: number }
  /** At most `limit` units in any `windowMs`, estimated from the current and the previous window. */
  | { readonly kind: 'slidingWindow'; readonly limit: number; readonly windowMs: number }
  /** A bucket of `capacity` tokens (the largest burst; a new bucket starts full), refilled at `refillPerSecond`. */
  | { readonly kind: 'tokenBucket'; readonly capacity: number; readonly refillPerSecond: number }

export interface RateLimitOptions extends CallOptions {
  /** Units this request takes (default 1; 0 counts as 1). More than the policy ever allows at once is `INVALID_ARGUMENT`. */
  cost?: number
  /**
   * `'persistent'` (default): decided by the replicated state machine, exactly once across
   * retries, counts survive failovers. `'ephemeral'`: in the leader's memory, much faster,
   * starts afresh after a leader change. The two tiers are separate namespaces.
   */
  durability?: Durability
}

/** A rate limiter's answer. */
export interface RateLimitDecision {
  /** The request may go ahead; its cost was taken. */
  allowed: boolean
  /** Units left now. */
  remaining: number
  /** When not allowed: how long until the same check would be (ms); 0 when allowed. */
  retryAfterMs: number
  /** Store revision of the answer (persistent limiters). */
  revision: number
}

function nativePolicy(p: RatePolicy): native.NativeRatePolicy {
  switch (p.kind) {
    case 'fixedWindow':
    case 'slidingWindow':
      return { kind: p.kind, limit: p.limit, windowMs: p.windowMs }
    case 'tokenBucket':
      return { kind: p.kind, capacity: p.capacity, refillPerSecond: p.refillPerSecond }
    default: {
      // A JavaScript caller's unknown kind: the native layer refuses it with INVALID_ARGUMENT.
      const other: never = p
      return { kind: String((other as { kind?: unknown }).kind) }
    }
  }
}

export type HistoryEventKind = 'put' | 'delete' | 'expire'

export interface HistoryEvent {
  kind: HistoryEventKind
  entry: KeyValueEntry
  revision: number
}

export interface History {
  events: HistoryEvent[]
  /** Oldest revision still retained. */
  retainedFromRevision: number
  storeRevision: number
}

/** History and watch events alike; a delete or expiry carries the key's revisions but no value (empty). */
function historyEvent(e: native.NativeHistoryEvent): HistoryEvent {
  return {
    kind: e.kind === 'delete' ? 'delete' : e.kind === 'expire' ? 'expire' : 'put',
    entry: new KeyValueEntry(e.kind === 'put', e.kv.key, e.kv, e.revision),
    revision: e.revision,
  }
}

export interface WatchOptions extends CallOptions {
  /** Watch every key starting with the given key (default false). */
  prefix?: boolean
  /** The first revision to deliver changes of (a past one replays the retained history); default 0: only changes made after the watch is open. */
  startRevision?: number
  /** How often a progress notification comes while nothing changes: 100 to 600,000 ms (default 5,000). */
  progressIntervalMs?: number
}

/** One message of a watch: the changes of one or more whole revisions, oldest first, or none (a progress notification). */
export interface WatchBatch {
  events: HistoryEvent[]
  /** Every change to the watched keys up to and including this revision has been delivered. */
  revision: number
  /** No events: nothing changed up to `revision`. */
  isProgress: boolean
}

export interface SequenceOptions extends CallOptions {
  /** The same key returns the same range within the idempotency window. */
  idempotencyKey?: string
}

/** A reserved range `[first, first + count)`. */
export interface SequenceRange {
  first: number
  count: number
  /** Answered from an earlier call with the same idempotency key. */
  replayed: boolean
}

export interface LockOptions extends CallOptions {
  /** Lease in ms (default 10,000); renewed at about a third of it while held. */
  expiry?: number
  /** How long to keep trying while someone else holds it (default 0: one attempt). */
  wait?: number
  /** Pause between attempts while waiting (default 100). */
  retry?: number
  durability?: Durability
  /** Lock as this owner (default: unique to this handle). */
  owner?: string
}

/**
 * A lock (or a semaphore) as the server sees it. For a semaphore (`permits > 0`) read by
 * name ({@link KahunaClient.getLockInfo}) there is no single holder: `owner` is empty,
 * `fencingToken` is the newest live permit's and the expiry is that permit's; as a
 * refused attempt's {@link KahunaLock.holder} it is the same view.
 */
export interface LockInfo {
  resource: string
  owner: string
  fencingToken: number
  /** Lease end in cluster time (ms since the epoch). */
  expiresAtMs: number
  remainingMs: number
  durability: Durability
  /** What the holder announces (an election leader's value); empty for plain locks. */
  value: Buffer
  /** Callers waiting in the lock's (or semaphore's) queue (filled by `getLockInfo`; 0 elsewhere). */
  waiters: number
  /** A semaphore's number of permits; 0 for a lock. */
  permits: number
  /** A semaphore's permits held now; 0 for a lock. */
  holders: number
}

export interface Member {
  id: number
  peerAddr: string
  clientAddr: string
  voter: boolean
}

export interface ClusterStatus {
  memberId: number
  leaderId: number
  term: number
  state: string
  members: Member[]
  committedIndex: number
  appliedIndex: number
  lastLogIndex: number
  snapshotIndex: number
  storage: string
}

function durabilityOf(s: string): Durability {
  return s === 'ephemeral' ? 'ephemeral' : 'persistent'
}

function lockInfo(i: native.NativeLockInfo): LockInfo {
  return { ...i, durability: durabilityOf(i.durability) }
}

function nativeLockOptions(o: LockOptions | undefined): native.NativeLockOptions | undefined {
  return o === undefined
    ? undefined
    : { ttlMs: o.expiry, waitMs: o.wait, retryMs: o.retry, durability: o.durability, owner: o.owner }
}

/** `withLock` and `withPermit`: runs `fn` while `lock` is held, releases it after. */
async function holding<T>(
  lock: KahunaLock,
  fn: (lock: KahunaLock) => Promise<T> | T,
  refused: (who: LockInfo | null) => string,
): Promise<T> {
  try {
    if (!lock.acquired) throw new LockNotAcquiredError('LOCK_NOT_ACQUIRED', refused(lock.holder))
    return await fn(lock)
  } finally {
    await lock.release().catch(() => undefined)
  }
}

// --- the call wrapper -------------------------------------------------------------------

function abortError(signal: AbortSignal): AbortError {
  return new AbortError('ABORTED', 'the operation was aborted', { cause: signal.reason })
}

/** Runs one native call with its signal and timeout; converts errors. */
async function invoke<T>(o: CallOptions | undefined, f: (c: native.CallOptions | undefined) => Promise<T>): Promise<T> {
  const signal = o?.signal
  const timeoutMs = o?.timeoutMs
  if (signal === undefined) {
    try {
      return await f(timeoutMs === undefined ? undefined : { timeoutMs })
    } catch (e) {
      throw fromNative(e)
    }
  }
  if (signal.aborted) throw abortError(signal)
  const id = native.cancelNew()
  const ids = watch(signal)
  ids.add(id)
  try {
    return await f({ cancel: id, timeoutMs })
  } catch (e) {
    const k = fromNative(e)
    throw k.code === 'ABORTED' ? abortError(signal) : k
  } finally {
    ids.delete(id)
    native.cancelFree(id)
  }
}

/**
 * The calls in flight per signal: one 'abort' listener per signal however many calls
 * share it (no MaxListeners warnings when `lock.lost` guards many calls).
 */
const watched = new WeakMap<AbortSignal, Set<number>>()

function watch(signal: AbortSignal): Set<number> {
  let ids = watched.get(signal)
  if (ids === undefined) {
    const set = new Set<number>()
    ids = set
    watched.set(signal, set)
    signal.addEventListener(
      'abort',
      () => {
        for (const id of set) native.cancelFire(id)
      },
      { once: true },
    )
  }
  return ids
}

// --- locks ------------------------------------------------------------------------------

/**
 * A lock attempt (kahuna-ts's `KahunaLock`), or a semaphore permit attempt (from
 * {@link KahunaClient.acquirePermit}: the permit has a lease and a fencing token of its
 * own, and works exactly the same way). When `acquired`, the lease is renewed in
 * the background until `release()`; `lost` aborts the moment the lease can no longer be
 * trusted by this process's clock (or on release). A held lock keeps the process alive,
 * like an open socket: release it, use `await using`, {@link KahunaClient.withLock}, or
 * `client.close()`.
 */
export class KahunaLock {
  readonly resource: string
  /** Aborts once the lease can no longer be trusted (reason: a {@link LockNotHeldError}). Pass it to fetch, child processes, ... */
  readonly lost: AbortSignal
  readonly #native: native.NativeLock
  readonly #client: KahunaClient
  readonly #durability: Durability

  /** @internal */
  constructor(client: KahunaClient, n: native.NativeLock, durability: Durability) {
    this.#client = client
    this.#native = n
    this.#durability = durability
    this.resource = n.resource
    if (n.fencingToken === null) {
      this.lost = AbortSignal.abort(kahunaError('LOCK_NOT_HELD', 'the lock was not acquired'))
    } else {
      const ac = new AbortController()
      this.lost = ac.signal
      n.waitLost().then(
        (reason) => ac.abort(kahunaError('LOCK_NOT_HELD', reason)),
        (e: unknown) => ac.abort(fromNative(e)),
      )
    }
  }

  /** Held now, with a lease this process still trusts. */
  get acquired(): boolean {
    return this.#native.acquired
  }

  /** The fencing token of the grant (`null` when not acquired); strictly increases per resource. */
  get fencingToken(): number | null {
    return this.#native.fencingToken
  }

  /** The owner name this handle locks as (`null` when not acquired). */
  get owner(): string | null {
    return this.#native.owner
  }

  /** Who held the lock when this attempt did not acquire it. */
  get holder(): LockInfo | null {
    const h = this.#native.holder
    return h === null ? null : lockInfo(h)
  }

  /** How much longer the lease can be trusted (ms; 0 once lost). */
  get trustedForMs(): number {
    return this.#native.trustedForMs
  }

  get durability(): Durability {
    return this.#durability
  }

  /** The fence for writes guarded by this lock (throws {@link LockNotHeldError} when not acquired). */
  get fence(): Fence {
    const token = this.#native.fencingToken
    if (token === null) throw kahunaError('LOCK_NOT_HELD', 'the lock was not acquired')
    return { resource: this.resource, token, durability: this.#durability }
  }

  /** Renews the lease now, for `ms` (default: the current TTL). */
  async extend(ms?: number, options?: CallOptions): Promise<void> {
    return invoke(options, (c) => this.#native.extend(ms, c))
  }

  /** The lock as the server sees it now (`null` when nobody holds it). */
  async info(options?: CallOptions): Promise<LockInfo | null> {
    return this.#client.getLockInfo(this.resource, { ...options, durability: this.#durability })
  }

  /** Releases the lock; true if it was still held. Idempotent. */
  async release(options?: CallOptions): Promise<boolean> {
    this.#client._forget(this)
    return invoke(options, (c) => this.#native.release(c))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release()
  }
}

// --- watches ----------------------------------------------------------------------------

/**
 * A watch on a key or a prefix (from {@link KahunaClient.watch}): every change in revision
 * order, exactly once, resumed across member failures by the core client. Read it with
 * `for await (const event of watch)` or {@link KahunaWatch.nextBatch} (one reader at a
 * time). `close()` ends an iteration in progress and rejects a pending `nextBatch()` with
 * {@link ClientClosedError}. A pending `nextBatch` (so a loop over the watch) keeps the
 * process alive, like a socket read: close the watch, use `await using`, or `client.close()`.
 */
export class KahunaWatch implements AsyncIterable<HistoryEvent> {
  readonly key: string
  readonly prefix: boolean
  readonly #native: native.NativeWatch
  readonly #client: KahunaClient

  /** @internal */
  constructor(client: KahunaClient, n: native.NativeWatch, key: string, prefix: boolean) {
    this.#client = client
    this.#native = n
    this.key = key
    this.prefix = prefix
  }

  /** Every change up to and including this revision has been delivered. */
  get revision(): number {
    return this.#native.revision
  }

  get closed(): boolean {
    return this.#native.closed
  }

  /** The next message: changes, or a progress notification while nothing changes. An aborted one loses nothing. */
  async nextBatch(options?: CallOptions): Promise<WatchBatch> {
    const b = await this.#next(options)
    if (b === null) throw new ClientClosedError('CLOSED', `the watch on ${this.key} is closed`)
    return b
  }

  async #next(options?: CallOptions): Promise<WatchBatch | null> {
    const b = await invoke(options, (c) => this.#native.next(c))
    if (b === null) return null
    return { events: b.events.map(historyEvent), revision: b.revision, isProgress: b.events.length === 0 }
  }

  /** The changes one by one (progress notifications skipped); ends when the watch is closed. Leaving the loop leaves the watch open. */
  async *[Symbol.asyncIterator](): AsyncGenerator<HistoryEvent, void, undefined> {
    for (;;) {
      const b = await this.#next()
      if (b === null) return
      yield* b.events
    }
  }

  /** Closes the watch: a pending iteration ends, a pending `nextBatch()` rejects. Idempotent. */
  close(): void {
    this.#client._forgetWatch(this)
    this.#native.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }
}

// --- leader election --------------------------------------------------------------------

/** An election's leader, as observers see it. */
export interface Leader {
  /** The leader's owner name (unique per campaign). */
  owner: string
  /** The leader's epoch: its fencing token, larger for every later leader. */
  epoch: number
  /** What the leader announces. */
  value: Buffer
}

function leaderOf(l: native.NativeLeader | null): Leader | null {
  return l === null ? null : { owner: l.owner, epoch: l.epoch, value: l.value }
}

export interface CampaignOptions extends CallOptions {
  /** The leader's lease (default 10,000 ms), renewed at about a third of it: how long a dead leader holds the election up. */
  ttlMs?: number
  /** How long to wait to be elected (default: until elected or aborted). */
  waitMs?: number
}

/**
 * Being the leader of an election (from {@link KahunaClient.campaign}). It is the
 * election's lock ({@link KahunaLeadership.lock}): renewed in the background, `lost` aborts
 * the moment its lease can no longer be trusted, and `resign()` (or `await using`) steps
 * down so the next candidate is elected at once.
 */
export class KahunaLeadership {
  /** The election's name. */
  readonly name: string
  /** The election's lock, for fenced writes. */
  readonly lock: KahunaLock
  readonly #native: native.NativeLock

  /** @internal */
  constructor(lock: KahunaLock, n: native.NativeLock, name: string) {
    this.lock = lock
    this.#native = n
    this.name = name
  }

  /** This leadership's epoch (its fencing token): larger than every earlier leader's. */
  get epoch(): number {
    return this.lock.fencingToken ?? 0
  }

  /** This candidate's owner name, as observers see it. */
  get owner(): string {
    return this.lock.owner ?? ''
  }

  /** Still the leader by this client's clock. */
  get isLeader(): boolean {
    return this.lock.acquired
  }

  /** Aborts once leadership is lost or resigned (reason: a {@link LockNotHeldError}). */
  get lost(): AbortSignal {
    return this.lock.lost
  }

  /** The fence for writes only this leader may make. */
  get fence(): Fence {
    return this.lock.fence
  }

  /** Announces a new value to observers; rejects with {@link LockNotHeldError} once no longer the leader. */
  async proclaim(value: Value, options?: CallOptions): Promise<void> {
    return invoke(options, (c) => this.#native.proclaim(bytes(value), c))
  }

  /** Steps down so the next candidate is elected at once; true if the server still had this leadership. Idempotent. */
  async resign(options?: CallOptions): Promise<boolean> {
    return this.lock.release(options)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.resign()
  }
}

/**
 * Follows an election's leader (from {@link KahunaClient.observe}): the leader now, then
 * each change (`null`: no leader), resumed across member failures and never going back.
 * Read it with `for await (const leader of observer)` or {@link KahunaElectionObserver.next}
 * (one reader at a time). `close()` ends an iteration in progress and rejects a pending
 * `next()` with {@link ClientClosedError}. A pending `next` keeps the process alive, like a
 * socket read: close the observer, use `await using`, or `client.close()`.
 */
export class KahunaElectionObserver implements AsyncIterable<Leader | null> {
  /** The election's name. */
  readonly name: string
  readonly #native: native.NativeObserver
  readonly #client: KahunaClient

  /** @internal */
  constructor(client: KahunaClient, n: native.NativeObserver, name: string) {
    this.#client = client
    this.#native = n
    this.name = name
  }

  get closed(): boolean {
    return this.#native.closed
  }

  /** The leader now (first call), then after each change; `null` while there is none. An aborted one loses nothing. */
  async next(options?: CallOptions): Promise<Leader | null> {
    const o = await invoke(options, (c) => this.#native.next(c))
    if (o.closed) throw new ClientClosedError('CLOSED', `the observer of ${this.name} is closed`)
    return leaderOf(o.leader ?? null)
  }

  /** The leader now, then each change; ends when the observer is closed. Leaving the loop leaves it open. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Leader | null, void, undefined> {
    for (;;) {
      const o = await this.#native.next()
      if (o.closed) return
      yield leaderOf(o.leader ?? null)
    }
  }

  /** Closes the observer: a pending iteration ends, a pending `next()` rejects. Idempotent. */
  close(): void {
    this.#client._forgetObserver(this)
    this.#native.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }
}

// --- transactions -----------------------------------------------------------------------

/** Comparison operators of transaction compares. */
export type CompareOp = '=' | '!=' | '>' | '<'

/**
 * An etcd-style transaction: `if` every compare holds, run the `then` operations,
 * otherwise the `else` ones; atomic, one revision.
 */
export class Transaction {
  readonly #client: KahunaClient
  readonly #compares: native.NativeCompare[] = []
  readonly #then: native.NativeTxnOp[] = []
  readonly #else: native.NativeTxnOp[] = []
  #fence: native.NativeFence | undefined

  /** @internal */
  constructor(client: KahunaClient) {
    this.#client = client
  }

  ifValue(key: string, value: Value, op: CompareOp = '='): this {
    this.#compares.push({ target: 'value', key, op, value: bytes(value) })
    return this
  }
  ifRevision(key: string, revision: number, op: CompareOp = '='): this {
    this.#compares.push({ target: 'revision', key, op, number: revision })
    return this
  }
  ifCreateRevision(key: string, revision: number, op: CompareOp = '='): this {
    this.#compares.push({ target: 'createRevision', key, op, number: revision })
    return this
  }
  ifVersion(key: string, version: number, op: CompareOp = '='): this {
    this.#compares.push({ target: 'version', key, op, number: version })
    return this
  }
  ifExists(key: string): this {
    this.#compares.push({ target: 'exists', key })
    return this
  }
  ifMissing(key: string): this {
    this.#compares.push({ target: 'missing', key })
    return this
  }
  /** Compares the fencing token of the (persistent) lock on `resource`. */
  ifLockToken(resource: string, token: number, op: CompareOp = '='): this {
    this.#compares.push({ target: 'lockToken', key: resource, op, number: token })
    return this
  }

  thenSet(key: string, value: Value, options?: { expiry?: number }): this {
    this.#then.push({ kind: 'set', key, value: bytes(value), ttlMs: options?.expiry })
    return this
  }
  thenDelete(key: string): this {
    this.#then.push({ kind: 'delete', key })
    return this
  }
  thenGet(key: string): this {
    this.#then.push({ kind: 'get', key })
    return this
  }
  thenExtend(key: string, expiry?: number): this {
    this.#then.push({ kind: 'extend', key, ttlMs: expiry })
    return this
  }
  elseSet(key: string, value: Value, options?: { expiry?: number }): this {
    this.#else.push({ kind: 'set', key, value: bytes(value), ttlMs: options?.expiry })
    return this
  }
  elseDelete(key: string): this {
    this.#else.push({ kind: 'delete', key })
    return this
  }
  elseGet(key: string): this {
    this.#else.push({ kind: 'get', key })
    return this
  }
  elseExtend(key: string, expiry?: number): this {
    this.#else.push({ kind: 'extend', key, ttlMs: expiry })
    return this
  }
  /** Apply only while this lock is held with this token (checked by the server). */
  fence(f: Fencer): this {
    this.#fence = fenceOf(f)
    return this
  }

  /** Commits; `success` says which branch ran, `results` one per operation of it. */
  async commit(options?: CallOptions): Promise<TransactionResult> {
    const n = this.#client._native()
    const r = await invoke(options, (c) => n.txn(this.#compares, this.#then, this.#else, this.#fence, c))
    return {
      success: r.success,
      results: r.results.map((x) => new KeyValueEntry(x.success, x.kv?.key ?? '', x.kv, r.revision)),
      revision: r.revision,
    }
  }
}

export interface TransactionResult {
  /** Whether every compare held (the `then` branch ran). */
  success: boolean
  /** One per operation of the branch that ran (gets carry the value). */
  results: KeyValueEntry[]
  revision: number
}

// --- the client -------------------------------------------------------------------------

/**
 * A client of a Kahuna cluster (kahuna-ts's `KahunaClient`). Cheap to share; every
 * method returns a Promise and takes `{ signal, timeoutMs }`.
 */
export class KahunaClient {
  #native: native.NativeClient | null
  readonly #locks = new Set<KahunaLock>()
  readonly #watches = new Set<KahunaWatch>()
  readonly #observers = new Set<KahunaElectionObserver>()

  constructor(options: KahunaClientOptions) {
    const endpoints = typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints]
    try {
      this.#native = new native.NativeClient(endpoints, {
        timeoutMs: options.defaultOperationTimeoutMs,
        attemptTimeoutMs: options.attemptTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        clientId: options.clientId,
        discoverMembers: options.discoverMembers,
        caPem: pem(options.tls?.ca),
        certPem: pem(options.tls?.cert),
        keyPem: pem(options.tls?.key),
        pins: options.tls?.trustedServerCertificateThumbprints ? [...options.tls.trustedServerCertificateThumbprints] : undefined,
        insecureSkipVerify: options.tls?.rejectUnauthorized === false,
        token: options.token,
      })
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** @internal */
  _native(): native.NativeClient {
    if (this.#native === null) throw new ClientClosedError('CLOSED', 'the client is closed')
    return this.#native
  }

  /** @internal */
  _forget(lock: KahunaLock): void {
    this.#locks.delete(lock)
  }

  /** @internal */
  _forgetWatch(watch: KahunaWatch): void {
    this.#watches.delete(watch)
  }

  /** @internal */
  _forgetObserver(observer: KahunaElectionObserver): void {
    this.#observers.delete(observer)
  }

  async #call<T>(o: CallOptions | undefined, f: (n: native.NativeClient, c: native.CallOptions | undefined) => Promise<T>): Promise<T> {
    const n = this._native()
    return invoke(o, (c) => f(n, c))
  }

  /** This client's id in request ids. */
  get clientId(): string {
    return this._native().clientId
  }

  /** The members this client knows. */
  get endpoints(): string[] {
    return this._native().endpoints
  }

  /** The leader's client address, when known. */
  get leader(): string | null {
    return this._native().leader
  }

  // key/value

  /** Sets `key`; `mode` makes it conditional, `fence` guards it with a lock. */
  async set(key: string, value: Value, options?: SetOptions): Promise<KeyValueEntry> {
    const v = bytes(value)
    const r = await this.#call(options, (n, c) =>
      n.set(
        key,
        v,
        options === undefined
          ? undefined
          : {
              ttlMs: options.expiry,
              mode: options.mode,
              durability: options.durability,
              fence: fenceOf(options.fence),
            },
        c,
      ),
    )
    return entry(key, r)
  }

  /** The key (`success === false` when missing). */
  async get(key: string, options?: GetOptions): Promise<KeyValueEntry> {
    const kv = await this.#call(options, (n, c) =>
      n.get(
        key,
        options === undefined
          ? undefined
          : { revision: options.revision, consistency: options.consistency, durability: options.durability },
        c,
      ),
    )
    return new KeyValueEntry(kv !== null, key, kv, kv?.revision ?? 0)
  }

  /** The key as of `revision` (within the retention window). */
  async getRevision(key: string, revision: number, options?: ReadOptions): Promise<KeyValueEntry> {
    return this.get(key, { ...options, revision })
  }

  /** Whether `key` exists (`revision` is its revision when it does). */
  async exists(key: string, options?: ReadOptions): Promise<KeyValueEntry> {
    const rev = await this.#call(options, (n, c) => n.exists(key, options?.consistency, options?.durability, c))
    return new KeyValueEntry(
      rev !== null,
      key,
      rev === null ? null : { key, value: Buffer.alloc(0), revision: rev, createRevision: 0, version: 0 },
      rev ?? 0,
    )
  }

  /** Sets the key's TTL anew, `expiry` ms from now (`null`: no expiry). */
  async extend(key: string, expiry: number | null, options?: ReadOptions): Promise<KeyValueEntry> {
    const r = await this.#call(options, (n, c) => n.extend(key, expiry ?? undefined, options?.durability, c))
    return entry(key, r)
  }

  /** Deletes `key`, optionally only if its value or revision matches. */
  async delete(key: string, options?: DeleteOptions): Promise<DeleteEntry> {
    const r = await this.#call(options, (n, c) =>
      n.delete(
        key,
        options === undefined
          ? undefined
          : {
              ifValue: options.ifValue === undefined ? undefined : bytes(options.ifValue),
              ifRevision: options.ifRevision,
              durability: options.durability,
              fence: fenceOf(options.fence),
            },
        c,
      ),
    )
    return new DeleteEntry(key, r)
  }

  /** Sets `key` to `value` only if its current value is `compareValue`. */
  async compareValueAndSet(key: string, value: Value, compareValue: Value, options?: CompareSetOptions): Promise<KeyValueEntry> {
    const v = bytes(value)
    const cmp = bytes(compareValue)
    const r = await this.#call(options, (n, c) =>
      n.set(
        key,
        v,
        {
          ttlMs: options?.expiry,
          ifValue: cmp,
          durability: options?.durability,
          fence: fenceOf(options?.fence),
        },
        c,
      ),
    )
    return entry(key, r)
  }

  /** Sets `key` to `value` only if its revision is `compareRevision` (0: only if missing). */
  async compareRevisionAndSet(
    key: string,
    value: Value,
    compareRevision: number,
    options?: CompareSetOptions,
  ): Promise<KeyValueEntry> {
    const v = bytes(value)
    const r = await this.#call(options, (n, c) =>
      n.set(
        key,
        v,
        {
          ttlMs: options?.expiry,
          ifRevision: compareRevision,
          durability: options?.durability,
          fence: fenceOf(options?.fence),
        },
        c,
      ),
    )
    return entry(key, r)
  }

  /** One page of keys under `prefix`. */
  async scanPage(prefix: string, options?: ScanPageOptions): Promise<ScanPage> {
    const p = await this.#call(options, (n, c) => n.scan(prefix, nativeScanOptions(options), c))
    return pageOf(p, options?.keysOnly)
  }

  /** Every key under `prefix`, page by page: `for await (const e of client.scan('jobs/'))`. */
  async *scan(prefix: string, options?: ScanOptions): AsyncGenerator<KeyValueEntry, void, undefined> {
    let pageToken: Uint8Array | undefined
    for (;;) {
      const page = await this.scanPage(prefix, { ...options, pageToken })
      yield* page.items
      if (page.nextPageToken === null || page.nextPageToken.length === 0) return
      pageToken = page.nextPageToken
    }
  }

  /** Every key under `prefix`, all pages collected. */
  async scanAllByPrefix(prefix: string, options?: ScanOptions): Promise<KeyValueEntry[]> {
    const all: KeyValueEntry[] = []
    for await (const e of this.scan(prefix, options)) all.push(e)
    return all
  }

  /** Every key of a bucket: the keys under `bucket/` (Kahuna has no separate buckets). */
  async getByBucket(bucket: string, options?: ScanOptions): Promise<KeyValueEntry[]> {
    return this.scanAllByPrefix(bucket.endsWith('/') ? bucket : `${bucket}/`, options)
  }

  // batches and ranges

  /**
   * Reads `keys` (1 to 1,000) together, at one revision: one entry per key asked, in that
   * order; a missing key's entry has `success === false`. Every entry's `storeRevision` is
   * the revision all were read at.
   */
  async getMany(keys: readonly string[], options?: ReadOptions): Promise<KeyValueEntry[]> {
    const m = await this.#call(options, (n, c) => n.getMany([...keys], options?.consistency, options?.durability, c))
    const found = new Map<string, native.NativeKv>()
    for (const kv of m.items) found.set(kv.key, kv)
    return keys.map((key) => {
      const kv = found.get(key)
      return new KeyValueEntry(kv !== undefined, key, kv, m.revision)
    })
  }

  /**
   * Writes every item atomically (persistent keys; 1 to 128 items, 2 MiB in all): all or
   * none, every key at the same revision, which it returns. A retry is applied once.
   */
  async setMany(items: readonly SetManyItem[], options?: CallOptions): Promise<number> {
    const batch = items.map((i) => ({ key: i.key, value: bytes(i.value) }))
    return this.#call(options, (n, c) => n.setMany(batch, c))
  }

  /** Deletes `keys` atomically at one revision (persistent keys; 1 to 128); resolves with how many existed. */
  async deleteMany(keys: readonly string[], options?: CallOptions): Promise<number> {
    return this.#call(options, (n, c) => n.deleteMany([...keys], c))
  }

  /**
   * One page of the keys in `[startKey, endKey)`, in byte order (an empty `endKey`: to the
   * last key); pass `nextPageToken` as `pageToken` for the next page.
   */
  async getByRange(startKey: string, endKey: string, options?: ScanPageOptions): Promise<ScanPage> {
    const p = await this.#call(options, (n, c) => n.scanRange(startKey, endKey, nativeScanOptions(options), c))
    return pageOf(p, options?.keysOnly)
  }

  /**
   * Every key in `[startKey, endKey)` (an empty `endKey`: to the last key), page by page:
   * `for await (const e of client.scanByRange('a', 'b'))`. Each page is a separate read.
   */
  async *scanByRange(startKey: string, endKey: string, options?: ScanOptions): AsyncGenerator<KeyValueEntry, void, undefined> {
    let pageToken: Uint8Array | undefined
    for (;;) {
      const page = await this.getByRange(startKey, endKey, { ...options, pageToken })
      yield* page.items
      if (page.nextPageToken === null || page.nextPageToken.length === 0) return
      pageToken = page.nextPageToken
    }
  }

  /** The retained changes of `key`, oldest first (at most `limit`; default the server's). */
  async history(key: string, options?: CallOptions & { limit?: number }): Promise<History> {
    const h = await this.#call(options, (n, c) => n.history(key, options?.limit, c))
    return {
      events: h.events.map(historyEvent),
      retainedFromRevision: h.retainedFromRevision,
      storeRevision: h.revision,
    }
  }

  /**
   * Opens a watch on `key` (with `prefix`, on every key starting with it); resolves once the
   * server has it in place, so every change committed after that is delivered.
   */
  async watch(key: string, options?: WatchOptions): Promise<KahunaWatch> {
    const n = await this.#call(options, (n, c) =>
      n.watch(
        key,
        options === undefined
          ? undefined
          : { prefix: options.prefix, startRevision: options.startRevision, progressIntervalMs: options.progressIntervalMs },
        c,
      ),
    )
    const watch = new KahunaWatch(this, n, key, options?.prefix ?? false)
    this.#watches.add(watch)
    return watch
  }

  /**
   * Campaigns in election `name` announcing `value`: waits in the election's queue
   * (candidates are elected in the order they campaigned) and resolves once elected, or
   * with `null` when `waitMs` passed first. Aborting (`signal`) withdraws the candidacy.
   * The election is the persistent lock `name`; `client.close()` resigns.
   */
  async campaign(name: string, value: Value, options?: CampaignOptions): Promise<KahunaLeadership | null> {
    const n = await this.#call(options, (n, c) =>
      n.campaign(name, bytes(value), options === undefined ? undefined : { ttlMs: options.ttlMs, waitMs: options.waitMs }, c),
    )
    if (n === null) return null
    const lock = new KahunaLock(this, n, 'persistent')
    this.#locks.add(lock)
    return new KahunaLeadership(lock, n, name)
  }

  /** The leader of election `name` now (a linearizable read), or `null`. */
  async electionLeader(name: string, options?: CallOptions): Promise<Leader | null> {
    return leaderOf(await this.#call(options, (n, c) => n.electionLeader(name, c)))
  }

  /** Follows the leader of election `name`: the first item is the leader now, each later one the next change. */
  async observe(name: string, options?: CallOptions): Promise<KahunaElectionObserver> {
    const n = await this.#call(options, (n, c) => n.observe(name, c))
    const observer = new KahunaElectionObserver(this, n, name)
    this.#observers.add(observer)
    return observer
  }

  /** A new transaction: `client.transaction().ifValue(k, v).thenSet(k, w).elseGet(k).commit()`. */
  transaction(): Transaction {
    this._native()
    return new Transaction(this)
  }

  // rate limiters

  /**
   * Takes `cost` units (default 1) from the server-side limiter `name`, counting by
   * `policy`, if it has them: one round trip, atomic across every client. Not allowed is
   * an answer (`allowed === false`, `retryAfterMs`), not an error. Every client naming
   * `name` must pass the same policy: a changed policy starts the limiter afresh.
   *
   * ```ts
   * const d = await client.checkRateLimit('api/customer-42', { kind: 'slidingWindow', limit: 100, windowMs: 60_000 })
   * if (!d.allowed) return reply(429, { retryAfterMs: d.retryAfterMs })
   * ```
   */
  async checkRateLimit(name: string, policy: RatePolicy, options?: RateLimitOptions): Promise<RateLimitDecision> {
    const p = nativePolicy(policy)
    return this.#call(options, (n, c) => n.checkRate(name, p, options?.cost, options?.durability, c))
  }

  // sequences

  /** Reserves `count` identifiers of sequence `name`: `[first, first + count)`. */
  async reserveSequenceRange(name: string, count: number, options?: SequenceOptions): Promise<SequenceRange> {
    return this.#call(options, (n, c) => n.next(name, count, options?.idempotencyKey, c))
  }

  /** The next identifier of sequence `name`. */
  async nextSequenceValue(name: string, options?: SequenceOptions): Promise<number> {
    return (await this.reserveSequenceRange(name, 1, options)).first
  }

  /** The identifier sequence `name` would hand out next, without reserving it. */
  async peekSequence(name: string, options?: CallOptions): Promise<number> {
    return this.#call(options, (n, c) => n.peekSequence(name, c))
  }

  // locks

  /**
   * Tries to take the lock on `resource` (waiting up to `wait` ms). Someone else holding
   * it is not an error: `lock.acquired` is false and `lock.holder` names them.
   */
  async acquireLock(resource: string, options?: LockOptions): Promise<KahunaLock> {
    const n = await this.#call(options, (n, c) => n.lock(resource, nativeLockOptions(options), c))
    return this.#held(n, options?.durability ?? 'persistent')
  }

  /**
   * Tries to take one of the `permits` permits of the semaphore `name` (waiting up to
   * `wait` ms): up to `permits` holders at once, waiters granted in the order they asked
   * as permits free up. The permit is a {@link KahunaLock}: its own lease renewed in the
   * background, its own fencing token (unique, increasing; fences writes exactly like a
   * lock's), `lost`, `release()`, `await using`. All permits taken are full is not an
   * error: `acquired` is false and `holder` shows `permits` and `holders`.
   *
   * Semaphores are persistent. Everyone must ask with the same `permits` while anyone
   * holds or waits for `name`; another number, a semaphore asked as a lock or a lock
   * asked as a semaphore is an {@link InvalidArgumentError}. `permits` is 1 to 10,000;
   * 1 is the plain lock `name`.
   *
   * ```ts
   * await using permit = await client.acquirePermit('gpu-pool', 4, { expiry: 10_000, wait: 60_000 })
   * if (permit.acquired) await client.set('gpu-pool/out', 'done', { fence: permit })
   * ```
   */
  async acquirePermit(name: string, permits: number, options?: LockOptions): Promise<KahunaLock> {
    const n = await this.#call(options, (n, c) => n.acquirePermit(name, permits, nativeLockOptions(options), c))
    return this.#held(n, options?.durability ?? 'persistent')
  }

  #held(n: native.NativeLock, durability: Durability): KahunaLock {
    const lock = new KahunaLock(this, n, durability)
    if (lock.fencingToken !== null) this.#locks.add(lock)
    return lock
  }

  /**
   * Runs `fn(lock)` while holding the lock on `resource` and releases it after, however
   * `fn` ends. Rejects with {@link LockNotAcquiredError} when the lock is not acquired
   * within `wait`. Pass `lock.lost` to the work so it stops if the lease is lost.
   */
  async withLock<T>(resource: string, options: LockOptions, fn: (lock: KahunaLock) => Promise<T> | T): Promise<T> {
    const lock = await this.acquireLock(resource, options)
    return holding(lock, fn, (who) => `lock ${resource} is held${who ? ` by ${who.owner}` : ''}`)
  }

  /**
   * Runs `fn(permit)` while holding one of the `permits` permits of the semaphore `name`
   * and releases it after, however `fn` ends. Rejects with {@link LockNotAcquiredError}
   * when no permit is granted within `wait`. Pass `permit.lost` to the work so it stops
   * if the lease is lost.
   */
  async withPermit<T>(
    name: string,
    permits: number,
    options: LockOptions,
    fn: (permit: KahunaLock) => Promise<T> | T,
  ): Promise<T> {
    const permit = await this.acquirePermit(name, permits, options)
    return holding(permit, fn, () => `all ${permits} permits of semaphore ${name} are held`)
  }

  /** The lock on `resource` as the server sees it (`null` when free). */
  async getLockInfo(resource: string, options?: CallOptions & { durability?: Durability }): Promise<LockInfo | null> {
    const i = await this.#call(options, (n, c) => n.lockInfo(resource, options?.durability, c))
    return i === null ? null : lockInfo(i)
  }

  /** Releases `resource` held by `owner` (from any process); true if it was. */
  async unlock(resource: string, owner: string, options?: CallOptions & { durability?: Durability }): Promise<boolean> {
    return this.#call(options, (n, c) => n.unlock(resource, owner, options?.durability, c))
  }

  // cluster

  async getClusterStatus(options?: CallOptions): Promise<ClusterStatus> {
    return this.#call(options, (n, c) => n.status(c))
  }
  async getMembers(options?: CallOptions): Promise<Member[]> {
    return this.#call(options, (n, c) => n.members(c))
  }
  async addLearner(id: number, peerAddr: string, options?: CallOptions): Promise<Member[]> {
    return this.#call(options, (n, c) => n.addLearner(id, peerAddr, c))
  }
  async promoteMember(id: number, options?: CallOptions): Promise<Member[]> {
    return this.#call(options, (n, c) => n.promote(id, c))
  }
  async removeMember(id: number, options?: CallOptions): Promise<Member[]> {
    return this.#call(options, (n, c) => n.removeMember(id, c))
  }
  /** Sets the voters to exactly `voters`; `retain` keeps removed voters as learners. */
  async changeMembership(voters: readonly number[], retain = false, options?: CallOptions): Promise<Member[]> {
    return this.#call(options, (n, c) => n.changeMembership([...voters], retain, c))
  }
  async triggerSnapshot(options?: CallOptions): Promise<void> {
    return this.#call(options, (n, c) => n.triggerSnapshot(c))
  }

  /**
   * Releases the locks this client still holds (resigning its leaderships), closes its
   * watches and observers and closes it; later
   * calls reject with {@link ClientClosedError}. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#native === null) return
    for (const w of [...this.#watches]) w.close()
    for (const o of [...this.#observers]) o.close()
    const locks = [...this.#locks]
    this.#locks.clear()
    await Promise.allSettled(locks.map((l) => l.release()))
    this.#native = null
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * Test and diagnostics hooks (not part of the stable API).
 * @internal
 */
export const _diagnostics = {
  /** Native calls whose work is still alive. */
  inFlight: (): number => native.inFlight(),
  /** Cancellation tokens not yet freed. */
  cancelTokens: (): number => native.cancelTokens(),
  /** `n` sequential gets by the Rust core alone, µs per call. */
  benchRustGets: (client: KahunaClient, key: string, n: number, stale = false): Promise<number> =>
    client._native().benchSequentialGets(key, n, stale),
  /** An async native call that does no work (the crossing alone). */
  ping: (): Promise<void> => native.ping(),
  /** µs per round trip of wake-ups between two sleeping threads: the machine's floor. */
  benchThreadWake: (n: number): number => native.benchThreadWake(n),
}

export { KahunaError }
