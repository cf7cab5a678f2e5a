#!/usr/bin/env bash
# Run the crontab in the foreground with yacron: jobs inherit this container's
# environment, their output is written to the container log prefixed with the
# job's name. On SIGTERM (docker stop) or SIGINT, yacron starts no new job and
# waits for the running ones, and each running job is sent SIGTERM (etl-cron
# passes it on to `etl`, which stops at its next asset with exit 143, announcing
# what it committed): yacron itself does not pass signals on to its jobs.
set -euo pipefail

crontab="${ETL_CRONTAB:-/etc/etl/crontab}"
state_dir="${ETL_STATE_DIR:-/tmp/etl}"
lib_dir="${ETL_LIB_DIR:-/usr/local/lib/etl}"
mkdir -p "$state_dir"
config="$state_dir/yacron.yaml"

python3 "$lib_dir/crontab_to_yacron.py" "$crontab" > "$config"
yacron --validate-config -c "$config" > /dev/null
echo "scheduler: running $(grep -c '^  - name:' "$config") job(s) from $crontab (times in UTC)"

stop() {
    echo "scheduler: stopping; running jobs are asked to stop at their next step"
    kill -TERM "$scheduler" 2>/dev/null || true
    local jobs job
    # yacron's children are the jobs (bash execs a crontab line's single command: etl-cron).
    { read -r -a jobs < "/proc/$scheduler/task/$scheduler/children"; } 2>/dev/null || true
    for job in "${jobs[@]}"; do
        kill -TERM "$job" 2>/dev/null || true
    done
}

yacron -c "$config" &
scheduler=$!
trap stop TERM INT
while kill -0 "$scheduler" 2>/dev/null; do
    wait "$scheduler" || true
done
wait "$scheduler"
