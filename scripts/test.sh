#!/usr/bin/env bash
# The test command (README "Quickstart", and what .ci/run calls): installs
# what the checks need, then runs every check CI runs:
#   cargo fmt --check, cargo clippy -D warnings, the local AWS (moto) with
#   its extension self-test, and every test of the workspace against it.
#
# Needs Rust (rustup) and Python 3 on a Debian-like machine; as root it
# installs missing Debian packages itself (python3-venv for the local AWS,
# redis-server for the Redis adapter and chain tests).
# The local AWS is restarted so every run starts from an empty account, and
# stopped at the end.
set -euo pipefail

# One run at a time on a machine: the tests use fixed loopback addresses
# and ports (tests/support/redis.rs), and so do the fault proxies and the
# secrets check, so a second run beside this one (another clone, a
# developer's run beside CI) would reach this run's servers. The script
# runs again under flock(1); `-o` keeps the lock in flock itself, so no
# server this run starts in the background can hold it after the run.
if [[ -z "${NINELIVES_SUITE_LOCK:-}" ]]; then
  export NINELIVES_SUITE_LOCK="${TMPDIR:-/tmp}/ninelives-suite.lock"
  self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
  if ! flock -n "$NINELIVES_SUITE_LOCK" true; then
    printf '==> waiting for another scripts/test.sh on this machine to end (it holds %s)\n' "$NINELIVES_SUITE_LOCK" >&2
  fi
  status=0
  flock -o -w 3600 -E 75 "$NINELIVES_SUITE_LOCK" bash "$self" "$@" || status=$?
  if [[ $status == 75 ]]; then
    printf 'test.sh: another scripts/test.sh has held %s for an hour\n' "$NINELIVES_SUITE_LOCK" >&2
  fi
  exit "$status"
fi
cd "$(dirname "$0")/.."

started=$(date +%s)
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup component list --installed 2>/dev/null || true)
  for component in rustfmt clippy; do
    if ! grep -q "^$component" <<<"$installed"; then
      say "installing the $component component"
      rustup component add "$component"
    fi
  done
fi

# The Redis tests start their own redis-server processes (127.0.0.2 and up,
# ports 17000 and up, see tests/support/redis.rs). If the Debian package
# starts its own service, that one listens on 127.0.0.1:6379 and is left
# alone: no test uses it. FAILOVER needs Redis 6.2 or newer.
if ! command -v redis-server >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends redis-server >&2 ||
      die "apt-get install -y --no-install-recommends redis-server failed"
  else
    die "redis-server not found: install Redis 6.2 or newer (Debian/Ubuntu: sudo apt-get install redis-server) and run this again"
  fi
fi
redis_version=$(redis-server --version | grep -Eo 'v=[0-9]+\.[0-9]+' | cut -d= -f2)
[[ -n "$redis_version" ]] || die "cannot tell the version of $(command -v redis-server)"
IFS=. read -r redis_major redis_minor <<<"$redis_version"
(( redis_major > 6 || (redis_major == 6 && redis_minor >= 2) )) ||
  die "$(command -v redis-server) is Redis $redis_version; the tests need 6.2 or newer (FAILOVER)"

