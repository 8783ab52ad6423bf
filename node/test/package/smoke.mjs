// Run from a directory where only the packed tarball was installed: ESM import.
import { KahunaClient, KahunaError } from 'kahuna-rs'

const endpoints = process.argv[2].split(',')
const client = new KahunaClient({ endpoints, defaultOperationTimeoutMs: 10_000 })
const key = `smoke/esm/${process.pid}`
await client.set(key, 'hello')
const got = await client.get(key)
if (got.valueAsString() !== 'hello') throw new Error(`got ${got.valueAsString()}`)
const lock = await client.acquireLock(`smoke/esm/lock/${process.pid}`, { expiry: 5000 })
if (!lock.acquired || !(lock.fencingToken > 0)) throw new Error('lock not acquired')
await lock.release()
try {
  await client.set('', 'x')
  throw new Error('expected an error')
} catch (e) {
  if (!(e instanceof KahunaError) || e.code !== 'INVALID_ARGUMENT') throw e
}
await client.close()
console.log('esm smoke ok')
