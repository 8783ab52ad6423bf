// TLS and bearer tokens: https:// endpoints, each way of trusting a server, roles.
// A second 3-node cluster with TLS on both ports and tokens (cluster.sh with KAHUNA_TLS=1 KAHUNA_AUTH=1).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  KahunaClient,
  ConfigError,
  PermissionDeniedError,
  TimeoutError,
  UnauthenticatedError,
  UnavailableError,
  unique,
} from './helpers.mjs'

const script = process.env.KAHUNA_CLUSTER_SCRIPT
const dir = mkdtempSync(join(tmpdir(), 'kahuna-node-tls-'))
let endpoints = []
const file = (...p) => readFileSync(join(dir, ...p), 'utf8').trim()

before(() => {
  endpoints = execFileSync('bash', [script, dir, 'up'], { env: { ...process.env, KAHUNA_TLS: '1', KAHUNA_AUTH: '1' }, timeout: 90_000 })
    .toString()
    .trim()
    .split(',')
})
after(() => {
  execFileSync('bash', [script, dir, 'down'], { timeout: 30_000 })
  rmSync(dir, { recursive: true, force: true })
})

test('the seed example over https:// with a private CA and a token', async () => {
  assert.ok(endpoints.every((e) => e.startsWith('https://localhost:')))
  const c = new KahunaClient({ endpoints, tls: { ca: file('pki', 'ca.pem') }, token: file('token') })
  const r = unique('tls-lock')
  const lock = await c.acquireLock(r, { expiry: 30_000, wait: 5_000, retry: 200 })
  assert.equal(lock.acquired, true)
  assert.ok(lock.fencingToken > 0)
  assert.equal((await c.set(r + '/state', 'done')).success, true)
  assert.equal((await c.get(r + '/state')).valueAsString(), 'done')
  await lock.release()
  await c.close()
})

test('a pinned certificate is trusted, a wrong pin is not', async () => {
  const token = file('token')
  const pinned = new KahunaClient({ endpoints, tls: { trustedServerCertificateThumbprints: [file('pki', 'server.sha256')] }, token })
  assert.ok((await pinned.getClusterStatus()).leaderId > 0)
  await pinned.close()
  const wrong = new KahunaClient({
    endpoints,
    tls: { trustedServerCertificateThumbprints: ['00'.repeat(32)] },
    token,
    defaultOperationTimeoutMs: 2_000,
    discoverMembers: false,
  })
  await assert.rejects(wrong.get(unique('k')), (e) => e instanceof UnavailableError || e instanceof TimeoutError)
  await wrong.close()
})

test('a client certificate is presented', async () => {
  const c = new KahunaClient({
    endpoints,
    tls: { ca: file('pki', 'ca.pem'), cert: readFileSync(join(dir, 'pki', 'client.pem')), key: file('pki', 'client-key.pem') },
    token: file('token'),
  })
  assert.equal((await c.set(unique('cert'), 'v')).success, true)
  await c.close()
})

test('no token or a wrong one is unauthenticated; admin calls need the admin role', async () => {
  const tls = { ca: file('pki', 'ca.pem') }
  const k = unique('auth')
  for (const token of [undefined, 'not-a-token']) {
    const c = new KahunaClient({ endpoints, tls, token, discoverMembers: false })
    await assert.rejects(c.get(k), (e) => e instanceof UnauthenticatedError && e.code === 'UNAUTHENTICATED' && !e.retryable)
    await c.close()
  }
  const writer = new KahunaClient({ endpoints, tls, token: file('token') })
  assert.equal((await writer.set(k, 'v')).success, true)
  await assert.rejects(writer.triggerSnapshot(), PermissionDeniedError)
  await writer.close()
})

test('unusable TLS options are config errors', () => {
  const ca = file('pki', 'ca.pem')
  const bad = [
    { endpoints, tls: { ca: 'not a certificate' } },
    { endpoints, tls: { ca, trustedServerCertificateThumbprints: ['00'.repeat(32)] } },
    { endpoints, tls: { trustedServerCertificateThumbprints: ['not-a-pin'] } },
    { endpoints, tls: { cert: ca } },
    { endpoints: ['http://localhost:1'], tls: { ca } },
  ]
  for (const options of bad) {
    assert.throws(() => new KahunaClient(options), (e) => e instanceof ConfigError && e.code === 'CONFIG')
  }
})
