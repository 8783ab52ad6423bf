#!/usr/bin/env bash
# Builds and runs one kahuna-server. With no arguments: a single-node cluster,
# clients on 127.0.0.1:2070, peers on 127.0.0.1:2071, RocksDB in ./data.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
"$root/scripts/install-deps.sh"
(cd "$root" && build_workspace)
exec "$KAHUNA_BIN/kahuna-server" "$@"
