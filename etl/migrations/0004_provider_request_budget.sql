-- Each provider's requests per UTC day, counted across runs, threads and worker
-- processes so that a day of scheduled runs stays inside a plan's daily limit
-- (Alpha Vantage's free 25, Twelve Data's 800). One unit is reserved before
-- each request by a single INSERT … ON CONFLICT DO UPDATE … WHERE requests <
-- limit; no row returned means the day's budget is spent. `spent_at` is set
-- when the API itself said the day's quota was spent, with `spent_limit` the
-- daily limit then in force: nothing more is asked of that provider that day
-- under that limit whatever the count says, while a different limit configured
-- since (PROVIDER_DAILY_LIMITS after a plan upgrade) lifts the mark. Only
-- providers with a daily limit have rows.

CREATE TABLE provider_request_budget (
    provider    text        NOT NULL,
    day         date        NOT NULL,                -- the UTC day the requests count against
    requests    integer     NOT NULL DEFAULT 0 CHECK (requests >= 0),
    spent_at    timestamptz,
    spent_limit integer     CHECK (spent_limit > 0),  -- the daily limit in force when spent_at was set
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, day)
);
