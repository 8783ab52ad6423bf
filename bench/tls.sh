#!/usr/bin/env bash
# What TLS costs: put and get at 1 and 64 clients against the same 3-node Kahuna
# cluster layout on loopback, plain and with TLS on both ports (kahuna-dev-certs),
# one after the other in the same run on the same machine. Prints
#   RESULT ... lines from kahuna-bench, then
#   TLS <workload> <clients> throughput=<tls/plain> p50=<tls/plain> p99=<tls/plain>
#
#   bench/tls.sh [--duration SECONDS] [--clients "1 64"] [--debug]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
"$root/scripts/install-deps.sh"

duration=10
clients="1 64"
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift ;;
    --clients) clients="$2"; shift ;;
    --debug) profile=debug ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
if [ "$profile" = release ]; then
  cargo build --release -p kahuna-server -p kahuna-bench >&2
  cargo build --release -p kahuna-testkit --bin kahuna-dev-certs >&2
else
  build_workspace >&2
fi
bin="$CARGO_TARGET_DIR/$profile"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/kahuna-tls-bench.XXXXXX")"
pids=()
stop() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap 'stop; rm -rf "$work"' EXIT INT TERM
"$bin/kahuna-dev-certs" "$work/pki" localhost 127.0.0.1 >/dev/null

# up MODE: a fresh 3-node cluster, plain or tls; its endpoints in $eps. (Not in a command
# substitution: the member pids must reach this shell's $pids for stop.)
up() {
  local mode="$1" n base extra=() initial="1=127.0.0.1:5071,2=127.0.0.1:5171,3=127.0.0.1:5271" list=()
  if [ "$mode" = tls ]; then
    extra=(--tls-cert "$work/pki/server.pem" --tls-key "$work/pki/server-key.pem"
      --peer-tls-cert "$work/pki/server.pem" --peer-tls-key "$work/pki/server-key.pem" --peer-tls-ca "$work/pki/ca.pem")
  fi
  for n in 1 2 3; do
    base=$((4970 + n * 100))
    "$bin/kahuna-server" --node-id "$n" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
      --data-dir "$work/$mode$n" --initial-cluster "$initial" "${extra[@]}" >"$work/$mode$n.log" 2>&1 &
    pids+=($!)
    if [ "$mode" = tls ]; then list+=("https://localhost:$base"); else list+=("127.0.0.1:$base"); fi
  done
  eps=$(IFS=,; echo "${list[*]}")
}

declare -A result
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
for mode in plain tls; do
  up "$mode"
  access=()
  [ "$mode" = tls ] && access=(--cacert "$work/pki/ca.pem")
  sleep 5
  for w in put get; do
    for c in $clients; do
      line=$("$bin/kahuna-bench" --endpoints "$eps" "${access[@]}" --workload "$w" --clients "$c" --connections 8 \
        --duration "$duration" 2>"$work/bench-err.log" | grep '^RESULT' || true)
      [ -n "$line" ] || { echo "bench failed: $mode $w $c: $(tail -3 "$work/bench-err.log")" >&2; exit 1; }
      echo "$mode $line"
      result["$mode $w $c"]="$line"
    done
  done
  stop
done
echo
for w in put get; do
  for c in $clients; do
    p="${result["plain $w $c"]}"; t="${result["tls $w $c"]}"
    awk -v w="$w" -v c="$c" -v pt="$(field "$p" throughput)" -v tt="$(field "$t" throughput)" \
      -v p5="$(field "$p" p50_us)" -v t5="$(field "$t" p50_us)" -v p9="$(field "$p" p99_us)" -v t9="$(field "$t" p99_us)" \
      'BEGIN { printf "TLS %s %s throughput=%.2f p50=%.2f p99=%.2f (plain %s ops/s p50 %s us; tls %s ops/s p50 %s us)\n",
        w, c, tt / pt, t5 / p5, t9 / p9, pt, p5, tt, t5 }'
  done
done
