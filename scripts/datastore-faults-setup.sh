#!/usr/bin/env bash
# Prepares the machine for tests/datastore_faults.rs (issue 9, data-store
# faults): real redis-server and PostgreSQL processes, and nftables for the
# network partitions between Redis nodes (a table of the test's own,
# nl9c_<pid>_<n>, dropping packets between two loopback addresses of
# 127.0.13.2-9; deleted when the test ends, even when it fails).
#
# Idempotent: installs only what is missing (Debian packages nftables,
# redis-server, postgresql without a cluster of its own, as scripts/test.sh
# does), then checks that an nftables table can be made and removed here.
# Partitions need root (CAP_NET_ADMIN): run as root, as CI does. Exits
# non-zero, saying why, when something cannot be had.
#
# Usage: scripts/datastore-faults-setup.sh   (then cargo test -p
# ninelives-tests --test datastore_faults with the local AWS env)
set -euo pipefail

say() { printf 'datastore-faults-setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ "$(id -u)" == 0 ]] || die "run as root: the partition tests add nftables rules (CAP_NET_ADMIN)"

updated=0
install() {
  command -v apt-get >/dev/null 2>&1 || die "$1 is missing and there is no apt-get to install it"
  if (( updated == 0 )); then
    say "apt-get update"
    apt-get update -q >&2 || die "apt-get update failed"
    updated=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
    die "apt-get install -y --no-install-recommends $* failed"
}

command -v nft >/dev/null 2>&1 || install nftables
command -v redis-server >/dev/null 2>&1 || install redis-server

pg_bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1; }
pg_dir=$(pg_bindir)
if [[ -z "$pg_dir" || ! -x "$pg_dir/initdb" || ! -x "$pg_dir/postgres" ]]; then
  # The tests start their own servers; the package must not start one of its own.
  install postgresql-common
  sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf ||
    die "cannot turn off create_main_cluster in /etc/postgresql-common/createcluster.conf"
  install postgresql
  pg_dir=$(pg_bindir)
  [[ -n "$pg_dir" && -x "$pg_dir/postgres" ]] || die "no PostgreSQL under /usr/lib/postgresql/*/bin after installing it"
fi
getent passwd postgres >/dev/null || die "no user postgres (the postgresql package creates it); the tests run PostgreSQL as that user"

# The kernel and nft must accept a table of ours: made and removed at once.
probe="nl9c_setup_$$"
nft add table ip "$probe" 2>/dev/null ||
  die "nft cannot add a table here (no nf_tables in this kernel, or no CAP_NET_ADMIN in this container)"
nft delete table ip "$probe" || die "nft could not remove the probe table $probe"

# Tables left by a test process that was killed would still cut links
# between the tests' addresses: no test runs now, so every one of ours goes.
for table in $(nft list tables ip 2>/dev/null | awk '$3 ~ /^nl9c_/ {print $3}'); do
  nft delete table ip "$table" || die "nft could not remove the stale table $table"
  say "removed the stale table $table"
done

say "ready: nft $(nft --version | awk '{print $2}'), $(redis-server --version | grep -Eo 'v=[0-9.]+'), PostgreSQL $("$pg_dir/postgres" --version | awk '{print $3}')"
