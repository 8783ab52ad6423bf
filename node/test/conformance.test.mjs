// The language-neutral conformance scenarios (tests/conformance/README.md is the spec)
// run through the package's public API against the 3-node cluster: one test per
// scenario file found at run time, and one that fails when there is none. An unknown
// operation, argument, result field or error kind fails the scenario (never a skip),
// so a scenario written for a newer runner cannot pass here by being ignored.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { ERROR_CLASSES, KahunaError, client, repo } from './helpers.mjs'

// KAHUNA_CONFORMANCE_SCENARIOS points the runner at another directory (to try the runner itself).
const dir = process.env.KAHUNA_CONFORMANCE_SCENARIOS || join(repo, 'tests', 'conformance', 'scenarios')
// A missing directory is no scenario found: the test below fails and says so.
const files = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
  : []

// The catalogue's kinds, read from the proto itself: an expected kind that is not in it
// is a mistake in the scenario, one that the package has no class for a gap in the SDK.
const CATALOGUE = new Set(
  [...readFileSync(join(repo, 'proto', 'kahuna', 'v1', 'common.proto'), 'utf8').matchAll(/\bERROR_KIND_([A-Z0-9_]+)\s*=/g)]
    .map((m) => m[1])
    .filter((k) => k !== 'OK'),
)

// This run's part of every scenario's {p}: runs share the cluster and never clean up.
const run = `conf/node/${process.pid}-${randomBytes(4).toString('hex')}`

test('the conformance scenario directory holds scenarios', () => {
  assert.ok(files.length > 0, `no *.json scenario in ${dir}`)
})

for (const file of files) {
  const scenario = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  const name = typeof scenario.name === 'string' && scenario.name !== '' ? scenario.name : file
  test(`conformance: ${name} (${file})`, async () => {
    await runScenario(scenario, name, file)
  })
}

/** A step that did not go as the scenario says: names the scenario, step and op. */
class StepFailure extends Error {}

async function runScenario(scenario, name, file) {
  for (const k of Object.keys(scenario)) {
    if (!['name', 'description', 'steps'].includes(k)) throw new StepFailure(`${file}: unknown top-level key "${k}"`)
  }
  if (!Array.isArray(scenario.steps) || scenario.steps.length === 0) throw new StepFailure(`${file}: no steps`)
  const ctx = { prefix: `${run}/${name}`, vars: new Map(), handles: new Map(), client: client() }
  try {
    for (const [i, step] of scenario.steps.entries()) {
      const where = `scenario ${name} (${file}) step ${i} (${step?.op ?? '?'})`
      try {
        await runStep(ctx, step)
      } catch (e) {
        if (e instanceof StepFailure) throw new StepFailure(`${where}: ${e.message}`)
        throw e
      }
    }
  } finally {
    // Releases every lock a failed scenario left held (close releases the client's locks).
    await ctx.client.close()
  }
}

// --- arguments --------------------------------------------------------------------------

/** Each op's argument keys (besides op, expect, save) and result fields. */
const OPS = {
  set: { args: ['key', 'value', 'ttl_ms', 'durability', 'condition', 'fence'], results: ['succeeded', 'revision', 'version'] },
  get: { args: ['key', 'durability'], results: ['found', 'value', 'version', 'revision', 'create_revision'] },
  delete: { args: ['key', 'durability', 'condition'], results: ['deleted'] },
  exists: { args: ['key', 'durability'], results: ['exists'] },
  extend: { args: ['key', 'ttl_ms', 'durability'], results: ['extended'] },
  scan: { args: ['prefix', 'limit'], results: ['keys', 'values'] },
  history: { args: ['key'], results: ['values'] },
  txn: { args: ['compare', 'then', 'else'], results: ['succeeded', 'gets'] },
  lock: { args: ['name', 'ttl_ms', 'durability', 'as'], results: ['acquired', 'token'] },
  extend_lock: { args: ['handle', 'ttl_ms'], results: [] },
  unlock: { args: ['handle'], results: [] },
  lock_info: { args: ['name', 'durability'], results: ['held', 'token'] },
  seq_next: { args: ['name', 'count', 'idempotency_key'], results: ['first', 'count'] },
  seq_peek: { args: ['name'], results: ['next'] },
  sleep: { args: ['ms'], results: [] },
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

function onlyKeys(obj, allowed, what) {
  if (!isObject(obj)) throw new StepFailure(`${what} must be an object, got ${JSON.stringify(obj)}`)
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new StepFailure(`unknown ${what} key "${k}" (known: ${allowed.join(', ')})`)
  }
}