# The PostgreSQL tests start their own servers (a primary and a streaming
# replica on 127.0.0.2 and up, ports 17300-17399, see
# tests/support/postgres.rs) with the newest binaries under
# /usr/lib/postgresql/<version>/bin; as root they run them as the user
# postgres, which the package creates. The package would also create and
# start a cluster of its own on port 5432; no test needs one, so
# postgresql-common is installed first and told not to create it.
# pg_backup_start (backup mode) needs PostgreSQL 15 or newer.
pg_bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1; }
pg_dir=$(pg_bindir)
if [[ -z "$pg_dir" || ! -x "$pg_dir/initdb" || ! -x "$pg_dir/postgres" || ! -x "$pg_dir/pg_basebackup" ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing postgresql with apt-get (without a cluster of its own)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends postgresql-common >&2 ||
      die "apt-get install -y --no-install-recommends postgresql-common failed"
    sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf ||
      die "cannot turn off create_main_cluster in /etc/postgresql-common/createcluster.conf"
    apt-get install -y -q --no-install-recommends postgresql >&2 ||
      die "apt-get install -y --no-install-recommends postgresql failed"
    pg_dir=$(pg_bindir)
  else
    die "PostgreSQL not found under /usr/lib/postgresql/*/bin: install PostgreSQL 15 or newer (Debian/Ubuntu: sudo apt-get install postgresql) and run this again"
  fi
fi
[[ -n "$pg_dir" && -x "$pg_dir/postgres" ]] || die "no postgres binary under /usr/lib/postgresql/*/bin after installing postgresql"
pg_major=$("$pg_dir/postgres" --version | grep -Eo '[0-9]+' | head -n 1)
[[ -n "$pg_major" ]] || die "cannot tell the version of $pg_dir/postgres"
(( pg_major >= 15 )) ||
  die "$pg_dir/postgres is PostgreSQL $pg_major; the tests need 15 or newer (pg_backup_start)"
if [[ "$(id -u)" == 0 ]] && ! id postgres >/dev/null 2>&1; then
  die "running as root, the PostgreSQL tests run their servers as the user postgres (PostgreSQL refuses root), and there is none: reinstall the postgresql package, or run as another user"
fi

# The data-store fault tests (tests/datastore_faults.rs) cut links between
# loopback addresses with nftables tables of their own: install nftables and
# check a table can be made here (root).
scripts/datastore-faults-setup.sh || die "scripts/datastore-faults-setup.sh failed"

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --workspace --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "starting the local AWS"
# A port of its own, so a demo or another checkout's server on the default
# port neither blocks the tests nor gets its state changed by them.
if [[ -z "${LOCAL_AWS_PORT:-}" ]]; then
  LOCAL_AWS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export LOCAL_AWS_PORT
fi
scripts/local-aws.sh restart
trap 'scripts/local-aws.sh stop || true' EXIT
eval "$(scripts/local-aws.sh env)"
scripts/local-aws.sh selftest

# The MongoDB tests play their replica sets with local/mongo_peer.py (no
# mongod is installable here); its own checks run first, on the local-AWS
# venv's Python, which has mockupdb and pymongo from local/requirements.txt.
say "MongoDB wire-protocol peer self-test"
"$(scripts/local-aws.sh python)" local/mongo_peer_selftest.py

# The deployable template (infra/README.md): cfn-lint, checkov (its
# accepted findings are listed in infra/README.md), the template and alarm
# tests (infra/tests, two of them run the real SAM transform), and the IAM
# policy evaluation (infra/tests/policy, @cloud-copilot/iam-simulate on
# Node 18+). The tools live in a venv of their own, rebuilt when
# infra/requirements.txt changes.
say "infra checks"
infra_venv=.local-aws/infra-venv
if ! cmp -s infra/requirements.txt "$infra_venv/requirements.txt" 2>/dev/null; then
  say "installing cfn-lint and checkov (infra/requirements.txt)"
  rm -rf "$infra_venv"
  python3 -m venv "$infra_venv" || die "python3 -m venv $infra_venv failed (Debian: apt-get install python3-venv)"
  "$infra_venv/bin/pip" install -q --disable-pip-version-check -r infra/requirements.txt >&2 ||
    die "pip install -r infra/requirements.txt failed"
  cp infra/requirements.txt "$infra_venv/requirements.txt"
fi
"$infra_venv/bin/cfn-lint" infra/template.yaml infra/alarms.yaml
# --skip-download: checkov would otherwise try to reach Prisma Cloud.
"$infra_venv/bin/checkov" -f infra/template.yaml --framework cloudformation --quiet --compact --skip-download
"$infra_venv/bin/python" -m unittest discover -s infra/tests
node_major=$(node --version 2>/dev/null | grep -Eo '^v[0-9]+' | tr -d v || true)
if [[ -z "$node_major" ]] || (( node_major < 18 )) || ! command -v npm >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing nodejs and npm with apt-get (the IAM policy tests need Node 18+)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends nodejs npm >&2 ||
      die "apt-get install -y --no-install-recommends nodejs npm failed"
  else
    die "Node.js 18 or newer with npm not found: install it (Debian/Ubuntu: sudo apt-get install nodejs npm) and run this again"
  fi
fi
# selftest.mjs weakens the template seven ways and checks each is caught.
(cd infra/tests/policy && npm ci --no-audit --no-fund --loglevel=error >&2 && node run.mjs && node selftest.mjs)

# The AWS fault matrix (tests/aws_faults.rs) puts a fault-injecting
# mitmproxy in front of the local AWS; it lives in a venv of its own
# (.local-aws/faults-venv, local/faults/requirements.txt), rebuilt when the
# pinned requirements change.
say "fault proxy (mitmproxy) venv"
scripts/fault-proxy.sh install || die "scripts/fault-proxy.sh install failed"

say "cargo test --workspace"
log=$(mktemp)
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
rm -f "$log"

# The benchmark harness (bench/README.md) on debug builds and tiny counts:
# it must run end to end and both contestants of each scale run must leave
# exactly the expected snapshots (--strict). No figure is judged here; the
# figures come from `bash bench/run.sh`.
say "benchmark harness check (debug builds, tiny counts, results compared)"
bench_out=$(mktemp -d)
if cargo build -q --locked -p purge-snapshots -p snapshot-volumes -p ninelives-bench-floor &&
  "$(scripts/local-aws.sh python)" bench/bench.py --target target/debug --functions purge-snapshots,snapshot-volumes \
    --only cold,purge,paced,snapshot --runs 2 --scale-runs 1 --expired 60 --kept 12 --paced 6 \
    --instances 4 --per-instance 3 --latencies 0,2 --out "$bench_out" --strict >/dev/null; then
  say "benchmark harness check passed"
else
  say "benchmark harness check FAILED"
  (( status != 0 )) || status=1
fi
rm -rf "$bench_out"

# Hostile input (README "Reliability"): the malformed-event corpus
# (tests/hostile/) through every function's debug binary under a minimal
# Lambda Runtime API (no panic, an error posted, the process alive), then
# every cargo fuzz target (fuzz/, stable Rust, --sanitizer none) for
# FUZZ_SECONDS each (default 60) from the committed corpus; any crash, panic,
# timeout or OOM fails it. From a fresh clone the fuzz build is the long part
# (about 10-17 minutes on 2 cores); fuzz/target is reused afterwards.
say "hostile input: process check and cargo fuzz (${FUZZ_SECONDS:-60} s per target)"
if FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh; then
  say "fuzz.sh passed"
else
  say "fuzz.sh FAILED"
  (( status != 0 )) || status=1
fi

# No credential in any output (README "Reliability"): a full demo run of all
# seven functions with sentinel credentials given by reference (SSM, Secrets
# Manager) and RUST_LOG=debug; any sentinel, user:password@ or the AWS secret
# key in its output, logs or notifications fails it. It starts its own local
# AWS (port 5301) and stops it; bounded at 360 s.
say "secrets check (no credential in a full demo run's output)"
if scripts/secrets-check.sh; then
  say "secrets check passed"
else
  say "secrets check FAILED"
  (( status != 0 )) || status=1
fi

# ---- Lambda build check (README "Build") -----------------------------------
# One function built the way a deploy builds it: cargo-lambda, release
# profile, cross-compiled for arm64 (the template's default) with zig.
# scripts/lambda-build.sh installs cargo-lambda and zig (PyPI wheels, into
# target/lambda-tools) and the aarch64 Rust target when missing; then the zip
# must hold an aarch64 ELF named bootstrap. From an empty target directory
# this costs about 11 minutes on 2 cores (dependencies in release mode for
# aarch64, then the fat-LTO link), and up to 9 GB of memory; later runs reuse
# target/aarch64-unknown-linux-gnu. NINELIVES_SKIP_LAMBDA_BUILD=1 skips it
# (local runs only: CI runs it).
if [[ "${NINELIVES_SKIP_LAMBDA_BUILD:-}" == 1 ]]; then
  say "Lambda build check skipped (NINELIVES_SKIP_LAMBDA_BUILD=1)"
else
  say "Lambda build check: purge-snapshots for arm64 with cargo-lambda"
  lambda_started=$(date +%s)
  # lambda-build.sh itself fails unless the zip holds only an executable
  # aarch64 ELF named bootstrap.
  if scripts/lambda-build.sh --arm64 --only purge-snapshots; then
    say "Lambda build check passed in $(( $(date +%s) - lambda_started )) s"
  else
    say "Lambda build check FAILED"
    (( status != 0 )) || status=1
  fi
fi
# ---- end of the Lambda build check -----------------------------------------

say "tests: $passed passed, $failed failed; $(( $(date +%s) - started )) s in all"
exit "$status"
