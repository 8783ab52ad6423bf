#!/usr/bin/env bash
# Starts a 3-node development cluster on loopback and stops it on Ctrl-C.
# Clients: 127.0.0.1:2070, :2170, :2270. Data in ./data/cluster/nodeN.
# Extra arguments (for example --storage sqlite) go to every member.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
"$root/scripts/install-deps.sh"
(cd "$root" && build_workspace)
initial="1=127.0.0.1:2071,2=127.0.0.1:2171,3=127.0.0.1:2271"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in 1 2 3; do
  base=$((1970 + n * 100))
  "$KAHUNA_BIN/kahuna-server" --node-id "$n" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
    --data-dir "data/cluster/node$n" --initial-cluster "$initial" "$@" &
  pids+=($!)
done
echo "kahuna: 3 members up, clients on 127.0.0.1:2070, 127.0.0.1:2170, 127.0.0.1:2270 (Ctrl-C stops them)"
wait
