#!/usr/bin/env bash
# Builds the release kahuna-server and runs it with this script's arguments (any
# server flag; `--help` lists them). With none: a single-node cluster, clients on
# 127.0.0.1:2070, peers on 127.0.0.1:2071, RocksDB in ./data.
#
# Only the server binary, in the release profile: the test command builds the whole
# workspace in debug. Both share one cache ($CARGO_TARGET_DIR) and each keeps one
# package selection, so each profile builds RocksDB once. bench/compare.sh and
# bench/scale.sh build `-p kahuna-server -p kahuna-bench -p kahuna-client`, which
# resolves RocksDB and bindgen with the same features as this, so they reuse it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
"$root/scripts/install-deps.sh"
(cd "$root" && cargo build --release -p kahuna-server --bin kahuna-server)

# Where it will listen and keep its data, as the server reads them: flag, then
# KAHUNA_* variable, then default.
listen="${KAHUNA_LISTEN:-127.0.0.1:2070}"
peer="${KAHUNA_PEER_LISTEN:-127.0.0.1:2071}"
data="${KAHUNA_DATA_DIR:-data}"
storage="${KAHUNA_STORAGE:-rocksdb}"
quiet=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a="${args[i]}" next="${args[i + 1]:-}"
  case "$a" in
    --listen) listen="$next" ;; --listen=*) listen="${a#*=}" ;;
    --peer-listen) peer="$next" ;; --peer-listen=*) peer="${a#*=}" ;;
    --data-dir) data="$next" ;; --data-dir=*) data="${a#*=}" ;;
    --storage) storage="$next" ;; --storage=*) storage="${a#*=}" ;;
    -h | --help | -V | --version) quiet=1 ;;
  esac
done
if [ "$quiet" = 0 ]; then
  case "$data" in /*) ;; *) data="$PWD/$data" ;; esac
  where="$storage data in $data"
  [ "$storage" = memory ] && where="data in memory only (lost on exit)"
  echo "kahuna-server: clients on $listen, peers on $peer, $where (Ctrl-C stops it)" >&2
fi
exec "$CARGO_TARGET_DIR/release/kahuna-server" "$@"
