#!/usr/bin/env bash
# Run the crontab in the foreground with yacron: jobs inherit this container's
# environment, their output is written to the container log prefixed with the
# job's name, SIGTERM stops the scheduler cleanly (it waits for running jobs).
set -euo pipefail

crontab="${ETL_CRONTAB:-/etc/etl/crontab}"
state_dir="${ETL_STATE_DIR:-/tmp/etl}"
mkdir -p "$state_dir"
config="$state_dir/yacron.yaml"

python3 /usr/local/lib/etl/crontab_to_yacron.py "$crontab" > "$config"
yacron --validate-config -c "$config" > /dev/null
echo "scheduler: running $(grep -c '^  - name:' "$config") job(s) from $crontab (times in UTC)"
exec yacron -c "$config"