/** Replaces {p} in strings, "${var}" whole strings by the variable's value and {repeat, times} by the string. */
function resolve(ctx, v) {
  if (typeof v === 'string') {
    const whole = /^\$\{([A-Za-z0-9_-]+)\}$/.exec(v)
    if (whole !== null) {
      if (!ctx.vars.has(whole[1])) throw new StepFailure(`variable \${${whole[1]}} was never saved`)
      return ctx.vars.get(whole[1])
    }
    return v.replaceAll('{p}', ctx.prefix)
  }
  if (Array.isArray(v)) return v.map((x) => resolve(ctx, x))
  if (isObject(v)) {
    const keys = Object.keys(v)
    if (keys.length === 2 && 'repeat' in v && 'times' in v) {
      const s = resolve(ctx, v.repeat)
      if (typeof s !== 'string' || !Number.isInteger(v.times) || v.times < 0) {
        throw new StepFailure(`bad repeat ${JSON.stringify(v)}`)
      }
      return s.repeat(v.times)
    }
    return Object.fromEntries(keys.map((k) => [k, resolve(ctx, v[k])]))
  }
  return v
}

function str(args, k, required = true) {
  const v = args[k]
  if (v === undefined && !required) return undefined
  if (typeof v !== 'string') throw new StepFailure(`argument ${k} must be a string, got ${JSON.stringify(v)}`)
  return v
}

function int(args, k, required = false) {
  const v = args[k]
  if (v === undefined && !required) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new StepFailure(`argument ${k} must be an integer, got ${JSON.stringify(v)}`)
  return v
}

/** ttl_ms: 0 or absent means none. */
function ttl(args) {
  const t = int(args, 'ttl_ms')
  return t === undefined || t === 0 ? undefined : t
}

function durability(args) {
  const d = args.durability
  if (d === undefined) return undefined
  if (d !== 'persistent' && d !== 'ephemeral') throw new StepFailure(`durability must be "persistent" or "ephemeral", got ${JSON.stringify(d)}`)
  return d
}

function exactlyOne(obj, allowed, what) {
  onlyKeys(obj, allowed, what)
  const keys = Object.keys(obj)
  if (keys.length !== 1) throw new StepFailure(`${what} must have exactly one of ${allowed.join(', ')}, got ${JSON.stringify(obj)}`)
  return keys[0]
}

// --- operations -------------------------------------------------------------------------

/** The value of a found entry as text (values are UTF-8 text in the scenarios). */
const text = (e) => (e.success ? e.valueAsString() : null)

