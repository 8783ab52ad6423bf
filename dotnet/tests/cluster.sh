#!/usr/bin/env bash
# A 3-node kahuna-server cluster for the .NET tests, controlled by the tests themselves.
#   cluster.sh DIR up            start members 1..3 on free loopback ports, wait for a leader
#   cluster.sh DIR endpoints     print the client addresses, comma-separated
#   cluster.sh DIR leader        print the leader's member id
#   cluster.sh DIR kill|start|stop|cont N    SIGKILL / restart / SIGSTOP / SIGCONT member N
#   cluster.sh DIR down          stop every member
# State (ports, pids, data, logs) lives in DIR.
# KAHUNA_TLS=1 (at `up`): TLS on both ports with a throwaway CA in DIR/pki (kahuna-dev-certs),
# endpoints printed as https://localhost:PORT. With KAHUNA_AUTH=1 as well, every client call
# must carry a token (--auth-tokens): DIR/token holds a readwrite one, DIR/admin-token admin.
set -euo pipefail
dir="$1"; cmd="$2"; n="${3:-}"
: "${KAHUNA_BIN:?KAHUNA_BIN must name the directory with kahuna-server and kahuna}"
mkdir -p "$dir"

port_of() { sed -n "${1}p" "$dir/ports"; }
tls() { [ -d "$dir/pki" ]; }
# Member N's client address as clients write it.
endpoint_of() { if tls; then echo "https://localhost:$(port_of "$1")"; else echo "127.0.0.1:$(port_of "$1")"; fi; }
endpoints() {
  local e=() i
  for i in 1 2 3; do e+=("$(endpoint_of "$i")"); done
  (IFS=,; echo "${e[*]}")
}

# Certificates for a TLS cluster, once per DIR.
make_pki() {
  "$KAHUNA_BIN/kahuna-dev-certs" "$dir/pki" localhost 127.0.0.1 >/dev/null
}

# Tokens and the --auth-tokens file, once per DIR.
make_tokens() {
  python3 -c 'import secrets; print(secrets.token_hex(16))' >"$dir/token"
  local admin
  admin=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  echo "$admin" >"$dir/admin-token"
  {
    echo "# readwrite token for the tests, admin for the cluster script"
    echo "sha256:$(tr -d '\n' <"$dir/token" | sha256sum | cut -d' ' -f1) readwrite"
    echo "sha256:$(tr -d '\n' <"$dir/admin-token" | sha256sum | cut -d' ' -f1) admin"
  } >"$dir/auth-tokens"
}

start_member() {
  local i="$1" base initial="" j
  base=$(port_of "$i")
  for j in 1 2 3; do initial+="${initial:+,}$j=127.0.0.1:$(( $(port_of "$j") + 1 ))"; done
  local extra=()
  if tls; then
    extra=(--tls-cert "$dir/pki/server.pem" --tls-key "$dir/pki/server-key.pem"
      --peer-tls-cert "$dir/pki/server.pem" --peer-tls-key "$dir/pki/server-key.pem" --peer-tls-ca "$dir/pki/ca.pem"
    )
  fi
  [ -f "$dir/auth-tokens" ] && extra+=(--auth-tokens "$dir/auth-tokens")
  "$KAHUNA_BIN/kahuna-server" --node-id "$i" --listen "127.0.0.1:$base" --peer-listen "127.0.0.1:$((base + 1))" \
    --data-dir "$dir/node$i" --initial-cluster "$initial" --heartbeat-ms 100 --election-timeout-ms 1000 \
    "${extra[@]}" >>"$dir/node$i.log" 2>&1 &
  echo $! >"$dir/pid$i"
}

leader() {
  local i out id access=()
  if tls; then access=(--cacert "$dir/pki/ca.pem"); fi
  [ -f "$dir/admin-token" ] && access+=(--token "$(cat "$dir/admin-token")")
  for i in 1 2 3; do
    out=$(timeout 5 "$KAHUNA_BIN/kahuna" --endpoints "$(endpoint_of "$i")" "${access[@]}" --timeout 2s --json cluster status 2>/dev/null || true)
    id=$(sed -nE 's/.*"leader_id": ?([0-9]+).*/\1/p' <<<"$out" | head -1)
    if [ -n "$id" ] && [ "$id" != "0" ]; then echo "$id"; return 0; fi
  done
  return 1
}

case "$cmd" in
  up)
    python3 - >"$dir/ports" <<'PY'
import socket
ports = []
while len(ports) < 3:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 1)); t.close()
    except OSError:
        continue
    if p < 65000 and all(abs(p - q) > 1 for q in ports):
        ports.append(p)
print("\n".join(map(str, ports)))
PY
    if [ "${KAHUNA_TLS:-}" = 1 ]; then make_pki; fi
    if [ "${KAHUNA_AUTH:-}" = 1 ]; then make_tokens; fi
    for i in 1 2 3; do start_member "$i"; done
    for _ in $(seq 1 100); do
      if leader >/dev/null; then endpoints; exit 0; fi
      sleep 0.2
    done
    echo "no leader after 20 s" >&2; exit 1 ;;
  endpoints) endpoints ;;
  leader)
    for _ in $(seq 1 50); do if leader; then exit 0; fi; sleep 0.2; done
    exit 1 ;;
  kill) kill -KILL "$(cat "$dir/pid$n")" 2>/dev/null || true; wait "$(cat "$dir/pid$n")" 2>/dev/null || true ;;
  start) start_member "$n" ;;
  stop) kill -STOP "$(cat "$dir/pid$n")" ;;
  cont) kill -CONT "$(cat "$dir/pid$n")" ;;
  down)
    for i in 1 2 3; do
      [ -f "$dir/pid$i" ] || continue
      p=$(cat "$dir/pid$i"); kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true
    done ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
