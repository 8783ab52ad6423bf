#!/usr/bin/env bash
# Builds the Python package (one abi3 wheel with maturin), installs that wheel into a
# fresh venv with pip (no source tree on sys.path), and runs the pytest suite, the
# samples and mypy --strict against real 3-node kahuna-server clusters started by the
# tests. Needs the cargo workspace built first (scripts/test.sh does it) for the debug
# kahuna-server. Exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/env.sh
CACHE="${KAHUNA_CACHE_DIR:-$HOME/.cache/kahuna}"
step() { printf '\n=== python: %s\n' "$*"; }

# --- tools: a venv outside the clone, pinned ----------------------------------------------
TOOLS_PINS=(maturin==1.16.0)
TESTS_PINS=(pytest==9.2.0 mypy==2.4.1 prometheus-client==0.21.1)
VENV="$CACHE/py-venv"
WHEELS="$CACHE/py-wheels"   # pytest, mypy and their dependencies, for the fresh venv without a network round
stamp="tools: ${TOOLS_PINS[*]}; tests: ${TESTS_PINS[*]}"
if [ ! -x "$VENV/bin/maturin" ] || [ "$(cat "$VENV/.kahuna-pins" 2>/dev/null)" != "$stamp" ]; then
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  step "pip install ${TOOLS_PINS[*]} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${TOOLS_PINS[@]}"
  rm -rf "$WHEELS"
  "$VENV/bin/pip" download -q --disable-pip-version-check -d "$WHEELS" "${TESTS_PINS[@]}"
  echo "$stamp" >"$VENV/.kahuna-pins"
fi

SERVER="$KAHUNA_BIN/kahuna-server"
if [ ! -x "$SERVER" ]; then
  step "cargo build"
  build_workspace
fi

step "the python crate does not depend on the server"
deps=$(cargo tree -p kahuna-python -e normal,build --prefix none 2>/dev/null | sort -u)
if grep -qE '^(kahuna-server|kahuna-testkit|librocksdb-sys|rusqlite|openraft) ' <<<"$deps"; then
  echo "python: kahuna-python pulls in the server tree:"; grep -E '^(kahuna-server|kahuna-testkit|librocksdb-sys|rusqlite|openraft) ' <<<"$deps"; exit 1
fi

B="$(mktemp -d /tmp/kahuna-python.XXXXXX)"
cleanup() { [ -n "${KAHUNA_KEEP_BUILD:-}" ] || rm -rf "$B"; }
trap cleanup EXIT

step "maturin build --release (wheel into $B/dist)"
t0=$(date +%s)
(cd python && "$VENV/bin/maturin" build --release --quiet -o "$B/dist")
echo "wheel built in $(( $(date +%s) - t0 )) s"
wheel=$(ls "$B"/dist/kahuna_client-*-cp39-abi3-*.whl)
echo "$wheel"
listing=$("$VENV/bin/python" -m zipfile -l "$wheel")
for f in kahuna/__init__.py kahuna/_client.pyi kahuna/_native.pyi kahuna/py.typed kahuna/_native.abi3.so; do
  grep -qF "$f" <<<"$listing" || { echo "python: the wheel lacks $f"; exit 1; }
done

step "fresh venv: pip install the wheel"
python3 -m venv "$B/venv"
"$B/venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$WHEELS" "$wheel" "${TESTS_PINS[@]}"

step "pytest (3-node clusters of $SERVER)"
# Run from outside the clone's python/ so only the installed wheel can be imported.
export KAHUNA_SERVER="$SERVER" KAHUNA_SAMPLES="$root/samples/python" KAHUNA_OVERHEAD_FILE="$B/overhead.txt"
(cd "$B" && timeout 900 "$B/venv/bin/python" -m pytest -p no:cacheprovider -q -rs --rootdir "$root/python/tests" "$root/python/tests")

step "mypy --strict on the tests and samples, against the installed package; stubtest of the stubs"
(cd "$B" && timeout 300 "$B/venv/bin/python" -m mypy --strict --no-incremental --cache-dir "$B/mypy-cache" \
  "$root/python/tests" "$root/samples/python")
(cd "$B" && timeout 300 "$B/venv/bin/python" -m mypy.stubtest kahuna --allowlist "$root/python/tests/stubtest-allowlist.txt")

[ -f "$B/overhead.txt" ] && cat "$B/overhead.txt"
echo "python: ok"
