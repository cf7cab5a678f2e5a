-- Provider symbols the ETL resolved at run time, e.g. a CoinGecko coin id found
-- through /search for a ticker it has no mapping for. They are kept here, per
-- provider, and given back to that provider when a later run builds it, so each
-- is looked up once. They are not the asset's own `provider`/`provider_symbol`
-- (the user's override, `etl assets add … --provider … --provider-symbol …`),
-- which put that provider first in the asset's chain: a learned symbol never
-- changes the order of the configured *_PROVIDERS chain.

CREATE TABLE provider_symbols (
    provider        text        NOT NULL,
    symbol          text        NOT NULL,
    asset_type      text        NOT NULL,
    provider_symbol text        NOT NULL CHECK (provider_symbol <> ''),
    learned_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, symbol, asset_type),
    FOREIGN KEY (symbol, asset_type) REFERENCES asset (symbol, asset_type) ON DELETE CASCADE
);
