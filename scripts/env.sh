# shellcheck shell=bash disable=SC2034
# Sourced by the scripts: one build cache outside the clone, shared by every run,
# so RocksDB's C++ build (~12 minutes on 2 cores) happens once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${KAHUNA_CACHE_DIR:-$HOME/.cache/kahuna}/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Always the same package selection and profile, so the cache is reused.
KAHUNA_BIN="$CARGO_TARGET_DIR/debug"
build_workspace() {
  cargo build --workspace --all-targets
}
