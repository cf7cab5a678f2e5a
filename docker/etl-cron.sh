#!/usr/bin/env bash
# What the crontab runs: `etl ARGS…`, with exit 75 (another run of the same job
# holds its lock) reported as a skipped run rather than a failure, so overlapping
# runs never raise an alarm. Every finished run is recorded for the healthcheck.
# SIGTERM and SIGINT are passed on to the job, which stops at its next asset
# (exit 143 / 130, its committed assets announced); this script waits for it.
set -uo pipefail

etl "$@" &
job=$!
trap 'kill -TERM "$job" 2>/dev/null' TERM
trap 'kill -INT "$job" 2>/dev/null' INT
while kill -0 "$job" 2>/dev/null; do
    wait "$job"   # returns early when a signal arrives; the job is then still stopping
done
wait "$job"
status=$?
state_dir="${ETL_STATE_DIR:-/tmp/etl}"
mkdir -p "$state_dir" && date -u +%Y-%m-%dT%H:%M:%SZ > "$state_dir/last-scheduled-run"
if [ "$status" -eq 75 ]; then
    echo "etl-cron: etl $* skipped: the previous run is still going (exit 75, not an error)"
    exit 0
fi
exit "$status"
