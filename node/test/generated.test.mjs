// The checked-in native/index.{js,d.ts} are what the napi build generates (node/test.sh
// builds into a scratch directory and passes it in KAHUNA_NODE_GENERATED), and the
// public declarations have no `any`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { repo } from './helpers.mjs'

const pkg = join(repo, 'node')

test('native/index.d.ts and native/index.js are fresh', (t) => {
  const fresh = process.env.KAHUNA_NODE_GENERATED
  if (!fresh) return t.skip('KAHUNA_NODE_GENERATED not set (node/test.sh sets it)')
  for (const f of ['index.d.ts', 'index.js']) {
    assert.equal(
      readFileSync(join(pkg, 'native', f), 'utf8'),
      readFileSync(join(fresh, f), 'utf8'),
      `node/native/${f} is stale: run \`npm run build:native\` in node/ and commit it`,
    )
  }
})

test('no `any` in the public declarations', () => {
  const files = readdirSync(join(pkg, 'dist')).filter((f) => f.endsWith('.d.ts'))
  assert.ok(files.includes('index.d.ts'))
  for (const f of [...files.map((f) => join(pkg, 'dist', f)), join(pkg, 'native', 'index.d.ts')]) {
    const text = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    assert.doesNotMatch(text, /\bany\b/, `${f} mentions any`)
  }
})
