#!/usr/bin/env bash
# Runs every test: unit tests, openraft's storage suite for each engine, and the
# process tests that start real kahuna-server clusters. Exits non-zero on failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/env.sh
# install-deps.sh's detection on fake roots first: a wrong answer there would only
# show twelve minutes into the RocksDB build.
scripts/tests/install-deps.sh
scripts/install-deps.sh
build_workspace
# Two test threads: each process test runs a cluster, and more at once on two
# cores would starve heartbeats and cause elections the tests did not ask for.
cargo test --workspace --all-targets -- --test-threads 2
# The container image (scripts/container.sh): podman offline, from the debug binaries
# just built; one member across a restart, three across a SIGKILL of the leader.
if [ "$(id -u)" -eq 0 ]; then
  scripts/container.sh test
else
  echo "container test skipped: rootful podman needs root" >&2
fi
# The .NET package (Mono NUnit, CoreCLR smoke, samples, NuGet layout) on a 3-node cluster.
dotnet/test.sh
# The Python package (maturin wheel into a fresh venv, pytest, samples, mypy) on 3-node clusters.
python/test.sh
# The Node package (napi-rs addon, node --test, npm pack + install, samples) on a 3-node cluster.
node/test.sh
# Fault injection (tests/faults): every workload under every fault kind for a short
# while, then the negative control, which must be caught (--expect fail).
tests/faults/run --time 150
tests/faults/run --time 30 --workload register --faults partition,pause --unsafe-local-reads --expect fail
