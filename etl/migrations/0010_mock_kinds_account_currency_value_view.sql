-- Issue 13: what a transaction is, the account's reporting currency, and what holdings are worth.
-- Written to apply to an existing database at any later point: IF NOT EXISTS, constraints
-- dropped before they are added, the view replaced.

-- transactions.kind says what a row is (NULL for rows whose writer does not say);
-- description is a short line for people ("Salary", "Buy 3 AAPL @ 187.44").
ALTER TABLE transactions ADD COLUMN IF NOT EXISTS kind text;
ALTER TABLE transactions ADD COLUMN IF NOT EXISTS description text;
ALTER TABLE transactions DROP CONSTRAINT IF EXISTS transactions_kind_known;
ALTER TABLE transactions ADD CONSTRAINT transactions_kind_known
    CHECK (kind IN ('deposit', 'withdrawal', 'salary', 'buy', 'sell', 'dividend', 'split', 'fee', 'interest'));

-- The account's reporting currency (the mock job's --currency); NULL when nobody said.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS currency text;
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_currency_code;
ALTER TABLE accounts ADD CONSTRAINT accounts_currency_code CHECK (currency ~ '^[A-Z]{3}$');

-- Each holdings_monthly row with what it was worth at the month's end.
--   price, price_date: the asset's as-traded close on or before the month's end (the
--     latest stored for the current month); a CASH row is priced 1 in its own currency.
--   currency: that price's currency (the row's, else the asset's; crypto is priced in USD).
--   value = total_balance × price, in `currency`, unrounded.
--   value_account_currency: value converted into accounts.currency at the forex close on
--     or before the month's end: the direct pair (GBP/EUR: × rate), else the inverse pair
--     (EUR/GBP: ÷ rate), else through USD (GBP→USD then USD→EUR, each direct or inverse).
--   missing: why value or value_account_currency is NULL (NULL when neither is).
CREATE OR REPLACE VIEW holdings_monthly_value AS
WITH priced AS (
    SELECT hm.account_id, hm.symbol, hm.asset_type, hm.month, hm.total_balance, hm.unit,
           e.month_end,
           CASE WHEN hm.asset_type = 'CASH' THEN 1::numeric ELSE p.price END AS price,
           CASE WHEN hm.asset_type <> 'CASH' THEN p.date END AS price_date,
           CASE WHEN hm.asset_type = 'CASH' THEN hm.symbol
                ELSE coalesce(p.currency, a.currency, CASE WHEN hm.asset_type = 'CRYPTO' THEN 'USD' END)
           END AS currency,
           acc.currency AS account_currency
      FROM holdings_monthly hm
      JOIN accounts acc USING (account_id)
     CROSS JOIN LATERAL (SELECT (hm.month + interval '1 month' - interval '1 day')::date AS month_end) e
      LEFT JOIN asset a USING (symbol, asset_type)
      LEFT JOIN LATERAL (
            SELECT m.price, m.date, m.currency
              FROM market_data m
             WHERE hm.asset_type <> 'CASH'
               AND m.symbol = hm.symbol AND m.asset_type = hm.asset_type
               AND m.date <= e.month_end
             ORDER BY m.date DESC
             LIMIT 1) p ON true
), rated AS (
    SELECT priced.*,
           priced.total_balance * priced.price AS value,
           CASE WHEN currency = account_currency THEN 1::numeric ELSE fx.direct END AS direct,
           fx.inverse, fx.to_usd, fx.to_usd_inverse, fx.from_usd, fx.from_usd_inverse
      FROM priced
      LEFT JOIN LATERAL (
            SELECT (SELECT m.price FROM market_data m
                     WHERE m.asset_type = 'FOREX' AND m.symbol = priced.currency || '/' || priced.account_currency
                       AND m.date <= priced.month_end ORDER BY m.date DESC LIMIT 1) AS direct,
                   (SELECT m.price FROM market_data m
                     WHERE m.asset_type = 'FOREX' AND m.symbol = priced.account_currency || '/' || priced.currency
                       AND m.date <= priced.month_end ORDER BY m.date DESC LIMIT 1) AS inverse,
                   CASE WHEN priced.currency = 'USD' THEN 1::numeric ELSE
                   (SELECT m.price FROM market_data m
                     WHERE m.asset_type = 'FOREX' AND m.symbol = priced.currency || '/USD'
                       AND m.date <= priced.month_end ORDER BY m.date DESC LIMIT 1) END AS to_usd,
                   (SELECT m.price FROM market_data m
                     WHERE m.asset_type = 'FOREX' AND m.symbol = 'USD/' || priced.currency
                       AND m.date <= priced.month_end ORDER BY m.date DESC LIMIT 1) AS to_usd_inverse,
                   CASE WHEN priced.account_currency = 'USD' THEN 1::numeric ELSE
                   (SELECT m.price FROM market_data m
                     WHERE m.asset_type = 'FOREX' AND m.symbol = 'USD/' || priced.account_currency
                       AND m.date <= priced.month_end ORDER BY m.date DESC LIMIT 1) END AS from_usd,
                   (SELECT m.price FROM market_data m
                     WHERE m.asset_type = 'FOREX' AND m.symbol = priced.account_currency || '/USD'
                       AND m.date <= priced.month_end ORDER BY m.date DESC LIMIT 1) AS from_usd_inverse
             WHERE priced.currency IS DISTINCT FROM priced.account_currency
               AND priced.currency IS NOT NULL AND priced.account_currency IS NOT NULL) fx ON true
), converted AS (
    SELECT rated.*,
           CASE WHEN direct IS NOT NULL THEN value * direct
                WHEN inverse IS NOT NULL THEN value / inverse
                WHEN coalesce(to_usd, to_usd_inverse) IS NOT NULL AND coalesce(from_usd, from_usd_inverse) IS NOT NULL
                THEN value * coalesce(to_usd, 1) * coalesce(from_usd, 1)
                           / (CASE WHEN to_usd IS NULL THEN to_usd_inverse ELSE 1 END
                              * CASE WHEN from_usd IS NULL THEN from_usd_inverse ELSE 1 END)
           END AS value_account_currency,
           direct IS NOT NULL OR inverse IS NOT NULL
               OR (coalesce(to_usd, to_usd_inverse) IS NOT NULL AND coalesce(from_usd, from_usd_inverse) IS NOT NULL)
               AS has_rate
      FROM rated
)
SELECT account_id, symbol, asset_type, month, total_balance, unit,
       price, price_date, currency, value, account_currency, value_account_currency,
       CASE WHEN price IS NULL
            THEN format('no price of %s:%s on or before %s', symbol, asset_type, month_end)
            WHEN currency IS NULL
            THEN format('currency of %s:%s unknown (set asset.currency)', symbol, asset_type)
            WHEN account_currency IS NULL
            THEN 'account has no currency (set accounts.currency)'
            WHEN NOT has_rate
            THEN format('no %s→%s rate on or before %s (%s/%s, %s/%s, or both legs through USD)',
                        currency, account_currency, month_end, currency, account_currency, account_currency,
                        currency)
       END AS missing
  FROM converted;
