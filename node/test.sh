#!/usr/bin/env bash
# Builds the Node package (napi-rs addon in release with @napi-rs/cli, TypeScript with
# tsc) and tests it against a real 3-node cluster of the debug kahuna-server that
# scripts/test.sh built: `node --test`, the generated declarations' freshness, `npm pack`,
# the tarball installed into an empty directory and used from ESM, CommonJS and strict
# TypeScript, and the TypeScript samples. Everything started is stopped at the end.
# Exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/env.sh
step() { printf '\n=== node: %s [%ss]\n' "$*" "$SECONDS"; }

# --- tools --------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 \
  || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  step "apt-get install nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$KAHUNA_BIN/kahuna-server" ] || [ ! -x "$KAHUNA_BIN/kahuna" ]; then
  step "cargo build (workspace)"
  build_workspace
fi
export KAHUNA_BIN

B="$(mktemp -d /tmp/kahuna-node.XXXXXX)"
cluster_sh="$root/dotnet/tests/cluster.sh"
cluster_dir="$B/cluster"
cleanup() {
  bash "$cluster_sh" "$cluster_dir" down >/dev/null 2>&1 || true
  [ -n "${KAHUNA_KEEP_BUILD:-}" ] || rm -rf "$B"
}
trap cleanup EXIT

# --- build --------------------------------------------------------------------------------
cd "$root/node"
step "npm install (dev dependencies, into node/node_modules)"
npm install --no-audit --no-fund --loglevel=error
step "napi build --release (the kahuna-node crate only: no server, no RocksDB)"
# Into a scratch directory first: the checked-in native/index.{js,d.ts} must equal what
# the build generates (test/generated.test.mjs compares them).
npx napi build --platform --release --manifest-path ../bindings/node/Cargo.toml \
  --package-json-path package.json --output-dir "$B/native" --js index.js --dts index.d.ts
cp "$B/native/"*.node native/
export KAHUNA_NODE_GENERATED="$B/native"
step "tsc"
npm run --silent build:ts

# --- cluster ------------------------------------------------------------------------------
step "3-node cluster"
endpoints=$(bash "$cluster_sh" "$cluster_dir" up)
echo "endpoints: $endpoints"
export KAHUNA_ENDPOINTS="$endpoints" KAHUNA_TEST_CLUSTER="$cluster_dir" KAHUNA_CLUSTER_SCRIPT="$cluster_sh"

# --- node --test --------------------------------------------------------------------------
step "node --test"
timeout 900 node --test --test-concurrency=1 test/*.test.mjs

# --- package ------------------------------------------------------------------------------
step "npm pack"
tarball="$B/$(npm pack --silent --pack-destination "$B" | tail -1)"
listing=$(tar -tzf "$tarball")
for f in package/package.json package/dist/index.js package/dist/index.mjs package/dist/index.d.ts \
  package/native/index.js package/native/index.d.ts package/native/kahuna.linux-x64-gnu.node package/README.md; do
  grep -qxF "$f" <<<"$listing" || { echo "node: $tarball lacks $f"; exit 1; }
done
echo "$tarball: $(wc -c <"$tarball") bytes"

step "npm install ./<tarball> into an empty directory; ESM, CommonJS, strict TypeScript, samples"
A="$B/app"; mkdir -p "$A"
cp "$tarball" "$A/"
(cd "$A" && npm install --no-audit --no-fund --loglevel=error "./$(basename "$tarball")")
cp test/package/smoke.mjs test/package/smoke.cjs test/package/usage.ts "$A/"
mkdir -p "$A/samples"; cp "$root"/samples/node/*.ts "$A/samples/"
cat >"$A/tsconfig.json" <<JSON
{ "compilerOptions": { "target": "ES2022", "lib": ["ES2022", "ESNext.Disposable"], "module": "node16",
    "moduleResolution": "node16", "strict": true, "noImplicitAny": true, "outDir": "out",
    "typeRoots": ["$root/node/node_modules/@types"], "types": ["node"] },
  "files": ["usage.ts", "samples/main.ts"] }
JSON
(cd "$A" && timeout 120 node smoke.mjs "$endpoints" && timeout 120 node smoke.cjs "$endpoints")
(cd "$A" && "$root/node/node_modules/.bin/tsc" -p tsconfig.json)
(cd "$A" && timeout 300 node out/samples/main.js "$endpoints")

echo
echo "node: all passed in ${SECONDS}s"
