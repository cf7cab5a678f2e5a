#!/usr/bin/env bash
# Healthy when the database answers and no job run has been stuck in 'running'
# for longer than ETL_HEALTH_MAX_RUN_MINUTES (default 180).
set -euo pipefail
exec python3 /usr/local/lib/etl/health.py
