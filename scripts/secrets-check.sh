#!/usr/bin/env bash
# The credential leak check (issue 9, part 5): a full demo run (all seven
# functions through tools/replay) with sentinel credentials configured by
# reference (SSM, Secrets Manager), a sentinel AWS secret key and
# RUST_LOG=debug, failing if any sentinel or any user:password@ connection
# string appears in anything it printed, logged or published. Details:
# scripts/secrets_check.py.
#
#   scripts/secrets-check.sh            (from anywhere; idempotent)
#
# Needs: cargo, redis-server and redis-cli (installed with apt-get when
# missing and run as root), the local AWS venv (scripts/local-aws.sh makes
# it). Uses region ca-west-1, its own local AWS on port 5301
# (SECRETS_CHECK_AWS_PORT), Redis on 127.0.12.2-127.0.12.4 port 17630 and the
# MongoDB peer on 127.0.12.2-127.0.12.5. Bounded: the demo is given
# SECRETS_CHECK_TIMEOUT_SECONDS (default 300); about a minute once built.
# Exit 0 clean, 1 a leak or a failure (the capture is kept and named).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "secrets-check: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "secrets-check: installing redis-server with apt-get" >&2
    apt-get update -q >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >&2 ||
      die "apt-get install redis-server failed"
    # Debian starts a system redis on 127.0.0.1:6379; the check needs none.
    { systemctl disable --now redis-server || service redis-server stop; } >/dev/null 2>&1 || true
  else
    die "redis-server and redis-cli not found: install them (Debian/Ubuntu: sudo apt-get install redis-server)"
  fi
fi

python="$(scripts/local-aws.sh python)" || die "scripts/local-aws.sh python failed (the local AWS venv)"
echo "secrets-check: building tools/replay" >&2
cargo build -q --locked --bin replay || die "cargo build --bin replay failed"
# The whole check: the demo's own bound (SECRETS_CHECK_TIMEOUT_SECONDS,
# default 300) plus up to 60 s for the local AWS to start and the rest.
exec timeout --kill-after=10 $(( ${SECRETS_CHECK_TIMEOUT_SECONDS:-300} + 120 )) "$python" scripts/secrets_check.py "$@"
