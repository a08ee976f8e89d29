#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests and prints its libpq
# URL on the last line of standard output:
#
#   url=$(bash scripts/start-postgres.sh | tail -n 1)
#   export PWB_TEST_POSTGRES=$url
#   ...
#   bash scripts/start-postgres.sh --stop
#
# The server lives in a fresh folder under /tmp (PWB_PG_DIR to choose it),
# listens on a unix socket in that folder and on 127.0.0.1:PORT (PWB_PG_PORT,
# default 54329), and has one database, `pwb_test`. Run as root, it runs
# initdb and postgres as the `postgres` user (PostgreSQL refuses to run as
# root); run as anyone else, as that user. The binaries come from
# PWB_PG_BIN, else /usr/lib/postgresql/15/bin, else pg_config --bindir.
set -euo pipefail

dir=${PWB_PG_DIR:-/tmp/pwb-postgres}
port=${PWB_PG_PORT:-54329}
bin=${PWB_PG_BIN:-}
if [ -z "$bin" ]; then
	if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
		bin=/usr/lib/postgresql/15/bin
	elif command -v pg_config >/dev/null; then
		bin=$(pg_config --bindir)
	fi
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
	echo "start-postgres: no PostgreSQL server binaries found (install the" \
		"postgresql package, or set PWB_PG_BIN)" >&2
	exit 1
fi

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

if [ "${1:-}" = "--stop" ]; then
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
		echo "start-postgres: stopped the server in $dir" >&2
	fi
	rm -rf "$dir"
	exit 0
fi

if [ -f "$dir/data/postmaster.pid" ]; then
	as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
fi
rm -rf "$dir"
mkdir -p "$dir"
if [ "$(id -u)" -eq 0 ]; then
	chown postgres: "$dir"
fi
as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
	--no-locale >"$dir/initdb.log" 2>&1 || {
	echo "start-postgres: initdb failed; see $dir/initdb.log" >&2
	exit 1
}
# fsync stays on: the crash tests rely on commits being durable.
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
	-o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=100" \
	start >/dev/null || {
	echo "start-postgres: the server did not start; see $dir/server.log" >&2
	exit 1
}
as_owner "$bin/createdb" -h "$dir" -p "$port" -U postgres pwb_test
echo "start-postgres: server running in $dir (stop: bash $0 --stop)" >&2
echo "postgresql://postgres@127.0.0.1:$port/pwb_test"
