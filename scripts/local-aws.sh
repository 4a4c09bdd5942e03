#!/usr/bin/env bash
# Local AWS for ninelives: moto's server with our emulator extensions
# (local/moto_launcher.py, described in local/README.md).
#
#   scripts/local-aws.sh start      start it in the background (idempotent)
#   scripts/local-aws.sh stop       stop it (no-op when not running)
#   scripts/local-aws.sh restart    stop, then start
#   scripts/local-aws.sh status     exit 0 when running, 1 when not
#   scripts/local-aws.sh env        export lines: eval "$(scripts/local-aws.sh env)"
#   scripts/local-aws.sh python     path of the virtualenv's python (creates it if needed)
#   scripts/local-aws.sh selftest   boto3 smoke test of the running server
#
# Environment: LOCAL_AWS_PORT (default 5000), LOCAL_AWS_PYTHON (python used to
# create the virtualenv, default python3), LOCAL_AWS_START_TIMEOUT (seconds,
# default 30), NINELIVES_EMULATOR_LOG (lifecycle-action log, default
# .local-aws/lifecycle-actions.jsonl). State lives in .local-aws/ at the repo
# root. Only `env` and `python` write to stdout; all messages go to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
STATE_DIR="$ROOT/.local-aws"
VENV="$STATE_DIR/venv"
VENV_PY="$VENV/bin/python"
REQUIREMENTS="$ROOT/local/requirements.txt"
LAUNCHER="$ROOT/local/moto_launcher.py"
SELFTEST="$ROOT/local/selftest.py"
STAMP="$VENV/.ninelives-requirements.sha256"
PID_FILE="$STATE_DIR/moto.pid"
LOG_FILE="$STATE_DIR/moto.log"
LOCK_FILE="$STATE_DIR/lock"
HOST=127.0.0.1
PORT="${LOCAL_AWS_PORT:-5000}"
START_TIMEOUT="${LOCAL_AWS_START_TIMEOUT:-30}"
STOP_TIMEOUT=10
LIFECYCLE_LOG="${NINELIVES_EMULATOR_LOG:-$STATE_DIR/lifecycle-actions.jsonl}"
ENDPOINT="http://$HOST:$PORT"

