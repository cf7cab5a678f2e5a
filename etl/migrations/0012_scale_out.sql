-- Scale-out: runs that share the work, one rate limit for every process, batches of requests.
-- Written to apply to a database at any later point (IF NOT EXISTS throughout).

-- Which run fetched each ledger range: a run that takes an asset's lock re-checks the ranges
-- that runs overlapping it have fetched meanwhile, so two runs never fetch the same days.
ALTER TABLE market_data_fetch_ledger ADD COLUMN IF NOT EXISTS run_id bigint;

-- Each provider's per-minute limit, shared by every process using this database: a token
-- bucket in its virtual-scheduling form. `next_free` is the time the bucket is empty again
-- (the theoretical arrival time of the next request); a reservation of n units starts at
-- greatest(now, next_free - burst) and moves next_free n intervals on, in one statement.
-- A Retry-After moves next_free past the time the provider named, holding every process.
CREATE TABLE IF NOT EXISTS provider_rate_bucket (
    provider    text        PRIMARY KEY,
    next_free   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- `etl enqueue`: a batch of requests, one per chunk of assets; the runs they start carry
-- the batch and the chunk, so `etl runs --batch` can tell how many chunks are done.
CREATE TABLE IF NOT EXISTS etl_batches (
    batch_id    uuid        PRIMARY KEY,
    job         text        NOT NULL,
    chunks      integer     NOT NULL CHECK (chunks > 0),
    assets      integer     NOT NULL CHECK (assets >= 0),
    params      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE etl_job_runs ADD COLUMN IF NOT EXISTS batch_id uuid;
ALTER TABLE etl_job_runs ADD COLUMN IF NOT EXISTS batch_chunk integer;
CREATE INDEX IF NOT EXISTS etl_job_runs_batch ON etl_job_runs (batch_id, batch_chunk) WHERE batch_id IS NOT NULL;
