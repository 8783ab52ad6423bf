#!/usr/bin/env bash
# Throughput and memory as the data set grows, and snapshot cost at the largest size:
# loads 10 thousand, 100 thousand and 1 million keys (--sizes to change) into a
# 3-node Kahuna cluster, and at each size measures put and get throughput at 16
# clients and every member's RSS. At the last size it times building a snapshot on
# the leader and installing it on a new member (add-learner until caught up), then
# saving a backup (`kahuna snapshot save`) and restoring it into a new cluster.
#
#   bench/scale.sh [--sizes "10000 100000 1000000"] [--duration SECONDS] [--value-size BYTES]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
"$root/scripts/install-deps.sh"

sizes="10000 100000 1000000"
duration=5
value_size=64
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --value-size) value_size="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
cargo build --release -p kahuna-server -p kahuna-bench -p kahuna-client >&2
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/kahuna-scale.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

eps="127.0.0.1:7070,127.0.0.1:7170,127.0.0.1:7270"
initial="1=127.0.0.1:7071,2=127.0.0.1:7171,3=127.0.0.1:7271"
start() { # id [extra args]
  local n=$1; shift
  local base=$((6970 + n * 100))
  "$bin/kahuna-server" --node-id "$n" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
    --data-dir "$work/kahuna$n" "$@" >"$work/kahuna$n.log" 2>&1 &
  pids+=($!)
}
for n in 1 2 3; do start "$n" --initial-cluster "$initial"; done
sleep 4

rss() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
loaded=0
last=0
for size in $sizes; do
  bench() { "$bin/kahuna-bench" --endpoints "$eps" --value-size "$value_size" "$@"; }
  bench --workload load --keys "$size" --clients 64 --connections 8 | sed "s/^/SCALE size=$size /"
  bench --workload put --keys "$size" --clients 16 --duration "$duration" | sed "s/^/SCALE size=$size /"
  bench --workload get --keys "$size" --clients 16 --duration "$duration" --connections 8 \
    | sed "s/^/SCALE size=$size /" || true
  printf 'SCALE size=%s rss_mib' "$size"
  for i in 0 1 2; do printf ' kahuna%d=%s' $((i + 1)) "$(rss "${pids[$i]}")"; done
  echo
  loaded=$size
  last=$size
done

# Snapshot build on the leader at the largest size, then install on a new member.
"$bin/kahuna-bench" --endpoints "$eps" --workload load --keys 1 --clients 1 --snapshot | grep '^SNAPSHOT' \
  | sed "s/keys=1 /keys=$last /"
start 4 --join
sleep 1
t0=$(date +%s%N)
"$bin/kahuna" --endpoints "$eps" --timeout 600s cluster add-learner 4 127.0.0.1:7371 >/dev/null
t1=$(date +%s%N)
echo "SNAPSHOT install_on_new_member_ms=$(( (t1 - t0) / 1000000 )) keys=$loaded rss_mib_new_member=$(rss "${pids[3]}")"

# Backup at the largest size: `kahuna snapshot save` from the cluster, then a new
# one-member cluster seeded from the file (`--restore`), timed from its start to the
# first linearizable read of the last loaded key.
t0=$(date +%s%N)
"$bin/kahuna" --endpoints "$eps" --timeout 600s snapshot save "$work/backup.snapshot" >/dev/null
t1=$(date +%s%N)
echo "BACKUP save_ms=$(( (t1 - t0) / 1000000 )) keys=$loaded bytes=$(stat -c %s "$work/backup.snapshot")"
last_key=$(printf 'bench/k/%08d' $((loaded - 1)))
t0=$(date +%s%N)
"$bin/kahuna-server" --node-id 1 --listen 127.0.0.1:7570 --peer-listen 127.0.0.1:7571 --data-dir "$work/restored" \
  --restore "$work/backup.snapshot" >"$work/restored.log" 2>&1 &
pids+=($!)
deadline=$(( $(date +%s) + 600 ))
until "$bin/kahuna" --endpoints 127.0.0.1:7570 --timeout 2s kv get "$last_key" >/dev/null 2>&1; do
  if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "${pids[-1]}" 2>/dev/null; then
    echo "BACKUP restore failed:" >&2; tail -20 "$work/restored.log" >&2; exit 1
  fi
  sleep 0.1
done
t1=$(date +%s%N)
echo "BACKUP restore_ms=$(( (t1 - t0) / 1000000 )) keys=$loaded rss_mib_restored=$(rss "${pids[-1]}")"
