#!/usr/bin/env bash
# Put latency while a snapshot is built: loads a 3-node cluster with --keys keys (1
# million by default), runs puts from 64 clients without a snapshot, then the same
# puts while the leader builds one (triggered a second into the run), and prints p50,
# p99 and p99.9 of both runs, the ratio of p99.9 during the snapshot to p99 without,
# the snapshot's build time and every member's RSS.
#
#   bench/snapshot.sh [--keys N] [--duration SECONDS] [--bin DIR]
#
# --bin runs the kahuna-server, kahuna and kahuna-bench found in DIR (for comparing
# two builds); by default they are built in release.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"

keys=1000000
duration=10
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) keys="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
if [ -z "$bin" ]; then
  "$root/scripts/install-deps.sh"
  cargo build --release -p kahuna-server -p kahuna-bench -p kahuna-client >&2
  bin="$CARGO_TARGET_DIR/release"
fi
work="$(mktemp -d "${TMPDIR:-/var/tmp}/kahuna-snapshot.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

eps="127.0.0.1:7470,127.0.0.1:7570,127.0.0.1:7670"
initial="1=127.0.0.1:7471,2=127.0.0.1:7571,3=127.0.0.1:7671"
for n in 1 2 3; do
  base=$((7370 + n * 100))
  # Snapshots only when this script asks for one.
  "$bin/kahuna-server" --node-id "$n" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
    --data-dir "$work/kahuna$n" --initial-cluster "$initial" --snapshot-threshold 1000000000 \
    >"$work/kahuna$n.log" 2>&1 &
  pids+=($!)
done
sleep 4

bench() { "$bin/kahuna-bench" --endpoints "$eps" "$@"; }
rss() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

bench --workload load --keys "$keys" --clients 64 --connections 8 | sed 's/^/SNAPBENCH load /'
printf 'SNAPBENCH rss_mib_at_%s_keys' "$keys"
for i in 0 1 2; do printf ' kahuna%d=%s' $((i + 1)) "$(rss "${pids[$i]}")"; done
echo

quiet=$(bench --workload put --keys "$keys" --clients 64 --duration "$duration" | grep '^RESULT')
echo "SNAPBENCH without_snapshot $quiet"
(sleep 1; bench --workload load --keys 1 --clients 1 --snapshot | grep '^SNAPSHOT' | sed 's/^/SNAPBENCH /') &
snap=$!
during=$(bench --workload put --keys "$keys" --clients 64 --duration "$duration" | grep '^RESULT')
wait "$snap"
echo "SNAPBENCH during_snapshot $during"
p99=$(field p99_us <<<"$quiet")
p999=$(field p999_us <<<"$during")
echo "SNAPBENCH p99_without_us=$p99 p999_during_us=$p999 ratio=$(awk -v a="$p999" -v b="$p99" 'BEGIN { printf "%.2f", a / b }')"
