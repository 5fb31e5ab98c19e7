#!/bin/bash
# gantry/postgres entrypoint: the official postgres image's environment contract on Debian's
# postgresql package.
#   POSTGRES_PASSWORD          superuser password (required unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER              superuser name (default postgres)
#   POSTGRES_DB                database created on first start (default: POSTGRES_USER)
#   POSTGRES_INITDB_ARGS       extra initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  auth for TCP connections (default scram-sha-256)
#   PGDATA                     data directory (default /var/lib/postgresql/data)
# /docker-entrypoint-initdb.d/*.sql and *.sh run once, after the database is created.
# While initialising, the temporary server listens on a private socket only, so that
# `pg_isready` (the usual --health-cmd) says "no response" until the real server is up.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

say() { echo "gantry/postgres: $*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        say "error: database is uninitialized and the superuser password is not specified."
        say "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)."
        exit 1
    fi
    pwargs=()
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
        pwargs=(--pwfile="$pwfile")
    fi
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
    initdb -D "$PGDATA" --username="$user" --auth-local=trust --auth-host="$auth" \
        "${pwargs[@]}" ${POSTGRES_INITDB_ARGS:-} >/dev/null
    if [ -n "${pwfile:-}" ]; then rm -f "$pwfile"; fi
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

    sock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k $sock" -w -s start
    psql_init=(psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -U "$user")
    if [ "$db" != postgres ]; then
        "${psql_init[@]}" -d postgres -c "CREATE DATABASE \"${db//\"/\"\"}\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) say "running $f"; "${psql_init[@]}" -d "$db" -f "$f" ;;
            *.sh) say "running $f"; PGHOST=$sock PGUSER=$user PGDATABASE=$db bash "$f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w -s stop
    rmdir "$sock" 2>/dev/null || true
    say "initialised $PGDATA (user $user, database $db, host auth $auth)"
fi

shift
exec postgres -c listen_addresses='*' "$@"
