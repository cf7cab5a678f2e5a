-- Splits and dividends per asset and ex-date (DESIGN.md). `ratio` is shares
-- after per share before (4 for 4:1, 0.1 for 1:10); `amount` is the dividend
-- per share as traded, in `currency` (major unit). Stored `market_data.price`
-- is as traded; `adj_close` is rebased onto the newest action known here.
-- `asset.exchange_timezone` (IANA name from the provider) decides an asset's
-- own "today" for staleness. `asset.corporate_actions_checked` is the last day
-- through which a history request asked a provider that reports corporate
-- actions: the next history request for the asset reaches back at least to it,
-- so an action on a day only the quote jobs stored is still learned. NULL with
-- stored rows means never checked (rows of an older release): the next run
-- refetches the stored span once to restore as-traded prices and one basis.

CREATE TABLE corporate_actions (
    symbol          text        NOT NULL,
    asset_type      text        NOT NULL,
    date            date        NOT NULL CHECK (date BETWEEN DATE '1900-01-01' AND DATE '2200-01-01'),
    kind            text        NOT NULL CHECK (kind IN ('split', 'dividend')),
    ratio           numeric     CHECK (ratio > 0 AND ratio < 1e9),
    amount          numeric     CHECK (amount > 0 AND amount < 1e9),
    currency        text        CHECK (currency ~ '^[A-Z]{3}$'),
    source          text        NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, asset_type, date, kind),
    FOREIGN KEY (symbol, asset_type) REFERENCES asset (symbol, asset_type) ON UPDATE CASCADE ON DELETE CASCADE,
    CHECK ((kind = 'split') = (ratio IS NOT NULL)),
    CHECK ((kind = 'dividend') = (amount IS NOT NULL))
);

ALTER TABLE asset ADD COLUMN exchange_timezone text;
ALTER TABLE asset ADD COLUMN corporate_actions_checked date;