const OP_IMPL = {
  async set(c, a) {
    const key = str(a, 'key')
    const value = str(a, 'value')
    const options = { expiry: ttl(a), durability: durability(a) }
    if (a.fence !== undefined) {
      onlyKeys(a.fence, ['name', 'token'], 'fence')
      options.fence = { resource: str(a.fence, 'name'), token: int(a.fence, 'token', true) }
    }
    let e
    if (a.condition === undefined) {
      e = await c.set(key, value, options)
    } else {
      const kind = exactlyOne(a.condition, ['not_exists', 'exists', 'value', 'revision'], 'condition')
      if (kind === 'not_exists' || kind === 'exists') {
        if (a.condition[kind] !== true) throw new StepFailure(`condition ${kind} must be true`)
        e = await c.set(key, value, { ...options, mode: kind === 'exists' ? 'ifExists' : 'ifNotExists' })
      } else if (kind === 'value') {
        e = await c.compareValueAndSet(key, value, str(a.condition, 'value'), options)
      } else {
        e = await c.compareRevisionAndSet(key, value, int(a.condition, 'revision', true), options)
      }
    }
    return e.success ? { succeeded: true, revision: e.revision, version: e.version } : { succeeded: false }
  },

  async get(c, a) {
    const e = await c.get(str(a, 'key'), { durability: durability(a) })
    if (!e.success) return { found: false }
    return { found: true, value: text(e), version: e.version, revision: e.revision, create_revision: e.createRevision }
  },

  async delete(c, a) {
    const options = { durability: durability(a) }
    if (a.condition !== undefined) {
      const kind = exactlyOne(a.condition, ['value', 'revision'], 'delete condition')
      if (kind === 'value') options.ifValue = str(a.condition, 'value')
      else options.ifRevision = int(a.condition, 'revision', true)
    }
    const e = await c.delete(str(a, 'key'), options)
    return { deleted: e.deleted }
  },

  async exists(c, a) {
    return { exists: (await c.exists(str(a, 'key'), { durability: durability(a) })).success }
  },

  async extend(c, a) {
    const e = await c.extend(str(a, 'key'), ttl(a) ?? null, { durability: durability(a) })
    return { extended: e.success }
  },

  async scan(c, a) {
    const limit = int(a, 'limit')
    // client.scan reads every page (pageSize is the page's size).
    const keys = []
    const values = []
    for await (const e of c.scan(str(a, 'prefix'), { pageSize: limit === 0 ? undefined : limit })) {
      keys.push(e.key)
      values.push(e.valueAsString())
    }
    return { keys, values }
  },

  async history(c, a) {
    const h = await c.history(str(a, 'key'))
    return { values: h.events.filter((e) => e.kind === 'put').map((e) => e.entry.valueAsString()) }
  },

  async txn(c, a) {
    const t = c.transaction()
    for (const cmp of a.compare ?? []) {
      const target = exactlyOne(
        Object.fromEntries(Object.entries(cmp ?? {}).filter(([k]) => k !== 'key')),
        ['value', 'version', 'revision'],
        'compare',
      )
      const key = str(cmp, 'key')
      if (target === 'value') t.ifValue(key, str(cmp, 'value'))
      else if (target === 'version') t.ifVersion(key, int(cmp, 'version', true))
      else t.ifRevision(key, int(cmp, 'revision', true))
    }
    const branch = (ops, what, add) => {
      if (!Array.isArray(ops)) throw new StepFailure(`${what} must be a list, got ${JSON.stringify(ops)}`)
      return ops.map((op) => {
        const kind = exactlyOne(op, ['set', 'delete', 'get'], `${what} operation`)
        onlyKeys(op[kind], kind === 'set' ? ['key', 'value'] : ['key'], `${what} ${kind}`)
        add[kind](str(op[kind], 'key'), kind === 'set' ? str(op[kind], 'value') : undefined)
        return kind
      })
    }
    const thenKinds = branch(a.then ?? [], 'then', {
      set: (k, v) => t.thenSet(k, v),
      delete: (k) => t.thenDelete(k),
      get: (k) => t.thenGet(k),
    })
    const elseKinds = branch(a.else ?? [], 'else', {
      set: (k, v) => t.elseSet(k, v),
      delete: (k) => t.elseDelete(k),
      get: (k) => t.elseGet(k),
    })
    const r = await t.commit()
    const kinds = r.success ? thenKinds : elseKinds
    if (r.results.length !== kinds.length) {
      throw new StepFailure(`the transaction answered ${r.results.length} results for a branch of ${kinds.length} operations`)
    }
    return { succeeded: r.success, gets: r.results.filter((_, i) => kinds[i] === 'get').map(text) }
  },

  async lock(c, a, ctx) {
    const as = str(a, 'as', false)
    if (as !== undefined && ctx.handles.has(as)) throw new StepFailure(`handle "${as}" is already in use`)
    // One attempt (wait 0), each a new owner: the package's default owner is unique per handle.
    const lock = await c.acquireLock(str(a, 'name'), { expiry: ttl(a), wait: 0, durability: durability(a) })
    if (as !== undefined) ctx.handles.set(as, lock)
    return lock.acquired ? { acquired: true, token: lock.fencingToken } : { acquired: false }
  },

  async extend_lock(c, a, ctx) {
    await handle(ctx, a).extend(ttl(a))
    return {}
  },

  async unlock(c, a, ctx) {
    await handle(ctx, a).release()
    return {}
  },

  async lock_info(c, a) {
    const i = await c.getLockInfo(str(a, 'name'), { durability: durability(a) })
    return i === null ? { held: false } : { held: true, token: i.fencingToken }
  },

  async seq_next(c, a) {
    const r = await c.reserveSequenceRange(str(a, 'name'), int(a, 'count', true), {
      idempotencyKey: str(a, 'idempotency_key', false),
    })
    return { first: r.first, count: r.count }
  },

  async seq_peek(c, a) {
    return { next: await c.peekSequence(str(a, 'name')) }
  },

  async sleep(c, a) {
    const ms = int(a, 'ms', true)
    await new Promise((r) => setTimeout(r, ms))
    return {}
  },
}

function handle(ctx, a) {
  const h = str(a, 'handle')
  const lock = ctx.handles.get(h)
  if (lock === undefined) throw new StepFailure(`no lock step saved a handle "${h}"`)
  return lock
}

// --- a step -----------------------------------------------------------------------------

