-- What a running job has committed so far. JobRun.checkpoint updates these in the
-- same transaction as the data it commits (rows_upserted, symbols_ok and the
-- failures recorded so far are updated too), so a run killed before it finishes
-- still says what it loaded: the next run of the job marks it failed
-- ("abandoned") and announces that much in a completion event.

ALTER TABLE etl_job_runs ADD COLUMN symbols jsonb NOT NULL DEFAULT '[]';
