// Run from a directory where only the packed tarball was installed: CommonJS require.
'use strict'
const { KahunaClient, KahunaError } = require('kahuna-rs')

async function main() {
  const client = new KahunaClient({ endpoints: process.argv[2] })
  const key = `smoke/cjs/${process.pid}`
  await client.set(key, 'hello')
  if ((await client.get(key)).valueAsString() !== 'hello') throw new Error('bad value')
  const out = await client.withLock(`smoke/cjs/lock/${process.pid}`, { expiry: 5000 }, async (lock) => lock.fencingToken)
  if (!(out > 0)) throw new Error('withLock')
  const range = await client.reserveSequenceRange(`smoke/cjs/seq/${process.pid}`, 10)
  if (range.first !== 1) throw new Error('sequence')
  if (!(new KahunaError('X', 'm') instanceof Error)) throw new Error('error class')
  await client.close()
  console.log('cjs smoke ok')
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