async function runStep(ctx, step) {
  if (!isObject(step)) throw new StepFailure(`a step must be an object, got ${JSON.stringify(step)}`)
  const spec = Object.hasOwn(OPS, step.op) ? OPS[step.op] : undefined
  if (spec === undefined) throw new StepFailure(`unknown op ${JSON.stringify(step.op)}`)
  const args = {}
  for (const [k, v] of Object.entries(step)) {
    if (k === 'op' || k === 'expect' || k === 'save') continue
    if (!spec.args.includes(k)) throw new StepFailure(`unknown argument "${k}" (${step.op} takes ${spec.args.join(', ')})`)
    args[k] = resolve(ctx, v)
  }
  const save = step.save ?? {}
  if (!isObject(save)) throw new StepFailure(`save must be an object, got ${JSON.stringify(save)}`)
  for (const [v, field] of Object.entries(save)) {
    if (!spec.results.includes(field)) throw new StepFailure(`save ${v}: ${step.op} has no result field "${field}"`)
  }
  const expect = step.expect === undefined ? undefined : resolve(ctx, step.expect)
  if (expect !== undefined && !isObject(expect)) throw new StepFailure(`expect must be an object, got ${JSON.stringify(expect)}`)
  const wantError = expect !== undefined && 'error' in expect
  if (wantError) {
    onlyKeys(expect, ['error'], 'expect (with error)')
    if (!CATALOGUE.has(expect.error)) throw new StepFailure(`expected error kind ${JSON.stringify(expect.error)} is not in the catalogue`)
    if (!Object.hasOwn(ERROR_CLASSES, expect.error)) throw new StepFailure(`the package has no error class for catalogue kind ${expect.error}`)
  } else if (expect !== undefined) {
    for (const k of Object.keys(expect)) {
      if (!spec.results.includes(k)) throw new StepFailure(`${step.op} has no result field "${k}" (it has ${spec.results.join(', ') || 'none'})`)
    }
  }

  let result
  try {
    result = await OP_IMPL[step.op](ctx.client, args, ctx)
  } catch (e) {
    if (e instanceof StepFailure) throw e
    // Anything but the package's typed errors is a defect, whatever the step expects.
    if (!(e instanceof KahunaError)) throw new StepFailure(`threw ${e?.constructor?.name ?? typeof e} (not a KahunaError): ${e?.stack ?? e}`)
    if (!wantError) throw new StepFailure(`expected success, got ${e.constructor.name} ${e.code}: ${e.message}`)
    // The kind as the package types it: the class its one code table maps the kind to, and that code.
    const cls = ERROR_CLASSES[expect.error]
    if (e.code !== expect.error || !(e instanceof cls)) {
      throw new StepFailure(`expected error ${expect.error} (${cls.name}), got ${e.constructor.name} ${e.code}: ${e.message}`)
    }
    return
  }
  if (wantError) throw new StepFailure(`expected error ${expect.error}, got success ${JSON.stringify(result)}`)
  for (const [k, want] of Object.entries(expect ?? {})) {
    const problem = mismatch(want, result[k])
    if (problem !== null) {
      throw new StepFailure(`result field ${k}: expected ${JSON.stringify(want)}, got ${JSON.stringify(result[k])}${problem ? ` (${problem})` : ''}; whole result ${JSON.stringify(result)}`)
    }
  }
  for (const [v, field] of Object.entries(save)) {
    if (result[field] === undefined || result[field] === null) throw new StepFailure(`save ${v}: the result has no ${field}: ${JSON.stringify(result)}`)
    ctx.vars.set(v, result[field])
  }
}

/** null when `actual` is as `want` says, else why not ('' when plain inequality). */
function mismatch(want, actual) {
  if (want === null) return actual === undefined || actual === null ? null : 'expected absent'
  if (actual === undefined) return 'absent'
  if (isObject(want)) {
    const keys = Object.keys(want)
    if (keys.length !== 1 || !['gt', 'gte'].includes(keys[0]) || typeof want[keys[0]] !== 'number') {
      throw new StepFailure(`unknown expectation ${JSON.stringify(want)} (a number, or {"gt": N} / {"gte": N})`)
    }
    if (typeof actual !== 'number') return 'not a number'
    return (keys[0] === 'gt' ? actual > want.gt : actual >= want.gte) ? null : ''
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(actual)) return 'not a list'
    if (want.length !== actual.length) return `${actual.length} items, expected ${want.length}`
    for (const [i, w] of want.entries()) {
      const p = mismatch(w, actual[i])
      if (p !== null) return `item ${i}${p ? `: ${p}` : ''}`
    }
    return null
  }
  return want === actual ? null : ''
}
