#!/usr/bin/env bash
# Runs every workload at 1, 16 and 64 clients against a 3-node Kahuna cluster and a
# 3-node etcd cluster (Debian's etcd-server) on loopback, in the same run on the
# same machine, and prints Kahuna/etcd ratios:
#   RATIO <workload> <clients> throughput=<kahuna/etcd> p99=<kahuna/etcd>
# Both fsync on commit (Kahuna: RocksDB synced writes; etcd: its default) and keep
# their data on the same disk.
#
# `handoff` (one lock, every client taking and releasing it; latency from a release to
# the next grant) runs at 2 and 65 clients, that is 1 and 64 waiters, and also against
# Kahuna's clients as they were before the server's lock queue (a try every 100 ms):
#   RATIO handoff-vs-polling <clients> throughput=<queue/polling> p99=<queue/polling>
# `watch` (one watcher, the other clients writing; latency from a write's send to its
# delivery) compares with etcd's watch. `rate` and `ephemeral-rate` (rate-limiter
# decisions on one limiter) run against Kahuna only: etcd has no rate limiter.
#
#   bench/compare.sh [--quick] [--duration SECONDS] [--workloads "put get ..."] [--clients "1 16 64"] [--metrics]
#
# --metrics turns each Kahuna member's operations port on (--metrics-listen), which
# also records request metrics: run once with and once without to see their cost
# (etcd, the same in both runs, is the yardstick).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
"$root/scripts/install-deps.sh"

duration=10
workloads="put get cas lock ephemeral-lock seq mixed handoff watch"
handoff_clients="2 65"
clients="1 16 64"
profile=release
metrics=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) duration=1.5 ;;
    --duration) duration="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    --clients) clients="$2"; shift ;;
    --debug) profile=debug ;;
    --metrics) metrics=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v etcd >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi

cd "$root"
if [ "$profile" = release ]; then
  cargo build --release -p kahuna-server -p kahuna-bench -p kahuna-client >&2
else
  build_workspace >&2
fi
bin="$CARGO_TARGET_DIR/$profile"
# Another server build (e.g. to measure one change against the last) can be given here.
server_bin="${KAHUNA_SERVER_BIN:-$bin/kahuna-server}"

work="$(mktemp -d "${TMPDIR:-/var/tmp}/kahuna-compare.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

kahuna_eps="127.0.0.1:5070,127.0.0.1:5170,127.0.0.1:5270"
metrics_args=("" "" "" "")
if [ "$metrics" = 1 ]; then
  for n in 1 2 3; do metrics_args[n]="--metrics-listen 127.0.0.1:$((4972 + n * 100))"; done
fi
initial="1=127.0.0.1:5071,2=127.0.0.1:5171,3=127.0.0.1:5271"
for n in 1 2 3; do
  base=$((4970 + n * 100))
  "$server_bin" --node-id "$n" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
    --data-dir "$work/kahuna$n" --initial-cluster "$initial" --max-ephemeral-ttl-ms 5000 \
    ${metrics_args[$n]} >"$work/kahuna$n.log" 2>&1 &
  pids+=($!)
done

etcd_eps="127.0.0.1:6079,127.0.0.1:6179,127.0.0.1:6279"
etcd_initial="e1=http://127.0.0.1:6080,e2=http://127.0.0.1:6180,e3=http://127.0.0.1:6280"
for n in 1 2 3; do
  base=$((5979 + n * 100))
  etcd --name "e$n" --data-dir "$work/etcd$n" \
    --listen-client-urls "http://127.0.0.1:$base" --advertise-client-urls "http://127.0.0.1:$base" \
    --listen-peer-urls "http://127.0.0.1:$((base + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((base + 1))" \
    --initial-cluster "$etcd_initial" --initial-cluster-state new \
    >"$work/etcd$n.log" 2>&1 &
  pids+=($!)
done
sleep 5

declare -A result
run() { # target workload clients
  local eps=$kahuna_eps target=$1 extra=()
  [ "$1" = etcd ] && eps=$etcd_eps
  [ "$1" = kahuna-polling ] && target=kahuna && extra=(--lock-poll-ms 100)
  local line
  line=$("$bin/kahuna-bench" --target "$target" --endpoints "$eps" --workload "$2" --clients "$3" \
    --connections 8 --duration "$duration" "${extra[@]}" 2>"$work/bench-err.log" | grep '^RESULT' || true)
  if [ -z "$line" ]; then
    echo "bench failed: $1 $2 $3: $(tail -3 "$work/bench-err.log")" >&2
    line="RESULT target=$1 workload=$2 clients=$3 ops=0 errors=0 seconds=0 throughput=0 p50_us=0 p99_us=0 p999_us=0"
  fi
  line=${line/target=$target /target=$1 }
  echo "$line"
  result["$1 $2 $3"]="$line"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

clients_of() { if [ "$1" = handoff ]; then echo "$handoff_clients"; else echo "$clients"; fi; }
for w in $workloads; do
  for c in $(clients_of "$w"); do
    run kahuna "$w" "$c"
    # etcd has no rate limiter to compare with.
    case "$w" in *rate) ;; *) run etcd "$w" "$c" ;; esac
    if [ "$w" = handoff ]; then run kahuna-polling "$w" "$c"; fi
  done
done

echo
printf '%-15s %7s %14s %14s %10s %10s %10s %10s\n' workload clients kahuna_ops/s etcd_ops/s k_p50_us e_p50_us k_p99_us e_p99_us
for w in $workloads; do
  for c in $(clients_of "$w"); do
    k="${result["kahuna $w $c"]}"; e="${result["etcd $w $c"]}"
    printf '%-15s %7s %14s %14s %10s %10s %10s %10s\n' "$w" "$c" "$(field "$k" throughput)" "$(field "$e" throughput)" \
      "$(field "$k" p50_us)" "$(field "$e" p50_us)" "$(field "$k" p99_us)" "$(field "$e" p99_us)"
  done
done
echo
ratio() { # label clients kahuna-line other-line
  awk -v w="$1" -v c="$2" -v kt="$(field "$3" throughput)" -v et="$(field "$4" throughput)" \
      -v kp="$(field "$3" p99_us)" -v ep="$(field "$4" p99_us)" 'BEGIN {
    t = (et > 0) ? sprintf("%.2f", kt / et) : "n/a"; p = (ep > 0) ? sprintf("%.2f", kp / ep) : "n/a";
    printf "RATIO %s %s throughput=%s p99=%s\n", w, c, t, p }'
}
for w in $workloads; do
  for c in $(clients_of "$w"); do
    ratio "$w" "$c" "${result["kahuna $w $c"]}" "${result["etcd $w $c"]}"
    if [ "$w" = handoff ]; then ratio handoff-vs-polling "$c" "${result["kahuna $w $c"]}" "${result["kahuna-polling $w $c"]}"; fi
  done
done
for n in 1 2 3; do
  k=$(awk '/VmRSS/ {print $2}' "/proc/${pids[$((n - 1))]}/status" 2>/dev/null || echo 0)
  e=$(awk '/VmRSS/ {print $2}' "/proc/${pids[$((n + 2))]}/status" 2>/dev/null || echo 0)
  echo "MEMORY kahuna$n rss_kib=$k etcd$n rss_kib=$e"
done
