#!/usr/bin/env bash
# Tests install-deps.sh's detection (`--check ROOT`) on fake roots made with mktemp:
# each case lays out files as Debian's packages do and compares the packages that
# would be installed. Exits non-zero when any case fails.
#   INSTALL_DEPS=path/to/a/variant scripts/tests/install-deps.sh   # test another copy
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
script="${INSTALL_DEPS:-$here/../install-deps.sh}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/kahuna-install-deps-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# A fake root under $tmp/NAME holding the given files; a path ending in * is an executable.
mkroot() {
  local r="$tmp/$1" f
  shift
  mkdir -p "$r"
  for f in "$@"; do
    mkdir -p "$r/$(dirname "${f%\*}")"
    : >"$r/${f%\*}"
    [ "${f%\*}" != "$f" ] && chmod +x "$r/${f%\*}"
  done
  echo "$r"
}

# expect NAME ROOT "packages expected, in install-deps.sh's order"
expect() {
  local got
  got="$("$script" --check "$2" | tr '\n' ' ')"
  got="${got% }"
  if [ "$got" = "$3" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $1: expected [$3], got [$got]" >&2
  fi
}

proto=usr/include/google/protobuf/descriptor.proto
tools=(usr/bin/protoc\* usr/bin/ip\* usr/sbin/iptables\* usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 "$proto")
cpp=(usr/lib/llvm-14/lib/libclang-cpp.so.14 usr/lib/x86_64-linux-gnu/libclang-cpp.so.14)

# libclang: only the files clang-sys loads count.
expect "libclang-cpp only" "$(mkroot cpp "${tools[@]}" "${cpp[@]}")" "libclang-dev"
expect "libclang.so.1 (runtime, no -dev)" \
  "$(mkroot so1 "${tools[@]}" "${cpp[@]}" usr/lib/llvm-14/lib/libclang.so.1 usr/lib/x86_64-linux-gnu/libclang-14.so.1)" "libclang-dev"
expect "llvm-14/lib/libclang.so" "$(mkroot so "${tools[@]}" "${cpp[@]}" usr/lib/llvm-14/lib/libclang.so)" ""
expect "libclang-14.so" "$(mkroot so14 "${tools[@]}" "${cpp[@]}" usr/lib/x86_64-linux-gnu/libclang-14.so)" ""

# Commands, protobuf's includes and libfaketime, each present or absent.
lib=usr/lib/llvm-14/lib/libclang.so
expect "nothing at all" "$(mkroot empty)" "protobuf-compiler libprotobuf-dev libclang-dev iproute2 iptables faketime"
expect "everything" "$(mkroot all "${tools[@]}" $lib)" ""
expect "no protoc" "$(mkroot noprotoc "${tools[@]:1}" $lib)" "protobuf-compiler"
expect "protoc not executable" "$(mkroot protocfile usr/bin/protoc "${tools[@]:1}" $lib)" "protobuf-compiler"
expect "protoc without descriptor.proto" "$(mkroot noinclude "${tools[@]:0:4}" $lib)" "libprotobuf-dev"
expect "no ip, no iptables" "$(mkroot nonet usr/bin/protoc\* "${tools[@]:3}" $lib)" "iproute2 iptables"
expect "ip in /sbin, iptables in /usr/sbin" \
  "$(mkroot sbin usr/bin/protoc\* sbin/ip\* usr/sbin/iptables\* "${tools[@]:3}" $lib)" ""
expect "no libfaketime" "$(mkroot nofaketime "${tools[@]:0:3}" $proto $lib)" "faketime"
expect "libfaketime elsewhere" \
  "$(mkroot fakeelse "${tools[@]:0:3}" $proto usr/lib/faketime/libfaketime.so.1 $lib)" "faketime"

echo "install-deps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
