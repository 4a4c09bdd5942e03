#!/usr/bin/env bash
# The ninelives benchmarks in one command (bench/README.md):
#
#   bash bench/run.sh            full run (~75 min on 2 cores with a warm target/)
#   bash bench/run.sh --quick    small counts, a few minutes: checks the harness
#   bash bench/run.sh --arm64    also build every function for arm64 with
#                                cargo-lambda (scripts/lambda-build.sh) for the
#                                size table (~25 min more on an empty target)
#
# Any other arguments go to bench/bench.py (--help lists them). Installs what
# it needs: redis-server (apt, for the failover run) and the local AWS's
# virtualenv (moto, boto3: scripts/local-aws.sh python). Writes
# bench/results/RESULTS.md and results.json and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bench: %s\n' "$*" >&2; }

quick=() arm64=0 rest=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=(--runs 5 --scale-runs 1 --expired 500 --kept 50 --instances 10 --paced 12 --failover-runs 3) ;;
    --arm64) arm64=1 ;;
    *) rest+=("$arg") ;;
  esac
done

if ! command -v redis-server >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server with apt-get"
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends redis-server >&2
  else
    say "redis-server not found (the failover benchmark needs it): apt-get install redis-server"
    exit 1
  fi
fi
PY="$(scripts/local-aws.sh python)"
# The baseline runs in a venv holding only boto3 (as a Python Lambda has it),
# not the local AWS's, whose moto, Flask and pymongo would lengthen its path.
baseline_venv=.local-aws/bench-baseline-venv
if ! cmp -s bench/baseline/requirements.txt "$baseline_venv/requirements.txt" 2>/dev/null; then
  say "installing the baseline's boto3 (bench/baseline/requirements.txt)"
  rm -rf "$baseline_venv"
  python3 -m venv "$baseline_venv"
  "$baseline_venv/bin/pip" install -q --disable-pip-version-check -r bench/baseline/requirements.txt >&2
  cp bench/baseline/requirements.txt "$baseline_venv/requirements.txt"
fi

say "building the release binaries and the floor"
cargo build --release --locked \
  -p snapshot-volumes -p purge-snapshots -p lifecycle-hook -p redis-failover \
  -p mongo-endpoint -p replset-tasks -p publish-metrics -p ninelives-bench-floor
if ((arm64)); then
  say "building every function for arm64 with cargo-lambda"
  bash scripts/lambda-build.sh --arm64
fi

command="bash bench/run.sh"
if (($#)); then command+=$(printf ' %q' "$@"); fi
exec "$PY" bench/bench.py --python "$baseline_venv/bin/python" --command "$command" ${quick[@]+"${quick[@]}"} ${rest[@]+"${rest[@]}"}
