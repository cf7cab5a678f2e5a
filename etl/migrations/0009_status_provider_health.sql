-- What `etl status` and `etl report` read beyond the data itself.
-- `asset.last_success_at`: when the asset last loaded without an error (quotes
-- or history), set by the same statement that clears its `last_error`.
-- `provider_health`: per provider and UTC day, the requests the runs made and
-- the errors it answered with (the last one and when), recorded at the end of
-- each run's fetching on a connection of its own, so a run that fails still
-- leaves what its providers did. Written idempotently: safe on any database.

ALTER TABLE asset ADD COLUMN IF NOT EXISTS last_success_at timestamptz;

UPDATE asset a
   SET last_success_at = l.fetched_at
  FROM (SELECT symbol, asset_type, max(fetched_at) AS fetched_at
          FROM market_data_fetch_ledger GROUP BY symbol, asset_type) l
 WHERE a.last_success_at IS NULL AND a.symbol = l.symbol AND a.asset_type = l.asset_type;

CREATE TABLE IF NOT EXISTS provider_health (
    provider        text        NOT NULL,
    day             date        NOT NULL,             -- the UTC day of the requests
    requests        integer     NOT NULL DEFAULT 0 CHECK (requests >= 0),
    errors          integer     NOT NULL DEFAULT 0 CHECK (errors >= 0),
    last_error      text,
    last_error_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, day)
);
