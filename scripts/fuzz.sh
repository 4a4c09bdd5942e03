#!/usr/bin/env bash
# Hostile input beyond the in-process test (tests/hostile.rs), in two steps;
# CI runs both, each can be run alone:
#
#   1. process check: each function's debug binary under a minimal Lambda
#      Runtime API (tests/hostile/process_check.py), fed every case of the
#      hostile corpus, bodies that are not JSON included: an error (or a
#      batch answer) must be posted for each, no "panicked" on stderr, and
#      the process must ask for its next event afterwards;
#   2. cargo fuzz: every target in fuzz/ (one per function's event parsing)
#      for FUZZ_SECONDS (default 60) each, from the committed seed corpus
#      fuzz/corpus/<target>/. New corpus entries go to a temporary
#      directory, never into the repository. Any crash, panic, timeout or
#      out-of-memory fails the run and the reproducer's path is printed
#      (fuzz/artifacts/<target>/, kept for CI to archive).
#
# Stable Rust only: cargo-fuzz runs with `--sanitizer none` (see
# fuzz/README.md for why that is the sound choice here), so no nightly and
# no RUSTC_BOOTSTRAP. Installs what it needs when missing: cargo-fuzz
# (pinned, cargo install --locked) and, as root, g++ (libFuzzer is C++).
#
# Usage: scripts/fuzz.sh [--process-only | --fuzz-only]
# Environment: FUZZ_SECONDS (per target, default 60); FUZZ_EXTRA_ARGS, more
# libFuzzer options (e.g. -malloc_limit_mb=1 shows what a finding looks
# like); FUZZ_TARGETS, a space-separated subset; CARGO_TARGET_DIR is
# honoured for the debug binaries of step 1 and ignored by step 2, which
# builds in fuzz/target (other flags, so nothing would be shared).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUNCTIONS=(snapshot-volumes purge-snapshots lifecycle-hook redis-failover mongo-endpoint replset-tasks publish-metrics)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'fuzz.sh: %s\n' "$*" >&2; exit 1; }

steps=both
case "${1:-}" in
  "") ;;
  --process-only) steps=process ;;
  --fuzz-only) steps=fuzz ;;
  *) die "unknown argument ${1}: expected --process-only or --fuzz-only" ;;
esac
[[ "$FUZZ_SECONDS" =~ ^[0-9]+$ ]] && (( FUZZ_SECONDS > 0 )) || die "FUZZ_SECONDS=$FUZZ_SECONDS is not a positive number of seconds"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
started=$(date +%s)

if [[ "$steps" != fuzz ]]; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found (the process check's Runtime API is Python)"
  say "process check: building the functions' debug binaries"
  packages=()
  for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
  cargo build --locked -q "${packages[@]}"
  target_dir=${CARGO_TARGET_DIR:-target}
  say "process check: every hostile case through each binary"
  python3 tests/hostile/process_check.py --target "$target_dir/debug" || die "process check failed (above)"
fi

if [[ "$steps" != process ]]; then
  if ! command -v c++ >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      say "installing g++ with apt-get (libFuzzer is built from C++)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >&2 || die "apt-get update failed"
      apt-get install -y -q --no-install-recommends g++ >&2 || die "apt-get install -y --no-install-recommends g++ failed"
    else
      die "no C++ compiler (c++): install g++ (Debian/Ubuntu: sudo apt-get install g++) and run this again"
    fi
  fi
  installed=$(cargo fuzz --version 2>/dev/null || true)
  if [[ "$installed" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (found: ${installed:-none})"
    cargo install --locked --force cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi

  cd fuzz
  # The fuzz workspace's own target directory: its flags differ from the
  # main workspace's, so a shared one would only rebuild both in turn.
  unset CARGO_TARGET_DIR
  targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
  [[ -n "$targets" ]] || die "cargo fuzz list found no targets"
  say "building the fuzz targets (release, debug assertions, --sanitizer none)"
  build_started=$(date +%s)
  cargo fuzz build --sanitizer none
  say "fuzz targets built in $(( $(date +%s) - build_started )) s"

  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  failed=()
  for target in $targets; do
    [[ -d "corpus/$target" ]] || die "fuzz/corpus/$target is missing: every target has a committed seed corpus"
    mkdir -p "$scratch/$target" "artifacts/$target"
    say "fuzzing $target for $FUZZ_SECONDS s"
    # The first directory receives new entries (scratch); the committed
    # corpus is only read. -timeout: one input taking 10 s is a hang;
    # -rss_limit_mb: a parser needing 2 GiB is a finding too.
    if ! cargo fuzz run --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$target/" -print_final_stats=1 ${FUZZ_EXTRA_ARGS:-} >"$scratch/$target.log" 2>&1; then
      tail -n 40 "$scratch/$target.log" >&2
      for artifact in "artifacts/$target"/*; do
        [[ -e "$artifact" ]] || continue
        say "reproducer: fuzz/$artifact (run: cd fuzz && cargo fuzz run --sanitizer none $target $artifact)"
      done
      failed+=("$target")
      continue
    fi
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE' "$scratch/$target.log" | tr '\n' ' ' >&2 || true
    echo >&2
  done
  (( ${#failed[@]} == 0 )) || die "fuzz targets failed: ${failed[*]} (reproducers above, under fuzz/artifacts/)"
fi
say "fuzz.sh passed in $(( $(date +%s) - started )) s"
