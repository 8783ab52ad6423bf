#!/usr/bin/env bash
# The server's container image, built and tested with podman without any registry.
#
#   scripts/container.sh build [--debug] [--tag TAG]   # image from binaries built here (release
#                                                      # by default; --debug: the test build's)
#   scripts/container.sh test [--image TAG]            # builds from the test command's debug
#                                                      # binaries (or takes TAG), tests the image
#
# `build` installs podman, buildah, runc and debootstrap when missing (apt), makes the
# base image localhost/debian:bookworm-slim with debootstrap from the Debian mirror apt
# uses when it does not exist, and builds the Containerfile's `prebuilt` stage with
# --pull=never: the binaries are copied from $CARGO_TARGET_DIR, so RocksDB is not built
# again inside a container. runc and the ulimits (../shared/CONTAINER.md) are passed as
# flags; nothing in /etc/containers is changed.
#
# `test` uses the debug binaries (`build_workspace`, as scripts/test.sh builds them):
# a release image would cost a second RocksDB build, and what is tested is the image
# (user, volume, environment, ports, healthcheck, signals), not the optimiser.
#   1. one member on a named volume: a key written with the kahuna CLI from the host
#      through a published port is read back after `podman restart`, and again from a
#      new container on the same volume; the healthcheck passes; it runs as non-root.
#   2. three members on a podman network (peers by container name, clients advertised
#      on the members' addresses on that network): a stream of writes from the host,
#      the leader's container killed (SIGKILL) midway; every acknowledged write must
#      be readable through the survivors, and writes must be acknowledged after the kill.
# Everything it starts (containers, volume, network, image) carries the label
# kahuna-ctest and is removed at the end, on failure too; leftovers of a run killed
# outright are removed by the next one. Each wait is bounded.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"

BASE=localhost/debian:bookworm-slim
image=""
TEST_TAG=localhost/kahuna:ctest
LABEL=kahuna-ctest
# Test addresses: loopback ports on the host, a private subnet on the test's own bridge.
SUBNET=10.214.70
NET_NAME=kahuna-ctest
HOST_PORT=22470