say() { printf 'local-aws: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) ||
  die "LOCAL_AWS_PORT must be a port number, got '$PORT'"
[[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "LOCAL_AWS_START_TIMEOUT must be whole seconds, got '$START_TIMEOUT'"

# One start/stop at a time (parallel CI steps): hold a lock while changing state.
take_lock() {
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "another local-aws.sh holds $LOCK_FILE for over 120 s"
  fi
}

# --- virtualenv -----------------------------------------------------------------

base_python() {
  local py="${LOCAL_AWS_PYTHON:-python3}"
  command -v "$py" >/dev/null 2>&1 || die "$py not found; install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    die "$py is $("$py" -c 'import sys; print(sys.version.split()[0])'); moto 5.2.5 needs Python 3.10 or newer (set LOCAL_AWS_PYTHON)"
  printf '%s\n' "$py"
}

# $@: packages. Runs apt-get update only when the install fails without it.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  say "installing $* with apt-get"
  if ! apt-get install -y -q "$@" >&2; then
    say "apt-get install failed; running apt-get update and trying again"
    apt-get update -q >&2 || die "apt-get update failed"
    apt-get install -y -q "$@" >&2 || die "apt-get install -y $* failed"
  fi
}

make_venv() {
  local py errors
  py="$(base_python)"
  errors="$STATE_DIR/venv-error.log"
  say "creating virtualenv $VENV with $py"
  if "$py" -m venv "$VENV" >"$errors" 2>&1; then
    rm -f "$errors"
    return
  fi
  rm -rf "$VENV"
  if grep -qiE 'ensurepip|venv|No module named' "$errors"; then
    # Debian names the exact package (python3.X-venv) when $py is not the default python3.
    local packages=(python3-venv) suggested
    suggested="$(grep -oE 'apt(-get)? install [A-Za-z0-9.+-]+-venv' "$errors" | head -n 1 | awk '{print $NF}')" || true
    [[ -n "$suggested" && "$suggested" != python3-venv ]] && packages+=("$suggested")
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      apt_install "${packages[@]}"
      if "$py" -m venv "$VENV" >"$errors" 2>&1; then
        rm -f "$errors"
        return
      fi
      rm -rf "$VENV"
    else
      cat "$errors" >&2
      die "$py cannot create a virtualenv: the venv/ensurepip module is missing. Install it (Debian/Ubuntu: sudo apt-get install ${packages[*]}) and run this again"
    fi
  fi
  cat "$errors" >&2
  die "'$py -m venv $VENV' failed (output above)"
}

requirements_hash() {
  sha256sum "$REQUIREMENTS" | cut -d' ' -f1
}

ensure_venv() {
  [[ -f "$REQUIREMENTS" ]] || die "$REQUIREMENTS is missing"
  if [[ -d "$VENV" ]] && ! "$VENV_PY" -c 'import sys' >/dev/null 2>&1; then
    say "virtualenv $VENV is broken; recreating it"
    rm -rf "$VENV"
  fi
  [[ -d "$VENV" ]] || make_venv
  local want
  want="$(requirements_hash)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    return
  fi
  say "installing $REQUIREMENTS into $VENV"
  rm -f "$STAMP"
  "$VENV_PY" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS" >&2 ||
    die "pip install -r $REQUIREMENTS failed (output above); fix it and run start again"
  printf '%s\n' "$want" >"$STAMP"
}

# --- process state --------------------------------------------------------------

pid_from_file() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  printf '%s\n' "$pid"
}

# Alive and not a zombie (a killed process whose parent has not reaped it yet).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [[ -r "/proc/$1/stat" ]]; then
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]] || return 1
  fi
  return 0
}

# Is pid $1 our launcher (and not a process that reused the pid)?
is_launcher() {
  local args
  if [[ -r "/proc/$1/cmdline" ]]; then
    args="$(tr '\0' ' ' <"/proc/$1/cmdline")"
  else
    args="$(ps -p "$1" -o args= 2>/dev/null || true)"
  fi
  [[ "$args" == *moto_launcher.py* ]]
}

# Prints the pid our launcher reports on the port, "foreign" for any other HTTP
# server there; fails when nothing answers.
probe() {
  [[ -x "$VENV_PY" ]] || return 1
  "$VENV_PY" - "$ENDPOINT" <<'PY'
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/_ninelives/info", timeout=2) as answer:
        info = json.load(answer)
except urllib.error.HTTPError:
    print("foreign")
    sys.exit(0)
except Exception:
    sys.exit(1)
print(info.get("pid") if info.get("launcher") == "ninelives-local-aws" else "foreign")
PY
}

# Running = the pid in the pid file is alive and answers on the port as itself.
running_pid() {
  local pid answer
  pid="$(pid_from_file)" || return 1
  alive "$pid" || return 1
  answer="$(probe)" || return 1
  [[ "$answer" == "$pid" ]] || return 1
  printf '%s\n' "$pid"
}

log_tail() {
  [[ -f "$LOG_FILE" ]] || return 0
  say "last lines of $LOG_FILE:"
  tail -n 25 "$LOG_FILE" >&2 || true
}

# --- commands ---------------------------------------------------------------------

