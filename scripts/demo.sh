#!/usr/bin/env bash
# The main job, end to end (README "Quickstart"): starts the local AWS with
# an empty account, builds the functions, creates a small fleet of tagged
# EBS volumes, replays the snapshot and purge events a real account would
# receive, and says in plain words what happened and what was kept.
#
# The local AWS keeps running afterwards so you can look around or replay
# more events; `scripts/local-aws.sh stop` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || { echo "demo.sh: cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

scripts/local-aws.sh restart
eval "$(AWS_REGION= AWS_DEFAULT_REGION= scripts/local-aws.sh env)"
echo "==> building the functions (the first build takes several minutes)" >&2
cargo build -q --bin replay
exec "$(scripts/local-aws.sh python)" scripts/demo.py
