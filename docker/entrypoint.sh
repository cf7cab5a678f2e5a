#!/usr/bin/env bash
# Container entrypoint: check the configuration, wait (bounded) for the database,
# apply migrations, then run the command: `scheduler` (the default), `etl …`, or
# anything else as given.
#   ETL_DB_WAIT_SECONDS  how long to wait for the database (default 60)
#   ETL_SKIP_MIGRATE=1   do not apply migrations (another container does it)
set -euo pipefail

wait_seconds="${ETL_DB_WAIT_SECONDS:-60}"
if ! [[ "$wait_seconds" =~ ^[0-9]+$ ]]; then
    echo "entrypoint: ETL_DB_WAIT_SECONDS must be a whole number of seconds, got '$wait_seconds'" >&2
    exit 2
fi

require() {
    local name
    for name in "$@"; do
        if [ -z "${!name:-}" ]; then
            echo "entrypoint: $name is required ($REQUIRED_BECAUSE) — set it in .env or with -e $name=…" >&2
            exit 2
        fi
    done
}

if [ -z "${DATABASE_URL:-}" ] && [ -z "${DB_HOST:-}" ]; then
    echo "entrypoint: DATABASE_URL is required (or DB_HOST with DB_NAME, DB_USER, DB_PASSWORD): the" \
         "container has no embedded database — set it in .env or with -e DATABASE_URL=postgresql://…" >&2
    exit 2
fi
if [ -z "${DATABASE_URL:-}" ]; then
    REQUIRED_BECAUSE="DB_HOST is set without DATABASE_URL"
    require DB_NAME DB_USER
fi
if [ "${1:-}" = "etl" ] && [ "${2:-}" = "worker" ]; then
    REQUIRED_BECAUSE="the worker takes its requests from Kafka"
    require KAFKA_BOOTSTRAP_SERVERS
fi

# `etl migrate` both proves the database answers and applies pending migrations;
# it exits 1 while the database is unreachable and 2 for a setting it cannot use.
deadline=$((SECONDS + wait_seconds))
if [ "${ETL_SKIP_MIGRATE:-}" != "1" ]; then
    until output="$(etl migrate 2>&1)"; do
        status=$?
        if [ "$status" -eq 2 ]; then
            echo "$output" >&2
            exit 2
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$output" >&2
            echo "entrypoint: gave up: the database did not answer within ${wait_seconds} s" \
                 "(ETL_DB_WAIT_SECONDS) — check DATABASE_URL and that PostgreSQL is running" >&2
            exit 1
        fi
        sleep 1
    done
    echo "entrypoint: $output"
fi

exec "$@"