cmd_start() {
  take_lock
  local pid answer
  if pid="$(running_pid)"; then
    say "already running (pid $pid) at $ENDPOINT; nothing to do"
    return 0
  fi
  if pid="$(pid_from_file)"; then
    if alive "$pid" && is_launcher "$pid"; then
      die "launcher pid $pid is alive but does not answer at $ENDPOINT (another LOCAL_AWS_PORT, or hung); run: scripts/local-aws.sh stop"
    fi
    say "removing stale pid file (pid $pid is gone)"
    rm -f "$PID_FILE"
  fi
  ensure_venv
  if answer="$(probe)"; then
    if [[ "$answer" == foreign ]]; then
      die "port $PORT already has another HTTP server; stop it or set LOCAL_AWS_PORT"
    fi
    die "another ninelives local AWS (pid $answer, not from $PID_FILE) answers at $ENDPOINT; stop it or set LOCAL_AWS_PORT"
  fi

  say "starting moto on $ENDPOINT (log: $LOG_FILE)"
  : >"$LOG_FILE"
  NINELIVES_EMULATOR_LOG="$LIFECYCLE_LOG" LOCAL_AWS_PORT="$PORT" PYTHONUNBUFFERED=1 \
    nohup "$VENV_PY" "$LAUNCHER" --host "$HOST" --port "$PORT" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"

  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      rm -f "$PID_FILE"
      log_tail
      die "the launcher exited during start-up (see $LOG_FILE)"
    fi
    if answer="$(probe)" && [[ "$answer" == "$pid" ]]; then
      say "running (pid $pid) at $ENDPOINT"
      say "lifecycle actions: $LIFECYCLE_LOG and $ENDPOINT/_ninelives/lifecycle-actions"
      say 'use it with: eval "$(scripts/local-aws.sh env)"'
      return 0
    fi
    sleep 0.2
  done
  log_tail
  kill -TERM "$pid" 2>/dev/null || true
  rm -f "$PID_FILE"
  die "no answer from $ENDPOINT within ${START_TIMEOUT} s (LOCAL_AWS_START_TIMEOUT); stopped pid $pid"
}

cmd_stop() {
  take_lock
  local pid answer
  if ! pid="$(pid_from_file)"; then
    rm -f "$PID_FILE"
    if answer="$(probe)" && [[ "$answer" != foreign ]]; then
      say "not running from this checkout (no $PID_FILE); a ninelives local AWS with pid $answer answers at $ENDPOINT, not touching it"
    else
      say "not running; nothing to stop"
    fi
    return 0
  fi
  if ! alive "$pid"; then
    rm -f "$PID_FILE"
    say "not running (pid $pid is gone); removed the stale pid file"
    return 0
  fi
  if ! is_launcher "$pid"; then
    rm -f "$PID_FILE"
    say "pid $pid is not the launcher (pid reused?); not killing it, removed the stale pid file"
    return 0
  fi
  say "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    say "pid $pid did not stop within ${STOP_TIMEOUT} s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    alive "$pid" && die "pid $pid survived KILL"
  fi
  rm -f "$PID_FILE"
  say "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    say "running (pid $pid) at $ENDPOINT"
    return 0
  fi
  if pid="$(pid_from_file)" && alive "$pid"; then
    say "not running: pid $pid is alive but does not answer at $ENDPOINT"
  else
    say "not running"
  fi
  return 1
}

cmd_env() {
  local region="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
  cat <<EOF
export AWS_ENDPOINT_URL='$ENDPOINT'
export NINELIVES_EMULATOR_URL='$ENDPOINT'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_REGION='$region'
export AWS_DEFAULT_REGION='$region'
export AWS_EC2_METADATA_DISABLED='true'
export NINELIVES_EMULATOR_LOG='$LIFECYCLE_LOG'
EOF
}

cmd_python() {
  take_lock
  ensure_venv
  printf '%s\n' "$VENV_PY"
}

cmd_selftest() {
  running_pid >/dev/null || die "not running at $ENDPOINT; run: scripts/local-aws.sh start"
  eval "$(cmd_env)"
  "$VENV_PY" "$SELFTEST"
}

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  env) cmd_env ;;
  python) cmd_python ;;
  selftest) cmd_selftest ;;
  -h | --help | help) usage ;;
  *)
    usage
    exit 2
    ;;
esac
