#!/usr/bin/env bash
# System packages the build and the tests need, each detected by the exact file or
# command its user loads, and installed only when missing:
#   protobuf-compiler  `protoc`, run by prost-build (tonic codegen, etcd-client)
#   libprotobuf-dev    google/protobuf/descriptor.proto and the other well-known types
#                      that etcd-client's protos import (only a Recommends of protoc)
#   libclang-dev       `libclang.so` / `libclang-N.so`, dlopened by bindgen (clang-sys)
#                      for RocksDB. `libclang-cpp.so.N` (shipped by many base images)
#                      and `libclang.so.1` do not count: clang-sys never loads them.
#   iproute2, iptables `ip` and `iptables`, run by the fault harness (namespaces, partitions)
#   faketime           libfaketime.so.1 at the path the fault harness preloads
#
# `install-deps.sh --check [ROOT]` prints the packages that are missing under ROOT
# (default /) and installs nothing; scripts/tests/install-deps.sh tests it on fake roots.
set -euo pipefail

root=""
check_only=0
if [ "${1:-}" = "--check" ]; then
  check_only=1
  root="${2:-}"
  root="${root%/}"
fi

# A command as the build runs it: from PATH on this machine, from the usual bin
# directories of a fake root.
have_command() {
  if [ -z "$root" ]; then
    command -v "$1" >/dev/null 2>&1
  else
    local d
    for d in /usr/local/bin /usr/bin /bin /usr/local/sbin /usr/sbin /sbin; do
      [ -x "$root$d/$1" ] && return 0
    done
    return 1
  fi
}

# clang-sys (bindgen's loader, without its `runtime` feature) accepts exactly
# `libclang.so` and `libclang-*.so` (`libclang-14.so`), in $LIBCLANG_PATH, in
# `llvm-config --libdir`, and in these directories.
have_libclang() {
  local dirs=() d f name
  if [ -z "$root" ] && [ -n "${LIBCLANG_PATH:-}" ]; then dirs+=("$LIBCLANG_PATH"); fi
  if [ -z "$root" ] && command -v llvm-config >/dev/null 2>&1; then
    dirs+=("$(llvm-config --libdir 2>/dev/null || true)")
  fi
  for d in "$root"/usr/lib/llvm-*/lib "$root"/usr/local/llvm*/lib "$root"/usr/lib "$root"/usr/lib64 \
    "$root"/usr/lib/*-linux-gnu "$root"/usr/local/lib "$root"/usr/local/lib64 "$root"/lib "$root"/lib64; do
    [ -d "$d" ] && dirs+=("$d")
  done
  for d in "${dirs[@]}"; do
    for f in "$d"/libclang.so "$d"/libclang-*.so; do
      [ -e "$f" ] || continue
      name="$(basename "$f")"
      # libclang-cpp.so is the C++ API, not the C API that bindgen calls.
      case "$name" in libclang-cpp*) continue ;; esac
      return 0
    done
  done
  return 1
}

have_protobuf_includes() {
  # protoc looks next to itself (../include) and in /usr/include.
  [ -e "$root/usr/include/google/protobuf/descriptor.proto" ] && return 0
  if [ -z "$root" ] && command -v protoc >/dev/null 2>&1; then
    [ -e "$(dirname "$(command -v protoc)")/../include/google/protobuf/descriptor.proto" ] && return 0
  fi
  return 1
}

have_libfaketime() {
  # The harness preloads this exact path (tests/faults/src/cluster.rs LIBFAKETIME).
  [ -e "$root/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1" ]
}

missing=()
have_command protoc || missing+=(protobuf-compiler)
have_protobuf_includes || missing+=(libprotobuf-dev)
have_libclang || missing+=(libclang-dev)
have_command ip || missing+=(iproute2)
have_command iptables || missing+=(iptables)
have_libfaketime || missing+=(faketime)

if [ "$check_only" = 1 ]; then
  [ ${#missing[@]} -gt 0 ] && printf '%s\n' "${missing[@]}"
  exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Installed but still not found means the detection and the packages disagree:
  # stop here rather than fail twelve minutes into the RocksDB build.
  still=()
  have_command protoc || still+=(protoc)
  have_protobuf_includes || still+=(google/protobuf/descriptor.proto)
  have_libclang || still+=(libclang.so)
  if [ ${#still[@]} -gt 0 ]; then
    echo "install-deps: still missing after install: ${still[*]}" >&2
    exit 1
  fi
fi