pm() { podman --runtime runc "$@"; }
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
log() { echo "container: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  log "rootful podman is needed (the test reaches the containers' bridge from the host): run as root"
  exit 1
}

install_tools() {
  local missing=() t
  for t in podman buildah runc debootstrap; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The first Debian mirror apt is configured with (one-line or deb822 sources).
debian_mirror() {
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' | grep -v security | head -1 || true)"
  if [ -z "$m" ]; then
    m="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
      awk '/^URIs:/ { print $2 }' | grep -v security | head -1 || true)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# localhost/debian:bookworm-slim from debootstrap (minbase, trimmed), once per machine.
base_image() {
  pm image exists "$BASE" && return 0
  local mirror rootfs
  mirror="$(debian_mirror)"
  rootfs="$(mktemp -d /var/tmp/kahuna-rootfs.XXXXXX)"
  log "making $BASE with debootstrap from $mirror"
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -20 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    die "debootstrap failed"
  fi
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/{doc,man,locale}/*
  tar -C "$rootfs" -c . | pm import --quiet - "$BASE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

# build_image PROFILE TAG: the prebuilt stage with PROFILE's binaries from the cache.
build_image() {
  local profile="$1" tag="$2" ctx
  need_root
  install_tools
  base_image
  if [ "$profile" = release ]; then
    # The server with run-server.sh's selection (its RocksDB), the CLI on its own.
    (cd "$root" && cargo build --release -p kahuna-server --bin kahuna-server &&
      cargo build --release -p kahuna-client --bin kahuna)
  else
    (cd "$root" && build_workspace)
  fi
  ctx="$(mktemp -d /var/tmp/kahuna-image.XXXXXX)"
  mkdir "$ctx/bin"
  # Debug info is most of a debug binary's size and nothing the image needs.
  strip --strip-debug -o "$ctx/bin/kahuna-server" "$CARGO_TARGET_DIR/$profile/kahuna-server"
  strip --strip-debug -o "$ctx/bin/kahuna" "$CARGO_TARGET_DIR/$profile/kahuna"
  # --format docker keeps HEALTHCHECK (the OCI image format has no such field).
  if ! pm build --pull=never --runtime runc "${ULIMITS[@]}" --format docker --target prebuilt \
    --build-arg KAHUNA_BIN=bin -f "$root/Containerfile" -t "$tag" "$ctx" >"$ctx.log" 2>&1; then
    tail -30 "$ctx.log" >&2
    rm -rf "$ctx" "$ctx.log"
    die "podman build failed"
  fi
  rm -rf "$ctx" "$ctx.log"
  log "built $tag ($profile binaries): $(pm image inspect "$tag" --format '{{.Size}}' | awk '{ printf "%.1f MB", $1 / 1e6 }')"
}

cleanup() {
  local ids
  [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null && wait "$writer" 2>/dev/null
  ids="$(pm ps -aq --filter "label=$LABEL" 2>/dev/null || true)"
  # shellcheck disable=SC2086
  [ -n "$ids" ] && pm rm -f -t 0 -v $ids >/dev/null 2>&1
  ids="$(pm volume ls -q --filter "label=$LABEL" 2>/dev/null || true)"
  # shellcheck disable=SC2086
  [ -n "$ids" ] && pm volume rm -f $ids >/dev/null 2>&1
  pm network exists "$NET_NAME" 2>/dev/null && pm network rm -f "$NET_NAME" >/dev/null 2>&1
  [ "$image" = "$TEST_TAG" ] && pm image exists "$TEST_TAG" 2>/dev/null && pm rmi -f "$TEST_TAG" >/dev/null 2>&1
  [ -n "${work:-}" ] && rm -rf "$work"
  return 0
}

on_exit() {
  local rc=$?
  cleanup
  exit "$rc"
}

# Podman here has no systemd to run healthcheck timers and says so on each start and
# stop: its output is shown only when the command fails.
quiet() { "$@" >"$work/podman.log" 2>&1 || { cat "$work/podman.log" >&2; return 1; }; }
# A test container; its healthcheck runs only when the test asks (podman healthcheck run).
start() { quiet pm run -d --pull=never "${ULIMITS[@]}" --health-interval disable --label "$LABEL" "$@"; }

cli() { timeout 30 "$CARGO_TARGET_DIR/debug/kahuna" --timeout 10s "$@"; }

# wait_for SECONDS WHAT COMMAND...: retries COMMAND every half second until it succeeds.
wait_for() {
  local limit="$1" what="$2" deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${limit}s"
    sleep 0.5
  done
}

passed=0
pass() { passed=$((passed + 1)); log "ok: $*"; }

test_single() {
  local vol="$NET_NAME-data" ep="127.0.0.1:$HOST_PORT" value="written-$$-$RANDOM" got start
  pm volume create --label "$LABEL" "$vol" >/dev/null
  run_single() {
    start --name "$NET_NAME-single" -p "$ep:2070" -v "$vol:/data" "$image"
  }
  run_single
  wait_for 60 "single member answering on $ep" cli --endpoints "$ep" cluster status
  [ "$(pm exec "$NET_NAME-single" id -u)" = 10001 ] || die "the server does not run as uid 10001"
  # shellcheck disable=SC2016 # expanded inside the container
  pm exec "$NET_NAME-single" sh -c 'test "$(stat -c %u /data)" = 10001 && ls /data | grep -q .' ||
    die "/data is not the server's data directory owned by kahuna"
  pass "single member serves as uid 10001 with its data in /data"
  wait_for 30 "healthcheck" pm healthcheck run "$NET_NAME-single"
  pass "healthcheck (kahuna cluster status inside the container)"

  cli --endpoints "$ep" kv set ctest/single "$value" >/dev/null || die "write to the single member"
  start=$SECONDS
  quiet pm restart -t 20 "$NET_NAME-single"
  log "podman restart took $((SECONDS - start)) s (SIGTERM, then start)"
  [ $((SECONDS - start)) -lt 15 ] || die "SIGTERM did not stop the server promptly"
  wait_for 60 "single member back after restart" cli --endpoints "$ep" cluster status
  got="$(cli --endpoints "$ep" kv get ctest/single)" || die "read after restart"
  [ "$got" = "$value" ] || die "after restart: expected $value, read $got"
  pass "write read back after podman restart"

  quiet pm rm -f -t 20 "$NET_NAME-single"
  run_single
  wait_for 60 "new container on the same volume" cli --endpoints "$ep" cluster status
  got="$(cli --endpoints "$ep" kv get ctest/single)" || die "read from a new container"
  [ "$got" = "$value" ] || die "new container: expected $value, read $got"
  pass "write read back from a new container on the same volume"
  quiet pm rm -f -t 20 "$NET_NAME-single"
}

# The leader's id as member N reports it through the host (0 while there is none).
leader_of() {
  cli --json --endpoints "$1" cluster status 2>/dev/null | sed -n 's/.*"leader_id":\([0-9]*\).*/\1/p'
}

test_cluster() {
  local initial="" n all="" leader l survivors="" i acked=0 after_kill=0 killed_at=0
  pm network create --label "$LABEL" --subnet "$SUBNET.0/24" "$NET_NAME" >/dev/null
  for n in 1 2 3; do
    initial+="${initial:+,}$n=kahuna-ctest-$n:2071"
    all+="${all:+,}$SUBNET.1$n:2070"
  done
  for n in 1 2 3; do
    start --name "kahuna-ctest-$n" --hostname "kahuna-ctest-$n" --network "$NET_NAME" --ip "$SUBNET.1$n" \
      -e KAHUNA_NODE_ID="$n" -e KAHUNA_INITIAL_CLUSTER="$initial" -e KAHUNA_ADVERTISE_CLIENT="$SUBNET.1$n:2070" \
      "$image"
  done
  has_leader() { [ "$(leader_of "$1")" -gt 0 ] 2>/dev/null; }
  wait_for 90 "a leader among the three containers" has_leader "$all"
  leader="$(leader_of "$all")"
  for n in 1 2 3; do
    [ "$n" = "$leader" ] || survivors+="${survivors:+,}$SUBNET.1$n:2070"
  done
  pass "3 members formed a cluster; leader is kahuna-ctest-$leader"

  # Writer: one `kahuna kv set` per key, each acknowledged one recorded, at most 200
  # keys or 90 s. The leader is killed once 40 are acknowledged.
  : >"$work/acked"
  (
    deadline=$((SECONDS + 90))
    for ((i = 1; i <= 200 && SECONDS < deadline; i++)); do
      if cli --endpoints "$all" kv set "ctest/k$i" "v$i" >/dev/null 2>&1; then
        printf 'ctest/k%s\tv%s\n' "$i" "$i" >>"$work/acked"
      fi
      [ -e "$work/stop" ] && break
    done
  ) &
  writer=$!
  acked_at_least() { [ "$(wc -l <"$work/acked")" -ge "$1" ]; }
  wait_for 60 "40 acknowledged writes before the kill" acked_at_least 40
  killed_at="$(wc -l <"$work/acked")"
  quiet pm kill "kahuna-ctest-$leader"
  log "killed the leader kahuna-ctest-$leader (SIGKILL) after $killed_at acknowledged writes"
  # Let the stream run on until 40 more are acknowledged through the survivors.
  wait_for 60 "writes acknowledged after the leader was killed" acked_at_least $((killed_at + 40))
  touch "$work/stop"
  wait "$writer"
  writer=""
  acked="$(wc -l <"$work/acked")"
  after_kill=$((acked - killed_at))
  l="$(leader_of "$survivors")"
  { [ -n "$l" ] && [ "$l" != "$leader" ] && [ "$l" -gt 0 ]; } || die "no new leader among the survivors (got '$l')"
  pass "kahuna-ctest-$l took over; $after_kill writes acknowledged after the kill"

  cli --endpoints "$survivors" kv scan ctest/k --limit 1000 | sort >"$work/read" || die "scan through the survivors"
  sort "$work/acked" >"$work/acked.sorted"
  if [ -n "$(comm -23 "$work/acked.sorted" "$work/read")" ]; then
    comm -23 "$work/acked.sorted" "$work/read" | head >&2
    die "acknowledged writes missing after the leader was killed (above)"
  fi
  pass "all $acked acknowledged writes readable through the survivors"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  build)
    profile=release tag=localhost/kahuna:latest
    while [ $# -gt 0 ]; do
      case "$1" in
        --debug) profile=debug ;;
        --tag) tag="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
      shift
    done
    build_image "$profile" "$tag"
    ;;
  test)
    image="$TEST_TAG"
    [ "${1:-}" = --image ] && image="${2:?--image TAG}"
    need_root
    install_tools
    started=$SECONDS
    cleanup
    work="$(mktemp -d /var/tmp/kahuna-ctest.XXXXXX)"
    trap 'on_exit' EXIT
    trap 'exit 130' INT TERM
    if [ "$image" = "$TEST_TAG" ]; then
      build_image debug "$TEST_TAG"
    else
      [ -x "$CARGO_TARGET_DIR/debug/kahuna" ] || (cd "$root" && build_workspace)
    fi
    ss -ltn "sport = :$HOST_PORT" | grep -q LISTEN && die "port $HOST_PORT on the host is taken"
    test_single
    test_cluster
    log "image $image tested in $((SECONDS - started)) s"
    echo "container: $passed passed, 0 failed"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
