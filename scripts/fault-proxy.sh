#!/usr/bin/env bash
# The fault-injecting proxy in front of the local AWS (local/faults/addon.py,
# described in local/faults/README.md). Idempotent; exits non-zero on failure.
#
#   scripts/fault-proxy.sh install   create .local-aws/faults-venv with mitmproxy
#                                    (apt-get installs python3-venv if missing)
#   scripts/fault-proxy.sh mitmdump  print the path of the venv's mitmdump (installs first)
#   scripts/fault-proxy.sh run PORT  run the proxy in the foreground on 127.0.14.2:PORT
#                                    in front of $AWS_ENDPOINT_URL (for manual use)
#
# The tests (tests/aws_faults.rs) start their own proxies; they find mitmdump
# through NINELIVES_MITMDUMP or at .local-aws/faults-venv/bin/mitmdump.
# Environment: FAULTS_PYTHON (python used to create the venv, default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.local-aws/faults-venv"
REQUIREMENTS="$ROOT/local/faults/requirements.txt"
STAMP="$VENV/.ninelives-requirements.sha256"

say() { printf 'fault-proxy: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

make_venv() {
  local py="${FAULTS_PYTHON:-python3}"
  command -v "$py" >/dev/null 2>&1 || die "$py not found (Debian: apt-get install python3 python3-venv)"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    die "$py is older than 3.10; mitmproxy 11.0.2 needs 3.10 or newer (set FAULTS_PYTHON)"
  mkdir -p "$(dirname "$VENV")"
  if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 ||
      die "$py -m venv failed; install python3-venv (sudo apt-get install python3-venv) and run again"
    say "installing python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q python3-venv >&2 || die "apt-get install python3-venv failed"
    "$py" -m venv "$VENV" >&2 || die "$py -m venv $VENV failed"
  fi
}

install() {
  [[ -f "$REQUIREMENTS" ]] || die "$REQUIREMENTS is missing"
  if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "$VENV is broken; recreating it"
    rm -rf "$VENV"
  fi
  [[ -d "$VENV" ]] || make_venv
  local want
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    return 0
  fi
  say "installing $REQUIREMENTS into $VENV"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS" >&2 ||
    die "pip install -r $REQUIREMENTS failed (output above)"
  "$VENV/bin/mitmdump" --version >/dev/null || die "mitmdump does not run after the install"
  printf '%s\n' "$want" >"$STAMP"
  say "ready: $VENV/bin/mitmdump"
}

case "${1:-}" in
  install) install ;;
  mitmdump)
    install
    printf '%s\n' "$VENV/bin/mitmdump"
    ;;
  run)
    [[ "${2:-}" =~ ^[0-9]+$ ]] || die "usage: scripts/fault-proxy.sh run PORT"
    [[ -n "${AWS_ENDPOINT_URL:-}" ]] || die "AWS_ENDPOINT_URL is not set: eval \"\$(scripts/local-aws.sh env)\" first"
    install
    exec "$VENV/bin/mitmdump" -q --mode "reverse:$AWS_ENDPOINT_URL" --listen-host 127.0.14.2 \
      --listen-port "$2" --set connection_strategy=lazy -s "$ROOT/local/faults/addon.py"
    ;;
  *)
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
