#!/usr/bin/env bash
# Runs every test: unit tests, openraft's storage suite for each engine, and the
# process tests that start real kahuna-server clusters. Exits non-zero on failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/env.sh
scripts/install-deps.sh
build_workspace
# Two test threads: each process test runs a cluster, and more at once on two
# cores would starve heartbeats and cause elections the tests did not ask for.
cargo test --workspace --all-targets -- --test-threads 2
# The .NET package (Mono NUnit, CoreCLR smoke, samples, NuGet layout) on a 3-node cluster.
dotnet/test.sh
# The Node package (napi-rs addon, node --test, npm pack + install, samples) on a 3-node cluster.
node/test.sh
# Fault injection (tests/faults): every workload under every fault kind for a short
# while, then the negative control, which must be caught (--expect fail).
tests/faults/run --time 150
tests/faults/run --time 30 --workload register --faults partition,pause --unsafe-local-reads --expect fail
