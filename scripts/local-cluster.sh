#!/usr/bin/env bash
# Starts a 3-node development cluster on loopback and stops it on Ctrl-C.
# Clients: 127.0.0.1:2070, :2170, :2270. Data in ./data/cluster/nodeN.
#   --tls   TLS on both ports with a throwaway CA (kahuna-dev-certs, in data/cluster/pki,
#           made once); clients: https://localhost:2070 with --cacert data/cluster/pki/ca.pem
# Other arguments (for example --storage sqlite) go to every member.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
tls=0
args=()
for a in "$@"; do
  if [ "$a" = --tls ]; then tls=1; else args+=("$a"); fi
done
"$root/scripts/install-deps.sh"
(cd "$root" && build_workspace)
if [ "$tls" = 1 ]; then
  pki=data/cluster/pki
  [ -f "$pki/server.pem" ] || "$KAHUNA_BIN/kahuna-dev-certs" "$pki" localhost 127.0.0.1
  args+=(--tls-cert "$pki/server.pem" --tls-key "$pki/server-key.pem"
    --peer-tls-cert "$pki/server.pem" --peer-tls-key "$pki/server-key.pem" --peer-tls-ca "$pki/ca.pem")
fi
initial="1=127.0.0.1:2071,2=127.0.0.1:2171,3=127.0.0.1:2271"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in 1 2 3; do
  base=$((1970 + n * 100))
  "$KAHUNA_BIN/kahuna-server" --node-id "$n" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
    --data-dir "data/cluster/node$n" --initial-cluster "$initial" ${args[@]+"${args[@]}"} &
  pids+=($!)
done
if [ "$tls" = 1 ]; then
  echo "kahuna: 3 members up with TLS, clients on https://localhost:2070, :2170, :2270;" \
    "trust $pki/ca.pem (kahuna --cacert $pki/ca.pem --endpoints https://localhost:2070 ...). Ctrl-C stops them"
else
  echo "kahuna: 3 members up, clients on 127.0.0.1:2070, 127.0.0.1:2170, 127.0.0.1:2270 (Ctrl-C stops them)"
fi
wait
