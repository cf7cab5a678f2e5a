-- The fetch ledger: which date ranges of an asset's history were fetched from
-- which provider, and which days of them came back with nothing (weekends,
-- holidays, days before listing). Only successful fetches are recorded: an
-- error is never mistaken for "no data". A day is covered when market_data has
-- its row or a ledger range lists it among its empty days; a row deleted from
-- the middle of a fetched range is therefore missing again and refetched.

CREATE TABLE market_data_fetch_ledger (
    ledger_id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol          text        NOT NULL,
    asset_type      text        NOT NULL,
    provider        text        NOT NULL,
    range_start     date        NOT NULL,
    range_end       date        NOT NULL,
    rows_returned   integer     NOT NULL CHECK (rows_returned >= 0),
    rows_dropped    integer     NOT NULL DEFAULT 0 CHECK (rows_dropped >= 0),
    -- days of the range, already older than the look-back window when fetched,
    -- for which the provider returned no usable row: final, never asked again
    empty_days      date[]      NOT NULL DEFAULT '{}',
    fetched_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (range_start <= range_end),
    FOREIGN KEY (symbol, asset_type) REFERENCES asset (symbol, asset_type) ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE INDEX market_data_fetch_ledger_asset ON market_data_fetch_ledger (symbol, asset_type, range_start);

-- An unknown or delisted symbol is not asked for again until this time
-- (unless named with --symbols); cleared when the asset loads again.
ALTER TABLE asset ADD COLUMN cool_off_until timestamptz;
