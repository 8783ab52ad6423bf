# shellcheck shell=bash disable=SC2034
# Sourced by the scripts: one build cache outside the clone, shared by every run,
# so RocksDB's C++ build (~12 minutes on 2 cores) happens once per machine.
# A linked git worktree gets a cache of its own: cargo names a workspace crate's
# artifacts without its source path, so two checkouts sharing one target directory
# overwrite each other's crates and binaries and then see them as up to date.
kahuna_cache="${KAHUNA_CACHE_DIR:-$HOME/.cache/kahuna}"
kahuna_git_dir="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --absolute-git-dir 2>/dev/null || true)"
case "$kahuna_git_dir" in
  */worktrees/*) kahuna_cache="$kahuna_cache-$(basename "$kahuna_git_dir")" ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$kahuna_cache/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Always the same package selection and profile, so the cache is reused.
KAHUNA_BIN="${KAHUNA_BIN:-$CARGO_TARGET_DIR/debug}"
build_workspace() {
  cargo build --workspace --all-targets
}
