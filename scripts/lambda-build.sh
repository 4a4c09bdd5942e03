#!/usr/bin/env bash
# Builds the Lambda bootstraps with cargo-lambda (README "Build"): the release
# profile, one zip per function and architecture, then a size table.
#
#   scripts/lambda-build.sh                       every function, arm64 and x86_64
#   scripts/lambda-build.sh --arm64               every function, arm64 only
#   scripts/lambda-build.sh --x86-64 --only purge-snapshots
#   scripts/lambda-build.sh --install-only        cargo-lambda and zig, nothing built
#
# Output, cargo-lambda's layout (`--lambda-dir`), one directory per architecture
# so that building both does not overwrite one with the other:
#   arm64   target/lambda/<function>/bootstrap.zip          (what `cargo lambda build --arm64` writes)
#   x86_64  target/lambda-x86_64/<function>/bootstrap.zip
# Each zip holds one executable, `bootstrap`, for the provided.al2023 runtime.
#
# Tools, installed when missing (idempotent; later runs take a second):
#   cargo-lambda  CARGO_LAMBDA_VERSION (default 1.9.2), from PyPI (the project's
#                 own wheel with the prebuilt binary, seconds) into a virtualenv
#                 in target/lambda-tools; CARGO_LAMBDA_FROM=crates builds it
#                 from crates.io with `cargo install --locked` instead (about
#                 10 minutes on 2 cores). A cargo-lambda already on PATH is used
#                 as it is.
#   zig           cargo-lambda links with zig (cargo-zigbuild), also for
#                 x86_64; the `ziglang` wheel (ZIGLANG_VERSION, default
#                 0.17.1, the version tested here), in the same virtualenv,
#                 unless `zig` is on PATH. cargo-lambda finds it as
#                 `python3 -m ziglang`, the virtualenv's python3 being first
#                 on PATH.
#   Rust targets  aarch64-unknown-linux-gnu, x86_64-unknown-linux-gnu (rustup).
# Needs Rust (rustup), Python 3 with venv and pip, and PyPI (or crates.io).
#
# Every function is built in its own cargo invocation, one after the other: the
# dependencies are compiled once per architecture and reused; each function's
# fat-LTO link then takes one core for a minute or more. LAMBDA_BUILD_JOBS sets
# cargo's --jobs (default: cargo's, one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_LAMBDA_VERSION="${CARGO_LAMBDA_VERSION:-1.9.2}"
ZIGLANG_VERSION="${ZIGLANG_VERSION:-0.17.1}"
CARGO_LAMBDA_FROM="${CARGO_LAMBDA_FROM:-pypi}"
TOOLS="$ROOT/target/lambda-tools"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'lambda-build.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

mapfile -t all_functions < <(find functions -mindepth 2 -maxdepth 2 -name Cargo.toml -printf '%h\n' | sed 's|^functions/||' | sort)
(( ${#all_functions[@]} > 0 )) || die "no function crates under functions/"

archs=()
functions=()
install_only=false
while (( $# > 0 )); do
  case "$1" in
    --arm64) archs+=(arm64) ;;
    --x86-64 | --x86_64) archs+=(x86_64) ;;
    --only)
      (( $# >= 2 )) || die "--only needs a function name (one of: ${all_functions[*]})"
      printf '%s\n' "${all_functions[@]}" | grep -qxF -- "$2" ||
        die "--only $2: no such function (one of: ${all_functions[*]})"
      functions+=("$2")
      shift
      ;;
    --install-only) install_only=true ;;
    -h | --help) usage 0 ;;
    *) printf 'lambda-build.sh: unknown argument %s\n' "$1" >&2; usage 2 ;;
  esac
  shift
done
(( ${#archs[@]} > 0 )) || archs=(arm64 x86_64)
(( ${#functions[@]} > 0 )) || functions=("${all_functions[@]}")
case "$CARGO_LAMBDA_FROM" in pypi | crates) ;; *) die "CARGO_LAMBDA_FROM must be pypi or crates, not $CARGO_LAMBDA_FROM" ;; esac

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"

# ---- tools -----------------------------------------------------------------

venv_ready() { [[ -x "$TOOLS/bin/python3" && -x "$TOOLS/bin/pip" ]]; }

make_venv() {
  venv_ready && return
  command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3 (Debian: apt-get install python3 python3-venv)"
  say "creating virtualenv $TOOLS for cargo-lambda and zig"
  rm -rf "$TOOLS"
  if ! python3 -m venv "$TOOLS" >/dev/null 2>&1; then
    rm -rf "$TOOLS"
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      say "installing python3-venv with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >&2 || die "apt-get update failed"
      apt-get install -y -q --no-install-recommends python3-venv >&2 || die "apt-get install python3-venv failed"
      python3 -m venv "$TOOLS" >&2 || die "python3 -m venv $TOOLS failed after installing python3-venv"
    else
      die "python3 cannot create a virtualenv (Debian/Ubuntu: sudo apt-get install python3-venv) and run this again"
    fi
  fi
}

pip_install() {
  make_venv
  say "pip install $*"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "$@" >&2 ||
    die "pip install $* failed (is PyPI reachable? pip's own settings, such as PIP_INDEX_URL, apply)"
}

# The virtualenv goes first on PATH: its cargo-lambda, and its python3 with
# the ziglang module, which is how cargo-lambda finds zig.
[[ -d "$TOOLS/bin" ]] && export PATH="$TOOLS/bin:$PATH"

have_cargo_lambda() { cargo lambda --version >/dev/null 2>&1; }
cargo_lambda_version() { cargo lambda --version 2>/dev/null | awk '{print $2}'; }

if ! have_cargo_lambda; then
  started=$(date +%s)
  case "$CARGO_LAMBDA_FROM" in
    pypi)
      # The wheel depends on ziglang (any version); pin the one tested here.
      pip_install "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
      ;;
    crates)
      say "cargo install cargo-lambda --locked --version $CARGO_LAMBDA_VERSION (from crates.io; about 10 minutes on 2 cores)"
      cargo install cargo-lambda --locked --version "$CARGO_LAMBDA_VERSION" >&2 ||
        die "cargo install cargo-lambda --locked --version $CARGO_LAMBDA_VERSION failed"
      ;;
  esac
  export PATH="$TOOLS/bin:$PATH"
  have_cargo_lambda || die "cargo-lambda installed but \`cargo lambda --version\` does not run (PATH: $PATH)"
  say "cargo-lambda $(cargo_lambda_version) installed in $(( $(date +%s) - started )) s"
fi
if [[ "$(cargo_lambda_version)" != "$CARGO_LAMBDA_VERSION" ]]; then
  say "note: using cargo-lambda $(cargo_lambda_version) from $(command -v cargo-lambda); tested with $CARGO_LAMBDA_VERSION"
fi

zig_version() {
  if command -v zig >/dev/null 2>&1; then
    zig version 2>/dev/null
  else
    python3 -m ziglang version 2>/dev/null
  fi
}
if [[ -z "$(zig_version)" ]]; then
  pip_install "ziglang==$ZIGLANG_VERSION"
  export PATH="$TOOLS/bin:$PATH"
  [[ -n "$(zig_version)" ]] || die "ziglang installed but \`python3 -m ziglang version\` does not run"
fi
zig=$(zig_version)
# zig 0.16.0's `ar` is reported to fail creating archives, which breaks C
# build scripts such as aws-lc-sys' under cargo-zigbuild (aws/aws-lc-rs#993).
if [[ "$zig" == 0.16.0 ]]; then
  say "warning: zig 0.16.0 on PATH is reported to break C build scripts (aws-lc-sys); if the build fails there, take it off PATH (this script then installs zig $ZIGLANG_VERSION)"
fi

triple() { case "$1" in arm64) echo aarch64-unknown-linux-gnu ;; x86_64) echo x86_64-unknown-linux-gnu ;; esac; }
lambda_dir() { case "$1" in arm64) echo target/lambda ;; x86_64) echo target/lambda-x86_64 ;; esac; }
flag() { case "$1" in arm64) echo --arm64 ;; x86_64) echo --x86-64 ;; esac; }

