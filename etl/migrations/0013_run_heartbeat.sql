-- A running run's sign of life (etl/heartbeat.py): stamped every few seconds while
-- the run goes on. A starting run ends the database session of a run of its job that
-- is still 'running' but whose heartbeat is older than ETL_STALE_RUN_SECONDS (its
-- process or network stopped while the server kept its session and locks), and marks
-- it abandoned. NULL for runs recorded before this migration (started_at stands in).

ALTER TABLE etl_job_runs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;
