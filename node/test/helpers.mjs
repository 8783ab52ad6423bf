// Shared by the tests: the package (built into dist/), the cluster they run against
// and small utilities. node/test.sh starts one 3-node cluster and passes it in
// KAHUNA_ENDPOINTS / KAHUNA_TEST_CLUSTER / KAHUNA_CLUSTER_SCRIPT; run alone
// (`node --test test/`), the tests start their own with the same script.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export * from '../dist/index.mjs'
import { KahunaClient } from '../dist/index.mjs'

const here = dirname(fileURLToPath(import.meta.url))
export const repo = join(here, '..', '..')

function ensureCluster() {
  if (process.env.KAHUNA_ENDPOINTS && process.env.KAHUNA_TEST_CLUSTER) return
  if (!process.env.KAHUNA_BIN) {
    process.env.KAHUNA_BIN = execFileSync('bash', ['-c', '. scripts/env.sh >/dev/null; echo "$KAHUNA_BIN"'], { cwd: repo })
      .toString()
      .trim()
  }
  process.env.KAHUNA_CLUSTER_SCRIPT ??= join(repo, 'dotnet', 'tests', 'cluster.sh')
  const dir = mkdtempSync(join(tmpdir(), 'kahuna-node-test-'))
  process.env.KAHUNA_TEST_CLUSTER = dir
  process.env.KAHUNA_ENDPOINTS = execFileSync('bash', [process.env.KAHUNA_CLUSTER_SCRIPT, dir, 'up'], { timeout: 60_000 })
    .toString()
    .trim()
  process.on('exit', () => {
    try {
      execFileSync('bash', [process.env.KAHUNA_CLUSTER_SCRIPT, dir, 'down'], { timeout: 30_000 })
    } catch {}
    // The members' data (a few hundred MB with RocksDB) would otherwise stay in /tmp after every run.
    rmSync(dir, { recursive: true, force: true })
  })
}
ensureCluster()

export const endpoints = process.env.KAHUNA_ENDPOINTS.split(',')

/** Runs `cluster.sh DIR cmd [n]` and returns its output. */
export function cluster(cmd, n) {
  const args = [process.env.KAHUNA_CLUSTER_SCRIPT, process.env.KAHUNA_TEST_CLUSTER, cmd]
  if (n !== undefined) args.push(String(n))
  return execFileSync('bash', args, { timeout: 30_000 }).toString().trim()
}

let seq = 0
/** A name no other test (or run) uses. */
export function unique(prefix) {
  return `node-test/${prefix}/${process.pid}-${Date.now()}-${++seq}`
}

export function client(options = {}) {
  return new KahunaClient({ endpoints, ...options })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Waits until the cluster takes writes again (after a fault). */
export async function healthy(c) {
  const until = Date.now() + 30_000
  for (;;) {
    try {
      await c.set('health', 'ok', { timeoutMs: 3000 })
      return
    } catch (e) {
      if (Date.now() > until) throw e
      await sleep(200)
    }
  }
}