if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed 2>/dev/null || true)
  for arch in "${archs[@]}"; do
    t=$(triple "$arch")
    if ! grep -qx "$t" <<<"$installed"; then
      say "rustup target add $t"
      rustup target add "$t" >&2 || die "rustup target add $t failed"
    fi
  done
fi

say "cargo-lambda $(cargo_lambda_version), zig $zig, $(rustc --version)"
$install_only && exit 0

# ---- build -----------------------------------------------------------------

jobs=()
[[ -n "${LAMBDA_BUILD_JOBS:-}" ]] && jobs=(--jobs "$LAMBDA_BUILD_JOBS")
rows=()
for arch in "${archs[@]}"; do
  dir=$(lambda_dir "$arch")
  for fn in "${functions[@]}"; do
    say "cargo lambda build --release $(flag "$arch") --bin $fn --output-format zip --lambda-dir $dir"
    started=$(date +%s)
    rm -f "$dir/$fn/bootstrap.zip"
    cargo lambda build --release "$(flag "$arch")" --bin "$fn" --output-format zip \
      --lambda-dir "$dir" --locked "${jobs[@]}" ||
      die "cargo lambda build of $fn for $arch failed"
    seconds=$(( $(date +%s) - started ))
    rows+=("$arch $fn $dir/$fn/bootstrap.zip $seconds")
  done
done

# Check every zip (one executable named bootstrap, an ELF for the architecture)
# and print the table.
python3 - "${rows[@]}" <<'PY'
import os, struct, sys, zipfile

machines = {"arm64": 183, "x86_64": 62}  # ELF e_machine: EM_AARCH64, EM_X86_64
bad = []
print(f"{'function':<18} {'arch':<7} {'bootstrap':>10} {'zip':>10} {'build':>7}  path")
for row in sys.argv[1:]:
    arch, fn, path, seconds = row.split(" ")
    if not os.path.isfile(path):
        bad.append(f"{path}: missing")
        continue
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if names != ["bootstrap"]:
            bad.append(f"{path}: holds {names}, not only bootstrap")
            continue
        info = z.getinfo("bootstrap")
        head = z.open("bootstrap").read(20)
    if head[:4] != b"\x7fELF" or struct.unpack_from("<H", head, 18)[0] != machines[arch]:
        bad.append(f"{path}: bootstrap is not an {arch} ELF executable")
    if not (info.external_attr >> 16) & 0o111:
        bad.append(f"{path}: bootstrap is not executable")
    mib = lambda n: f"{n / 1048576:.1f} MiB"
    print(f"{fn:<18} {arch:<7} {mib(info.file_size):>10} {mib(os.path.getsize(path)):>10} {seconds:>6}s  {path}")
for b in bad:
    print(f"lambda-build.sh: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
